"""Shared integration fixtures: the X API v2 emulator and an S3 endpoint (moto), both on loopback.

Fixtures (all function-scoped unless noted; every server binds 127.0.0.1 on a free port):

``moto_server`` -> :class:`S3Endpoint`
    A fresh, empty bucket on one moto ``ThreadedMotoServer`` shared by the session. Sets
    ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (fake ``testing``
    credentials) and ``AWS_DEFAULT_REGION`` with ``monkeypatch``, so ``etl.storage.store.open_store(
    moto_server.store_url)`` and any boto3 client reach it. ``moto_server.client()`` gives a boto3
    S3 client for assertions.

``emulator_factory`` -> ``start(**kwargs) -> EmulatorServer``
    Starts emulators with any ``etl.tools.emulator.start_emulator`` arguments (``seed``, ``faults``,
    ``rate_limit``, ``rate_window``, ``clock``...); stops all of them at teardown.

``emulator`` -> ``EmulatorServer``
    One emulator with the default seed, no faults, no rate limit, accepting ``EMULATOR_TOKEN``.
    Sets ``X_API_BASE_URL`` and ``X_BEARER_TOKEN`` with ``monkeypatch`` so the CLI finds it.

``fake_clock`` -> :class:`FakeClock`
    Epoch seconds that move only when ``fake_clock.sleep`` is called; pass the same object as
    the emulator's ``clock`` and the extractor's ``clock``/``sleep`` to test waits without
    sleeping.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

EMULATOR_TOKEN = "integration-test-token-d41c8e2b"
"""Bearer token the ``emulator`` fixture accepts; tests assert it never lands anywhere."""

_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Endpoint:
    """A moto S3 endpoint with one bucket of the test's own.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``.
        bucket: the test's bucket (exists, empty at the start).
    """

    endpoint_url: str
    bucket: str

    @property
    def store_url(self) -> str:
        """``s3://<bucket>/tweetpipe``: a store URL for ``etl.storage.store.open_store``."""
        return f"s3://{self.bucket}/tweetpipe"

    def client(self) -> Any:
        """A boto3 S3 client for the endpoint (credentials from the fixture's environment)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")

    def objects(self) -> dict[str, bytes]:
        """Every object in the bucket, key -> body (for 'no secret anywhere' scans)."""
        client = self.client()
        found: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                body = client.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                found[obj["Key"]] = body
        return found


@pytest.fixture(scope="session")
def _moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    # werkzeug logs every S3 request at INFO: noise in every captured log of every test.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_server(_moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Endpoint:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in _AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", _moto_endpoint)
    endpoint = S3Endpoint(_moto_endpoint, f"tweetpipe-{uuid.uuid4().hex[:12]}")
    endpoint.client().create_bucket(Bucket=endpoint.bucket)
    return endpoint


class FakeClock:
    """Epoch seconds that advance only through :meth:`sleep`; thread-safe; records sleeps."""

    def __init__(self, start: float = 1_777_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        assert 0 <= seconds < 3600, f"unexpected sleep of {seconds} s"
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., Any]]:
    from etl.tools.emulator import start_emulator

    started: list[Any] = []

    def start(**kwargs: Any) -> Any:
        kwargs.setdefault("token", EMULATOR_TOKEN)
        kwargs.setdefault("port", 0)
        server = start_emulator(**kwargs)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def emulator(emulator_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    server = emulator_factory()
    monkeypatch.setenv("X_API_BASE_URL", server.base_url)
    monkeypatch.setenv("X_BEARER_TOKEN", EMULATOR_TOKEN)
    return server
