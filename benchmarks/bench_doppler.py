"""Doppler detection against the generator's truth: the old rule and the new detector, one run.

    .venv/bin/python benchmarks/bench_doppler.py                       # seed 4242, 40 patients
    .venv/bin/python benchmarks/bench_doppler.py --seed 11 --patients 30 --doppler-share 0.3

Generates one batch (both screen styles: the default config has 60% varied), decodes every still
that the catalog would accept straight from the zip, and asks two questions of frame 0:

- **before**: the rule of the first version (casbusi-spec 3.5 made tolerant to stray pixels):
  at least 20 "red" pixels (red largest, R-G >= 100, R-B >= 100, R >= 200) and 20 "blue" ones;
- **after**: `casbusi_assets.pixels.doppler.detect_doppler` with the file's ultrasound regions.

Prints precision / recall of `is_doppler` overall, per screen style and per truth `doppler_kind`,
the `doppler_kind` agreement on true positives, the false positives by capture type, and the
real pydicom-data captures' answers. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zipfile
from collections import Counter
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom

from casbusi_assets.pixels.decode import decode_frame
from casbusi_assets.pixels.doppler import detect_doppler, regions_from_dataset
from casbusi_assets.synthetic import generate_batch
from casbusi_assets.synthetic.config import GeneratorConfig

REAL = (
    "US1_UNCR.dcm",
    "US1_J2KI.dcm",
    "examples_rgb_color.dcm",
    "ExplVR_BigEnd.dcm",
    "color-pl.dcm",
    "OBXXXX1A.dcm",
    "examples_palette.dcm",
    "examples_ybr_color.dcm",
    "color3d_jpeg_baseline.dcm",
    "gdcm-US-ALOKA-16.dcm",
)


def old_rule(rgb: np.ndarray, min_pixels: int = 20) -> bool:
    """The detector this change replaces (red AND blue, each >= min_pixels)."""
    if rgb.ndim != 3:
        return False
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    red = (r >= g) & (r >= b) & (r - b >= 100) & (r - g >= 100) & (r >= 200)
    blue = (b >= g) & (b >= r) & (b - r >= 100) & (b - g >= 100) & (b >= 200)
    return int(red.sum()) >= min_pixels and int(blue.sum()) >= min_pixels


def pr(truth: pd.Series, pred: pd.Series) -> tuple[int, int, int, str, str]:
    tp = int((truth & pred).sum())
    fp = int((~truth & pred).sum())
    fn = int((truth & ~pred).sum())
    prec = f"{tp / (tp + fp):.3f}" if tp + fp else "n/a"
    rec = f"{tp / (tp + fn):.3f}" if tp + fn else "n/a"
    return tp, fp, fn, prec, rec


def _hues(frame: np.ndarray, r: object) -> str:
    """What a Doppler still shows inside its field (the scale bar lies outside): power, or
    colour flow in red only, blue only or both."""
    if r.doppler_kind == "power":
        return "power"
    box = frame[int(r.region_y0) : int(r.region_y1) + 1, int(r.region_x0) : int(r.region_x1) + 1]
    f = box.astype(np.int16)
    red = int(((f[..., 0] - f[..., 2] >= 100) & (f[..., 0] - f[..., 1] >= 100)).sum())
    blue = int(((f[..., 2] - f[..., 0] >= 100) & (f[..., 2] - f[..., 1] >= 60)).sum())
    if red > 50 and blue > 50:
        return "color, both hues"
    return "color, red only" if red > 50 else "color, blue only"


def evaluate(zip_path: Path, truth: pd.DataFrame) -> pd.DataFrame:
    stills = truth[(truth["expected_status"] == "ok") & (truth["member_kind"] == "image")]
    rows = []
    spent = 0.0
    with zipfile.ZipFile(zip_path) as zf:
        for r in stills.itertuples():
            ds = pydicom.dcmread(BytesIO(zf.read(r.member_path)))
            frame = decode_frame(ds, 0)
            grey_file = str(ds.get("PhotometricInterpretation", "")).startswith("MONOCHROME")
            t0 = time.perf_counter()
            finding = None if grey_file else detect_doppler(frame, regions_from_dataset(ds))
            spent += time.perf_counter() - t0
            # The same frame with the header's regions ignored: the field comes from the pixels.
            blind = None if grey_file else detect_doppler(frame, None)
            rows.append(
                {
                    "member_path": r.member_path,
                    "style": r.screen_style,
                    "capture": r.capture,
                    "truth": bool(r.is_doppler),
                    "truth_kind": r.doppler_kind,
                    "before": (not grey_file) and old_rule(frame),
                    "after": bool(finding and finding.is_doppler),
                    "after_kind": finding.kind if finding else None,
                    "field_source": finding.field_source if finding else None,
                    "hues": _hues(frame, r) if r.is_doppler else None,
                    "pixels_only": bool(blind and blind.is_doppler),
                    "pixels_only_kind": blind.kind if blind else None,
                }
            )
    df = pd.DataFrame(rows)
    df.attrs["detect_s"] = spent
    return df


def report(df: pd.DataFrame) -> None:
    n_rgb = int(df["field_source"].notna().sum())
    print(
        f"\n{len(df)} stills ({n_rgb} colour files), {int(df['truth'].sum())} Doppler in truth; "
        f"styles {dict(Counter(df['style']))}; detector {df.attrs['detect_s'] / max(n_rgb, 1) * 1000:.1f} ms/colour still"
    )
    print(
        "\n| subset | n | Doppler | before P | before R | after P | after R "
        "| after, no regions P | after, no regions R |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    subsets = [("all", df)] + [(f"style {s}", g) for s, g in df.groupby("style")]
    for name, g in subsets:
        b, a = pr(g["truth"], g["before"]), pr(g["truth"], g["after"])
        p = pr(g["truth"], g["pixels_only"])
        print(
            f"| {name} | {len(g)} | {int(g['truth'].sum())} | {b[3]} | {b[4]} | {a[3]} | {a[4]} "
            f"| {p[3]} | {p[4]} |"
        )
    print("\nRecall per truth kind and flow hues (Doppler stills only):\n")
    print("| truth (what the field shows) | n | before recall | after recall | after kind right |")
    print("|---|---|---|---|---|")
    for hues, g in df[df["truth"]].groupby("hues"):
        right = int((g["after_kind"] == g["truth_kind"]).sum())
        print(
            f"| {hues} | {len(g)} | {g['before'].mean():.3f} | {g['after'].mean():.3f} | "
            f"{right}/{len(g)} |"
        )
    print("\nfalse positives (FP) / misses (FN), after:\n")
    for col in ("after", "pixels_only"):
        tp, fp_, fn_, _, _ = pr(df["truth"], df[col])
        print(f"- {col}: TP {tp}, FP {fp_}, FN {fn_}")
    fp = df[~df["truth"] & df["after"]]
    fn = df[df["truth"] & ~df["after"]]
    print(f"\nafter: false positives by capture {dict(Counter(fp['capture']))}")
    print(f"after: misses {fn[['member_path', 'style', 'truth_kind']].to_dict('records')}")
    print(f"field source of colour stills: {dict(Counter(df['field_source'].dropna()))}")


def real_files() -> None:
    from pydicom.data import get_testdata_file

    print("\n| real file | before | after | kind | field from |")
    print("|---|---|---|---|---|")
    for name in REAL:
        path = get_testdata_file(name)
        if path is None:
            continue
        ds = pydicom.dcmread(path)
        frame = decode_frame(ds, 0)
        f = detect_doppler(frame, regions_from_dataset(ds))
        print(f"| {name} | {old_rule(frame)} | {f.is_doppler} | {f.kind} | {f.field_source} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--patients", type=int, default=40)
    ap.add_argument("--doppler-share", type=float, default=None)
    ap.add_argument("--varied-share", type=float, default=None)
    args = ap.parse_args()
    overrides = {}
    if args.doppler_share is not None:
        overrides["doppler_share"] = args.doppler_share
    if args.varied_share is not None:
        overrides["varied_style_share"] = args.varied_share
    cfg = GeneratorConfig(**overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        files = generate_batch(Path(tmp), 0, patients=args.patients, seed=args.seed, config=cfg)
        print(
            f"seed {args.seed}, {args.patients} patients, config overrides {overrides or 'none'}: "
            f"generated {files.n_images} stills in {time.perf_counter() - t0:.0f} s"
        )
        truth = pd.read_parquet(files.truth_path)
        df = evaluate(files.zip_path, truth)
    report(df)
    real_files()


if __name__ == "__main__":
    main()
