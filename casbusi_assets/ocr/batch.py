"""OCR over a batch: every exported still and the first saved frame of every cine clip.

Plain Python: the ocr_table asset hands in the image and video tables and an engine; rows come
back in the OCR_TABLE layout. An unreadable file gives a row with status 'failed' and the reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from casbusi_assets.ocr.engines import OcrEngine, make_engine
from casbusi_assets.ocr.reading import read_annotation
from casbusi_assets.shared.parallel import Progress, WorkerPool, resolve_workers
from casbusi_assets.storage.files import list_files, read_image

FIELDS = ("area", "laterality", "orientation", "clock_pos", "nipple_dist_cm")


_REGION_TAGS = (
    "RegionLocationMinX0",
    "RegionLocationMinY0",
    "RegionLocationMaxX1",
    "RegionLocationMaxY1",
)


def region_union(us_regions_json: str | None) -> tuple[int, int, int, int] | None:
    """The box around every SequenceOfUltrasoundRegions item, or None when there is none.

    Dual-view captures carry one region per view and sonographers write their label across
    both, so the reader gets the union, not the first view.
    """
    try:
        regions = json.loads(us_regions_json) if us_regions_json else []
    except (TypeError, ValueError):
        return None
    boxes = []
    for region in regions:
        values = [region.get(tag) for tag in _REGION_TAGS]
        if all(isinstance(v, int | float) and not math.isnan(v) for v in values):
            boxes.append([int(v) for v in values])
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def load_png(path: str | Path) -> np.ndarray:
    image = read_image(path, cv2.IMREAD_UNCHANGED)  # a local path or an s3:// URL
    if image is None:
        raise FileNotFoundError(f"cannot read image file {path}")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def _sources(
    images: pd.DataFrame, videos: pd.DataFrame
) -> Iterator[tuple[str, pd.Series, str | None]]:
    for _, row in images.iterrows():
        yield "image", row, row.get("image_path") if row.get("status") == "ok" else None
    for _, row in videos.iterrows():
        first = None
        if row.get("status") == "ok" and row.get("frames_dir"):
            frames = list_files(row["frames_dir"], "frame_*.png")  # local folder or s3:// URL
            first = frames[0] if frames else None
        yield "video", row, first


@dataclass(frozen=True)
class EngineSpec:
    """What a worker process needs to build its own OCR engine (a loaded engine does not pickle).

    `opts` go to the engine's constructor, e.g. `(("threads", 1),)`.
    """

    name: str = "rapidocr"
    device: str = "cpu"
    model_dir: str | None = None
    opts: tuple[tuple[str, Any], ...] = ()

    def build(self) -> OcrEngine:
        return make_engine(
            self.name, device=self.device, model_dir=self.model_dir, **dict(self.opts)
        )


# One engine per worker process, built on its first image and reused for the rest of the step.
_WORKER_ENGINES: dict[EngineSpec, OcrEngine] = {}


def _worker_engine(spec: EngineSpec) -> OcrEngine:
    engine = _WORKER_ENGINES.get(spec)
    if engine is None:
        engine = _WORKER_ENGINES[spec] = spec.build()
    return engine


def pooled_spec(spec: EngineSpec, workers: int) -> EngineSpec | None:
    """The spec each of `workers` processes builds, or None when the step should run in-process.

    Only RapidOCR on CPU is spread over processes: small ONNX models on 640-px screens use a
    second intra-op thread poorly, so two one-thread engines on two cores read more screens per
    second than one two-thread engine (benchmarks/README.md, "OCR on both cores"). A GPU engine
    stays in the step's process.
    """
    if workers <= 1 or spec.name != "rapidocr" or spec.device != "cpu":
        return None
    threads = max(1, resolve_workers(0) // workers)
    return EngineSpec(spec.name, spec.device, spec.model_dir, (*spec.opts, ("threads", threads)))


def _read_fields(
    engine: OcrEngine, path: str, region: tuple[int, int, int, int] | None, min_score: float
) -> dict[str, Any]:
    try:
        reading = read_annotation(load_png(path), engine, region, min_score=min_score)
    except Exception as exc:  # one unreadable image must not fail the batch
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    parsed = reading.parsed
    return dict(
        description=reading.description,
        text_boxes=reading.text_boxes_json(),
        ocr_ms=round(reading.ocr_ms, 1),
        status="ok",
        error=None,
        **{f: getattr(parsed, f) for f in FIELDS},
    )


def _read_in_worker(
    task: tuple[EngineSpec, str, tuple[int, int, int, int] | None, float],
) -> dict[str, Any]:
    spec, path, region, min_score = task
    return _read_fields(_worker_engine(spec), path, region, min_score)


def read_batch_annotations(
    images: pd.DataFrame,
    videos: pd.DataFrame,
    engine: OcrEngine | EngineSpec,
    regions: dict[str, str | None] | None = None,
    min_score: float = 0.5,
    report: Callable[[str], None] | None = None,
    workers: int = 1,
) -> pd.DataFrame:
    """One OCR_TABLE row per image and per clip (its first saved frame).

    `regions` maps SOP instance UID to the catalog's `us_regions` JSON; without an entry the
    reader estimates the ultrasound field from the pixels. `engine` is a loaded engine (read in
    this process) or an `EngineSpec`; with a spec and `workers` > 1 (0 = one per core) each
    worker process builds its own engine and reads a share of the images, rows in input order.
    """
    regions = regions or {}
    total = len(images) + len(videos)
    progress = Progress(report, "ocr_table", total) if report else None
    sources = list(_sources(images, videos))
    spec = engine if isinstance(engine, EngineSpec) else None
    pooled = pooled_spec(spec, resolve_workers(workers)) if spec else None
    n_readable = sum(path is not None for _, _, path in sources)
    if spec is not None and (pooled is None or n_readable < 2):
        engine, pooled = spec.build(), None
    name, device = (spec.name, spec.device) if spec else (engine.name, engine.device)

    jobs = [
        (pooled, path, region_union(regions.get(row["sop_instance_uid"])), min_score)
        for _, row, path in sources
        if path is not None
    ]
    rows = []
    with WorkerPool(resolve_workers(workers) if pooled else 1) as pool:
        # one reading per readable source, in order: from the workers, or read here
        readings = (
            pool.map(_read_in_worker, jobs)
            if pooled
            else (_read_fields(engine, path, region, score) for _, path, region, score in jobs)
        )
        for source, row, path in sources:
            out = {
                "sop_instance_uid": row["sop_instance_uid"],
                "source": source,
                "ocr_engine": name,
                "ocr_device": device,
            }
            if path is None:
                out.update(
                    status="failed", error=f"no exported pixels ({row.get('error') or 'missing'})"
                )
            else:
                out.update(next(readings))
            rows.append(out)
            if progress:
                progress.advance()
    return pd.DataFrame(rows)


def field_recovery(df: pd.DataFrame) -> dict[str, float]:
    """Share of OCR'd rows where each field was read (not unknown / null)."""
    ok = df[df["status"] == "ok"] if len(df) else df
    if ok.empty:
        return {f: 0.0 for f in FIELDS}
    shares = {}
    for f in FIELDS:
        present = ok[f].notna() & (ok[f].astype(str) != "unknown")
        shares[f] = round(float(present.mean()), 3)
    return shares
