"""Labels import speed: an export of N data rows (the documented line structure, one composite
mask each) parsed, masks resolved from a folder and projected to the original geometry, archive
rows written; and the offline upload payloads for N crops.

    .venv/bin/python benchmarks/bench_labels.py [--rows 1000] [--width 960 --height 720]

Everything is generated in a temporary folder (crops 60 % of the original per side). Prints a
markdown table: seconds per stage, per-row milliseconds, peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from casbusi_assets.labelling.archive import build_archive, write_version  # noqa: E402
from casbusi_assets.labelling.backend import DataRowSpec, global_key_for  # noqa: E402
from casbusi_assets.labelling.export_parsing import parse_export_file  # noqa: E402
from casbusi_assets.labelling.masks import MaskResolver  # noqa: E402
from casbusi_assets.labelling.offline import OfflineBackend, labelbox_paths  # noqa: E402
from casbusi_assets.storage.file_staging import staged_batch_dir  # noqa: E402
from casbusi_assets_tests.labelling.export_fixture import export_line, ndjson  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--width", type=int, default=960)
    ap.add_argument("--height", type=int, default=720)
    args = ap.parse_args()
    w, h = int(args.width * 0.6), int(args.height * 0.6)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        masks = root / "masks"
        masks.mkdir()
        crops, lines = [], []
        for i in range(args.rows):
            sop = f"2.25.{10**12 + i}"
            gk = global_key_for(sop)
            crops.append(
                {
                    "batch_id": f"batch_{i % 10:03d}",
                    "sop_instance_uid": sop,
                    "global_key": gk,
                    "patient_id": f"p{i // 8}",
                    "accession_number": f"a{i // 4}",
                    "crop_path": str(root / f"{sop}.png"),
                    "crop_x": 50,
                    "crop_y": 40,
                    "crop_w": w,
                    "crop_h": h,
                    "image_width": args.width,
                    "image_height": args.height,
                }
            )
            lines.append(
                export_line(
                    gk, f"dr{i}", w, h, label_id=f"lb{i}", composite=(f"cm{i}", [123, 103, 152])
                )
            )
            img = np.zeros((h, w, 3), np.uint8)
            cv2.circle(img, (w // 2, h // 2), min(w, h) // 5, (152, 103, 123), -1)
            cv2.imwrite(str(masks / f"cm{i}.png"), img)
        export = root / "export.ndjson"
        export.write_text(ndjson(lines))
        timings = {}
        t = time.perf_counter()
        labels, errors = parse_export_file(export)
        timings["parse export"] = time.perf_counter() - t
        t = time.perf_counter()
        with staged_batch_dir(root / "files", "labels_archive", "lv-bench") as staged:
            built = build_archive(
                "lv-bench",
                datetime.now(UTC),
                labels,
                errors,
                pd.DataFrame(crops),
                MaskResolver(masks),
                staged,
            )
        timings["masks + rows"] = time.perf_counter() - t
        t = time.perf_counter()
        write_version(root / "warehouse", "lv-bench", built.rows)
        timings["write archive"] = time.perf_counter() - t
        specs = [
            DataRowSpec(
                c["global_key"],
                c["crop_path"],
                c["crop_path"],
                f"{c['sop_instance_uid']}.png",
                {"casbusi_batch": c["batch_id"]},
            )
            for c in crops
        ]
        t = time.perf_counter()
        OfflineBackend(labelbox_paths(root)).upload("batch_bench", specs)
        timings["offline upload payloads"] = time.perf_counter() - t
        assert (built.rows["mask_status"] == "ok").all()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.rows} rows, original {args.width}x{args.height}, crop {w}x{h}\n")
    print("| stage | seconds | ms per row |\n|---|---|---|")
    for name, sec in timings.items():
        print(f"| {name} | {sec:.2f} | {1000 * sec / args.rows:.2f} |")
    print(f"\npeak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
