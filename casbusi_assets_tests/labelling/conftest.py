"""A small labelling world: stand-ins for the upstream cleaning / inpainting / OCR outputs (frames
of their shapes, images on disk), the two assets, and the Labelbox fake wired in place of the SDK."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import dagster as dg
import numpy as np
import pandas as pd
import pytest

from casbusi_assets.labelling import assets as labelling
from casbusi_assets.labelling.io_manager import LabelsArchiveIOManager
from casbusi_assets.labelling.resources import LabelboxResource
from casbusi_assets.shared.partitions import batch_partitions
from casbusi_assets.storage.home import HomeLayout
from casbusi_assets.storage.io_manager import WarehouseIOManager
from casbusi_assets.storage.resources import CasbusiHome
from casbusi_assets_tests.labelling import fakes

BATCH = "batch_001"
SIZE = (150, 200)  # original captures: 200 wide, 150 high
CROP = (30, 20, 100, 80)  # x, y, w, h of the ultrasound field


def write_images(folder: Path, n: int = 4) -> pd.DataFrame:
    """`n` captures as cleaned_images rows (all included, the last one with calipers)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        img = np.full(SIZE, 40 + i, np.uint8)
        path = folder / f"1.2.{i}.png"
        cv2.imwrite(str(path), img)
        x, y, w, h = CROP
        rows.append(
            {
                "batch_id": BATCH,
                "sop_instance_uid": f"1.2.{i}",
                "patient_id": "p1" if i < 2 else "p2",
                "accession_number": "a1" if i < 2 else "a2",
                "image_path": str(path),
                "include": True,
                "exclusion_reasons": [],
                "label_cat": "trans",
                "crop_x": x,
                "crop_y": y,
                "crop_w": w,
                "crop_h": h,
                "orientation": "trans",
                "laterality": "left",
                "has_calipers": i == n - 1,
            }
        )
    return pd.DataFrame(rows)


def catalog_with_names(cleaned: pd.DataFrame, patient_name: str) -> pd.DataFrame:
    """A catalog of the images whose headers carry `patient_name` ("" = anonymised)."""
    header = json.dumps({"00100010": {"vr": "PN", "Value": [{"Alphabetic": patient_name}]}})
    return pd.DataFrame(
        {
            "member_path": [f"m/{u}" for u in cleaned["sop_instance_uid"]],
            "sop_instance_uid": cleaned["sop_instance_uid"],
            "patient_id": cleaned["patient_id"],
            "status": "ok",
            "header": header,
        }
    )


def stand_in_assets(frames: dict[str, pd.DataFrame]) -> list[dg.AssetsDefinition]:
    """Upstream assets of the right names returning the given frames (in-memory IO)."""

    def make(name: str, df: pd.DataFrame) -> dg.AssetsDefinition:
        @dg.asset(name=name, partitions_def=batch_partitions, io_manager_key="mem", group_name="up")
        def stand_in() -> pd.DataFrame:
            return df

        return stand_in

    return [make(name, df) for name, df in frames.items()]


@pytest.fixture
def world(tmp_path: Path):
    home = HomeLayout(tmp_path / "home").create()
    cleaned = write_images(tmp_path / "images")
    inpainted_path = tmp_path / "images" / "inpainted_1.2.3.png"
    cv2.imwrite(str(inpainted_path), np.full(SIZE, 222, np.uint8))
    inpainted = pd.DataFrame(
        [
            {
                "batch_id": BATCH,
                "sop_instance_uid": "1.2.3",
                "mask_path": None,
                "inpainted_path": str(inpainted_path),
                "n_calipers": 2,
                "method": "telea",
            }
        ]
    )
    ocr = pd.DataFrame(
        [
            {
                "batch_id": BATCH,
                "sop_instance_uid": f"1.2.{i}",
                "source": "image",
                "laterality": "left",
            }
            for i in range(4)
        ]
    )
    return {
        "home": home,
        "upstream": stand_in_assets(
            {
                "cleaned_images": cleaned,
                "inpainted_images": inpainted,
                "ocr_table": ocr,
                "dicom_catalog": catalog_with_names(cleaned, ""),
            }
        ),
    }


def resources(home: HomeLayout, labelbox: LabelboxResource) -> dict[str, object]:
    return {
        "casbusi_home": CasbusiHome(home=str(home.root)),
        "warehouse_io_manager": WarehouseIOManager(home=str(home.root)),
        "labels_archive_io_manager": LabelsArchiveIOManager(home=str(home.root)),
        "labelbox": labelbox,
        "mem": dg.InMemoryIOManager(),
    }


def materialize_crops(world, labelbox: LabelboxResource, instance=None, raise_on_error=True):
    instance = instance or dg.DagsterInstance.ephemeral()
    if not instance.has_dynamic_partition("batch", BATCH):
        instance.add_dynamic_partitions("batch", [BATCH])
    return dg.materialize(
        [*world["upstream"], labelling.labelbox_crops],
        partition_key=BATCH,
        instance=instance,
        resources=resources(world["home"], labelbox),
        raise_on_error=raise_on_error,
    )


def labels_definitions(home: HomeLayout, labelbox: LabelboxResource) -> dg.Definitions:
    return dg.Definitions(
        assets=[labelling.labels_archive],
        jobs=[labelling.labels_import_job],
        resources={k: v for k, v in resources(home, labelbox).items() if k != "mem"},
    )


@pytest.fixture
def fake_sdk(monkeypatch):
    """The fake in place of `labelbox.Client` and `requests.get`: the real code paths run."""
    import labelbox
    import requests

    server = fakes.FakeServer()
    fakes.FakeClient.server = server
    monkeypatch.setattr(labelbox, "Client", fakes.FakeClient)
    monkeypatch.setattr(requests, "get", server.http_get)
    return server
