"""Fixtures for the end-to-end tests: a real local Airflow (started and stopped through the CLI,
as a user would), an authenticated REST client, and headless Chromium.

Every wait is bounded, and everything started here is stopped in a ``finally`` even when a test
fails: first by ``tweetpipe airflow down``, then, as a safety net, by process id from Python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from etl.tools.airflow_local import PID_FILE_NAME, free_port, stop_local_airflow

if TYPE_CHECKING:
    from collections.abc import Iterator


ROOT = Path(__file__).resolve().parents[2]
# With this set (to anything but 0), the UI tests also write the README's screenshots.
UPDATE_SCREENSHOTS_ENV = "TWEETPIPE_UPDATE_SCREENSHOTS"
README_SCREENSHOTS = ROOT / "tests" / "e2e" / "screenshots"
START_TIMEOUT = 240.0


def _tweetpipe() -> list[str]:
    return [sys.executable, "-m", "etl"]


@dataclass
class RunningAirflow:
    """What the ``airflow up`` command started, as the tests see it."""

    url: str
    directory: Path
    username: str
    password: str = field(repr=False)
    up_output: str
    startup_seconds: float

    @property
    def home(self) -> Path:
        return self.directory / "airflow-home"

    @property
    def store(self) -> Path:
        return self.directory / "store"

    @property
    def pid_file(self) -> Path:
        return self.directory / PID_FILE_NAME


class AirflowApi:
    """Airflow's public REST API (``/api/v2``) with a JWT from ``/auth/token``."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url
        resp = requests.post(
            f"{url}/auth/token", json={"username": username, "password": password}, timeout=15
        )
        assert resp.status_code == 201, f"login through /auth/token failed: {resp.status_code}"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.session.request(method, f"{self.url}/api/v2{path}", timeout=30, **kwargs)
        assert resp.ok, f"{method} {path}: {resp.status_code} {resp.text[:500]}"
        return resp.json()

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, json=body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("PATCH", path, json=body)

    def put(self, path: str) -> Any:
        return self._call("PUT", path)

    def delete(self, path: str) -> None:
        """Delete ``path``; one already gone (404) is fine."""
        resp = self.session.delete(f"{self.url}/api/v2{path}", timeout=30)
        assert resp.status_code in (204, 404), f"DELETE {path}: {resp.text[:300]}"


def wait_until(what: str, probe: Any, timeout: float, interval: float = 2.0) -> Any:
    """Call ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def airflow(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningAirflow]:
    """``tweetpipe airflow up`` on a free loopback port, torn down whatever happens.

    With ``--triggered-only`` (the scheduler creates no run by itself: only the runs a test
    triggers or backfills happen), unless the test module sets ``TRIGGERED_ONLY = False``: then
    the profile comes up as a user's does, the scheduler starts the DAG's run of the latest daily
    interval and creates the asset-triggered runs of the consumer DAG.
    """
    triggered_only = getattr(request.module, "TRIGGERED_ONLY", True)
    directory = tmp_path_factory.mktemp("local-airflow")
    port = free_port()
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [*_tweetpipe(), "airflow", "up", "--dir", str(directory), "--port", str(port)]
            + (["--triggered-only"] if triggered_only else []),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT + 60,
        )
        assert proc.returncode == 0, f"airflow up failed:\n{proc.stdout}\n{proc.stderr}"
        home = directory / "airflow-home"
        passwords = json.loads(
            (home / "simple_auth_manager_passwords.json.generated").read_text(encoding="utf-8")
        )
        print(f"\n[e2e] airflow up: healthy after {time.monotonic() - started:.0f} s")
        yield RunningAirflow(
            url=f"http://127.0.0.1:{port}",
            directory=directory,
            username="admin",
            password=passwords["admin"],
            up_output=proc.stdout + proc.stderr,
            startup_seconds=time.monotonic() - started,
        )
    finally:
        # Normally test_airflow_down_stops_everything has already stopped it; this is the net.
        subprocess.run(
            [*_tweetpipe(), "airflow", "down", "--dir", str(directory)],
            cwd=ROOT,
            capture_output=True,
            timeout=120,
        )
        stop_local_airflow(directory, timeout=10)


@pytest.fixture(scope="module")
def api(airflow: RunningAirflow) -> AirflowApi:
    return AirflowApi(airflow.url, airflow.username, airflow.password)


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def save_screenshot(png: bytes, name: str, screenshot_dir: Path) -> Path:
    """Write a screenshot to the test's directory, and to the README's folder when asked to."""
    path = screenshot_dir / name
    path.write_bytes(png)
    if os.environ.get(UPDATE_SCREENSHOTS_ENV, "0") not in ("", "0"):
        README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SCREENSHOTS / name)
    return path
