"""Two batches through the Celery executor with the Dagster instance on PostgreSQL and the
warehouse and files on s3://.

Everything runs on loopback and is stopped at the end: a throwaway PostgreSQL cluster, a Redis
broker, an S3-protocol server (moto), two Celery worker processes (listening on the default and
the `gpu` queue). The runs, partitions and materialisations are then read back from Postgres, the
Parquet and PNG objects from the bucket, and the tables through `casbusi sql`; `casbusi
delete-batch` removes a batch's objects. Run by `make test-distributed` (which `make test`
calls); it needs the Debian packages postgresql and redis-server, which the target installs when
missing, and moto[server] and s3fs from the test extra.

Only configuration changes between this and a local home: CASBUSI_DATA_URL=s3://bucket/prefix and
the standard AWS variables (endpoint, keys) in the environment of every process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from casbusi_assets_tests.conftest import free_port

pytestmark = pytest.mark.distributed

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PGBIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=None, key=lambda p: p.parent.name)
SELECT = "dicom_catalog,image_table,video_table,ocr_table"
BUCKET = "casbusi-lake"
DATA_URL = f"s3://{BUCKET}/casbusi"
SECRET = "casbusi-test-secret-0f3a9c"  # must never show up in logs or the event log


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if PGBIN is None or not (PGBIN / "initdb").exists():
        pytest.fail("PostgreSQL is not installed: `make test-distributed` installs it")
    # not under pytest's tmp folder: it is mode 700, and the server runs as the postgres user
    base = Path(tempfile.mkdtemp(prefix="casbusi_pg_", dir="/tmp"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(base, "postgres", "postgres")
    data, port, password = base / "data", free_port(), "dagster-test-only"
    (base / "pw").write_text(password + "\n")
    if as_user:
        shutil.chown(base / "pw", "postgres")
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True)  # noqa: E731
    run(
        str(PGBIN / "initdb"),
        "-D",
        str(data),
        "-U",
        "dagster",
        f"--pwfile={base / 'pw'}",
        "-A",
        "scram-sha-256",
        "--auth-local=trust",
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
        "--no-sync",
    )
    run(
        str(PGBIN / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(base / "server.log"),
        "-w",
        "-t",
        "30",
        "-o",
        f"-k {base} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
        "start",
    )
    env = {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(port),
        "PGUSER": "dagster",
        "PGPASSWORD": password,
        "PGDATABASE": "dagster",
    }
    try:
        subprocess.run(
            ["psql", "-d", "postgres", "-c", "CREATE DATABASE dagster"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        yield env
    finally:
        run(str(PGBIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: `make test-distributed` installs it")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=tmp_path_factory.mktemp("redis"),
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server on a free loopback port, with a bucket; yields the env every process
    needs (the standard AWS variables: nothing project-specific carries credentials)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "casbusi-test-key",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}",
    }
    try:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        s3fs.S3FileSystem().mkdir(BUCKET)
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def _asset_name(stored: str) -> str:
    """event_logs.asset_key holds the key as JSON: a list of path parts, or {"path": [...]}."""
    value = json.loads(stored)
    return (value["path"] if isinstance(value, dict) else value)[-1]


def _psql(env: dict[str, str], sql: str) -> list[list[str]]:
    out = subprocess.run(
        ["psql", "-At", "-F", "\t", "-c", sql],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def test_two_batches_on_celery_workers_with_the_instance_on_postgres_and_data_on_s3(
    postgres: dict[str, str], redis_url: str, s3_server: dict[str, str], tmp_path: Path
) -> None:
    from casbusi_assets.synthetic import generate_batches

    home = tmp_path / "home"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copyfile(ROOT / "deploy/postgres/dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        **os.environ,
        **postgres,
        **s3_server,
        "CASBUSI_DATA_URL": DATA_URL,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",  # dagster-celery runs `celery` from PATH
        "DAGSTER_HOME": str(dagster_home),
        "CASBUSI_HOME": str(home),
        "CASBUSI_EXECUTOR": "celery",
        "CASBUSI_CELERY_BROKER": f"{redis_url}/0",
        "CASBUSI_CELERY_BACKEND": f"{redis_url}/1",
        "CASBUSI_WORKERS": "1",
    }
    batches = generate_batches(tmp_path / "zips", batches=2, patients=2, seed=21)
    logs = [(tmp_path / f"worker{i}.log").open("w") for i in (1, 2)]
    workers = [
        subprocess.Popen(
            [
                str(BIN / "dagster-celery"),
                "worker",
                "start",
                "-n",
                f"casbusi-w{i}@%h",
                "-y",
                str(ROOT / "deploy/celery/celery.yaml"),
                "-q",
                "dagster,gpu",
                "-A",
                "dagster_celery.app",
                "--",
                "--concurrency",
                "1",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for i, log in zip((1, 2), logs, strict=True)
    ]
    try:
        for b in batches:
            # register the zip and its partition, as the inbox sensor does
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys, dagster as dg\nfrom pathlib import Path\n"
                    "from casbusi_assets.ingest.sources import register_zip\n"
                    "from casbusi_assets.storage.home import layout\n"
                    "register_zip(layout().create(), sys.argv[1], Path(sys.argv[2]))\n"
                    "with dg.DagsterInstance.get() as i: i.add_dynamic_partitions('batch', [sys.argv[1]])\n",
                    b.batch_id,
                    str(b.zip_path),
                ],
                env=env,
                check=True,
                capture_output=True,
            )
            done = subprocess.run(
                [
                    str(BIN / "dagster"),
                    "asset",
                    "materialize",
                    "-m",
                    "casbusi_assets.definitions",
                    "--select",
                    SELECT,
                    "--partition",
                    b.batch_id,
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    finally:
        for w in workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(w.pid, 15)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, 9)
        for log in logs:
            log.close()

    # The runs, partitions and materialisations live in Postgres.
    runs = _psql(postgres, "SELECT status, partition FROM runs ORDER BY partition")
    assert runs == [["SUCCESS", "batch_001"], ["SUCCESS", "batch_002"]]
    parts = _psql(postgres, "SELECT partition FROM dynamic_partitions ORDER BY 1")
    assert parts == [["batch_001"], ["batch_002"]]
    mats = _psql(
        postgres,
        "SELECT asset_key, partition FROM event_logs "
        "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY 1, 2",
    )
    keys = {(_asset_name(k), p) for k, p in mats}
    assert keys == {(a, b.batch_id) for a in SELECT.split(",") for b in batches}
    # The steps ran in the Celery workers; OCR went through the gpu queue.
    worker_logs = [(tmp_path / f"worker{i}.log").read_text() for i in (1, 2)]
    assert sum(log.count("succeeded in") for log in worker_logs) >= 2 * len(SELECT.split(","))
    events = " ".join(m for (m,) in _psql(postgres, "SELECT event FROM event_logs"))
    assert '\\"gpu\\"' in events or "queue gpu" in events or "'gpu'" in events
    # And the tables answer SQL.
    out = subprocess.run(
        [
            str(BIN / "casbusi"),
            "--home",
            str(home),
            "sql",
            "--csv",
            "SELECT batch_id, count(*) AS n FROM image_table GROUP BY 1 ORDER BY 1",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert out[0] == "batch_id,n"
    assert [line.split(",")[0] for line in out[1:]] == ["batch_001", "batch_002"]
    assert all(int(line.split(",")[1]) > 0 for line in out[1:])
    n_images = {b: int(n) for b, n in (line.split(",") for line in out[1:])}

    # The tables and files are objects in the bucket; nothing of them is in the local home.
    import s3fs

    fs = s3fs.S3FileSystem()
    keys = set(fs.find(f"{BUCKET}/casbusi"))
    for table in SELECT.split(","):
        for b in batches:
            assert f"{BUCKET}/casbusi/warehouse/{table}/batch_id={b.batch_id}/data.parquet" in keys
    assert not (home / "warehouse").exists() and not (home / "files").exists()
    paths = _sql(
        env,
        home,
        "SELECT batch_id, image_path FROM image_table WHERE status = 'ok' ORDER BY 1, 2",
    )
    assert {b for b, _ in paths} == {"batch_001", "batch_002"}
    for batch, url in paths:
        assert url.startswith(f"{DATA_URL}/files/image_table/{batch}/") and url.endswith(".png")
        assert url.removeprefix("s3://") in keys
    for b in batches:
        pngs = [
            k for k in keys if k.startswith(f"{BUCKET}/casbusi/files/image_table/{b.batch_id}/")
        ]
        assert len(pngs) == n_images[b.batch_id] == sum(1 for x, _ in paths if x == b.batch_id)
        assert all(k.endswith(".png") for k in pngs)
    frames = _sql(env, home, "SELECT frames_dir FROM video_table WHERE status = 'ok'")
    assert frames, "the generated batches hold clips"
    for (folder,) in frames:
        assert folder.startswith(f"{DATA_URL}/files/video_table/")
        assert any(k.startswith(folder.removeprefix("s3://") + "/frame_") for k in keys)
    # A stored PNG reads back through the same helper every stage uses.
    from casbusi_assets.storage.files import read_image

    assert read_image(paths[0][1]) is not None
    # The credentials went nowhere: not into the event log, not into a worker's log.
    assert SECRET not in events and all(SECRET not in log for log in worker_logs)

    # delete-batch removes the batch's objects too.
    subprocess.run(
        [str(BIN / "casbusi"), "--home", str(home), "delete-batch", "batch_002"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    left = set(fs.find(f"{BUCKET}/casbusi"))
    assert not [k for k in left if "batch_002" in k]
    assert {k for k in left if "batch_001" in k} == {k for k in keys if "batch_001" in k}
    assert [b for b, _ in _sql(env, home, "SELECT DISTINCT batch_id, 1 FROM image_table")] == [
        "batch_001"
    ]


def _sql(env: dict[str, str], home: Path, query: str) -> list[list[str]]:
    """Rows of `casbusi sql --csv`, header dropped."""
    out = subprocess.run(
        [str(BIN / "casbusi"), "--home", str(home), "sql", "--csv", query],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return [line.split(",") for line in out[1:]]
