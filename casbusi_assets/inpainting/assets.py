"""Inpainting stage: caliper masks and caliper-free copies of the included images."""

import dagster as dg
import pandas as pd

from casbusi_assets.inpainting.batch import inpaint_batch, preview_strip
from casbusi_assets.inpainting.resources import InpaintSettings
from casbusi_assets.shared.metadata import counts, embedded_png, markdown_table
from casbusi_assets.shared.parallel import resolve_workers
from casbusi_assets.shared.partitions import batch_table
from casbusi_assets.shared.resources import DeviceResource
from casbusi_assets.storage.file_staging import staged_batch_dir
from casbusi_assets.storage.resources import CasbusiHome


# One inference step at a time per machine (the learned method can hold the GPU).
@dg.asset(**batch_table("inpainting", {"opencv", "png", "parquet"}, pool="inference"))
def inpainted_images(
    context: dg.AssetExecutionContext,
    cleaned_images: pd.DataFrame,
    casbusi_home: CasbusiHome,
    inpaint_settings: InpaintSettings,
    device: DeviceResource,
) -> pd.DataFrame:
    """One row per included image with calipers: the caliper mask (the detector's boxes refined
    to the strokes of each mark, plus the dotted line between paired marks) and a caliper-free
    copy, both new PNGs under `files/inpainted_images/<batch>/` (`masks/`, `images/`). The originals
    are never written; a rerun replaces exactly the batch's files. Method: the learned network by
    default (loaded once per run, on the device resource), or OpenCV Navier-Stokes / Telea."""
    home = casbusi_home.layout()
    batch_id = context.partition_key
    resolved = device.resolve("torch") if inpaint_settings.uses_model else "cpu"
    inpainter = inpaint_settings.create(resolved)  # once per run: the model loads here
    context.log.info(f"inpainting with {inpainter.name} on {resolved}")
    with staged_batch_dir(home.files, "inpainted_images", batch_id) as staged:
        result = inpaint_batch(
            batch_id,
            cleaned_images,
            staged,
            inpainter,
            context.log.info,
            workers=resolve_workers(inpaint_settings.workers),
        )
    df = result.table
    for row in df[df["status"] == "failed"].itertuples():
        context.log.warning(f"could not inpaint {row.sop_instance_uid}: {row.error}")
    ok = df[df["status"] == "ok"]
    context.add_output_metadata(
        {
            "images": len(df),
            "status": counts(df["status"]) if len(df) else {},
            "method": inpainter.name,
            "device": resolved,
            "calipers": int(ok["n_calipers"].sum()) if len(ok) else 0,
            "lines": int(ok["n_lines"].sum()) if len(ok) else 0,
            "boxes_masked_whole": int(ok["n_box_fallback"].sum()) if len(ok) else 0,
            "mean_inpaint_ms": round(float(ok["inpaint_ms"].mean()), 1) if len(ok) else 0.0,
            "files": dg.MetadataValue.path(str(staged.final)),
            "preview": embedded_png(preview_strip(result.samples), "before | mask | after"),
            "sample": markdown_table(
                df, ["sop_instance_uid", "n_calipers", "n_lines", "mask_pixels", "status"]
            ),
        }
    )
    return df
