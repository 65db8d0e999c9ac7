"""Build docs/synthetic_contact_sheet.png: a grid of captures showing the generator's variety.

    .venv/bin/python -m casbusi_assets.synthetic.contact_sheet [OUT_PNG] [--seed S]

It generates a batch in a temporary folder, decodes the members through pydicom (so the picture
shows what a reader of the zip sees) and tiles one example of each kind with a caption.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pydicom

from casbusi_assets.synthetic.batch import generate_batch

TILE_W = 320
TILE_H = 240
CAPTION_H = 18

# (caption, predicate over a truth row); the first unused match is shown.
_WANTED: tuple[tuple[str, object], ...] = (
    ("grey + text", lambda r: r["capture"] == "grayscale" and r["annotation_text"] is not None),
    ("grey + text", lambda r: r["capture"] == "grayscale" and r["text_font"] == "pil_ttf"),
    ("doppler", lambda r: r["capture"] == "doppler"),
    ("calipers", lambda r: r["has_calipers"] and r["twin_sop_instance_uid"] is not None),
    ("caliper-free twin", lambda r: r["twin_source_sop_instance_uid"] is not None),
    ("dual view", lambda r: r["capture"] == "dual_view"),
    ("yellow overlay", lambda r: r["capture"] == "yellow_overlay"),
    ("dark", lambda r: r["capture"] == "dark"),
    ("green corrupt", lambda r: r["capture"] == "green_corrupt"),
    ("cine frame", lambda r: r["capture"] == "cine"),
    ("degraded: blur", lambda r: r["text_degradation"] == "blur"),
    ("degraded: jpeg", lambda r: r["text_degradation"] == "jpeg"),
    (
        "degraded: low contrast",
        lambda r: r["text_degradation"] == "low_contrast" and r["capture"] != "green_corrupt",
    ),
    ("axilla", lambda r: r["area"] == "axilla"),
    ("no text", lambda r: r["capture"] == "grayscale" and r["annotation_text"] is None),
    ("calipers", lambda r: r["has_calipers"]),
)


def _decode(data: bytes) -> np.ndarray:
    ds = pydicom.dcmread(io.BytesIO(data))
    arr = ds.pixel_array
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return arr


def build_contact_sheet(out_png: Path, seed: int = 3, patients: int = 10, cols: int = 4) -> Path:
    """Generate a batch and write the contact sheet PNG to `out_png`."""
    with tempfile.TemporaryDirectory() as tmp:
        files = generate_batch(Path(tmp), 0, patients=patients, seed=seed)
        rows = pq.read_table(files.truth_path).to_pylist()
        rows = [
            r
            for r in rows
            if r["member_kind"] in ("image", "video") and r["expected_status"] == "ok"
        ]
        picked: list[tuple[str, dict]] = []
        used: set[str] = set()
        for caption, pred in _WANTED:
            for r in rows:
                if r["member_path"] not in used and pred(r):  # type: ignore[operator]
                    picked.append((caption, r))
                    used.add(r["member_path"])
                    break
        tiles = []
        with zipfile.ZipFile(files.zip_path) as zf:
            for caption, r in picked:
                rgb = _decode(zf.read(r["member_path"]))
                h, w = rgb.shape[:2]
                scale = min(TILE_W / w, TILE_H / h)
                small = cv2.resize(
                    rgb, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA
                )
                tile = np.zeros((TILE_H + CAPTION_H, TILE_W, 3), dtype=np.uint8)
                oy, ox = (TILE_H - small.shape[0]) // 2, (TILE_W - small.shape[1]) // 2
                tile[CAPTION_H + oy : CAPTION_H + oy + small.shape[0], ox : ox + small.shape[1]] = (
                    small
                )
                label = caption
                if r["annotation_text"]:
                    label += ": " + r["annotation_text"].replace("\n", " / ")
                cv2.putText(
                    tile,
                    label[:46],
                    (4, 13),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.38,
                    (120, 220, 255),
                    1,
                    cv2.LINE_AA,
                )
                tiles.append(tile)
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    grid_rows = [np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)]
    sheet = np.vstack(grid_rows)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(
        str(out_png), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]
    )
    return out_png


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="docs/synthetic_contact_sheet.png", type=Path)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)
    path = build_contact_sheet(args.out, seed=args.seed)
    print(json.dumps({"written": str(path), "bytes": path.stat().st_size}))


if __name__ == "__main__":
    main()
