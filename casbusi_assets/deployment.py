"""Which executor runs the steps of every job, chosen by CASBUSI_EXECUTOR (config only):

- `multiprocess` (default): each step in its own process on this machine;
- `in_process`: every step in the run's process (debugging);
- `celery`: steps go to Celery workers through the broker at CASBUSI_CELERY_BROKER (results at
  CASBUSI_CELERY_BACKEND); inference steps to the `gpu` queue (shared/deployment_tags.py). The
  instance must be shared by every process (Postgres: deploy/postgres/dagster.yaml);
- `k8s`: one Kubernetes Job per step (dagster-k8s `k8s_job_executor`); its run config lives in
  deploy/k8s/run_config.yaml and needs the K8sRunLauncher of the Dagster Helm chart.
"""

from __future__ import annotations

import os

import dagster as dg

EXECUTORS = ("multiprocess", "in_process", "celery", "k8s")


class ExecutorChoiceError(ValueError):
    """CASBUSI_EXECUTOR names no executor, or the executor's package is not installed."""


def executor_from_env(name: str | None = None) -> dg.ExecutorDefinition | None:
    """The executor for every job, or None for Dagster's default (multiprocess)."""
    choice = (name or os.environ.get("CASBUSI_EXECUTOR") or "multiprocess").strip().lower()
    if choice not in EXECUTORS:
        raise ExecutorChoiceError(
            f"CASBUSI_EXECUTOR must be one of {', '.join(EXECUTORS)}; got {choice!r}"
        )
    if choice == "multiprocess":
        return None
    if choice == "in_process":
        return dg.in_process_executor
    try:
        if choice == "celery":
            from dagster_celery import celery_executor

            return celery_executor.configured(
                {
                    "broker": {"env": "CASBUSI_CELERY_BROKER"},
                    "backend": {"env": "CASBUSI_CELERY_BACKEND"},
                },
                name="casbusi_celery",
            )
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    except ImportError as exc:
        package = "dagster-celery" if choice == "celery" else "dagster-k8s"
        raise ExecutorChoiceError(
            f"CASBUSI_EXECUTOR={choice} needs {package}: pip install 'casbusi-assets[scale]'"
        ) from exc
