"""`dark` against truth: the original's darkness (every pixel of the field) vs `field_darkness`
(the echo-bearing part: the convex hull of the field's lit pixels), on a generated batch.

Truth: `capture == "dark"` (the generator's gain-down captures). Each still is decoded the way
`image_table` stores it and cropped by `ultrasound_field` with the regions the DICOM carries, as
`cleaned_images` does; a still is `dark` when its measure exceeds the threshold (default 65, the
original's).

    nice .venv/bin/python benchmarks/bench_darkness.py --batch-dir DIR   # batch_001.zip + truth
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_cleaning_crop_calipers import load_batch  # noqa: E402

from casbusi_assets.cleaning.crop import ultrasound_field  # noqa: E402
from casbusi_assets.cleaning.quality import darkness, field_darkness  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-dir", type=Path, required=True)
    ap.add_argument("--threshold", type=float, default=65.0)
    args = ap.parse_args()
    rows = []
    for zip_path in sorted(args.batch_dir.glob("batch_*.zip")):
        truth = zip_path.with_name(zip_path.stem + ".truth.parquet")
        for row, image, regions in load_batch(zip_path, truth):
            box = ultrasound_field(image, regions).as_tuple()
            t0 = time.process_time()
            old = darkness(image, box)
            t1 = time.process_time()
            new = field_darkness(image, box)
            t2 = time.process_time()
            rows.append(
                {
                    "dark": row["capture"] == "dark",
                    "look": row.get("field_look", "rectangle"),
                    "echo_share": row.get("field_echo_share"),
                    "old": old,
                    "new": new,
                    "ms_old": 1000 * (t1 - t0),
                    "ms_new": 1000 * (t2 - t1),
                }
            )
    df = pd.DataFrame(rows)
    print(f"{len(df)} stills, {int(df['dark'].sum())} dark by truth, threshold {args.threshold}\n")
    print("| measure | subset | n | TP | FP | FN |")
    print("|---|---|---|---|---|---|")
    for col, name in (("old", "whole field (original)"), ("new", "field_darkness")):
        for look, part in [("all", df), *df.groupby("look")]:
            pred = part[col] > args.threshold
            tp = int((pred & part["dark"]).sum())
            fp = int((pred & ~part["dark"]).sum())
            fn = int((~pred & part["dark"]).sum())
            print(f"| {name} | {look} | {len(part)} | {tp} | {fp} | {fn} |")
    wrong = df[(df["new"] > args.threshold) != df["dark"]]
    print("\nfield_darkness wrong:", wrong[["look", "echo_share", "old", "new"]].to_string())
    print(
        f"\nCPU ms per still, median: whole field {df['ms_old'].median():.2f}, "
        f"field_darkness {df['ms_new'].median():.2f}"
    )


if __name__ == "__main__":
    main()
