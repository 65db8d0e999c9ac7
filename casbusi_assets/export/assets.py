"""Stage 6: `export_splits`, the training export over every batch (not partitioned).

Each materialisation writes a new immutable folder `<home>/exports/<export_id>/` (see
export/writer.py) and never touches an earlier one. It reads every batch through DuckDB views
over the warehouse (export/inputs.py). Run it from the UI, with `export_job`, or with
`casbusi export`.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd

from casbusi_assets.export.config import ExportConfigError
from casbusi_assets.export.data_card import read_summary
from casbusi_assets.export.inputs import ExportInputError
from casbusi_assets.export.manifest import read_manifest
from casbusi_assets.export.resources import ExportSettings
from casbusi_assets.export.writer import ExportError, export_home
from casbusi_assets.shared.metadata import contact_sheet
from casbusi_assets.storage.home import HomeLayout, ensure_dagster_home
from casbusi_assets.storage.resources import CasbusiHome

# Lineage in the UI: the export reads these tables (all batches) through DuckDB, not as inputs.
_UPSTREAM = [
    "image_table",
    "video_table",
    "dicom_catalog",
    "ocr_table",
    "case_study_table",
    "breast_table",
    "cleaned_images",
    "cleaned_videos",
    "inpainted_images",
    "labels_archive",
]

_CHECKS = [
    dg.AssetCheckSpec(
        "no_patient_in_two_splits",
        asset="export_splits",
        description="Every patient's files are in exactly one of train / val / test.",
    ),
    dg.AssetCheckSpec(
        "every_manifest_file_exists",
        asset="export_splits",
        description="Every manifest row names a file in the export with the recorded SHA-256 size.",
    ),
]


def _split_check(manifest: pd.DataFrame) -> dg.AssetCheckResult:
    per_patient = manifest.groupby("patient_id")["split"].nunique() if len(manifest) else None
    leaks = sorted(per_patient[per_patient > 1].index) if per_patient is not None else []
    return dg.AssetCheckResult(
        check_name="no_patient_in_two_splits",
        passed=not leaks,
        metadata={"patients": 0 if per_patient is None else len(per_patient), "leaks": len(leaks)},
        description=f"patients in more than one split: {leaks[:10]}" if leaks else None,
    )


def _files_check(folder: Path, manifest: pd.DataFrame) -> dg.AssetCheckResult:
    missing = [
        p
        for p, size in zip(manifest["export_path"], manifest["bytes"], strict=True)
        if not (folder / p).is_file() or (folder / p).stat().st_size != size
    ]
    return dg.AssetCheckResult(
        check_name="every_manifest_file_exists",
        passed=not missing,
        metadata={"files": len(manifest), "missing_or_wrong_size": len(missing)},
        description=f"missing: {missing[:10]}" if missing else None,
    )


@dg.asset(
    deps=_UPSTREAM,
    group_name="export",
    kinds={"parquet", "csv"},
    check_specs=_CHECKS,
)
def export_splits(
    context: dg.AssetExecutionContext, casbusi_home: CasbusiHome, export_settings: ExportSettings
) -> dg.MaterializeResult:
    """The training export of every batch: a new immutable folder `<home>/exports/<export_id>/`
    with images cropped to the ultrasound field (caliper-free copies where made), masks, cine
    frames, TrainData.csv (bags per accession and breast for CADBUSI-Training), InstanceData.csv
    when labels exist, manifest.parquet (lineage of every file to its zip member),
    export_config.json and a README data card. Splits are by patient, from a salted hash of the
    patient ID, so adding batches never moves a patient."""
    home = casbusi_home.layout()
    try:
        config = export_settings.to_config()
        result = export_home(home, config)
    except (ExportConfigError, ExportInputError, ExportError) as exc:
        raise dg.Failure(description=str(exc)) from exc
    for line in result.summary:
        context.log.info(line)
    manifest = read_manifest(result.export_dir / "manifest.parquet").to_pandas()
    images = [
        str(result.export_dir / p)
        for p in manifest.loc[manifest["file_kind"] == "image", "export_path"]
    ]
    stats = result.stats
    return dg.MaterializeResult(
        metadata={
            "export_dir": dg.MetadataValue.path(str(result.export_dir)),
            "export_id": result.export_id,
            "manifest_sha256": result.manifest_sha256,
            "files": stats["files"],
            "bytes": stats["bytes"],
            "patients_per_split": {k: v["patients"] for k, v in stats["per_split"].items()},
            "bags_per_split": {k: v["bags"] for k, v in stats["per_split"].items()},
            "images_per_split": {k: v["images"] for k, v in stats["per_split"].items()},
            "filters_images": {f["code"]: f["removed"] for f in stats["filters_images"]},
            "cleaning_reasons_images": stats["cleaning_reasons_images"],
            "labels": "none" if not stats["has_labels"] else stats["labels_archive_versions"],
            "summary": dg.MetadataValue.md("\n".join(f"- {s}" for s in result.summary)),
            "preview": contact_sheet(images),
        },
        check_results=[
            _split_check(manifest),
            _files_check(result.export_dir, manifest),
        ],
    )


@dataclass
class ExportRunOutcome:
    export_dir: Path
    summary: list[str]
    run_id: str
    seconds: float


class ExportRunError(RuntimeError):
    """The export run did not succeed; the message is the one-line reason."""


def run_export(home: HomeLayout, echo: Callable[[str], None] = print) -> ExportRunOutcome:
    """Materialise `export_splits` in-process against `home`, recorded in the Dagster instance
    like a UI run (what `casbusi export` and the end of `casbusi demo` do)."""
    from casbusi_assets.definitions import build_definitions

    defs = build_definitions(str(home.root))
    ensure_dagster_home(home)
    with dg.DagsterInstance.get() as instance:
        started = time.perf_counter()
        result = defs.resolve_job_def("export_job").execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            tags={"casbusi/launched_by": "cli"},
        )
        seconds = time.perf_counter() - started
        if not result.success:
            reason = "the run did not succeed (see the Dagster event log)"
            for event in result.all_events:
                if event.is_step_failure and event.step_failure_data is not None:
                    user = event.step_failure_data.user_failure_data
                    err = event.step_failure_data.error
                    reason = (user.description if user and user.description else None) or (
                        err.message.strip().splitlines()[0] if err else reason
                    )
                    break
            raise ExportRunError(f"export failed: {reason} (run {result.run_id})")
        mats = result.asset_materializations_for_node("export_splits")
        folder = Path(mats[-1].metadata["export_dir"].value)
    summary = read_summary((folder / "README.md").read_text())
    return ExportRunOutcome(folder, summary, result.run_id, seconds)
