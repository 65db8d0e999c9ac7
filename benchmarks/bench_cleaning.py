"""Benchmark of cleaned_images / cleaned_videos against the generator's ground truth.

Two batches of a new seed go through the real graph with `casbusi_assets.runner.run_batch` (CPU):
batch_001 (>= 300 stills) and batch_002, which re-sends one study of batch_001 (same bytes and
UIDs, as the generator does for every later batch). On top, this script adds pixel duplicates
under NEW SOPInstanceUIDs, re-encoded as uncompressed Explicit VR Little Endian (so the encoded
PixelData bytes differ and only the decoded-pixel hash can match):
- within batch_001: copies of some of its own stills, in another folder;
- across batches: copies of other batch_001 stills added to batch_002.
Their truth is known by construction. Measured: duplicates (found / false), twins (recall, false
pairs, the distance distributions the threshold was chosen from), corrupt (precision / recall),
ms per image of each step (from the asset's metadata), wall time of the whole runs.

    nice .venv/bin/python benchmarks/bench_cleaning.py --seed 5150 --patients 44 --out /tmp/bc
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from casbusi_assets.runner import run_batch
from casbusi_assets.storage import warehouse
from casbusi_assets.storage.home import HomeLayout
from casbusi_assets.synthetic import generate_batches

SELECT = [
    "dicom_catalog", "image_table", "video_table", "case_table", "case_study_table",
    "breast_table", "ocr_table", "cleaned_images", "cleaned_videos",
]  # fmt: skip


def _plain_candidates(truth: pd.DataFrame) -> pd.DataFrame:
    """Ordinary stills whose copy can only be a duplicate (no twin, no calipers, no edge case)."""
    t = truth[(truth["member_kind"] == "image") & (truth["expected_status"] == "ok")]
    return t[
        t["twin_sop_instance_uid"].isna()
        & t["twin_source_sop_instance_uid"].isna()
        & ~t["has_calipers"].fillna(False).astype(bool)
        & t["exact_duplicate_of"].isna()
        & t["resent_from_batch"].isna()
        & (t["capture"] == "grayscale")
    ].sort_values("member_path")


def _reencoded_copy(data: bytes, tag: str) -> tuple[bytes, str]:
    ds = pydicom.dcmread(io.BytesIO(data))
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress()
    else:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    uid = generate_uid(entropy_srcs=[tag, str(ds.SOPInstanceUID)])
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue(), uid


def add_new_uid_copies(b1: Path, b2: Path, truth1: pd.DataFrame, n_within: int, n_across: int):
    """Append re-encoded, re-UIDed copies; returns expected {(batch, copy uid): source uid}."""
    cands = _plain_candidates(truth1)
    rng = np.random.default_rng(7)
    picks = cands.iloc[rng.permutation(len(cands))[: n_within + n_across]]
    expected: dict[tuple[str, str], str] = {}
    with zipfile.ZipFile(b1) as zf:
        sources = {p: zf.read(p) for p in picks["member_path"]}
    plan = [("batch_001", b1, p) for p in picks["member_path"][:n_within]]
    plan += [("batch_002", b2, p) for p in picks["member_path"][n_within:]]
    for batch, zip_path, member in plan:
        data, uid = _reencoded_copy(sources[member], batch)
        src_uid = truth1.set_index("member_path").loc[member, "sop_instance_uid"]
        folder, name = member.rsplit("/", 1)
        with zipfile.ZipFile(zip_path, "a") as zf:
            zf.writestr(f"{folder}_resent_newuid/{name}", data)
        expected[(batch, uid)] = src_uid
    return expected


def _latest_metadata(home: HomeLayout, asset: str, batch: str) -> dict:
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home.dagster_home)
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[batch]), limit=1
        ).records
        meta = records[0].asset_materialization.metadata
        return {k: v.value for k, v in meta.items() if not k.startswith("sheet_")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=5150)
    ap.add_argument("--patients", type=int, default=44)
    ap.add_argument("--within", type=int, default=4)
    ap.add_argument("--across", type=int, default=6)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_cleaning"))
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    files = generate_batches(out / "zips", batches=2, patients=args.patients, seed=args.seed)
    print(
        f"generated in {time.perf_counter() - t0:.0f} s: {[(f.batch_id, f.n_images) for f in files]}"
    )
    truths = {f.batch_id: pd.read_parquet(f.truth_path) for f in files}
    expected_new = add_new_uid_copies(
        files[0].zip_path, files[1].zip_path, truths["batch_001"], args.within, args.across
    )
    home = HomeLayout(out / "home").create()
    walls = {}
    for f in files:
        t = time.perf_counter()
        run_batch(f.zip_path, home, select=SELECT, echo=lambda m: None)
        walls[f.batch_id] = time.perf_counter() - t
        print(f"{f.batch_id}: run_batch {walls[f.batch_id]:.0f} s")

    cleaned = {b: warehouse.read_batch(home.warehouse, "cleaned_images", b) for b in truths}
    images = {b: warehouse.read_batch(home.warehouse, "image_table", b) for b in truths}
    report: dict[str, object] = {"seed": args.seed, "patients": args.patients}
    report["stills"] = {b: len(c) for b, c in cleaned.items()}
    report["clips"] = {
        b: len(warehouse.read_batch(home.warehouse, "cleaned_videos", b)) for b in truths
    }

    # ---- duplicates: expected (batch, uid) -> kept uid
    expected: dict[tuple[str, str], tuple[str, str]] = {}
    t2 = truths["batch_002"]
    for uid in t2.loc[
        (t2["member_kind"] == "image") & t2["resent_from_batch"].notna(), "sop_instance_uid"
    ]:
        expected[("batch_002", uid)] = ("batch_001", uid)
    for (batch, uid), src in expected_new.items():
        # within a batch the smaller UID is kept; across, the earlier batch's copy
        if batch == "batch_001":
            kept = min(uid, src)
            dup = max(uid, src)
            expected[(batch, dup)] = (batch, kept)
        else:
            expected[(batch, uid)] = ("batch_001", src)
    got = {}
    for b, c in cleaned.items():
        for r in c[c["duplicate_of"].notna()].itertuples():
            got[(b, r.sop_instance_uid)] = (r.duplicate_of_batch, r.duplicate_of)
    found = sum(1 for k, v in expected.items() if got.get(k) == v)
    false = sum(1 for k, v in got.items() if expected.get(k) != v)
    exact_same_uid = {}
    for b, t in truths.items():
        copies = t[t["exact_duplicate_of"].notna() & (t["member_kind"] == "image")]
        n = images[b].set_index("sop_instance_uid")["n_members"]
        exact_same_uid[b] = {
            "files": len(copies),
            "collapsed_to_one_row": int(sum(n.get(u, 0) >= 2 for u in copies["sop_instance_uid"])),
        }
    report["duplicates"] = {
        "expected": len(expected),
        "found": found,
        "false": false,
        "by_kind": {
            "across_same_uid (generator re-send)": sum(
                1
                for k in expected
                if k not in {(b, u) for (b, u) in expected_new} and k[0] == "batch_002"
            ),
            "within_new_uid_reencoded": sum(1 for (b, _u) in expected_new if b == "batch_001"),
            "across_new_uid_reencoded": sum(1 for (b, _u) in expected_new if b == "batch_002"),
        },
        "exact_same_uid_files": exact_same_uid,
    }

    # ---- twins
    pairs, found_pairs, false_pairs = set(), 0, 0
    twin_d, other_d, twin_rel, other_rel = [], [], [], []
    caliper_twin_excluded = 0
    for b, c in cleaned.items():
        t = truths[b]
        tp = t[t["twin_sop_instance_uid"].notna()]
        truth_pairs = {
            frozenset((r.sop_instance_uid, r.twin_sop_instance_uid)) for r in tp.itertuples()
        }
        pairs |= {(b, p) for p in truth_pairs}
        ci = c.set_index("sop_instance_uid")
        for p in truth_pairs:
            a, z = tuple(p)
            if (
                a in ci.index
                and z in ci.index
                and (ci.loc[a, "twin_of"] == z or ci.loc[z, "twin_of"] == a)
            ):
                found_pairs += 1
        in_pair = {u for p in truth_pairs for u in p}
        for r in c.itertuples():
            if (
                isinstance(r.twin_of, str)
                and frozenset((r.sop_instance_uid, r.twin_of)) not in truth_pairs
            ):
                false_pairs += 1
            if pd.notna(r.twin_distance):
                (twin_d if r.sop_instance_uid in in_pair else other_d).append(
                    float(r.twin_distance)
                )
            if pd.notna(getattr(r, "twin_relative_distance", None)):
                (twin_rel if r.sop_instance_uid in in_pair else other_rel).append(
                    float(r.twin_relative_distance)
                )
            if "caliper_twin" in list(r.exclusion_reasons):
                caliper_twin_excluded += 1

    def _dist(v: list[float]) -> dict[str, float]:
        if not v:
            return {}
        a = np.array(v)
        return {
            "n": len(a), "min": round(float(a.min()), 2), "p50": round(float(np.median(a)), 2),
            "p99": round(float(np.percentile(a, 99)), 2), "max": round(float(a.max()), 2),
        }  # fmt: skip

    report["twins"] = {
        "truth_pairs": len(pairs),
        "found": found_pairs,
        "recall": round(found_pairs / max(1, len(pairs)), 4),
        "false_pair_rows": false_pairs,
        "caliper_twin_excluded": caliper_twin_excluded,
        "distance_true_twins": _dist(twin_d),
        "distance_nearest_non_twin": _dist(other_d),
        "relative_distance_true_twins": _dist(twin_rel),
        "relative_distance_nearest_non_twin": _dist(other_rel),
    }

    # ---- corrupt
    tp = fp = fn = 0
    for b, c in cleaned.items():
        t = truths[b][truths[b]["member_kind"] == "image"].drop_duplicates("sop_instance_uid")
        corrupt_truth = set(t.loc[t["capture"] == "green_corrupt", "sop_instance_uid"])
        pred = set(c.loc[c["is_corrupt"].astype(bool), "sop_instance_uid"])
        tp += len(pred & corrupt_truth)
        fp += len(pred - corrupt_truth)
        fn += len(corrupt_truth - pred)
    report["corrupt"] = {
        "truth": tp + fn, "predicted": tp + fp,
        "precision": round(tp / max(1, tp + fp), 4), "recall": round(tp / max(1, tp + fn), 4),
    }  # fmt: skip

    report["reasons"] = {
        b: c["exclusion_reasons"].explode().dropna().value_counts().to_dict()
        for b, c in cleaned.items()
    }
    report["included"] = {b: int(c["include"].sum()) for b, c in cleaned.items()}
    report["run_batch_wall_s"] = {b: round(s, 1) for b, s in walls.items()}
    for b in truths:
        meta = _latest_metadata(home, "cleaned_images", b)
        report[f"{b}_ms_per_image_by_step"] = meta.get("ms_per_image_by_step")
        report[f"{b}_orientation"] = {
            "model": meta.get("orientation_model"), "sources": meta.get("orientation_source"),
        }  # fmt: skip
    report["load_average_at_end"] = os.getloadavg()
    text = json.dumps(report, indent=2, default=str)
    (out / "report.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
