"""Stage 2b: cine clips, with the frames the configured policy keeps written as PNG files."""


import dagster as dg
import pandas as pd

from casbusi_assets.asset_metadata import markdown_table
from casbusi_assets.batch_export import export_videos
from casbusi_assets.batch_sources import find_zip
from casbusi_assets.file_staging import staged_batch_dir
from casbusi_assets.partitions import batch_table
from casbusi_assets.resources import CasbusiHome, IngestSettings, VideoFramePolicy


@dg.asset(**batch_table("videos", {"png", "parquet"}))
def video_table(
    context: dg.AssetExecutionContext,
    dicom_catalog: pd.DataFrame,
    casbusi_home: CasbusiHome,
    ingest_settings: IngestSettings,
    video_frame_policy: VideoFramePolicy,
) -> pd.DataFrame:
    """One row per cine clip (multi-frame instance) with the folder of its saved frames under
    files/video_table/<batch>/<sop>/. Frames kept per the frame policy (every Nth by default, or
    first + middle, or all), grayscale unless the clip is Doppler. A batch without clips yields an
    empty, typed table."""
    home = casbusi_home.layout()
    batch_id = context.partition_key
    zip_path = find_zip(home, batch_id)
    with staged_batch_dir(home.files, "video_table", batch_id) as staged:
        df = export_videos(zip_path, dicom_catalog, staged, ingest_settings.limits(),
                           video_frame_policy.policy, video_frame_policy.every_n,
                           workers=ingest_settings.workers, report=context.log.info)
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
                df, ["sop_instance_uid", "n_frames", "saved_frames", "is_doppler", "status"]
            ),
        }
    )
    return df
