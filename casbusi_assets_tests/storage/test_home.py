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


def test_data_url_moves_warehouse_and_files_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from casbusi_assets.storage.home import DATA_URL_ENV_VAR, layout

    monkeypatch.setenv(DATA_URL_ENV_VAR, "s3://lake-bucket/casbusi/")
    home = layout(tmp_path / "h").create()
    assert home.remote
    assert str(home.warehouse) == "s3://lake-bucket/casbusi/warehouse"
    assert str(home.files) == "s3://lake-bucket/casbusi/files"
    # the rest of the home stays local, and nothing is created for the remote parts
    assert home.catalog == tmp_path / "h" / "catalog.duckdb"
    assert home.dagster_home.is_dir() and home.inbox.is_dir() and home.registry.is_dir()
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == ["dagster", "inbox", "registry"]
    # an explicit value wins; file:// or a plain folder is local
    local = layout(tmp_path / "h", f"file://{tmp_path / 'data'}")
    assert not local.remote and local.warehouse == tmp_path / "data" / "warehouse"
    monkeypatch.delenv(DATA_URL_ENV_VAR)
    assert layout(tmp_path / "h").warehouse == tmp_path / "h" / "warehouse"
