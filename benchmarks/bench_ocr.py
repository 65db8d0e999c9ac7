"""OCR accuracy and speed on a synthetic batch (and what is read on the real pydicom-data captures).

    .venv/bin/python benchmarks/bench_ocr.py --seed 2026 --patients 50
    .venv/bin/python benchmarks/bench_ocr.py --real          # only the real captures

Generates one batch with `casbusi_assets.synthetic.generate_batches` into a temporary folder,
decodes every still (`member_kind == 'image'`, `expected_status == 'ok'`) with pydicom, runs
`read_annotation` with the ultrasound field from the DICOM header (union of all regions, as the
OCR asset does), and compares each field with the generator's truth, separately for clean
(`text_degradation == 'none'`) and degraded captures. Captures without any annotation count as
clean: every field must then come out unknown.

Per field it reports accuracy and the three kinds of error: *missed* (truth present, read
unknown), *spurious* (truth unknown, read present) and *wrong* (both present, different).
The unknown-vs-present table splits every field into right / wrong / missed / spurious /
both-unknown over all stills. `ms/img` times the OCR engine call (`ocr_ms`) and the whole
`read_annotation` call; both are wall-clock on whatever else the machine is doing, so the load
average is printed alongside (at the start and at the end of the run).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import statistics
import sys
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

FIELDS = ("laterality", "orientation", "clock_pos", "nipple_dist_cm", "area")
# Every distinct ultrasound image of pydicom / pydicom-data (other encodings of the same pixels
# left out); none carries a breast annotation, so every field must come out unknown.
REAL_CAPTURES = (
    "US1_UNCR.dcm",
    "OBXXXX1A.dcm",
    "gdcm-US-ALOKA-16.dcm",
    "examples_palette.dcm",
    "JPGLosslessP14SV1_1s_1f_8b.dcm",
    "color3d_jpeg_baseline.dcm",
    "examples_rgb_color.dcm",
    "examples_jpeg2k.dcm",
    "color-pl.dcm",
)


def _decode(data: bytes) -> tuple[np.ndarray, Any]:
    import pydicom
    from pydicom.pixels import apply_color_lut

    ds = pydicom.dcmread(io.BytesIO(data))
    arr = ds.pixel_array  # pydicom 3 converts YBR to RGB by default
    if getattr(ds, "PhotometricInterpretation", "") == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.dtype != np.uint8:
        hi = float(arr.max()) or 1.0
        arr = (arr.astype(np.float32) * (255.0 / hi)).astype(np.uint8)
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        arr = arr[0]
    return arr, ds


def _regions(ds: Any) -> tuple[int, int, int, int] | None:
    """Union of the tissue regions of SequenceOfUltrasoundRegions (what the OCR asset passes)."""
    seq = ds.get("SequenceOfUltrasoundRegions")
    if not seq:
        return None
    boxes = [
        (
            int(r.RegionLocationMinX0),
            int(r.RegionLocationMinY0),
            int(r.RegionLocationMaxX1),
            int(r.RegionLocationMaxY1),
        )
        for r in seq
        if int(r.get("RegionDataType", 1) or 1) in (1, 2)  # tissue / colour flow, not waveforms
    ]
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _norm(field: str, value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None if field in ("clock_pos", "nipple_dist_cm") else "unknown"
    return value


def _present(field: str, value: Any) -> bool:
    return value is not None and value != "unknown"


def _equal(field: str, truth: Any, read: Any) -> bool:
    if field == "nipple_dist_cm" and truth is not None and read is not None:
        return abs(float(truth) - float(read)) <= 0.05
    return truth == read


def _load_avg() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def run_synthetic(
    seed: int,
    patients: int,
    engine_opts: dict[str, Any],
    read_opts: dict[str, Any],
    show: int,
    varied_share: float | None = None,
    style: str | None = None,
    batch_dir: Path | None = None,
) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from casbusi_assets.ocr.engines import make_engine
    from casbusi_assets.ocr.reading import read_annotation
    from casbusi_assets.synthetic import generate_batches
    from casbusi_assets.synthetic.config import GeneratorConfig

    load_start = _load_avg()
    config = (
        GeneratorConfig()
        if varied_share is None
        else GeneratorConfig(varied_style_share=varied_share)
    )
    with tempfile.TemporaryDirectory(prefix="bench_ocr_") as tmp:
        t0 = time.perf_counter()
        folder = batch_dir or Path(tmp)
        zip_path, truth_path = folder / "batch_001.zip", folder / "batch_001.truth.parquet"
        if not (zip_path.exists() and truth_path.exists()):
            files = generate_batches(folder, batches=1, patients=patients, seed=seed, config=config)
            zip_path, truth_path = files[0].zip_path, files[0].truth_path
        gen_s = time.perf_counter() - t0
        truth = pq.read_table(truth_path).to_pylist()
        stills = [r for r in truth if r["member_kind"] == "image" and r["expected_status"] == "ok"]
        if style is not None:  # one screen style only (the truth column exists from f60f5db on)
            stills = [r for r in stills if r.get("screen_style", "classic") == style]
        t0 = time.perf_counter()
        engine = make_engine(**engine_opts)
        init_s = time.perf_counter() - t0

        stats: dict[str, dict[str, Counter[str]]] = {
            "clean": defaultdict(Counter),
            "degraded": defaultdict(Counter),
        }
        n_images: Counter[str] = Counter()
        ocr_ms: list[float] = []
        total_ms: list[float] = []
        cpu_ms: list[float] = []  # process CPU time (both onnxruntime threads)
        sizes: dict[str, list[float]] = defaultdict(list)
        failures: list[dict[str, Any]] = []
        by_degradation: dict[str, Counter[str]] = defaultdict(Counter)
        by_style: dict[str, Counter[str]] = defaultdict(Counter)
        with zipfile.ZipFile(zip_path) as zf:
            for row in stills:
                img, ds = _decode(zf.read(row["member_path"]))
                region = _regions(ds)
                t1, c1 = time.perf_counter(), time.process_time()
                reading = read_annotation(img, engine, region, **read_opts)
                total_ms.append((time.perf_counter() - t1) * 1000.0)
                cpu_ms.append((time.process_time() - c1) * 1000.0)
                sizes[f"{img.shape[1]}x{img.shape[0]}"].append(reading.ocr_ms)
                ocr_ms.append(reading.ocr_ms)
                degradation = row["text_degradation"] or "none"
                group = "clean" if degradation == "none" else "degraded"
                n_images[group] += 1
                wrong_fields = []
                style_key = f"{row.get('screen_style') or 'classic'} {group}"
                for f in FIELDS:
                    t = _norm(f, row[f])
                    r = _norm(f, getattr(reading.parsed, f))
                    by_style[style_key][f"{f} n"] += 1
                    by_style[style_key][f"{f} ok"] += _equal(f, t, r)
                    if _equal(f, t, r):
                        stats[group][f]["correct"] += 1
                        # which side of the unknown-vs-present confusion the hit is on
                        stats[group][f]["both_present" if _present(f, t) else "both_unknown"] += 1
                    elif _present(f, t) and not _present(f, r):
                        stats[group][f]["missed"] += 1
                        wrong_fields.append(f)
                    elif not _present(f, t) and _present(f, r):
                        stats[group][f]["spurious"] += 1
                        wrong_fields.append(f)
                    else:
                        stats[group][f]["wrong"] += 1
                        wrong_fields.append(f)
                by_degradation[degradation]["images"] += 1
                by_degradation[degradation]["all_fields_ok"] += not wrong_fields
                if wrong_fields:
                    failures.append(
                        {
                            "member": row["member_path"].rsplit("/", 1)[-1],
                            "capture": row["capture"],
                            "degradation": degradation,
                            "font": row["text_font"],
                            "style": row.get("screen_style"),
                            "size": f"{img.shape[1]}x{img.shape[0]}",
                            "truth_text": (row["annotation_text"] or "").replace("\n", " / "),
                            "read": reading.description,
                            "fields": wrong_fields,
                            "boxes": [b.as_dict() for b in reading.all_boxes],
                        }
                    )

    def pct(c: Counter[str]) -> str:
        # both_present / both_unknown split "correct" again: not part of the total
        n = sum(c[k] for k in ("correct", "missed", "spurious", "wrong"))
        return f"{100.0 * c['correct'] / n:.1f}%" if n else "n/a"

    lines = [
        f"### OCR on synthetic batch: seed {seed}, {patients} patients, "
        f"varied_style_share {config.varied_style_share}"
        + (f" ({style} stills only)" if style else "")
        + ", "
        f"{sum(n_images.values())} stills ({n_images['clean']} clean, "
        f"{n_images['degraded']} degraded)",
        "",
        "| field | clean | degraded | missed | spurious | wrong |",
        "|---|---|---|---|---|---|",
    ]
    for f in FIELDS:
        c, d = stats["clean"][f], stats["degraded"][f]
        lines.append(
            f"| {f} | {pct(c)} | {pct(d)} | "
            f"{c['missed']} / {d['missed']} | {c['spurious']} / {d['spurious']} | "
            f"{c['wrong']} / {d['wrong']} |"
        )
    lines += [
        "",
        "(missed / spurious / wrong: clean / degraded counts)",
        "",
        "Unknown vs present, clean + degraded (truth -> read): present->present right / "
        "present->present wrong / present->unknown / unknown->present / unknown->unknown",
        "",
        "| field | P->P ok | P->P wrong | P->U | U->P | U->U |",
        "|---|---|---|---|---|---|",
    ]
    for f in FIELDS:
        both = stats["clean"][f] + stats["degraded"][f]
        lines.append(
            f"| {f} | {both['both_present']} | {both['wrong']} | {both['missed']} | "
            f"{both['spurious']} | {both['both_unknown']} |"
        )
    keys = sorted(by_style)
    lines += [
        "",
        "Per screen style (accuracy, images):",
        "",
        "| field | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for f in FIELDS:
        cells = []
        for k in keys:
            c = by_style[k]
            cells.append(f"{100.0 * c[f + ' ok'] / c[f + ' n']:.1f}% ({c[f + ' n']})")
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "",
        "| degradation | images | all fields right |",
        "|---|---|---|",
    ]
    for k in sorted(by_degradation):
        c = by_degradation[k]
        lines.append(f"| {k} | {c['images']} | {c['all_fields_ok']} |")
    lines += [
        "",
        f"ms/img, OCR engine call: median {statistics.median(ocr_ms):.0f}, "
        f"mean {statistics.fmean(ocr_ms):.0f}, p90 {np.percentile(ocr_ms, 90):.0f}; "
        f"whole read_annotation: median {statistics.median(total_ms):.0f}, "
        f"p90 {np.percentile(total_ms, 90):.0f}; "
        f"CPU time per read_annotation (2 threads summed): median {statistics.median(cpu_ms):.0f}",
        "OCR engine ms by screen size (median, n): "
        + ", ".join(
            f"{k} {statistics.median(v):.0f}/p90 {np.percentile(v, 90):.0f} ({len(v)})"
            for k, v in sorted(sizes.items(), key=lambda kv: int(kv[0].split("x")[0]))
        ),
        f"engine {engine!r}, init {init_s:.2f} s; batch generation {gen_s:.1f} s; "
        f"load average at start {load_start}, at end {_load_avg()}; {os.cpu_count()} CPUs",
    ]
    print("\n".join(lines))
    if failures and show:
        print(f"\n#### {len(failures)} images with at least one wrong field (first {show})\n")
        for fl in failures[:show]:
            print(
                f"- [{fl['degradation']}, {fl['capture']}, {fl['style']}, {fl['font']}, "
                f"{fl['size']}] "
                f"truth `{fl['truth_text']}` read `{fl['read']}` wrong {fl['fields']}"
            )
    return {
        "seed": seed,
        "patients": patients,
        "images": dict(n_images),
        "accuracy": {g: {f: dict(stats[g][f]) for f in FIELDS} for g in ("clean", "degraded")},
        "ocr_ms_median": statistics.median(ocr_ms),
        "read_ms_median": statistics.median(total_ms),
        "read_ms_p90": float(np.percentile(total_ms, 90)),
        "cpu_ms_median": statistics.median(cpu_ms),
        "ocr_ms_by_size": {k: statistics.median(v) for k, v in sizes.items()},
        "failures": failures,
    }


def run_real(engine_opts: dict[str, Any], read_opts: dict[str, Any]) -> list[dict[str, Any]]:
    from pydicom.data import get_testdata_file

    from casbusi_assets.ocr.engines import make_engine
    from casbusi_assets.ocr.reading import read_annotation

    engine = make_engine(**engine_opts)
    out = []
    print("\n### Real captures (pydicom-data)\n")
    for name in REAL_CAPTURES:
        # only names known to ship locally: get_testdata_file hangs ~21 s offline otherwise
        path = get_testdata_file(name)
        if path is None:
            print(f"- {name}: not installed (pip install pydicom-data)")
            continue
        img, ds = _decode(Path(path).read_bytes())
        region = _regions(ds)
        reading = read_annotation(img, engine, region, **read_opts)
        kept = " | ".join(b.text for b in reading.text_boxes)
        dropped = " | ".join(
            f"{b.text} ({b.drop_reason})" for b in reading.all_boxes if b.drop_reason
        )
        print(
            f"- **{name}** {img.shape[1]}x{img.shape[0]}, region {region}: "
            f"description `{reading.description}`; parsed {reading.parsed.as_dict()}; "
            f"dropped: {dropped or '-'}; {reading.ocr_ms:.0f} ms"
        )
        out.append(
            {
                "file": name,
                "region": region,
                "description": reading.description,
                "kept": kept,
                "parsed": reading.parsed.as_dict(),
                "all_boxes": [b.as_dict() for b in reading.all_boxes],
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--patients", type=int, default=50)
    ap.add_argument("--engine", default="rapidocr")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--engine-opts", default="{}", help="JSON dict passed to make_engine")
    ap.add_argument("--read-opts", default="{}", help="JSON dict passed to read_annotation")
    ap.add_argument("--real", action="store_true", help="only the real pydicom-data captures")
    ap.add_argument("--no-real", action="store_true", help="skip the real captures")
    ap.add_argument("--show", type=int, default=25, help="failures to list")
    ap.add_argument("--json", type=Path, help="write the full results (failures too) here")
    ap.add_argument(
        "--varied-share",
        type=float,
        default=None,
        help="GeneratorConfig.varied_style_share (default: the generator's; 0.0 = classic only)",
    )
    ap.add_argument("--style", choices=("classic", "varied"), help="score one screen style only")
    ap.add_argument(
        "--batch-dir",
        type=Path,
        help="generate the batch here, or reuse the one already there (so that another tree's "
        "reader, run with PYTHONPATH pointing at it, reads the same batch)",
    )
    args = ap.parse_args(argv)

    engine_opts = {"name": args.engine, "device": args.device, **json.loads(args.engine_opts)}
    read_opts = json.loads(args.read_opts)
    results: dict[str, Any] = {}
    if not args.real:
        results["synthetic"] = run_synthetic(
            args.seed,
            args.patients,
            engine_opts,
            read_opts,
            args.show,
            args.varied_share,
            args.style,
            args.batch_dir,
        )
    if not args.no_real:
        results["real"] = run_real(engine_opts, read_opts)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
