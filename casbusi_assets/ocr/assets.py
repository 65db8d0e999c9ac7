"""Stage 3: burned-in annotation text read from images and cine clips, parsed into fields."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from casbusi_assets.ocr.batch import field_recovery, read_batch_annotations
from casbusi_assets.ocr.resources import OcrEngineResource
from casbusi_assets.shared.metadata import counts, markdown_table
from casbusi_assets.shared.partitions import batch_table
from casbusi_assets.shared.resources import DeviceResource


# One inference step at a time per machine: on CPU its worker processes use every core.
@dg.asset(
    **batch_table("ocr", {"onnx", "parquet"}, pool="inference"),
)
def ocr_table(
    context: dg.AssetExecutionContext,
    image_table: pd.DataFrame,
    video_table: pd.DataFrame,
    dicom_catalog: pd.DataFrame,
    device: DeviceResource,
    ocr_engine: OcrEngineResource,
) -> Iterator[dg.Output]:
    """The sonographer's burned-in annotation of each still image and of each cine clip's first
    frame: the normalised text (`description`), the kept text boxes, and the fields parsed from
    it: area, laterality, orientation, clock position (H:MM or a quadrant) and nipple distance in
    cm. Scanner chrome (header, MI/TIS, depth scale, caliper legends) is ignored."""
    resolved = device.resolve(ocr_engine.engine)
    context.log.info(f"OCR engine {ocr_engine.engine} on {resolved} (requested {device.device})")
    ok_catalog = dicom_catalog[dicom_catalog["status"] == "ok"]
    regions = dict(zip(ok_catalog["sop_instance_uid"], ok_catalog["us_regions"], strict=True))
    df = read_batch_annotations(
        image_table,
        video_table,
        ocr_engine.spec(resolved),
        regions,
        ocr_engine.min_score,
        report=context.log.info,
        workers=ocr_engine.workers,
    )
    ok = df[df["status"] == "ok"] if len(df) else df
    yield dg.Output(
        df,
        metadata={
            "rows": len(df),
            "by_source": counts(df["source"]) if len(df) else {},
            "failed": int((df["status"] != "ok").sum()) if len(df) else 0,
            "field_recovered_share": field_recovery(df),
            "laterality": counts(ok["laterality"]) if len(ok) else {},
            "orientation": counts(ok["orientation"]) if len(ok) else {},
            "ocr_engine": ocr_engine.engine,
            "device": resolved,
            "mean_ocr_ms": round(float(ok["ocr_ms"].mean()), 1) if len(ok) else 0.0,
            "sample": markdown_table(
                ok,
                ["description", "area", "laterality", "orientation", "clock_pos", "nipple_dist_cm"],
                limit=12,
            ),
        },
    )
