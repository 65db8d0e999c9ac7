"""Past one machine, by configuration only: the executor from CASBUSI_EXECUTOR, the Kubernetes run
config in deploy/k8s validated by Dagster, inference steps routed to GPU queues and pods."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from casbusi_assets.definitions import build_definitions
from casbusi_assets.deployment import ExecutorChoiceError, executor_from_env

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
INFERENCE_ASSETS = ("ocr_table", "cleaned_images", "inpainted_images")


def _run_config(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_default_is_multiprocess_and_unknown_names_fail() -> None:
    assert executor_from_env("multiprocess") is None
    assert executor_from_env("in_process") is dg.in_process_executor
    with pytest.raises(ExecutorChoiceError, match="must be one of multiprocess, in_process"):
        executor_from_env("spark")


def test_k8s_run_config_validates_and_a_bad_key_does_not(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CASBUSI_EXECUTOR", "k8s")
    monkeypatch.setenv("CASBUSI_IMAGE", "registry.example/casbusi:1.0")
    job = build_definitions(str(tmp_path)).resolve_job_def("batch_job")
    assert job.executor_def.name == "k8s"
    config = _run_config("k8s/run_config.yaml")
    resolved = dg.validate_run_config(job, config)["execution"]
    assert next(iter(resolved.values()))["job_namespace"] == "casbusi"
    config["execution"]["config"]["bogus_key"] = 1
    with pytest.raises(dg.DagsterInvalidConfigError, match="bogus_key"):
        dg.validate_run_config(job, config)


def test_celery_executor_takes_the_broker_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CASBUSI_EXECUTOR", "celery")
    monkeypatch.setenv("CASBUSI_CELERY_BROKER", "redis://127.0.0.1:6390/0")
    monkeypatch.setenv("CASBUSI_CELERY_BACKEND", "redis://127.0.0.1:6390/1")
    job = build_definitions(str(tmp_path)).resolve_job_def("batch_job")
    assert job.executor_def.name == "casbusi_celery"
    resolved = dg.validate_run_config(job, {})
    assert resolved["execution"]["casbusi_celery"]["broker"] == "redis://127.0.0.1:6390/0"


def test_inference_steps_go_to_gpu_workers(tmp_path) -> None:
    graph = build_definitions(str(tmp_path)).resolve_asset_graph()
    present = [a for a in INFERENCE_ASSETS if dg.AssetKey(a) in graph.get_all_asset_keys()]
    assert "ocr_table" in present
    for name in present:
        assets_def = graph.assets_def_for_key(dg.AssetKey(name))
        tags = assets_def.op.tags
        assert tags["dagster-celery/queue"] == "gpu", name
        k8s = tags["dagster-k8s/config"]
        k8s = json.loads(k8s) if isinstance(k8s, str) else k8s  # op tags store JSON strings
        limits = k8s["container_config"]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == 1, name
    # a decode step stays on the default queue and asks for no GPU
    assert (
        "dagster-celery/queue" not in graph.assets_def_for_key(dg.AssetKey("image_table")).op.tags
    )


def test_postgres_instance_template_names_the_driver() -> None:
    storage = yaml.safe_load((DEPLOY / "postgres/dagster.yaml").read_text())["storage"]
    db = storage["postgres"]["postgres_db"]
    assert db["scheme"] == "postgresql+psycopg2"
    assert all(isinstance(v, dict) and "env" in v for k, v in db.items() if k != "scheme")
