"""The package layout rule (docs/architecture.md): inside a stage or the storage package, only the
Dagster-facing modules import Dagster; every domain module is importable and testable without it."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import casbusi_assets

PACKAGE_DIR = Path(casbusi_assets.__file__).resolve().parent
# The modules allowed to import dagster. In a package: its assets/sensors/resources/io_manager;
# shared/ also holds the two helpers every assets.py uses. Top level: the assembly modules.
DAGSTER_FACING = {
    "assets",
    "checks",
    "sensors",
    "resources",
    "io_manager",
    "partitions",
    "metadata",
}
TOP_LEVEL_ASSEMBLY = {"definitions", "deployment", "jobs", "loggers", "runner", "cli", "demo"}


def _imports_dagster(path: Path) -> bool:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            a.name.split(".")[0] == "dagster" for a in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "dagster":
            return True
    return False


def domain_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="casbusi_assets."):
        parts = info.name.split(".")
        if info.ispkg or (len(parts) == 2 and parts[1] in TOP_LEVEL_ASSEMBLY):
            continue
        if len(parts) >= 3 and parts[-1] in DAGSTER_FACING:
            continue
        names.append(info.name)
    return sorted(names)


def test_stage_packages_exist() -> None:
    for stage in ("storage", "ingest", "pixels", "cases", "ocr", "shared", "synthetic"):
        assert (PACKAGE_DIR / stage / "__init__.py").is_file(), stage
    flat = sorted(p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__")
    assert set(flat) <= TOP_LEVEL_ASSEMBLY, f"stage code at the top level: {flat}"


def test_domain_modules_do_not_import_dagster_in_their_source() -> None:
    offenders = [
        m
        for m in domain_modules()
        if _imports_dagster(PACKAGE_DIR.joinpath(*m.split(".")[1:]).with_suffix(".py"))
    ]
    assert domain_modules(), "no domain modules found"
    assert offenders == []


def test_domain_modules_import_without_loading_dagster() -> None:
    # Transitively too: importing every domain module in a fresh interpreter never loads dagster.
    code = (
        "import importlib, json, sys\n"
        f"mods = {json.dumps(domain_modules())}\n"
        "for m in mods: importlib.import_module(m)\n"
        "print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] == 'dagster')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
