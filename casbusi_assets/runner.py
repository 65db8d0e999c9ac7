"""Materialise one batch in-process: what `casbusi run-batch` and `casbusi demo` do.

The batch is registered exactly as the sensor would register it (a dynamic partition, an
`inbox_zip` materialisation for lineage), so runs started here show up in the Dagster UI with the
same partitions and history as sensor-started ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from casbusi_assets.ingest.sources import ZipFingerprint, batch_key_for, register_zip
from casbusi_assets.shared.parallel import SpawnBootstrapError, ensure_not_spawn_bootstrap
from casbusi_assets.shared.partitions import batch_partitions
from casbusi_assets.storage.home import HomeLayout, ensure_dagster_home


class RunBatchError(RuntimeError):
    """A batch run could not start or did not succeed; the message is the one-line reason."""


class UnknownBatchError(LookupError):
    """delete-batch was given a key that names no batch in this home."""


@dataclass
class BatchRunOutcome:
    batch_id: str
    run_id: str
    seconds: float
    materialized: list[str] = field(default_factory=list)


def batch_asset_names(defs: dg.Definitions) -> list[str]:
    job = defs.resolve_job_def("batch_job")
    return sorted(key.to_user_string() for key in job.asset_layer.executable_asset_keys)


def _failure_reason(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            err = event.step_failure_data.error
            user = event.step_failure_data.user_failure_data
            message = (
                user.description
                if user and user.description
                else (err.cause.message if err and err.cause else (err.message if err else ""))
            )
            return f"{event.step_key} failed: {message.strip().splitlines()[0] if message else ''}"
    return "the run did not succeed (see the Dagster event log)"


def run_batch(
    zip_path: Path,
    home: HomeLayout,
    select: Sequence[str] | None = None,
    echo: Callable[[str], None] = print,
) -> BatchRunOutcome:
    try:
        ensure_not_spawn_bootstrap("run_batch")
    except SpawnBootstrapError as err:
        raise RunBatchError(str(err)) from None
    zip_path = Path(zip_path).expanduser().resolve()
    if not zip_path.is_file():
        raise RunBatchError(f"{zip_path} does not exist or is not a file")
    key = batch_key_for(zip_path)
    from casbusi_assets.definitions import build_definitions

    # This run writes to `home`, whatever home the module-level definitions were loaded with.
    defs = build_definitions(str(home.root))
    names = batch_asset_names(defs)
    if select:
        unknown = sorted(set(select) - set(names))
        if unknown:
            raise RunBatchError(f"unknown asset(s) {unknown}; choose from {', '.join(names)}")
    ensure_dagster_home(home)
    registry_entry = home.registry / f"{key}.json"
    previous_entry = registry_entry.read_bytes() if registry_entry.is_file() else None
    register_zip(home, key, zip_path)

    with dg.DagsterInstance.get() as instance:
        new_partition = not instance.has_dynamic_partition(batch_partitions.name, key)
        if new_partition:
            instance.add_dynamic_partitions(batch_partitions.name, [key])
        fp = ZipFingerprint.of(zip_path)
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key="inbox_zip",
                partition=key,
                metadata={"path": dg.MetadataValue.path(str(zip_path)), "bytes": fp.size},
            )
        )
        chosen = list(select) if select else names
        echo(f"batch {key}: materialising {', '.join(chosen)}")
        started = time.perf_counter()
        result = defs.resolve_job_def("batch_job").execute_in_process(
            partition_key=key,
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            asset_selection=[dg.AssetKey(n) for n in chosen],
            tags={"casbusi/zip": str(zip_path), "casbusi/launched_by": "cli"},
        )
        seconds = time.perf_counter() - started
        if not result.success:
            # A batch that never succeeded leaves no partition or registry entry behind (the run
            # stays in Dagster's history); a re-run of a known batch keeps what it had.
            if new_partition and not _has_materializations(instance, key):
                instance.delete_dynamic_partition(batch_partitions.name, key)
            if previous_entry is None:
                registry_entry.unlink(missing_ok=True)
            else:
                registry_entry.write_bytes(previous_entry)
            raise RunBatchError(f"batch {key}: {_failure_reason(result)} (run {result.run_id})")
        _warn_if_no_dicom(home, key, chosen, echo)
        done = sorted(
            {
                e.asset_key.to_user_string()
                for e in result.get_asset_materialization_events()
                if e.asset_key
            }
        )
        return BatchRunOutcome(key, result.run_id, seconds, done)


def _warn_if_no_dicom(
    home: HomeLayout, key: str, chosen: Sequence[str], echo: Callable[[str], None]
) -> None:
    if "dicom_catalog" not in chosen:
        return
    from casbusi_assets.storage import warehouse

    cat = warehouse.read_batch(home.warehouse, "dicom_catalog", key, columns=["status", "kind"])
    usable = cat[(cat["status"] == "ok") & cat["kind"].isin(["image", "video", "no_pixels"])]
    if usable.empty:
        echo(
            f"batch {key}: warning: the zip holds no DICOM file that could be used "
            f"({len(cat)} member(s), {int((cat['status'] == 'quarantined').sum())} quarantined); "
            "its tables are empty"
        )


def _has_materializations(instance: dg.DagsterInstance, key: str) -> bool:
    """Whether any batch asset (other than the reported inbox_zip) was materialised for `key`."""
    for asset_key in instance.get_asset_keys():
        if asset_key.to_user_string() == "inbox_zip":
            continue
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[key]), limit=1
        )
        if records.records:
            return True
    return False


def known_batches(home: HomeLayout) -> set[str]:
    """Batch keys this home knows of: registered zips, table folders, file folders, partitions."""
    from casbusi_assets.storage import warehouse

    keys = {p.stem for p in home.registry.glob("*.json")} if home.registry.is_dir() else set()
    for table in warehouse.tables_present(home.warehouse):
        keys |= {p.name.split("=", 1)[1] for p in (home.warehouse / table).glob("batch_id=*")}
    if home.files.is_dir():
        keys |= {
            p.name for d in home.files.iterdir() if d.is_dir() for p in d.iterdir() if p.is_dir()
        }
    if home.dagster_home.is_dir():
        ensure_dagster_home(home)
        with dg.DagsterInstance.get() as instance:
            keys |= set(instance.get_dynamic_partitions(batch_partitions.name))
    return keys


def delete_batch(home: HomeLayout, key: str) -> dict[str, int]:
    """Remove a batch everywhere: its rows in every table, its files, its registry entry and its
    partition. Dagster keeps the run history; the zip itself is left where it is."""
    from casbusi_assets.storage import warehouse
    from casbusi_assets.storage.file_staging import remove_batch_files

    known = known_batches(home)
    if key not in known:
        listing = ", ".join(sorted(known)) or "none"
        raise UnknownBatchError(f"no batch '{key}' in {home.root} (batches: {listing})")
    from casbusi_assets.labelling.archive import TABLE as LABELS_ARCHIVE
    from casbusi_assets.labelling.archive import remove_batch_labels

    removed = {"tables": 0, "file_folders": 0, "label_masks": 0}
    for table in warehouse.tables_present(home.warehouse):
        if warehouse.batch_dir(home.warehouse, table, key).exists():
            if table == LABELS_ARCHIVE:  # its masks live in per-version folders shared by batches
                removed["label_masks"] += remove_batch_labels(home.warehouse, key)
            else:
                warehouse.delete_batch(home.warehouse, table, key)
            removed["tables"] += 1
            # the view now reads an empty typed file when this was the table's last batch
            warehouse.ensure_views(home.catalog, home.warehouse, [table])
    if home.files.is_dir():
        for asset_dir in home.files.iterdir():
            if (asset_dir / key).is_dir():
                remove_batch_files(home.files, asset_dir.name, key)
                removed["file_folders"] += 1
    (home.registry / f"{key}.json").unlink(missing_ok=True)
    ensure_dagster_home(home)
    with dg.DagsterInstance.get() as instance:
        if instance.has_dynamic_partition(batch_partitions.name, key):
            instance.delete_dynamic_partition(batch_partitions.name, key)
    return removed
