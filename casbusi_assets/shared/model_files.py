"""Where the shipped model weights are found, in a checkout and in an installed package.

The weights live in `models/` at the repository root (beside their training scripts and model
cards). An editable install or a checkout finds them there; a regular `pip install .` (a wheel,
as a container image or a cluster node gets) installs them as data files under
`<prefix>/share/casbusi-assets/models/` (pyproject's `[tool.setuptools.data-files]`).
`CASBUSI_MODELS_DIR` points at another folder of the same layout and wins over both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CHECKOUT_MODELS = Path(__file__).resolve().parents[2] / "models"
INSTALLED_MODELS = Path(sys.prefix) / "share" / "casbusi-assets" / "models"


def models_dirs() -> list[Path]:
    """The folders searched for weights, first match wins."""
    dirs = [Path(p).expanduser() for p in [os.environ.get("CASBUSI_MODELS_DIR")] if p]
    return [*dirs, CHECKOUT_MODELS, INSTALLED_MODELS]


def shipped_model(*parts: str) -> Path:
    """`models/<parts>` from the first folder that has it; the checkout's path when none has it
    (so a missing file is reported with the path a developer expects)."""
    for folder in models_dirs():
        candidate = folder.joinpath(*parts)
        if candidate.is_file():
            return candidate
    return CHECKOUT_MODELS.joinpath(*parts)
