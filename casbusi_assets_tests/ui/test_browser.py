"""The Dagster UI in a real browser (headless Chromium driven by Playwright): the asset graph,
a table's partitions and a check's per-batch result, on a home with two materialised batches.

Run by `make test-ui` (which `make test` calls); it installs Debian's chromium when missing.
Screenshots go to $CASBUSI_SCREENSHOT_DIR (the Make target sets docs/), else a temp folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from casbusi_assets_tests.conftest import free_port

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags that keep Chromium off the network it cannot reach here, and quiet as root in CI.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from casbusi_assets.runner import run_batch
    from casbusi_assets.storage.home import HomeLayout
    from casbusi_assets.synthetic import generate_batches

    root = tmp_path_factory.mktemp("ui")
    home = HomeLayout(root / "home").create()
    for batch in generate_batches(root / "zips", batches=2, patients=2, seed=5):
        run_batch(
            batch.zip_path,
            home,
            select=["dicom_catalog", "image_table", "video_table"],
            echo=lambda m: None,
        )
    port = free_port()
    casbusi = Path(sys.executable).parent / "casbusi"
    log = (root / "ui.log").open("w")
    proc = subprocess.Popen(
        [str(casbusi), "--home", str(home.root), "ui", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "CASBUSI_INBOX_SETTLE_SECONDS": "3600"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url + "/server_info", timeout=5):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.terminate()
                pytest.fail(f"the UI did not start: {(root / 'ui.log').read_text()[-2000:]}")
            time.sleep(1)
    yield url
    proc.terminate()  # casbusi ui stops the webserver, the daemon and the code servers
    proc.wait(timeout=60)
    log.close()


@pytest.fixture(scope="module")
def page(ui_url: str):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: `make test-ui` installs Debian's package")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        pg.set_default_timeout(90_000)
        yield pg
        browser.close()


def _settled(page) -> None:
    """Wait until the page has no "Loading..." placeholders left (live data has arrived)."""
    page.wait_for_function("() => !document.body.innerText.includes('Loading')", timeout=90_000)
    page.wait_for_timeout(500)


def _shot(page, name: str) -> None:
    folder = Path(os.environ.get("CASBUSI_SCREENSHOT_DIR") or "/tmp/casbusi_ui_screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name))


def test_asset_graph_shows_the_assets_and_no_pop_up(page, ui_url: str) -> None:
    page.goto(ui_url + "/locations/casbusi_assets/asset-groups/ingest", wait_until="networkidle")
    page.get_by_text("dicom_catalog").first.wait_for()
    _settled(page)
    body = page.inner_text("body")
    for name in ("dicom_catalog", "inbox_zip", "image_table", "ocr_table"):
        assert name in body
    # dagster.yaml turns the first-visit "join the community" dialog off
    assert "Join the Dagster community" not in body
    assert "2 partitions" in body  # the catalog's node shows both batches
    _shot(page, "ui_asset_graph.png")


def test_partitions_page_lists_both_batches(page, ui_url: str) -> None:
    page.goto(ui_url + "/assets/image_table?view=partitions", wait_until="networkidle")
    page.get_by_text("batch_002").first.wait_for()
    _settled(page)
    body = page.inner_text("body")
    assert "batch_001" in body and "batch_002" in body
    assert "Materialized (2)" in body
    _shot(page, "ui_partitions.png")


def test_check_result_names_its_batch(page, ui_url: str) -> None:
    page.goto(
        ui_url + "/assets/dicom_catalog?view=checks&checkDetail=no_identifying_header_fields",
        wait_until="networkidle",
    )
    page.get_by_text("Evaluation result").first.wait_for()
    _settled(page)
    body = page.inner_text("body")
    assert "no_identifying_header_fields" in body and "quarantine_share" in body
    assert "Passed" in body
    # the latest result is a batch's own (partitioned check), not a result with no partition
    assert re.search(r"\nPartition\n(batch_001|batch_002)\n", body), body[-600:]
    _shot(page, "ui_check_result.png")
