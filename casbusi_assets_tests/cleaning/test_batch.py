"""clean_images with the orientation model in the pool workers vs in the step's process.

One small generated batch is ingested and OCR'd through the real graph; then `clean_images` runs
on its tables with the shipped orientation model. The OCR orientation is blanked, so every
readable single-region still goes through the model (a few dozen, not the ~15% the text leaves).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pandas as pd
import pytest

from casbusi_assets.cleaning import orientation
from casbusi_assets.cleaning.batch import clean_images, load_image, orientation_in_workers
from casbusi_assets.cleaning.rules import Thresholds
from casbusi_assets.runner import run_batch
from casbusi_assets.storage import warehouse
from casbusi_assets.synthetic import generate_batch
from casbusi_assets_tests.cleaning.test_assets import UPSTREAM


@pytest.fixture(scope="module")
def tables(module_home, tmp_path_factory):
    f = generate_batch(tmp_path_factory.mktemp("gen"), 0, patients=5, seed=31331)
    run_batch(f.zip_path, module_home, select=UPSTREAM, echo=lambda m: None)
    read = {
        t: warehouse.read_batch(module_home.warehouse, t, f.batch_id)
        for t in ("image_table", "ocr_table", "dicom_catalog", "case_study_table")
    }
    read["ocr_table"] = read["ocr_table"].assign(orientation=None)  # the model answers all
    return module_home, f, read


def _clean(tables, fn, **kw) -> pd.DataFrame:
    home, f, t = tables
    return clean_images(
        f.batch_id,
        t["image_table"],
        t["ocr_table"],
        t["dicom_catalog"],
        t["case_study_table"],
        Thresholds(),
        warehouse=home.warehouse,
        batch_order=[f.batch_id],
        zip_path=f.zip_path,
        orientation_fn=fn,
        **kw,
    )


class _PidLog:
    """An orientation step that also writes, per call, the pid of the process it ran in."""

    def __init__(self, step: orientation.OrientationStep, folder: Path) -> None:
        self.step, self.folder = step, folder

    def __call__(self, images):
        (self.folder / f"{os.getpid()}_{len(images)}_{id(images)}").touch()
        return self.step(images)

    def pids(self) -> set[int]:
        return {int(p.name.split("_")[0]) for p in self.folder.iterdir()}


def test_model_in_workers_gives_the_rows_of_the_model_in_the_step_process(tables, tmp_path):
    step = orientation.OrientationStep(device="cpu", batch_size=8)
    parent_log = _PidLog(step, tmp_path / "parent")
    worker_log = _PidLog(step, tmp_path / "workers")
    parent_log.folder.mkdir()
    worker_log.folder.mkdir()
    lines: list[str] = []
    in_parent = _clean(tables, parent_log, workers=2)
    in_workers = _clean(
        tables, worker_log, workers=2, orientation_in_workers=True, report=lines.append
    )
    in_process = _clean(tables, step, workers=1, orientation_in_workers=True)

    asked = in_parent["orientation_confidence"].notna()
    assert asked.sum() >= 20, "the batch must put a few dozen stills through the model"
    assert (in_parent["orientation_source"] == "model").sum() >= 5
    pd.testing.assert_frame_equal(in_workers, in_parent)
    pd.testing.assert_frame_equal(in_process, in_parent)
    # where it ran: the parent's model never saw an image in the worker run, and vice versa
    assert parent_log.pids() == {os.getpid()}
    assert os.getpid() not in worker_log.pids() and len(worker_log.pids()) >= 1
    assert any("orientation model runs in the 2 pool workers" in line for line in lines)


def test_rule_is_the_models_own_threshold_and_rounding(tables):
    # the rows hold combine()'s answer for each image asked: label, confidence to 4 places
    _, _, t = tables
    step = orientation.OrientationStep(device="cpu", min_confidence=0.5, batch_size=8)
    rows = _clean(tables, step, workers=2, orientation_in_workers=True).set_index(
        "sop_instance_uid"
    )
    asked = rows[rows["orientation_confidence"].notna()]
    paths = t["image_table"].set_index("sop_instance_uid").loc[asked.index, "image_path"]
    expected = step([load_image(p) for p in paths])
    for (sop, row), (label, conf) in zip(asked.iterrows(), expected, strict=True):
        # (all asked images in one call here, a patient's per call there: same to 1e-4)
        assert abs(row["orientation_confidence"] - round(conf, 4)) <= 1e-4, sop
        if label is None:
            assert (row["orientation"], row["orientation_source"]) == ("unknown", "none")
        else:
            assert (row["orientation"], row["orientation_source"]) == (label, "model")
    assert {lab for lab, _ in expected} - {None}, "some image must be labelled at 0.5"


def test_the_step_pickles_without_its_weights_and_predicts_the_same(tables):
    _, _, t = tables
    images = [load_image(p) for p in t["image_table"]["image_path"].head(4)]
    step = orientation.OrientationStep(device="cpu", min_confidence=0.4, batch_size=8)
    before = step(images)  # loaded now
    blob = pickle.dumps(step)
    assert len(blob) < 2_000  # the path, device and threshold; not the 0.7 MB of weights
    copy = pickle.loads(blob)
    assert (copy.path, copy.device, copy.min_confidence) == (step.path, "cpu", 0.4)
    assert copy(images) == before
    assert copy.load() is step.load()  # one copy of the weights per process


def test_model_threshold_is_the_models_own_unless_configured():
    step = orientation.OrientationStep(device="cpu")
    assert step.threshold == step.load().min_confidence
    assert orientation.OrientationStep(device="cpu", min_confidence=0.9).threshold == 0.9


def test_cpu_runs_the_model_in_the_workers_cuda_in_the_step_process():
    assert orientation_in_workers("cpu") is True
    assert orientation_in_workers("cuda") is False


def test_missing_weights_are_reported_by_load(tmp_path):
    step = orientation.OrientationStep(tmp_path / "nope.pt", device="cpu")
    with pytest.raises(orientation.OrientationModelError, match="not found"):
        step.load()
