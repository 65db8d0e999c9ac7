"""An S3-protocol server (moto) on loopback for the object-storage tests, and a fresh bucket."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (a free port), stopped at the end of the session."""
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is in the test extra")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_url(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """s3://<new bucket>/prefix, with the standard AWS variables pointing s3fs at moto."""
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # s3fs caches instances, which hold the endpoint they were made with
    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"casbusi-{uuid.uuid4().hex[:10]}"
    s3fs.S3FileSystem().mkdir(bucket)
    yield f"s3://{bucket}/lake"
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def memory_url() -> Iterator[str]:
    """memory://<fresh root>: fsspec's in-process store, the same code path without a server."""
    import fsspec

    root = f"memory://casbusi-{uuid.uuid4().hex[:10]}/lake"
    yield root
    fs = fsspec.filesystem("memory")
    key = root.split("://", 1)[1].split("/", 1)[0]
    if fs.exists(f"/{key}"):
        fs.rm(f"/{key}", recursive=True)


@pytest.fixture(params=["s3", "memory"])
def remote_url(request: pytest.FixtureRequest) -> str:
    """Each object-storage test runs on moto's s3:// and on memory://."""
    return request.getfixturevalue(f"{request.param}_url")
