"""Pixels stage: still images and cine frames decoded from the zip into PNG files."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from casbusi_assets.ingest.resources import IngestSettings
from casbusi_assets.ingest.sources import find_zip
from casbusi_assets.pixels.batch import export_images, export_videos
from casbusi_assets.pixels.resources import VideoFramePolicy
from casbusi_assets.shared.metadata import contact_sheet, counts, markdown_table
from casbusi_assets.shared.partitions import batch_table
from casbusi_assets.storage.file_staging import staged_batch_dir
from casbusi_assets.storage.resources import CasbusiHome


@dg.asset(**batch_table("images", {"png", "parquet"}, pool="ingest"))
def image_table(
    context: dg.AssetExecutionContext,
    dicom_catalog: pd.DataFrame,
    casbusi_home: CasbusiHome,
    ingest_settings: IngestSettings,
) -> Iterator[dg.Output]:
    """One row per still image (SOP instance) with its PNG under `files/image_table/<batch>/<sop>.png`.
    Doppler captures (filled colour flow in one or both hues, or power Doppler, inside the
    ultrasound field: `doppler_kind` color | power) keep their colour; other colour captures
    have yellow overlay pixels whitened and are stored as grayscale, with the original photometric
    interpretation recorded. Geometry includes the first ultrasound region box. Files without a
    PatientID or AccessionNumber are exported too, with `missing_links` naming the gap."""
    home = casbusi_home.layout()
    batch_id = context.partition_key
    zip_path = find_zip(home, batch_id)
    with staged_batch_dir(home.files, "image_table", batch_id) as staged:
        df = export_images(
            zip_path,
            dicom_catalog,
            staged,
            ingest_settings.limits(),
            workers=ingest_settings.workers,
            report=context.log.info,
        )
    failed = df[df["status"] == "failed"] if len(df) else df
    for row in failed.itertuples():
        context.log.warning(f"could not export {row.member_path}: {row.error}")
    ok_paths = df.loc[df["status"] == "ok", "image_path"].tolist() if len(df) else []
    yield dg.Output(
        df,
        metadata={
            "images": len(df),
            "doppler": int(df["is_doppler"].fillna(False).sum()) if len(df) else 0,
            "doppler_kinds": counts(df["doppler_kind"].dropna()) if len(df) else {},
            "unlinked": int(df["missing_links"].notna().sum()) if len(df) else 0,
            "stored_as": counts(df["stored_as"]) if len(df) else {},
            "failed": len(failed),
            "files": dg.MetadataValue.path(str(staged.final)),
            "png_megabytes": round(float(df["png_bytes"].fillna(0).sum()) / 1e6, 2)
            if len(df)
            else 0.0,
            "preview": markdown_table(
                df,
                ["sop_instance_uid", "doppler_kind", "rows", "columns", "region_count", "status"],
            ),
            "contact_sheet": contact_sheet(ok_paths),
        },
    )


@dg.asset(**batch_table("videos", {"png", "parquet"}, pool="ingest"))
def video_table(
    context: dg.AssetExecutionContext,
    dicom_catalog: pd.DataFrame,
    casbusi_home: CasbusiHome,
    ingest_settings: IngestSettings,
    video_frame_policy: VideoFramePolicy,
) -> pd.DataFrame:
    """One row per cine clip (multi-frame instance) with the folder of its saved frames under
    `files/video_table/<batch>/<sop>/`. Frames kept per the frame policy (every Nth by default, or
    first + middle, or all), grayscale unless the clip is Doppler. A batch without clips yields an
    empty, typed table."""
    home = casbusi_home.layout()
    batch_id = context.partition_key
    zip_path = find_zip(home, batch_id)
    with staged_batch_dir(home.files, "video_table", batch_id) as staged:
        df = export_videos(
            zip_path,
            dicom_catalog,
            staged,
            ingest_settings.limits(),
            video_frame_policy.policy,
            video_frame_policy.every_n,
            workers=ingest_settings.workers,
            report=context.log.info,
        )
    failed = df[df["status"] == "failed"] if len(df) else df
    for row in failed.itertuples():
        context.log.warning(f"could not export {row.member_path}: {row.error}")
    context.add_output_metadata(
        {
            "videos": len(df),
            "frames_saved": int(df["saved_frames"].fillna(0).sum()) if len(df) else 0,
            "frame_policy": f"{video_frame_policy.policy} (every_n={video_frame_policy.every_n})",
            "failed": len(failed),
            "files": dg.MetadataValue.path(str(staged.final)),
            "preview": markdown_table(
                df, ["sop_instance_uid", "n_frames", "saved_frames", "doppler_kind", "status"]
            ),
        }
    )
    return df
