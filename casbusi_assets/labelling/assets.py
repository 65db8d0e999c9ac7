"""Labelling stage: crops out to Labelbox (`labelbox_crops`, per batch), labels back
(`labels_archive`, one partition per retrieval), the import and sync jobs, and the CLI import."""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from casbusi_assets.ingest.phi import fields_summary, phi_findings
from casbusi_assets.labelling.archive import build_archive, stored_versions
from casbusi_assets.labelling.backend import LabellingError
from casbusi_assets.labelling.crops import apply_upload, build_crops, data_row_specs
from casbusi_assets.labelling.export_parsing import parse_export_file
from casbusi_assets.labelling.masks import MaskResolver
from casbusi_assets.labelling.offline import (
    EXPORT_NAME,
    MASKS_NAME,
    labelbox_paths,
    read_source,
    snapshot_export,
)
from casbusi_assets.labelling.resources import LabelboxResource
from casbusi_assets.shared.metadata import contact_sheet, counts, markdown_table
from casbusi_assets.shared.parallel import default_workers
from casbusi_assets.shared.partitions import batch_table
from casbusi_assets.storage.file_staging import staged_batch_dir
from casbusi_assets.storage.home import HomeLayout, ensure_dagster_home
from casbusi_assets.storage.resources import CasbusiHome
from casbusi_assets.storage.warehouse import read_all_batches

# One partition per retrieval of labels (an imported or pulled export): `lv-<UTC time>-<hash>`.
labels_versions = dg.DynamicPartitionsDefinition(name="labels_version")


@dg.asset(**batch_table("labelling", {"labelbox", "parquet"}))
def labelbox_crops(
    context: dg.AssetExecutionContext,
    cleaned_images: pd.DataFrame,
    inpainted_images: pd.DataFrame,
    ocr_table: pd.DataFrame,
    dicom_catalog: pd.DataFrame,
    casbusi_home: CasbusiHome,
    labelbox: LabelboxResource,
) -> dg.Output[pd.DataFrame]:
    """Each included image of the batch cropped to its ultrasound field (cut from the
    caliper-free copy where inpainting made one), as `files/labelbox_crops/<batch>/<sop>.png`,
    and sent to Labelbox: one data row per image keyed by a global key derived from the
    SOPInstanceUID (re-runs update, never duplicate), metadata (batch, patient, accession,
    laterality, orientation, label_cat), the uncropped capture attached, and one Labelbox batch
    per data batch. Offline, the exact payloads go to `<home>/labelbox/outbox/<batch>.json`.
    A batch whose headers carry identifying fields (the `no_identifying_header_fields` check) is
    cropped but not uploaded: every row is `blocked_phi`."""
    home = casbusi_home.layout()
    batch = context.partition_key
    with staged_batch_dir(home.files, "labelbox_crops", batch) as staged:
        crops = build_crops(
            batch,
            cleaned_images,
            inpainted_images,
            ocr_table,
            staged,
            labelbox.global_key_prefix,
            workers=default_workers(),  # one thread per available core
        )
    phi = phi_findings(dicom_catalog)
    if len(phi):
        return _blocked_by_phi(context, batch, crops, phi)
    try:
        backend = labelbox.backend(home)
        result = backend.upload(batch, data_row_specs(crops))
    except LabellingError as exc:
        raise dg.Failure(description=f"labelbox_crops {batch}: {exc}") from None
    table = apply_upload(crops, result)
    failed = table[table["upload_status"] == "failed"]
    for rec in failed.head(20).to_dict("records"):
        context.log.error(f"{rec['global_key']}: {rec['upload_error']}")
    context.log.info(
        f"{result.mode}: {len(table)} crops, batch {result.labelling_batch} ({result.batch_action})"
    )
    metadata: dict[str, object] = {
        "rows": len(table),
        "mode": result.mode,
        "upload_status": counts(table["upload_status"]) if len(table) else {},
        "failed": len(failed),
        "inpainted": int(table["inpainted"].fillna(False).astype(bool).sum()) if len(table) else 0,
        "labelbox_batch": result.labelling_batch or "",
        "batch_action": result.batch_action,
        "sample": markdown_table(
            table, ["sop_instance_uid", "global_key", "crop_w", "crop_h", "upload_status"], 12
        ),
        "contact_sheet": contact_sheet([p for p in table["crop_path"].dropna()]),
    }
    if result.outbox_path:
        metadata["outbox"] = dg.MetadataValue.path(result.outbox_path)
    if len(failed):
        metadata["failures"] = markdown_table(failed, ["global_key", "upload_error"], 20)
    return dg.Output(table, metadata=metadata)


