"""inpainted_images through Dagster: table in the warehouse, files in the stage's folder, the
preview in the metadata, the per-batch check, reruns that replace exactly the batch's files."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import dagster as dg
import pandas as pd

from casbusi_assets.inpainting import assets as inpainting
from casbusi_assets.inpainting import checks as inpainting_checks
from casbusi_assets.inpainting.pairs import truth_boxes
from casbusi_assets.inpainting.resources import InpaintSettings
from casbusi_assets.pixels.decode import write_png
from casbusi_assets.shared.partitions import batch_partitions
from casbusi_assets.shared.resources import DeviceResource
from casbusi_assets.storage import warehouse
from casbusi_assets.storage.file_staging import batch_files_dir
from casbusi_assets.storage.home import HomeLayout
from casbusi_assets.storage.io_manager import WarehouseIOManager
from casbusi_assets.storage.resources import CasbusiHome

BATCH = "batch_007"


def _cleaned(home: HomeLayout, pairs) -> pd.DataFrame:
    originals = batch_files_dir(home.files, "image_table", BATCH)
    rows = []
    for i, pair in enumerate(pairs):
        path = originals / f"2.25.{i}.png"
        write_png(path, pair.image)
        rows.append(
            {
                "batch_id": BATCH,
                "sop_instance_uid": f"2.25.{i}",
                "image_path": str(path),
                "include": True,
                "has_calipers": True,
                "caliper_boxes": json.dumps(truth_boxes(pair.marks)),
            }
        )
    return pd.DataFrame(rows)


def _materialize(home: HomeLayout, cleaned: pd.DataFrame, instance, method: str = "ns"):
    @dg.asset(name="cleaned_images", partitions_def=batch_partitions, io_manager_key="mem")
    def stand_in() -> pd.DataFrame:
        return cleaned

    return dg.materialize(
        [stand_in, inpainting.inpainted_images, inpainting_checks.copies_differ_only_inside_masks],
        partition_key=BATCH,
        instance=instance,
        resources={
            "casbusi_home": CasbusiHome(home=str(home.root)),
            "warehouse_io_manager": WarehouseIOManager(home=str(home.root)),
            "mem": dg.InMemoryIOManager(),
            "inpaint_settings": InpaintSettings(method=method),
            "device": DeviceResource(device="cpu"),
        },
    )


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.png"))
    }


def test_asset_writes_table_files_preview_and_passes_its_check(tmp_path, fresh_pairs):
    home = HomeLayout(tmp_path / "home").create()
    cleaned = _cleaned(home, fresh_pairs[:3])
    originals = batch_files_dir(home.files, "image_table", BATCH)
    before = _hashes(originals)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("batch", [BATCH])

    result = _materialize(home, cleaned, instance, method="learned")
    assert result.success
    df = warehouse.read_batch(home.warehouse, "inpainted_images", BATCH)
    assert len(df) == 3 and (df["status"] == "ok").all() and (df["method"] == "learned").all()
    meta = result.asset_materializations_for_node("inpainted_images")[0].metadata
    assert meta["device"].value == "cpu" and meta["method"].value == "learned"
    preview = meta["preview"].value
    b64 = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", preview).group(1)
    assert len(b64) * 3 / 4 < 100_000
    checks = result.get_asset_check_evaluations()
    assert [c.check_name for c in checks] == ["copies_differ_only_inside_masks"]
    assert checks[0].passed and checks[0].metadata["checked"].value == 3

    out_dir = batch_files_dir(home.files, "inpainted_images", BATCH)
    first = _hashes(out_dir)
    assert set(first) == set(df["mask_path"]) | set(df["inpainted_path"])

    # Rerun with one image fewer: exactly the remaining images' files, originals untouched.
    assert _materialize(home, cleaned.iloc[1:], instance).success
    df2 = warehouse.read_batch(home.warehouse, "inpainted_images", BATCH)
    assert sorted(df2["sop_instance_uid"]) == ["2.25.1", "2.25.2"]
    second = _hashes(out_dir)
    assert set(second) == set(df2["mask_path"]) | set(df2["inpainted_path"])
    assert _hashes(originals) == before
