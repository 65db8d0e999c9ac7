"""Where the home folder is when nothing is configured, and how it is overridden."""

from __future__ import annotations

from pathlib import Path

import pytest

from casbusi_assets.storage.home import HOME_ENV_VAR, resolve_home

CHECKOUT = Path(__file__).resolve().parents[2]


def test_default_home_is_beside_pyproject_in_a_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HOME_ENV_VAR, raising=False)
    if not (CHECKOUT / ".git").exists():
        pytest.skip("not a git checkout")
    assert resolve_home() == (CHECKOUT / "casbusi_home").resolve()


def test_env_var_and_explicit_value_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(HOME_ENV_VAR, str(tmp_path / "env_home"))
    assert resolve_home() == (tmp_path / "env_home").resolve()
    assert resolve_home(tmp_path / "explicit") == (tmp_path / "explicit").resolve()
