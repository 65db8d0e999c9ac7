"""Caliper marks found by shape-agnostic proposals and a small learned verifier (plain torch).

The classical detector of `calipers.py` matches the candidate against a handful of drawn
templates (``+``, ``x``, open ``+``, disk): marks of any other family (tilted crosses, stars,
diamonds, circles, brackets, arrowheads) are missed. Here the templates are replaced by a tiny
CNN trained on the widened generator (`models/calipers/train.py`, model card beside it):

1. **Proposals** (no shape assumed). The mark channel (`calipers._mark_channel`: grey, or the
   green channel of RGB, bright for white, grey, yellow, green and cyan marks), a white top-hat
   of ``TOPHAT_PX`` (wider than any filled mark, so a 25 px filled diamond survives), pixels at
   least ``MIN_LEVEL`` bright and *flat* (a same-valued 8-neighbour: marks are burnt in one
   colour, speckle changes from pixel to pixel). Connected pieces of ``MIN_AREA`` pixels or more
   and at most ``MAX_SIZE_PX`` are candidates; so are two pieces of one colour and size facing
   each other (the two halves of ``[ ]``) and a piece with every same-coloured piece within
   ``GROUP_GAP_PX`` (an open-centre cross). Two priors every family shares drop the rest: a
   box at most ``MAX_ASPECT`` times longer than wide (probe icons, ticks and text strokes are
   bars), and on colour screens grey-white or yellow / green / cyan ink, never the red-orange
   or blue of colour flow.
2. **Verifier**: each candidate's neighbourhood (a square of ``max(24, 2 x size)`` px round
   its centre, resampled to 32 x 32) as three planes (the mark channel, the pixels of the
   candidate's own colour, the candidate's pixels) plus eight numbers (size, aspect, fill,
   level, hue saturation, group, background, scale) -> P(mark). The planes show the context
   that tells a mark from a glyph, a tick, a body-marker stroke or a grain: the dotted line
   leading away, letters beside it, the pictogram around it.
3. **Decision**: candidates at or above ``threshold`` (the model card's), outside the field
   (chrome) or inside an OCR text box are dropped; of overlapping hits the likelier wins. Then
   the evidence a single patch cannot hold:

   - *chains*: a hit that is one link of a ruler (the same dot repeated along its row or
     column: depth scales, the scale between the halves of a split screen) or of an evenly
     spaced chain of dots of its size in any direction (a depth scale along a sector's slanted
     edge, the dots of a measurement line) is dropped (`_on_ruler`, `_on_chain`);
   - *brackets*: two halves of one colour and size facing each other across a gap narrower
     than they are long are one mark, reported as their union (`_halves`);
   - *partners*: a doubtful candidate (``RESCUE_MIN`` <= P < threshold; a 2-5 px point looks
     like a speckle grain) is a mark when a candidate drawn alike (one colour, size within a
     factor of two, boxes filled alike) sits at the other end of a dotted or dashed line of its
     colour that stops at both (a dash in the middle of a line has the line going on past it);
   - *frame*: a hit touching the field's border is a depth or focal marker of the region's
     frame;
   - *lone hits*: a hit with no partner drawn alike needs P >= ``LONE_MIN_SCORE``.

Domain code: no Dagster here. The weights are loaded through `CaliperModel.load` with a device
string from the device resource (`cleaning/assets.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from casbusi_assets.cleaning.calipers import (
    BoxGeometry,
    CaliperMark,
    _inside,
    _line_cover,
    _mark_channel,
)
from casbusi_assets.shared.model_files import shipped_model

TOPHAT_PX = 31
TOPHAT_MIN = 40
MIN_LEVEL = 145
MIN_AREA = 4
MAX_SIZE_PX = 31
GROUP_GAP_PX = 6
LEVEL_TOL = 3
PATCH_PX = 32
N_SCALARS = 8
TEXT_PAD_PX = 2
EDGE_DROP = 40
SHARP_SHARE = 0.75
MAX_ASPECT = 1.75
GREY_SPREAD = 30
INK_MIN_GREEN = 150
RULER_LINKS = 3
PAIR_RULE = True
LONE_MIN_SCORE = 0.995
RULER_REACH_PX = 240
CHAIN_TOL_PX = 1.5
CHAIN_REACH_PX = 130
RESCUE_MIN = 0.3
HALF_MIN = 0.1
LINE_MIN_COVER = 0.4
BORDER_PX = 1
# The checkout's models/ or, in a regular install, the package's data files (shared.model_files).
DEFAULT_WEIGHTS = shipped_model("calipers", "calipers_v2.pt")


class CaliperModelError(RuntimeError):
    """The caliper weights are missing or are not a caliper checkpoint."""


@dataclass
class Candidate(BoxGeometry):
    """A proposal: its box (x0, y0 inclusive; x1, y1 exclusive) in image pixels, its pixels,
    its colour and how it was made."""

    x0: int
    y0: int
    x1: int
    y1: int
    mask: np.ndarray  # bool (y1 - y0, x1 - x0)
    level: float  # mark-channel level
    hue: np.ndarray  # median colour (1 or 3 values)
    group: int = 1  # pieces joined


def _window(shape: tuple[int, ...], field: tuple[int, int, int, int] | None, pad: int):
    h, w = shape[:2]
    if field is not None:
        fx, fy, fw, fh = (int(v) for v in field)
        f = (max(0, fx), max(0, fy), min(w, fx + fw), min(h, fy + fh))
    else:
        f = (0, 0, w, h)
    win = (max(0, f[0] - pad), max(0, f[1] - pad), min(w, f[2] + pad), min(h, f[3] + pad))
    return f, win


def _plateaus(colour: np.ndarray, cand: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected plateaus of `cand`: 8-neighbours join only when equal (within 1) in every
    channel, so a mark drawn in one colour stays one piece even where speckle touches it.

    Done with one `connectedComponents` on a doubled grid whose odd cells are the links
    (horizontal, vertical, one diagonal) between equal neighbours."""
    a = colour.astype(np.int16)
    if a.ndim == 2:
        a = a[:, :, None]
    h, w = cand.shape

    def same(dy: int, dx: int) -> np.ndarray:
        if dx >= 0:
            pa, pb = (slice(0, h - dy), slice(0, w - dx)), (slice(dy, h), slice(dx, w))
        else:
            pa, pb = (slice(0, h - dy), slice(-dx, w)), (slice(dy, h), slice(0, w + dx))
        eq = (np.abs(a[pa] - a[pb]) <= 1).all(axis=2)
        return cand[pa] & cand[pb] & eq

    g = np.zeros((2 * h, 2 * w), np.uint8)
    g[::2, ::2] = cand
    g[0::2, 1 : 2 * w - 1 : 2] = same(0, 1)
    g[1 : 2 * h - 1 : 2, 0::2] = same(1, 0)
    # Both diagonals of one square linked would join all four pixels: leave that square out.
    g[1 : 2 * h - 1 : 2, 1 : 2 * w - 1 : 2] = same(1, 1) ^ same(1, -1)
    n, labels = cv2.connectedComponents(g, connectivity=8, ltype=cv2.CV_32S)
    lab = np.ascontiguousarray(labels[::2, ::2])
    lab[~cand] = 0
    return n, lab


