"""Shipped weights are found in a checkout, in a regular install, and where CASBUSI_MODELS_DIR says."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from casbusi_assets.shared import model_files
from casbusi_assets.shared.model_files import shipped_model

ROOT = Path(__file__).resolve().parents[2]


def test_every_shipped_weights_file_is_installed_with_the_package() -> None:
    # A weights file missing from the data files would be absent from every wheel install.
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "data-files"
    ]
    listed = {
        f"{target}/{Path(src).name}": src for target, srcs in data_files.items() for src in srcs
    }
    weights = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "models").rglob("*.pt"))
    assert weights, "no weights under models/"
    for rel in weights:
        assert listed.get(f"share/casbusi-assets/{rel}") == rel, f"{rel} is not in data-files"
    for src in listed.values():
        assert (ROOT / src).is_file(), f"data-files lists {src}, which does not exist"


def _weights(folder: Path, name: str = "w.pt") -> Path:
    path = folder / "calipers" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(b"weights")
    return path


def test_the_env_folder_wins_then_the_checkout_then_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout, installed, custom = tmp_path / "checkout", tmp_path / "share", tmp_path / "custom"
    monkeypatch.setattr(model_files, "CHECKOUT_MODELS", checkout)
    monkeypatch.setattr(model_files, "INSTALLED_MODELS", installed)
    monkeypatch.delenv("CASBUSI_MODELS_DIR", raising=False)
    # Nothing anywhere: the checkout path, so the error names where a developer looks.
    assert shipped_model("calipers", "w.pt") == checkout / "calipers" / "w.pt"
    in_install = _weights(installed)
    assert shipped_model("calipers", "w.pt") == in_install  # a regular pip install
    in_checkout = _weights(checkout)
    assert shipped_model("calipers", "w.pt") == in_checkout
    in_custom = _weights(custom)
    monkeypatch.setenv("CASBUSI_MODELS_DIR", str(custom))
    assert shipped_model("calipers", "w.pt") == in_custom