def _blocked_by_phi(
    context: dg.AssetExecutionContext, batch: str, crops: pd.DataFrame, phi: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    """Nothing leaves the building from a batch with identifying header fields."""
    fields = fields_summary(phi)
    reason = f"identifying header fields in {len(phi)} file(s): {', '.join(fields)}"
    context.log.error(
        f"labelbox_crops {batch}: not uploaded, {reason}; re-anonymise the batch and re-run "
        "(see the no_identifying_header_fields check on dicom_catalog)"
    )
    table = crops.copy()
    pending = table["upload_status"] == "pending"
    table["upload_status"] = table["upload_status"].astype(object)
    table["upload_error"] = table["upload_error"].astype(object)
    table.loc[pending, "upload_status"] = "blocked_phi"
    table.loc[pending, "upload_error"] = reason
    return dg.Output(
        table,
        metadata={
            "rows": len(table),
            "mode": "blocked",
            "upload_status": counts(table["upload_status"]) if len(table) else {},
            "blocked_by": reason,
            "phi_files": markdown_table(phi, ["member_path", "fields"], 20),
        },
    )


@dg.asset(
    partitions_def=labels_versions,
    group_name="labelling",
    kinds={"labelbox", "parquet"},
    io_manager_key="labels_archive_io_manager",
    deps=[dg.AssetDep("labelbox_crops", partition_mapping=dg.AllPartitionMapping())],
)
def labels_archive(
    context: dg.AssetExecutionContext, casbusi_home: CasbusiHome, labelbox: LabelboxResource
) -> dg.Output[pd.DataFrame]:
    """One retrieval of labels (partition `lv-<time>-<hash>`), never overwritten by a later one:
    per label, the labeler and time, classifications (JSON) and the original tool's instance
    booleans (Reject Image, Only Normal Tissue, Cyst / Benign / Malignant Lesion Present; Discard
    Entire Exam marks every image of the exam), boxes and points in original pixels, and masks
    as PNGs projected back to the original image geometry (`files/labels_archive/<version>/`). A
    mask that cannot be resolved, a malformed export line or a data row this home never sent is
    kept as a row with its reason."""
    home = casbusi_home.layout()
    version = context.partition_key
    snap = labelbox_paths(home.root).snapshot(version)
    if not (snap / EXPORT_NAME).is_file():
        raise dg.Failure(
            description=f"labels version {version} has no export at {snap / EXPORT_NAME}; "
            "import it with `casbusi labels import` or drop it into <home>/labelbox/inbox/"
        )
    source = read_source(snap)
    labels, line_errors = parse_export_file(snap / EXPORT_NAME, labelbox.project_id or None)
    crops = read_all_batches(home.warehouse, "labelbox_crops")
    fetch: Callable[[str], bytes] | None = None
    if labelbox.resolved_mode() == "online":
        fetch = labelbox.backend(home).fetch_mask
    retrieved = source.get("retrieved_at")
    retrieved_at = datetime.fromisoformat(retrieved) if retrieved else datetime.now(UTC)
    with staged_batch_dir(home.files, "labels_archive", version) as staged:
        built = build_archive(
            version,
            retrieved_at,
            labels,
            line_errors,
            crops,
            MaskResolver(snap / MASKS_NAME, fetch=fetch),
            staged,
        )
    name = source.get("export_name", EXPORT_NAME)
    for err in line_errors:
        context.log.error(f"{name} {err}")
    if built.unknown_keys:
        context.log.warning(
            f"{len(built.unknown_keys)} data row(s) not sent from this home: "
            f"{', '.join(built.unknown_keys[:10])}"
        )
    rows = built.rows
    return dg.Output(
        rows,
        metadata={
            "rows": len(rows),
            "export": name,
            "origin": str(source.get("origin", "")),
            "by_status": counts(rows["status"]) if len(rows) else {},
            "mask_status": counts(rows["mask_status"]) if len(rows) else {},
            "malformed_lines": dg.MetadataValue.json([str(e) for e in line_errors]),
            "unknown_global_keys": dg.MetadataValue.json(built.unknown_keys),
            "flags": {c: int(rows[c].fillna(False).astype(bool).sum()) for c in _FLAGS}
            if len(rows)
            else {},
            "sample": markdown_table(
                rows, ["sop_instance_uid", "label_id", "status", "mask_status"], 12
            ),
        },
    )


_FLAGS = (
    "reject_image",
    "only_normal_tissue",
    "cyst_lesion_present",
    "benign_lesion_present",
    "malignant_lesion_present",
    "discard_entire_exam",
)

labels_import_job = dg.define_asset_job(
    "labels_import_job",
    selection=dg.AssetSelection.assets("labels_archive"),
    description="Archive one retrieval of labels (started by the labels inbox sensor or CLI).",
)


@dg.op(description="Export the Labelbox project's labels into <home>/labelbox/inbox/.")
def pull_labelbox_export(
    context: dg.OpExecutionContext, casbusi_home: CasbusiHome, labelbox: LabelboxResource
) -> str:
    home = casbusi_home.layout()
    paths = labelbox_paths(home.root)
    name = f"labelbox-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.ndjson"
    part = paths.inbox / f"{name}.part"
    try:
        n = labelbox.backend(home).export_labels(part)
    except LabellingError as exc:
        raise dg.Failure(description=str(exc)) from None
    part.rename(paths.inbox / name)  # the inbox sensor only takes complete *.ndjson files
    context.log.info(f"{n} data rows exported to {paths.inbox / name}")
    return str(paths.inbox / name)


@dg.job(description="Pull labels from Labelbox (online); the labels inbox sensor archives them.")
def labels_sync_job() -> None:
    pull_labelbox_export()


def import_labels(
    home: HomeLayout,
    export: Path,
    masks: Path | None,
    defs: dg.Definitions,
    echo: Callable[[str], None] = print,
    fail: Callable[[str], int] = lambda m: 1,
) -> int:
    """`casbusi labels import`: snapshot the export as a new labels version and archive it
    in-process (the run shows in the Dagster UI like a sensor-started one)."""
    paths = labelbox_paths(home.root)
    try:
        snap = snapshot_export(paths, export, masks, origin=f"cli:{Path(export).name}")
    except FileNotFoundError as exc:
        return fail(str(exc))
    if snap.reused and snap.version in stored_versions(home.warehouse):
        echo(f"{export}: identical to archived labels version {snap.version}; nothing new")
        return 0
    ensure_dagster_home(home)
    with dg.DagsterInstance.get() as instance:
        if not instance.has_dynamic_partition(labels_versions.name, snap.version):
            instance.add_dynamic_partitions(labels_versions.name, [snap.version])
        result = defs.resolve_job_def("labels_import_job").execute_in_process(
            partition_key=snap.version,
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            tags={"casbusi/labels_export": str(export), "casbusi/launched_by": "cli"},
        )
    if not result.success:
        failure = next((e.step_failure_data for e in result.all_events if e.is_step_failure), None)
        reason = ""
        if failure is not None:
            user = failure.user_failure_data
            reason = user.description if user and user.description else str(failure.error.message)
        return fail(f"labels version {snap.version}: {reason.strip()} (run {result.run_id})")
    (mat,) = result.asset_materializations_for_node("labels_archive")
    meta = mat.metadata
    echo(
        f"labels version {snap.version}: {meta['rows'].value} rows archived "
        f"({json.dumps(meta['by_status'].value)}), masks {json.dumps(meta['mask_status'].value)}"
    )
    unknown = meta["unknown_global_keys"].value or []
    if unknown:
        echo(
            f"warning: {len(unknown)} data row(s) not sent from this home: {', '.join(unknown[:10])}"
        )
    malformed = meta["malformed_lines"].value or []
    if malformed:
        for line in malformed:
            fail(f"{Path(export).name} {line}")
        return fail(f"{len(malformed)} malformed line(s); the other lines were archived")
    return 0
