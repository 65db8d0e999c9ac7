"""A small gated-convolution U-Net that fills masked pixels of one grey channel.

Plain torch (no torchvision). Input: the channel scaled to [-1, 1] with the masked pixels set
to 0, the mask, and a classical fill of the hole (OpenCV Navier-Stokes); output: that fill plus
a learned correction inside the mask (the final layer starts at zero, so an untrained network
*is* the classical fill, and training can only move it towards the clean pixels). Only masked
pixels change; the caller composites again so pixels outside the mask never do. Gated convolutions (Yu et al.,
"Free-Form Image Inpainting with Gated Convolution", 2019) learn per pixel how much of a
feature comes from valid pixels, which is what thin, irregular masks need.

The network is fully convolutional: it runs on a whole image of any size in one pass (the
image is reflect-padded to a multiple of 4 and cropped back), so no edge is ever skipped.
Its receptive field is RECEPTIVE_RADIUS pixels: a crop with at least that margin round a hole
gives the masked pixels exactly the values a whole-image pass gives them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

PAD_MULTIPLE = 4  # two stride-2 stages
# enc1 2 + enc2 2x(1+1) + mid 4x(1+2+4) + dec2 2x1 + dec1 1 + out 1 = 40 px; rounded up.
RECEPTIVE_RADIUS = 48


@dataclass(frozen=True)
class InpaintNetConfig:
    width: int = 12  # channels at full resolution; x2 at 1/2, x4 at 1/4


class GatedConv(nn.Module):
    """conv -> (feature, gate); out = act(feature) * sigmoid(gate)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, 3, stride=stride, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat, gate = self.conv(x).chunk(2, dim=1)
        return F.elu(feat) * torch.sigmoid(gate)


class InpaintNet(nn.Module):
    def __init__(self, config: InpaintNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or InpaintNetConfig()
        c = self.config.width
        self.enc1 = nn.Sequential(GatedConv(3, c), GatedConv(c, c))
        self.enc2 = nn.Sequential(GatedConv(c, 2 * c, stride=2), GatedConv(2 * c, 2 * c))
        self.mid = nn.Sequential(
            GatedConv(2 * c, 4 * c, stride=2),
            GatedConv(4 * c, 4 * c, dilation=2),
            GatedConv(4 * c, 4 * c, dilation=4),
        )
        self.dec2 = GatedConv(6 * c, 2 * c)
        self.dec1 = GatedConv(3 * c, c)
        self.out = nn.Conv2d(c, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
        """image, fill (B, 1, H, W) in [-1, 1], mask (B, 1, H, W) in {0, 1}; H, W multiples
        of 4. Returns (B, 1, H, W) in [-1, 1]: the corrected fill composited into the image."""
        x = torch.cat([image * (1 - mask), mask, fill], dim=1)
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        m = self.mid(e2)
        d2 = self.dec2(torch.cat([F.interpolate(m, size=e2.shape[-2:], mode="nearest"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="nearest"), e1], 1))
        pred = torch.clamp(fill + self.out(d1), -1.0, 1.0)
        return pred * mask + image * (1 - mask)


def pad_to_multiple(t: torch.Tensor, multiple: int = PAD_MULTIPLE) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad the last two dims up to a multiple; returns (padded, pad_bottom, pad_right)."""
    h, w = t.shape[-2:]
    pb, pr = (-h) % multiple, (-w) % multiple
    if pb or pr:
        mode = "reflect" if h > pb and w > pr else "replicate"
        t = F.pad(t, (0, pr, 0, pb), mode=mode)
    return t, pb, pr


def save_model(model: InpaintNet, path: Path, extra: dict[str, object] | None = None) -> None:
    """Weights as a plain state dict with the config beside it (loads with weights_only=True)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"config": asdict(model.config), "state_dict": model.state_dict(), "extra": extra or {}},
        path,
    )


def load_model(path: Path, device: str = "cpu") -> InpaintNet:
    """Load shipped weights; a missing or foreign file gives a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"inpainting weights not found at {path}; train them with "
            f"`python models/inpainting/train.py` or set CASBUSI_INPAINT_MODEL"
        )
    blob = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise ValueError(f"{path} is not an inpainting checkpoint (no state_dict)")
    model = InpaintNet(InpaintNetConfig(**blob.get("config", {})))
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()
