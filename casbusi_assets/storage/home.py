"""Where everything lives: one folder, chosen by the CASBUSI_HOME environment variable.

    <home>/inbox/            drop zips here; the inbox sensor picks them up
    <home>/warehouse/<table>/batch_id=<batch>/data.parquet
    <home>/catalog.duckdb    DuckDB views over the warehouse, for SQL
    <home>/files/<asset>/<batch>/...   PNG images and cine frames
    <home>/registry/<batch>.json       which zip a batch was ingested from
    <home>/dagster/          DAGSTER_HOME: run history, sensor cursors, dynamic partitions

Without CASBUSI_HOME the home is `casbusi_home/` in the checkout (ignored by git), or in the
working directory when the package is installed from a wheel.

CASBUSI_DATA_URL (e.g. `s3://bucket/prefix`) puts the two data parts on object storage instead:

    <url>/warehouse/<table>/batch_id=<batch>/data.parquet
    <url>/files/<asset>/<batch>/...

while inbox/, catalog.duckdb, registry/ and dagster/ stay in the local home. Credentials and the
endpoint come from the standard AWS variables that s3fs reads (see storage/files.py).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from casbusi_assets.storage.files import DataPath, data_path, is_remote

HOME_ENV_VAR = "CASBUSI_HOME"
DATA_URL_ENV_VAR = "CASBUSI_DATA_URL"
DEFAULT_HOME_NAME = "casbusi_home"

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # casbusi_assets/
_CHECKOUT_DIR = _PACKAGE_DIR.parent


def _in_checkout() -> bool:
    return (_CHECKOUT_DIR / "pyproject.toml").is_file() and (_CHECKOUT_DIR / ".git").exists()


def resolve_home(value: str | os.PathLike[str] | None = None) -> Path:
    """The home folder: an explicit value, else $CASBUSI_HOME, else the default, made absolute."""
    raw = str(value) if value else os.environ.get(HOME_ENV_VAR, "")
    if raw:
        return Path(raw).expanduser().resolve()
    base = _CHECKOUT_DIR if _in_checkout() else Path.cwd()
    return (base / DEFAULT_HOME_NAME).resolve()


def resolve_data_url(value: str | None = None) -> str:
    """Where the warehouse and files live: an explicit value, else $CASBUSI_DATA_URL; "" = the
    local home. A file:// URL or a plain path is a local folder."""
    raw = (value if value else os.environ.get(DATA_URL_ENV_VAR, "")).strip()
    if not raw or is_remote(raw):
        return raw.rstrip("/")
    return str(Path(data_path(raw)).expanduser().resolve())


@dataclass(frozen=True)
class HomeLayout:
    root: Path
    data_url: str = ""  # "" = warehouse and files inside root

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def data_root(self) -> DataPath:
        """The warehouse's and the files' parent: the home itself, a local folder, or a URL."""
        return data_path(self.data_url) if self.data_url else self.root

    @property
    def remote(self) -> bool:
        return is_remote(self.data_root)

    @property
    def warehouse(self) -> DataPath:
        return self.data_root / "warehouse"

    @property
    def files(self) -> DataPath:
        return self.data_root / "files"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    def create(self) -> HomeLayout:
        local = [self.inbox, self.registry, self.dagster_home]
        if not self.remote:  # object stores have no folders to create
            local += [self.warehouse, self.files]
        for folder in local:
            folder.mkdir(parents=True, exist_ok=True)
        return self


def layout(value: str | os.PathLike[str] | None = None, data_url: str | None = None) -> HomeLayout:
    return HomeLayout(resolve_home(value), resolve_data_url(data_url))


# Used when the package runs outside the checkout and the repo's dagster.yaml is not at hand.
_FALLBACK_INSTANCE_YAML = "telemetry:\n  enabled: false\n"


def ensure_dagster_home(home: HomeLayout) -> Path:
    """Create DAGSTER_HOME inside the home, seed its dagster.yaml, and export DAGSTER_HOME.

    Without a persistent DAGSTER_HOME Dagster uses a temporary folder and loses run history,
    sensor cursors and the dynamic batch partitions on exit.
    """
    home.create()
    target = home.dagster_home / "dagster.yaml"
    if not target.exists():
        template = _CHECKOUT_DIR / "dagster.yaml"
        if template.is_file():
            shutil.copyfile(template, target)
        else:
            target.write_text(_FALLBACK_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home.dagster_home)
    return home.dagster_home
