"""Write one export: a new, immutable folder `<exports>/<export_id>/`.

    images/<name>.png          each exported still, cropped to the ultrasound field (the
                               caliper-free copy where inpainting made one)
    masks/<name>.png           the label mask of that still, cropped the same way (when labelled)
    videos/<clip>/frame_N.png  the saved frames of each exported clip, cropped
    TrainData.csv              bags per (accession, breast) for CADBUSI-Training
    InstanceData.csv           instance labels, when a labels archive exists
    manifest.parquet           one row per file above with its lineage
    export_config.json         every setting, the code version, the inputs; no secret
    README.md                  the data card

Everything is written into a hidden staging folder first and renamed into place at the end, so
an export is either complete or absent; an existing folder is never touched. The content (file
names, bytes, manifest) depends only on the data and the settings, so exporting the same data
twice gives identical manifests under two export IDs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from casbusi_assets.export import data_card
from casbusi_assets.export.config import ExportConfig
from casbusi_assets.export.filters import (
    NO_IMAGE_BAG,
    apply_filters,
    cleaning_reason_counts,
    filter_counts,
    truthy,
)
from casbusi_assets.export.inputs import ExportInputs, load_inputs, relative_to_home
from casbusi_assets.export.manifest import content_hash, manifest_table, write_manifest
from casbusi_assets.export.splits import (
    append_ledger,
    assign_splits,
    ledger_name,
    patient_classes,
    read_ledger,
)
from casbusi_assets.export.train_data import (
    build_bags,
    build_instance_data,
    export_stem,
    write_instance_data,
    write_train_data,
)
from casbusi_assets.storage.files import data_path, exists, is_remote, list_files, read_image
from casbusi_assets.storage.home import HomeLayout

EXPORTS_DIR = "exports"  # <home>/exports/<export_id>/
LEDGER_DIR = "split_ledgers"  # <home>/exports/split_ledgers/ (stratified mode only)

_FRAME = re.compile(r"frame_(\d+)\.png$")
# Environment variables whose values must never reach an exported file.
_SECRET_NAME = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSW(OR)?D|CREDENTIAL)", re.IGNORECASE)


class ExportError(RuntimeError):
    """The export could not be written; nothing was left behind."""


@dataclass
class ExportPlan:
    images: pd.DataFrame  # every still candidate, with export_reason and, if exported, names
    videos: pd.DataFrame
    splits: pd.DataFrame  # patient_id, split, valid, split_u, split_source
    new_ledger_rows: pd.DataFrame
    bags: pd.DataFrame

    @property
    def exported_images(self) -> pd.DataFrame:
        return self.images[self.images["export_reason"].isna()]

    @property
    def exported_videos(self) -> pd.DataFrame:
        if self.videos.empty:
            return self.videos
        return self.videos[self.videos["export_reason"].isna()]


@dataclass
class ExportResult:
    export_id: str
    export_dir: Path
    manifest_sha256: str
    stats: dict
    new_ledger_rows: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def summary(self) -> list[str]:
        return data_card.summary_lines(self.stats)


_flag = truthy


def _frames(folder: str | None) -> list[Path]:
    if not folder:
        return []
    # a local folder or an s3:// URL: the frames as paths with .name (UPath when remote)
    return [data_path(f) for f in list_files(folder) if _FRAME.search(data_path(f).name)]


def plan_export(
    inputs: ExportInputs, config: ExportConfig, ledger: pd.DataFrame | None = None
) -> ExportPlan:
    """Decide what is exported, under which name, in which split and bag (no files written)."""
    config.validate()
    images = inputs.images.copy()
    if images.empty:
        images = pd.DataFrame(columns=[*inputs.images.columns, "source_path", "inpainted"])
    use_inp = [
        config.use_inpainted and bool(p) and exists(p)
        for p in images.get("inpainted_path", pd.Series([None] * len(images)))
    ]
    images["inpainted"] = use_inp
    images["source_path"] = [
        inp_path if use else img_path
        for use, inp_path, img_path in zip(
            use_inp,
            images.get("inpainted_path", [None] * len(images)),
            images["image_path"],
            strict=True,
        )
    ]
    images["source_exists"] = [bool(p) and exists(p) for p in images["source_path"]]
    images = apply_filters(images, config, "image")

    videos = inputs.videos.copy() if config.include_videos else pd.DataFrame()
    if not videos.empty:
        videos["source_exists"] = [bool(_frames(d)) for d in videos["frames_dir"]]
        videos = apply_filters(videos, config, "video")

    kept = images["export_reason"].isna()
    classes = patient_classes(images[kept])
    splits, new_rows = assign_splits(classes, config, ledger)
    split_of = dict(zip(splits["patient_id"], splits["split"], strict=True))
    valid_of = dict(zip(splits["patient_id"], splits["valid"], strict=True))

    images["export_name"] = None
    images["split"] = None
    images["valid"] = None
    names = [
        export_stem(r.patient_id, r.accession_number, r.laterality, r.sop_instance_uid) + ".png"
        for r in images[kept].itertuples()
    ]
    images.loc[kept, "export_name"] = names
    images.loc[kept, "split"] = images.loc[kept, "patient_id"].map(split_of)
    images.loc[kept, "valid"] = images.loc[kept, "patient_id"].map(valid_of)

    image_bags = set(
        zip(
            images.loc[kept, "patient_id"],
            images.loc[kept, "accession_number"],
            images.loc[kept, "breast"],
            strict=True,
        )
    )
    if not videos.empty:
        vkept = videos["export_reason"].isna()
        orphan = vkept & ~pd.Series(
            [
                (p, a, b) in image_bags
                for p, a, b in zip(
                    videos["patient_id"], videos["accession_number"], videos["breast"], strict=True
                )
            ],
            index=videos.index,
        )
        videos.loc[orphan, "export_reason"] = NO_IMAGE_BAG
        vkept = videos["export_reason"].isna()
        videos["clip_name"] = None
        videos["split"] = None
        videos["valid"] = None
        videos.loc[vkept, "clip_name"] = [
            export_stem(r.patient_id, r.accession_number, r.laterality, r.sop_instance_uid)
            for r in videos[vkept].itertuples()
        ]
        videos.loc[vkept, "split"] = videos.loc[vkept, "patient_id"].map(split_of)
        videos.loc[vkept, "valid"] = videos.loc[vkept, "patient_id"].map(valid_of)
        kept_videos = videos[vkept]
    else:
        kept_videos = None

    bags = build_bags(images[kept], kept_videos)
    bag_of = {(r.patient_id, r.Accession_Number, r.Breast): int(r.ID) for r in bags.itertuples()}
    images["bag_id"] = [
        bag_of.get((p, a, b)) if k else None
        for p, a, b, k in zip(
            images["patient_id"], images["accession_number"], images["breast"], kept, strict=True
        )
    ]
    if not videos.empty:
        videos["bag_id"] = [
            bag_of.get((p, a, b))
            for p, a, b in zip(
                videos["patient_id"], videos["accession_number"], videos["breast"], strict=True
            )
        ]
    return ExportPlan(images, videos, splits, new_rows, bags)


def _crop_box(shape: tuple[int, ...], row) -> tuple[int, int, int, int]:
    """The crop clipped to the image: x, y, w, h."""
    height, width = shape[:2]
    x0, y0 = max(0, int(row.crop_x)), max(0, int(row.crop_y))
    x1 = min(width, int(row.crop_x) + int(row.crop_w))
    y1 = min(height, int(row.crop_y) + int(row.crop_h))
    if x1 <= x0 or y1 <= y0:
        raise ExportError(
            f"crop box ({row.crop_x}, {row.crop_y}, {row.crop_w}, {row.crop_h}) lies outside "
            f"the {width}x{height} image of {row.sop_instance_uid}"
        )
    return x0, y0, x1 - x0, y1 - y0


def _write_cropped(source: str, target: Path, row) -> dict:
    img = read_image(source, cv2.IMREAD_UNCHANGED)  # a local path or an s3:// URL
    if img is None:
        raise ExportError(f"cannot read {source} (sop {row.sop_instance_uid})")
    x, y, w, h = _crop_box(img.shape, row)
    crop = np.ascontiguousarray(img[y : y + h, x : x + w])
    ok, buf = cv2.imencode(".png", crop)
    if not ok:
        raise ExportError(f"cannot encode the crop of {source}")
    data = buf.tobytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "width": w,
        "height": h,
        "crop_x": x,
        "crop_y": y,
        "crop_w": w,
        "crop_h": h,
    }


def _int_or_none(value) -> int | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if f != f else int(f)


def _reuse_crop(row, target: Path) -> dict | None:
    """Copy the labelling stage's crop when it is this very cut of this very file: the same
    source path, the same box once clipped to the image it read, cut after the source was last
    written (a re-run inpainting makes a newer source, and then the crop is not reused). Both
    stages encode with OpenCV's default PNG settings, so the bytes are what `_write_cropped`
    would write, without decoding and re-encoding the image. Local files only."""
    crop, source = getattr(row, "lb_crop_path", None), getattr(row, "lb_source_path", None)
    if not crop or not source or source != row.source_path or is_remote(crop):
        return None
    w, h = _int_or_none(getattr(row, "lb_image_w", None)), _int_or_none(row.lb_image_h)
    stored = tuple(_int_or_none(getattr(row, f"lb_crop_{k}")) for k in "xywh")
    if w is None or h is None or None in stored:
        return None
    try:
        box = _crop_box((h, w), row)
        if box != stored or Path(crop).stat().st_mtime < Path(source).stat().st_mtime:
            return None
        data = Path(crop).read_bytes()
    except (ExportError, OSError):
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    x, y, cw, ch = box
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "width": cw,
        "height": ch,
        "crop_x": x,
        "crop_y": y,
        "crop_w": cw,
        "crop_h": ch,
    }


def _lineage(row, home_root: Path, source: str) -> dict:
    return {
        "batch_id": row.batch_id,
        "member_path": row.member_path,
        "sop_instance_uid": row.sop_instance_uid,
        "study_instance_uid": row.study_instance_uid,
        "patient_id": row.patient_id,
        "accession_number": row.accession_number,
        "breast": row.breast,
        "dicom_file_sha256": row.dicom_file_sha256,
        "dicom_pixel_sha256": row.dicom_pixel_sha256,
        "source_path": relative_to_home(home_root, source),
        "split": row.split,
        "valid": int(row.valid),
        "bag_id": None if row.bag_id is None or row.bag_id != row.bag_id else int(row.bag_id),
    }


def _image_tasks(row, staging: Path, home_root: Path) -> list[dict]:
    version = getattr(row, "labels_archive_version", None)
    version = None if version is None or version != version else str(version)
    labelled = _flag(getattr(row, "has_instance_label", False))
    label_source = "case_table+labels_archive" if labelled else "case_table"
    out = []
    target = staging / "images" / row.export_name
    info = _reuse_crop(row, target) or _write_cropped(row.source_path, target, row)
    out.append(
        {
            "export_path": f"images/{row.export_name}",
            "file_kind": "image",
            **info,
            **_lineage(row, home_root, row.source_path),
            "frame_index": None,
            "inpainted": bool(row.inpainted),
            "has_calipers": None if pd.isna(row.has_calipers) else bool(row.has_calipers),
            "label_source": label_source,
            "labels_archive_version": version if labelled else None,
        }
    )
    mask = getattr(row, "label_mask_path", None)
    if mask and exists(mask):
        info = _write_cropped(mask, staging / "masks" / row.export_name, row)
        out.append(
            {
                "export_path": f"masks/{row.export_name}",
                "file_kind": "mask",
                **info,
                **_lineage(row, home_root, mask),
                "frame_index": None,
                "inpainted": False,
                "label_source": "labels_archive",
                "labels_archive_version": version,
            }
        )
    return out


def _video_tasks(row, staging: Path, home_root: Path) -> list[dict]:
    out = []
    for frame in _frames(row.frames_dir):
        rel = f"videos/{row.clip_name}/{frame.name}"
        info = _write_cropped(str(frame), staging / rel, row)
        out.append(
            {
                "export_path": rel,
                "file_kind": "video_frame",
                **info,
                **_lineage(row, home_root, str(frame)),
                "frame_index": int(_FRAME.search(frame.name).group(1)),
                "inpainted": False,
                "label_source": "case_table",
                "labels_archive_version": None,
            }
        )
    return out


def code_version() -> dict[str, object]:
    """The package version and, in a git checkout, the commit and whether the tree was dirty."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("casbusi-assets")
    except PackageNotFoundError:
        pkg = None
    info: dict[str, object] = {"package": pkg, "git_commit": None, "git_dirty": None}
    repo = Path(__file__).resolve().parents[2]
    if (repo / ".git").exists():
        try:
            commit = subprocess.run(
                ["git", "-C", str(repo), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(repo), "status", "--porcelain", "--", "casbusi_assets"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
            info["git_commit"], info["git_dirty"] = commit, bool(dirty)
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables named like credentials (API keys, tokens, passwords)."""
    env = os.environ if environ is None else environ
    return sorted({v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 6})


def find_secrets(folder: Path, secrets: list[str]) -> list[str]:
    """Files under `folder` that contain any of the secret strings (relative paths)."""
    needles = [s.encode() for s in secrets if s]
    if not needles:
        return []
    hits = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if any(n in data for n in needles):
            hits.append(path.relative_to(folder).as_posix())
    return hits


def _stats(plan: ExportPlan, manifest_rows: list[dict], inputs: ExportInputs, config) -> dict:
    images, videos, bags = plan.images, plan.videos, plan.bags
    exp_img = plan.exported_images
    exp_vid = plan.exported_videos
    per_split = {}
    for split in ("train", "val", "test"):
        b = bags[bags["Valid"] == {"train": 0, "val": 1, "test": 2}[split]]
        i = exp_img[exp_img["split"] == split]
        v = exp_vid[exp_vid["split"] == split] if len(exp_vid) else exp_vid
        per_split[split] = {
            "patients": int(plan.splits["split"].eq(split).sum()),
            "bags": len(b),
            "bags_malignant": int(b["Has_Malignant"].astype(bool).sum()) if len(b) else 0,
            "bags_benign_only": int(
                (b["Has_Benign"].astype(bool) & ~b["Has_Malignant"].astype(bool)).sum()
            )
            if len(b)
            else 0,
            "bags_no_finding": int(
                (~b["Has_Benign"].astype(bool) & ~b["Has_Malignant"].astype(bool)).sum()
            )
            if len(b)
            else 0,
            "images": len(i),
            "images_malignant": int(i["has_malignant"].map(_flag).sum()) if len(i) else 0,
            "clips": len(v),
        }
    kinds: dict[str, int] = {}
    for r in manifest_rows:
        kinds[r["file_kind"]] = kinds.get(r["file_kind"], 0) + 1
    return {
        "images_considered": len(images),
        "videos_considered": len(videos),
        "per_split": per_split,
        "files": kinds,
        "bytes": int(sum(r["bytes"] for r in manifest_rows)),
        "inpainted_images": int(exp_img["inpainted"].astype(bool).sum()) if len(exp_img) else 0,
        # Stills cleaning found calipers on that went out without a caliper-free copy.
        "calipers_not_removed": int(
            (exp_img["has_calipers"].map(_flag) & ~exp_img["inpainted"].astype(bool)).sum()
        )
        if len(exp_img) and "has_calipers" in exp_img
        else 0,
        "labelled_images": int(exp_img["has_instance_label"].map(_flag).sum())
        if len(exp_img) and "has_instance_label" in exp_img
        else 0,
        "cleaning_reasons_images": cleaning_reason_counts(images),
        "cleaning_reasons_videos": cleaning_reason_counts(videos) if len(videos) else {},
        "excluded_by_cleaning_images": int((images["export_reason"] == "cleaning").sum()),
        "excluded_by_cleaning_videos": int((videos["export_reason"] == "cleaning").sum())
        if len(videos)
        else 0,
        "filters_images": filter_counts(images, config, "image"),
        "filters_videos": filter_counts(videos, config, "video") if len(videos) else [],
        "sources": inputs.sources,
        "batches": inputs.batches,
        "labels_archive_versions": inputs.labels_versions,
        "has_labels": inputs.has_labels,
        "split_sources": {
            str(k): int(v) for k, v in plan.splits["split_source"].value_counts().items()
        },
    }


def write_export(
    exports_root: Path,
    home_root: Path,
    inputs: ExportInputs,
    config: ExportConfig,
    ledger: pd.DataFrame | None = None,
    now: datetime | None = None,
) -> ExportResult:
    """Plan and write one export under `exports_root`; returns its folder and statistics."""
    plan = plan_export(inputs, config, ledger)
    exports_root.mkdir(parents=True, exist_ok=True)
    staging = exports_root / f".staging-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        for sub in ("images", "masks", "videos"):
            (staging / sub).mkdir()
        with ThreadPoolExecutor(max_workers=config.workers) as pool:
            jobs = [
                pool.submit(_image_tasks, r, staging, home_root)
                for r in plan.exported_images.itertuples()
            ]
            jobs += [
                pool.submit(_video_tasks, r, staging, home_root)
                for r in plan.exported_videos.itertuples()
            ]
            rows = [row for job in jobs for row in job.result()]
        table = manifest_table(rows)
        manifest_sha = content_hash(table)
        write_manifest(table, staging / "manifest.parquet")
        write_train_data(plan.bags, staging / "TrainData.csv")
        if inputs.has_labels:
            write_instance_data(
                build_instance_data(plan.exported_images), staging / "InstanceData.csv"
            )

        created = (now or datetime.now(UTC)).astimezone(UTC)
        export_id = _free_id(exports_root, f"{created:%Y%m%dT%H%M%SZ}-{manifest_sha[:8]}")
        stats = _stats(plan, rows, inputs, config)
        stats.update(
            {
                "export_id": export_id,
                "created_at": created.isoformat(timespec="seconds"),
                "manifest_sha256": manifest_sha,
                "config": config.to_dict(),
            }
        )
        export_config = {
            "export_id": export_id,
            "created_at": stats["created_at"],
            "code_version": code_version(),
            "settings": config.to_dict(),
            "split": {
                **config.split_settings(),
                "valid_codes": {"train": 0, "val": 1, "test": 2},
                "assigned_by": stats["split_sources"],
            },
            "inputs": {
                "batches": inputs.batches,
                "sources": inputs.sources,
                "labels_archive_versions": inputs.labels_versions,
            },
            "manifest_sha256": manifest_sha,
            "files": stats["files"],
        }
        (staging / "export_config.json").write_text(
            json.dumps(export_config, indent=2, sort_keys=True, default=str) + "\n"
        )
        (staging / "README.md").write_text(data_card.render(stats))

        leaked = find_secrets(staging, secret_values())
        if leaked:
            raise ExportError(
                f"refusing to publish: a credential from the environment appears in {leaked}"
            )
        for path in staging.rglob("*"):
            if path.is_file():
                path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        final = exports_root / export_id
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(export_id, final, manifest_sha, stats, plan.new_ledger_rows)


def _free_id(root: Path, base: str) -> str:
    """`base`, or `base-2`, `base-3`, ... if an export of that name exists (never overwrite)."""
    candidate, n = base, 1
    while (root / candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def export_home(
    home: HomeLayout, config: ExportConfig, now: datetime | None = None
) -> ExportResult:
    """Export every batch of a home into `<home>/exports/<export_id>/` (the asset's body)."""
    inputs = load_inputs(home)
    exports_root = home.root / EXPORTS_DIR
    ledger_path = exports_root / LEDGER_DIR / ledger_name(config)
    ledger = read_ledger(ledger_path) if config.split_mode == "stratified" else None
    result = write_export(exports_root, home.root, inputs, config, ledger=ledger, now=now)
    if config.split_mode == "stratified":
        # Only once the export is in place: a failed export assigns nobody.
        append_ledger(ledger_path, result.new_ledger_rows)
    return result