@dataclass
class Proposals:
    """Candidates of one image with what the verifier's planes are cut from."""

    cands: list[Candidate]
    ids: list[tuple[int, ...]]  # plateau labels making each candidate
    m: np.ndarray  # mark channel of the window
    colour: np.ndarray  # colour (or grey) of the window
    labels: np.ndarray  # plateau labels of the window
    origin: tuple[int, int]  # window's x0, y0 in the image


def propose(image: np.ndarray, field: tuple[int, int, int, int] | None = None) -> Proposals:
    """Candidates inside the field (found in the field plus a margin)."""
    m_full = _mark_channel(image)
    img = np.asarray(image)
    (fx0, fy0, fx1, fy1), (wx0, wy0, wx1, wy1) = _window(m_full.shape, field, 8)
    if fx1 - fx0 < 5 or fy1 - fy0 < 5:
        z = np.zeros((0, 0), np.uint8)
        return Proposals([], [], z, z, z.astype(np.int32), (0, 0))
    m = np.ascontiguousarray(m_full[wy0:wy1, wx0:wx1])
    colour = (
        np.ascontiguousarray(img[wy0:wy1, wx0:wx1, :3])
        if img.ndim == 3 and img.shape[2] >= 3
        else m
    )
    top = cv2.morphologyEx(m, cv2.MORPH_TOPHAT, np.ones((TOPHAT_PX, TOPHAT_PX), np.uint8))
    n, lab = _plateaus(colour, (top >= TOPHAT_MIN) & (m >= MIN_LEVEL))
    flat = lab.ravel()
    area = np.bincount(flat, minlength=n)
    level = np.bincount(flat, weights=m.ravel().astype(np.float64), minlength=n) / np.maximum(
        area, 1
    )
    # A drawn mark ends abruptly: most of the ring round it is well below its level.
    dil = cv2.dilate(lab.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int64)
    ring = (lab == 0) & (dil > 0)
    rl = dil[ring]
    low = m[ring].astype(np.float64) <= level[rl] - EDGE_DROP
    sharp = np.bincount(rl, weights=low, minlength=n) / np.maximum(np.bincount(rl, minlength=n), 1)
    ok = (area >= 2) & (sharp >= SHARP_SHARE)
    ok[0] = False
    idx = np.nonzero(ok)[0]
    pieces: list[Candidate] = []
    piece_ids: list[int] = []
    if len(idx):
        # Bounding boxes of the kept plateaus (one pass over their pixels).
        ys, xs = np.nonzero(np.isin(lab, idx))
        ls = lab[ys, xs]
        order = np.argsort(ls, kind="stable")
        ls, ys, xs = ls[order], ys[order], xs[order]
        bounds = np.searchsorted(ls, idx)
        ends = np.append(bounds[1:], len(ls))
        c3 = colour if colour.ndim == 3 else colour[:, :, None]
        # Each plateau's median level at once: values sorted within each label's run.
        sv = m[ys, xs][np.lexsort((m[ys, xs], ls))].astype(np.float64)
        for i, b0, b1 in zip(idx, bounds, ends, strict=True):
            yy, xx = ys[b0:b1], xs[b0:b1]
            x0, x1, y0, y1 = int(xx.min()), int(xx.max()) + 1, int(yy.min()), int(yy.max()) + 1
            if max(x1 - x0, y1 - y0) > MAX_SIZE_PX:
                continue
            mask = lab[y0:y1, x0:x1] == i
            hue = c3[yy[0], xx[0]].astype(np.float64)
            # The median, not the mean: a plateau joined to a few pixels of another level
            # keeps the level of its mark (partners and chains compare levels).
            lv = float((sv[b0 + (b1 - b0 - 1) // 2] + sv[b0 + (b1 - b0) // 2]) / 2)
            pieces.append(Candidate(wx0 + x0, wy0 + y0, wx0 + x1, wy0 + y1, mask, lv, hue))
            piece_ids.append(int(i))
    cands: list[Candidate] = []
    ids: list[tuple[int, ...]] = []
    for c, i in zip(pieces, piece_ids, strict=True):
        if area[i] >= MIN_AREA:
            cands.append(c)
            ids.append((i,))
    for members in _groups(pieces):
        g = _merge([pieces[k] for k in members])
        if g is not None:
            cands.append(g)
            ids.append(tuple(piece_ids[k] for k in members))
    keep = [
        k
        for k, c in enumerate(cands)
        if _inside(c.cx, c.cy, (fx0, fy0, fx1 - 1, fy1 - 1)) and _mark_like(c)
    ]
    return Proposals([cands[k] for k in keep], [ids[k] for k in keep], m, colour, lab, (wx0, wy0))


def _mark_like(c: Candidate) -> bool:
    """Priors every caliper family shares: a mark is about as wide as it is tall (a point
    marker, not a bar: probe icons, ruler ticks, text strokes are long), and on a colour
    screen it is grey-white or a yellow / green / cyan ink, never the red-orange or blue of
    colour flow (the green channel leads or ties)."""
    w, h = c.x1 - c.x0, c.y1 - c.y0
    if max(w, h) > MAX_ASPECT * min(w, h):
        return False
    hue = np.asarray(c.hue, dtype=np.float64)
    if hue.size < 3 or float(hue.max() - hue.min()) <= GREY_SPREAD:
        return True
    r, g, b = hue[:3]
    return g >= INK_MIN_GREEN and g >= r - GREY_SPREAD and g >= b - GREY_SPREAD


def _merge(members: list[Candidate]) -> Candidate | None:
    x0 = min(p.x0 for p in members)
    y0 = min(p.y0 for p in members)
    x1 = max(p.x1 for p in members)
    y1 = max(p.y1 for p in members)
    if max(x1 - x0, y1 - y0) > MAX_SIZE_PX:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for p in members:
        mask[p.y0 - y0 : p.y1 - y0, p.x0 - x0 : p.x1 - x0] |= p.mask
    level = float(np.mean([p.level for p in members]))
    return Candidate(x0, y0, x1, y1, mask, level, members[0].hue, group=len(members))


def _groups(pieces: list[Candidate]) -> list[tuple[int, ...]]:
    """Marks drawn in several pieces: facing halves of one size (``[ ]``), and a piece with
    all its same-coloured neighbours (the arms of an open-centre cross)."""
    if len(pieces) < 2:
        return []
    cx = np.array([p.cx for p in pieces])
    cy = np.array([p.cy for p in pieces])
    lv = np.array([p.level for p in pieces])
    sz = np.array([p.size for p in pieces], dtype=np.float64)
    x0 = np.array([p.x0 for p in pieces])
    x1 = np.array([p.x1 for p in pieces])
    y0 = np.array([p.y0 for p in pieces])
    y1 = np.array([p.y1 for p in pieces])
    out: set[tuple[int, ...]] = set()
    for i, a in enumerate(pieces):
        if a.size < 3:
            continue
        gap = np.maximum.reduce([x0 - a.x1, a.x0 - x1, y0 - a.y1, a.y0 - y1])
        same = np.abs(lv - a.level) <= LEVEL_TOL
        near = same & (gap <= GROUP_GAP_PX) & (sz >= 2)
        near[i] = False
        idx = np.nonzero(near)[0]
        if 2 <= len(idx) <= 7:
            out.add(tuple(sorted([i, *idx.tolist()])))
        d = np.hypot(cx - a.cx, cy - a.cy)
        # Halves of one bracket: one size (within a pixel, or 15% when tilted), facing; the
        # boxes of a tilted bracket's halves overlap.
        like = np.abs(sz - a.size) <= max(1.0, 0.15 * a.size)
        twin = same & like & (d <= 2.2 * a.size + 3) & (gap >= -0.5 * a.size) & (d >= 2)
        for j in np.nonzero(twin)[0]:
            if j > i:
                out.add((i, int(j)))
    return sorted(out)


def features(props: Proposals) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, 32, 32) planes and (N, 8) numbers for the verifier (float32)."""
    cands = props.cands
    n = len(cands)
    planes = np.zeros((n, 3, PATCH_PX, PATCH_PX), np.float32)
    scal = np.zeros((n, N_SCALARS), np.float32)
    if n == 0:
        return planes, scal
    pad = MAX_SIZE_PX + 2
    ox, oy = props.origin
    mp = np.pad(props.m, pad)
    c3 = props.colour if props.colour.ndim == 3 else props.colour[:, :, None]
    cp = np.pad(c3.astype(np.int16), ((pad, pad), (pad, pad), (0, 0)), constant_values=-99)
    lp = np.pad(props.labels, pad)
    half = PATCH_PX // 2
    sides = np.array([max(PATCH_PX, 2 * c.size + (2 * c.size) % 2) for c in cands])
    cxs = np.array([int(round(c.cx)) - ox + pad for c in cands])
    cys = np.array([int(round(c.cy)) - oy + pad for c in cands])
    small = np.nonzero((sides == PATCH_PX) & np.array([len(i) == 1 for i in props.ids]))[0]
    if len(small):
        # Native-scale 32 x 32 windows of every small single-piece candidate at once.
        win = np.lib.stride_tricks.sliding_window_view
        ys, xs = cys[small] - half, cxs[small] - half
        g = win(mp, (PATCH_PX, PATCH_PX))[ys, xs]
        cw = win(cp, (PATCH_PX, PATCH_PX, cp.shape[2]))[ys, xs, 0]
        lw = win(lp, (PATCH_PX, PATCH_PX))[ys, xs]
        hues = np.stack([np.asarray(cands[k].hue) for k in small])[:, None, None, :]
        planes[small, 0] = g / 255.0
        planes[small, 1] = np.abs(cw - hues).max(axis=3) <= LEVEL_TOL
        lid = np.array([props.ids[k][0] for k in small])[:, None, None]
        planes[small, 2] = lw == lid
    done = set(small.tolist())
    for k, c in enumerate(cands):
        if k not in done:
            side = int(sides[k])
            x0, y0 = cxs[k] - side // 2, cys[k] - side // 2
            if x0 < 0 or y0 < 0 or x0 + side > mp.shape[1] or y0 + side > mp.shape[0]:
                side = PATCH_PX
                x0, y0 = cxs[k] - half, cys[k] - half
            grey = mp[y0 : y0 + side, x0 : x0 + side]
            same = np.abs(cp[y0 : y0 + side, x0 : x0 + side] - c.hue).max(axis=2) <= LEVEL_TOL
            own = np.isin(lp[y0 : y0 + side, x0 : x0 + side], props.ids[k])
            interp = cv2.INTER_AREA
            planes[k, 0] = cv2.resize(grey, (PATCH_PX, PATCH_PX), interpolation=interp) / 255.0
            for j, plane in ((1, same), (2, own)):
                planes[k, j] = cv2.resize(
                    plane.astype(np.float32), (PATCH_PX, PATCH_PX), interpolation=interp
                )
        bw, bh = c.x1 - c.x0, c.y1 - c.y0
        hue = np.asarray(c.hue, dtype=np.float32)
        scal[k] = (
            c.size / MAX_SIZE_PX,
            (bw - bh) / max(bw, bh),
            np.count_nonzero(c.mask) / (bw * bh),
            c.level / 255.0,
            (float(hue.max() - hue.min()) / 255.0) if hue.size > 1 else 0.0,
            min(c.group, 4) / 4.0,
            float(np.median(planes[k, 0])),
            sides[k] / 64.0,
        )
    return planes, scal


def build_net():
    """The verifier: three 3 x 3 conv blocks on the planes, the numbers joined before the
    head. About 45 k parameters."""
    import torch
    from torch import nn

    class Verifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(
                nn.Conv2d(3, 12, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),  # 16
                nn.Conv2d(12, 24, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),  # 8
                nn.Conv2d(24, 32, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),  # 4
            )
            self.head = nn.Sequential(
                nn.Linear(32 * 16 + N_SCALARS, 64), nn.ReLU(), nn.Linear(64, 1)
            )

        def forward(self, planes: torch.Tensor, scal: torch.Tensor) -> torch.Tensor:
            z = self.conv(planes).flatten(1)
            return self.head(torch.cat([z, scal], dim=1)).squeeze(1)

    return Verifier()


class CaliperModel:
    """The trained verifier on a device, with the threshold it was validated at."""

    def __init__(self, net, device: str, threshold: float, path: Path | None = None) -> None:
        self.net = net
        self.device = device
        self.threshold = float(threshold)
        self.path = path

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> CaliperModel:
        import torch

        from casbusi_assets.shared.device import resolve_device

        p = Path(path) if path else DEFAULT_WEIGHTS
        if not p.is_file():
            raise CaliperModelError(
                f"caliper weights not found at {p}; train them with "
                "`python models/calipers/train.py`"
            )
        ck = torch.load(p, map_location="cpu", weights_only=False)
        if not isinstance(ck, dict) or "state_dict" not in ck or ck.get("kind") != "calipers":
            raise CaliperModelError(f"{p} is not a caliper checkpoint")
        dev = resolve_device(device, engine="easyocr")
        net = build_net()
        net.load_state_dict(ck["state_dict"])
        net.eval().to(dev)
        return cls(net, dev, float(ck.get("threshold", 0.5)), p)

    def score(self, planes: np.ndarray, scal: np.ndarray, batch: int = 512) -> np.ndarray:
        import torch

        if len(planes) == 0:
            return np.zeros(0, np.float32)
        out = []
        with torch.inference_mode():
            for i in range(0, len(planes), batch):
                p = torch.from_numpy(planes[i : i + batch]).to(self.device)
                s = torch.from_numpy(scal[i : i + batch]).to(self.device)
                out.append(torch.sigmoid(self.net(p, s)).float().cpu().numpy())
        return np.concatenate(out)


def _on_ruler(c: Candidate, cands: Sequence[Candidate]) -> bool:
    """A link of a ruler or scale: ``RULER_LINKS`` or more other plateaus of its level, at
    least 3 px, on its own row or column within ``RULER_REACH_PX``. A measurement puts two
    marks on a line (its dotted line's dots are smaller); a depth ruler, the scale between the
    halves of a split screen or a tick row repeats the same dot many times."""
    links = 0
    for o in cands:
        if o is c or o.size < 3 or abs(o.level - c.level) > LEVEL_TOL or o.group > 1:
            continue
        if _overlap(o, c):
            continue  # a piece of the candidate itself (an arm of an open-centre cross)
        dx, dy = abs(o.cx - c.cx), abs(o.cy - c.cy)
        if (dx <= 1 and 3 <= dy <= RULER_REACH_PX) or (dy <= 1 and 3 <= dx <= RULER_REACH_PX):
            links += 1
            if links >= RULER_LINKS:
                return True
    return False


def _on_chain(c: Candidate, cands: Sequence[Candidate]) -> bool:
    """A link of an evenly spaced chain of dots of its colour and size, in any direction: a
    dot of a dotted line (another on each side, equally far) or the end of such a line or of a
    ruler (three more at v, 2v, 3v). A sector's depth scale runs along its slanted edge, which
    `_on_ruler` (rows and columns) does not see. A caliper mark ends its line, and the line's
    dots are not the mark's size."""
    vs = []
    for o in cands:
        if o is c or o.group > 1 or abs(o.level - c.level) > LEVEL_TOL or _overlap(o, c):
            continue
        if abs(o.size - c.size) > max(1.0, 0.25 * c.size):
            continue
        dx, dy = o.cx - c.cx, o.cy - c.cy
        d = float(np.hypot(dx, dy))
        if c.size + 1 < d <= CHAIN_REACH_PX:
            vs.append((dx, dy))
    if len(vs) < 2:
        return False
    v = np.array(vs)
    # Interior link: v_i + v_j = 0 (i != j, since 2 v_i is never near 0).
    s2 = v[:, None, :] + v[None, :, :]
    if (np.hypot(s2[..., 0], s2[..., 1]) <= CHAIN_TOL_PX).any():
        return True
    # End link: v_j, 2 v_j and 3 v_j.
    for j in range(len(v)):
        if np.hypot(*(v - 2 * v[j]).T).min() <= CHAIN_TOL_PX and (
            np.hypot(*(v - 3 * v[j]).T).min() <= CHAIN_TOL_PX
        ):
            return True
    return False


def _partners(a: Candidate, b: Candidate) -> bool:
    """Two hits that can be the ends of one measurement: one colour, sizes within a factor of
    two, apart by more than their size."""
    if abs(a.level - b.level) > 2 * LEVEL_TOL:
        return False
    if max(a.size, b.size) > 2 * min(a.size, b.size) + 2:
        return False
    return float(np.hypot(a.cx - b.cx, a.cy - b.cy)) > 1.5 * max(a.size, b.size)


def _fill(c: Candidate) -> float:
    return float(np.count_nonzero(c.mask)) / max(1, c.mask.size)


def _alike(a: Candidate, b: Candidate) -> bool:
    """Drawn by one hand: partners of one colour whose boxes are filled alike."""
    return _partners(a, b) and abs(_fill(a) - _fill(b)) <= 0.2


def _halves(a: Candidate, b: Candidate) -> bool:
    """The two halves of one bracket: single pieces of one colour and size, facing each
    other across a gap narrower than they are long."""
    if a.group > 1 or b.group > 1 or abs(a.level - b.level) > LEVEL_TOL:
        return False
    if abs(a.size - b.size) > max(2.0, 0.3 * max(a.size, b.size)):
        return False
    gap = max(b.x0 - a.x1, a.x0 - b.x1, b.y0 - a.y1, a.y0 - b.y1)
    d = float(np.hypot(a.cx - b.cx, a.cy - b.cy))
    size = max(a.size, b.size)
    return -0.5 * size <= gap <= 0.75 * size and 2 <= d <= 2.2 * size + 3


def _line_goes_on(m: np.ndarray, c: Candidate, o: Candidate) -> bool:
    """The line from `o` to `c` carries on past `c`: `c` is a dash or dot of that line, not
    the mark at its end."""
    d = float(np.hypot(c.cx - o.cx, c.cy - o.cy))
    if d == 0:
        return False
    reach = c.size / 2 + 14
    beyond = SimpleNamespace(
        cx=c.cx + (c.cx - o.cx) / d * reach,
        cy=c.cy + (c.cy - o.cy) / d * reach,
        size=1,
        level=c.level,
    )
    return _line_cover(m, c, beyond) >= LINE_MIN_COVER


def _overlap(a: Candidate, b: Candidate) -> bool:
    return not (a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0)


def detect_calipers_learned(
    image: np.ndarray,
    model: CaliperModel,
    *,
    field: tuple[int, int, int, int] | None = None,
    text_boxes: Sequence[tuple[int, int, int, int]] = (),
    threshold: float | None = None,
) -> list[CaliperMark]:
    """Caliper marks of one capture with the learned verifier; same contract as
    `calipers.detect_calipers` (field as x, y, w, h; text boxes as x0, y0, x1, y1)."""
    props = propose(image, field)
    boxes = [tuple(int(v) for v in b) for b in text_boxes]
    keep = [
        k
        for k, c in enumerate(props.cands)
        if not any(_inside(c.cx, c.cy, b, TEXT_PAD_PX) for b in boxes)
    ]
    props.cands = [props.cands[k] for k in keep]
    props.ids = [props.ids[k] for k in keep]
    cands = props.cands
    if not cands:
        return []
    planes, scal = features(props)
    prob = model.score(planes, scal)
    thr = model.threshold if threshold is None else float(threshold)
    m = _mark_channel(image)
    order = np.argsort(-prob)

    single = {ids[0]: c for c, ids in zip(cands, props.ids, strict=True) if len(ids) == 1}
    pieces_of = {
        id(c): [single[i] for i in ids if i in single]
        for c, ids in zip(cands, props.ids, strict=True)
    }

    def plausible(c: Candidate) -> bool:
        """Not a link of a ruler or a chain, nor made of such links (two dashes)."""
        if c.group > 1:
            return not any(_on_chain(q, cands) for q in pieces_of.get(id(c), []))
        return not (_on_ruler(c, cands) or _on_chain(c, cands))

    kept: list[tuple[Candidate, float]] = []
    doubtful: list[tuple[Candidate, float]] = []
    for k in order:
        p = float(prob[k])
        if p < min(thr, RESCUE_MIN):
            break
        c = cands[int(k)]
        if any(_overlap(c, o) for o, _ in kept):
            continue  # a piece of a kept mark, or a group holding one
        if p >= thr:
            kept.append((c, p))
        elif not any(_overlap(c, o) for o, _ in doubtful):
            doubtful.append((c, p))
    kept = [(c, p) for c, p in kept if plausible(c)]
    # Bracket halves scored one by one are one mark: their union (the verifier saw it as a
    # group proposal, but large or tilted brackets score higher half by half). The other half
    # may have lost to an overlapping group: look among all likely pieces.
    pool = [(cands[int(k)], float(prob[k])) for k in order if prob[k] >= HALF_MIN]
    halves: list[Candidate] = []
    joined: list[tuple[Candidate, float]] = []
    for a, pa in kept + doubtful:
        if any(a is h for h in halves):
            continue
        for b, pb in pool:
            if b is a or any(b is h for h in halves) or not _halves(a, b):
                continue
            g = _merge([a, b])
            if g is not None and g.size <= 1.5 * min(g.x1 - g.x0, g.y1 - g.y0):
                joined.append((g, max(pa, pb)))
                halves += [a, b]
                break
    if joined:
        # Halves and anything a joined bracket overlaps (a group that took a dot of the line
        # with one half) give way to it.
        def free(t: tuple[Candidate, float]) -> bool:
            return not any(t[0] is h for h in halves) and not any(
                _overlap(t[0], g) for g, _ in joined
            )

        kept = [t for t in joined if t[1] >= thr] + [t for t in kept if free(t)]
        doubtful = [t for t in joined if t[1] < thr] + [t for t in doubtful if free(t)]
    # A doubtful single piece (a point of a few pixels looks like a grain) is a mark when a
    # piece drawn alike sits at the other end of a dotted or dashed line of its colour; the
    # links of a chain (dashes of a line, ruler dots) are not.
    rescued: list[tuple[Candidate, float]] = []
    for c, p in doubtful:
        for o, _ in kept + doubtful:
            if o is c or not _alike(c, o) or not plausible(o):
                continue
            if (
                _line_cover(m, c, o) >= LINE_MIN_COVER
                and not _line_goes_on(m, c, o)
                and not _line_goes_on(m, o, c)
                and plausible(c)
            ):
                rescued.append((c, p))
                break
    kept += rescued
    if field is not None:
        # Touching the field's border: a depth or focal marker of the region's frame.
        fx, fy, fw, fh = (int(v) for v in field)
        kept = [
            (c, p)
            for c, p in kept
            if c.x0 > fx + BORDER_PX
            and c.y0 > fy + BORDER_PX
            and c.x1 < fx + fw - BORDER_PX
            and c.y1 < fy + fh - BORDER_PX
        ]
    if PAIR_RULE:
        # A measurement has two ends drawn alike: a lone hit needs to be nearly certain.
        kept = [
            (c, p)
            for c, p in kept
            if p >= LONE_MIN_SCORE or any(o is not c and _alike(c, o) for o, _ in kept)
        ]
    kept.sort(key=lambda t: (t[0].y0, t[0].x0))
    return [
        CaliperMark(c.x0, c.y0, c.x1 - c.x0, c.y1 - c.y0, "learned", round(p, 3)) for c, p in kept
    ]


def candidate_labels(cands: Sequence[Candidate], marks: Sequence[dict[str, object]]) -> np.ndarray:
    """Training label per candidate: 1 when it is a whole truth mark (centre within 3 px of the
    mark's centre and box IoU >= 0.4 with the mark's ink box), else 0."""
    y = np.zeros(len(cands), np.float32)
    for k, c in enumerate(cands):
        for t in marks:
            bx, by, bw, bh = (int(v) for v in t["box"])  # type: ignore[union-attr]
            tcx, tcy = bx + (bw - 1) / 2, by + (bh - 1) / 2
            if np.hypot(c.cx - tcx, c.cy - tcy) > 3:
                continue
            ix = max(0, min(c.x1, bx + bw) - max(c.x0, bx))
            iy = max(0, min(c.y1, by + bh) - max(c.y0, by))
            inter = ix * iy
            union = (c.x1 - c.x0) * (c.y1 - c.y0) + bw * bh - inter
            if union and inter / union >= 0.4:
                y[k] = 1.0
                break
    return y


class LearnedCalipers:
    """A picklable caliper step for `cleaning.batch.clean_images` (``CaliperFn``): only the
    weights path and device travel to worker processes; each process loads the weights once,
    on its first image."""

    def __init__(self, path: str | Path | None = None, device: str = "cpu") -> None:
        self.path = str(path) if path else str(DEFAULT_WEIGHTS)
        self.device = device
        self._model: CaliperModel | None = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "device": self.device, "_model": None}

    def load(self) -> CaliperModel:
        if self._model is None:
            self._model = CaliperModel.load(self.path, device=self.device)
        return self._model

    def __call__(
        self,
        image: np.ndarray,
        field_box: tuple[int, int, int, int] | None,
        text_boxes: Sequence[tuple[int, int, int, int]],
    ) -> list[tuple[int, int, int, int]]:
        marks = detect_calipers_learned(
            image, self.load(), field=field_box, text_boxes=tuple(text_boxes)
        )
        return [(int(m.x), int(m.y), int(m.w), int(m.h)) for m in marks]
