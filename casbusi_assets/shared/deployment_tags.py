"""Op tags that route the inference steps (OCR, the cleaning models, inpainting) when the
platform runs past one machine; the local executors ignore them.

- Celery: the `gpu` queue, so GPU workers (`dagster-celery worker start -q gpu`) take them.
- Kubernetes: a step pod with `nvidia.com/gpu` in its limits (a GPU request must equal its
  limit), on a node labelled `accelerator=nvidia`. CASBUSI_K8S_GPUS sets how many (0 = none,
  for a CPU-only cluster); read when the code location loads, like every CASBUSI_* setting.
"""

from __future__ import annotations

import os
from typing import Any


def inference_op_tags() -> dict[str, Any]:
    gpus = int(os.environ.get("CASBUSI_K8S_GPUS", "1"))
    limits: dict[str, Any] = {"cpu": "4", "memory": "16Gi"}
    pod: dict[str, Any] = {}
    if gpus > 0:
        limits["nvidia.com/gpu"] = gpus
        pod = {
            "node_selector": {"accelerator": "nvidia"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
        }
    k8s = {
        "container_config": {
            "resources": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": limits}
        }
    }
    if pod:
        k8s["pod_spec_config"] = pod
    return {"dagster-celery/queue": "gpu", "dagster-k8s/config": k8s}
