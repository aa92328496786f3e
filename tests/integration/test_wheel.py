"""The wheel stands on its own: built, installed into a fresh environment, run far from the checkout.

The module builds the wheel (``uv build --wheel``), makes a fresh virtual environment with the
locked runtime dependencies only (``uv sync --no-dev --no-install-project`` into another
directory: links from uv's cache, seconds, bytecode compiled as the README advises), installs the
wheel with ``--no-deps``, and runs each verb with ``tweetpipe`` of that environment, from a
temporary directory outside the checkout and without ``PYTHONPATH``, so only the wheel's files can
be found. It takes a few minutes: the demo runs the DAG once and the local Airflow runs it once.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from etl.tools.airflow_local import free_port, stop_local_airflow
from etl.tools.emulator import start_emulator
from tests.conftest import ROOT
from tests.pages import body, ids, page, tweet

if TYPE_CHECKING:
    from collections.abc import Iterator

TOKEN = "wheel-test-token-7d41"
BUNDLED = (
    "contracts",
    "expectations",
    "dags/tweetpipe_dag.py",
    "dags/tweetpipe_curated_summary.py",
    "pipeline.yaml",
)
# Variables that could make the checkout importable or point uv elsewhere.
_DROPPED_ENV = ("PYTHONPATH", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONHOME")


@dataclass(frozen=True)
class Installed:
    """A fresh environment with the wheel installed, and a working directory far from the repo."""

    wheel: Path
    venv: Path
    site_packages: Path
    work: Path
    env: dict[str, str]

    def run(
        self, *args: str, timeout: float = 180, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``tweetpipe ARGS`` of the fresh environment, in the working directory."""
        return subprocess.run(
            [str(self.venv / "bin" / "tweetpipe"), *args],
            cwd=self.work,
            env={**self.env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _uv() -> list[str]:
    # `uv run` names itself in UV; otherwise the uv on PATH.
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        pytest.fail("uv not found (UV unset and no uv on PATH): `make env` installs it")
    return [uv]


def _checked(argv: list[str], env: dict[str, str], timeout: float) -> None:
    proc = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    dist, venv = base / "dist", base / "venv"
    _checked([*_uv(), "build", "--wheel", "--out-dir", str(dist), "--quiet"], env, 300)
    (wheel,) = dist.glob("tweetpipe-*.whl")
    _checked(
        [*_uv(), "sync", "--frozen", "--no-dev", "--no-install-project", "--compile-bytecode"]
        + ["--quiet"],
        {**env, "UV_PROJECT_ENVIRONMENT": str(venv)},
        600,
    )
    _checked(
        [*_uv(), "pip", "install", "--no-deps", "--compile-bytecode", "--quiet"]
        + ["--python", str(venv / "bin" / "python"), str(wheel)],
        env,
        300,
    )
    (site_packages,) = venv.glob("lib/python3*/site-packages")
    work = base / "work"
    work.mkdir()
    assert not work.resolve().is_relative_to(ROOT)
    child_env = {**env, "PATH": os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])}
    return Installed(wheel, venv, site_packages.resolve(), work, child_env)


def test_the_wheel_carries_the_bundled_files(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for source in BUNDLED:
        files = [p for p in (ROOT / source).rglob("*") if p.is_file()] or [ROOT / source]
        for path in files:
            bundled = f"etl/_bundled/{path.relative_to(ROOT).as_posix()}"
            assert bundled in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "contracts/", "dags/"))]
    assert "etl/docs_assets.lock.json" in names  # the Data Docs page assets' pins


def test_etl_comes_from_the_wheel_and_finds_its_bundle(installed: Installed) -> None:
    proc = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "import etl; print(etl.__file__)"],
        cwd=installed.work,
        env=installed.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(proc.stdout.strip()).resolve() == installed.site_packages / "etl" / "__init__.py"

    proc = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-m", "etl.resources"],
        cwd=installed.work,
        env=installed.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    where = dict(line.split("\t") for line in proc.stdout.splitlines())
    bundle = installed.site_packages / "etl" / "_bundled"
    assert where == {
        "mode": "installed",
        "contracts": str(bundle / "contracts"),
        "expectations": str(bundle / "expectations"),
        "dags": str(bundle / "dags"),
        "dag_file": str(bundle / "dags" / "tweetpipe_dag.py"),
        "consumer_dag_file": str(bundle / "dags" / "tweetpipe_curated_summary.py"),
        "config": str(bundle / "pipeline.yaml"),
    }


def test_contracts_lint_and_expectations_check_use_the_bundle(installed: Installed) -> None:
    bundle = installed.site_packages / "etl" / "_bundled"

    lint = installed.run("contracts", "lint")
    check = installed.run("expectations", "sync", "--check")
    rewrite = installed.run("expectations", "sync")

    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert lint.stdout.strip() == f"2 contracts clean in {bundle / 'contracts'}"
    assert check.returncode == 0, check.stdout + check.stderr
    assert rewrite.returncode == 2
    assert "belong to the installed wheel" in rewrite.stderr
    assert "Traceback" not in rewrite.stderr


def test_extract_then_transform(installed: Installed) -> None:
    server = start_emulator(token=TOKEN)
    try:
        extract = installed.run(
            "extract",
            "--account",
            "ada_builds",
            "--query",
            "python",
            "--store",
            "store",
            "--start",
            "2023-03-14T00:00:00Z",
            "--end",
            "2023-03-15T00:00:00Z",
            extra={"X_API_BASE_URL": server.base_url, "X_BEARER_TOKEN": TOKEN},
        )
    finally:
        server.stop()
    assert extract.returncode == 0, extract.stdout + extract.stderr
    assert extract.stdout.count(" landed ") == 2
    pages = sorted((installed.work / "store" / "raw").rglob("page-*.json"))
    assert pages

    transform = installed.run("transform", "store/raw", "--out", "from-extract")

    assert transform.returncode == 0, transform.stdout + transform.stderr
    report = json.loads((installed.work / "from-extract" / "report.json").read_text())
    assert report["passed"] and report["curated"] > 0 and report["pages"] == len(pages)


def test_transform_of_generated_pages(installed: Installed) -> None:
    raw = installed.work / "generated"
    raw.mkdir()
    (raw / "page-00001.json").write_bytes(body(page([tweet(t) for t in ids(0, 5)])))

    proc = installed.run("transform", "generated", "--out", "out")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    with (installed.work / "out" / "tweets.csv").open(encoding="utf-8", newline="") as fh:
        assert sorted(row["tweet_id"] for row in csv.DictReader(fh)) == sorted(ids(0, 5))


def test_demo_runs_the_bundled_dag(installed: Installed) -> None:
    proc = installed.run("demo", "--dir", "demo", timeout=600)

    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.startswith("tweetpipe demo: DAG run SUCCESS")
    assert "published 4" in proc.stdout
    assert list((installed.work / "demo" / "store" / "curated").rglob("tweets.csv"))
    # The DAG's build_docs published the site from the wheel, with the pinned page assets and
    # the contract pages; a CLI build after it has nothing left to render.
    docs = installed.work / "demo" / "store" / "docs"
    assert list(docs.glob("static/vendor/jquery@*/dist/jquery.min.js"))
    assert (docs / "contracts" / "tweets_curated.html").is_file()
    again = installed.run("docs", "build", "--store", "demo/store")
    assert again.returncode == 0, again.stderr[-3000:]
    assert " 0 new page(s) of 8 validation(s); 0 file(s)" in again.stdout


class _Api:
    def __init__(self, url: str, password: str) -> None:
        resp = requests.post(
            f"{url}/auth/token", json={"username": "admin", "password": password}, timeout=15
        )
        assert resp.status_code == 201, resp.text[:300]
        self.url = f"{url}/api/v2"
        self.headers = {"Authorization": f"Bearer {resp.json()['access_token']}"}

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.request(
            method, self.url + path, json=body, headers=self.headers, timeout=30
        )
        assert resp.ok, f"{method} {path}: {resp.status_code} {resp.text[:300]}"
        return resp.json()


def _until(what: str, probe: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(3)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def local_airflow(installed: Installed) -> Iterator[tuple[subprocess.CompletedProcess[str], Path]]:
    directory = installed.work / "airflow-local"
    port = free_port()
    try:
        up = installed.run(
            "airflow", "up", "--dir", "airflow-local", "--port", str(port), "--triggered-only",
            timeout=400,
        )  # fmt: skip
        yield up, directory
    finally:
        down = installed.run("airflow", "down", "--dir", "airflow-local", timeout=120)
        leftovers = stop_local_airflow(directory, timeout=10)  # the net, should find nothing
        assert down.returncode == 0, down.stdout + down.stderr
        assert leftovers == []


def test_airflow_up_parses_and_runs_the_bundled_dag(
    installed: Installed, local_airflow: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    up, directory = local_airflow
    assert up.returncode == 0, up.stdout + up.stderr
    bundled_dags = installed.site_packages / "etl" / "_bundled" / "dags"
    assert f"  DAGs:      {bundled_dags}\n" in up.stdout
    url = next(w for w in up.stdout.split() if w.startswith("http://127.0.0.1:"))
    passwords = directory / "airflow-home" / "simple_auth_manager_passwords.json.generated"
    api = _Api(url, json.loads(passwords.read_text())["admin"])

    dag = _until("the DAG to be parsed", lambda: _dag(api), 180)
    assert Path(dag["fileloc"]).resolve() == bundled_dags / "tweetpipe_dag.py"
    assert dag["has_import_errors"] is False
    assert api.call("GET", "/importErrors")["total_entries"] == 0

    # One source through the whole DAG on the LocalExecutor: the task processes import etl from
    # the wheel and read the bundled contracts, suites and config.
    api.call("PATCH", "/dags/tweetpipe", {"is_paused": False})
    run = {
        "dag_run_id": "wheel",
        "logical_date": "2023-03-15T00:00:00Z",
        "conf": {"sources": ["account:ada_builds"]},
    }
    api.call("POST", "/dags/tweetpipe/dagRuns", run)
    state = _until("the run to finish", lambda: _finished(api, "wheel"), 420)
    assert state == "success"
    curated = directory / "store" / "curated" / "source=account-ada_builds"
    assert [p.name for p in curated.rglob("*.csv")] == ["tweets.csv"]


def _dag(api: _Api) -> dict[str, Any] | None:
    resp = requests.get(f"{api.url}/dags/tweetpipe", headers=api.headers, timeout=30)
    return resp.json() if resp.status_code == 200 else None


def _finished(api: _Api, run_id: str) -> str | None:
    state = str(api.call("GET", f"/dags/tweetpipe/dagRuns/{run_id}")["state"])
    return state if state in ("success", "failed") else None


def test_the_checkout_is_not_on_the_path(installed: Installed) -> None:
    # The test process itself runs from the checkout; the installed environment must not see it.
    proc = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "import sys; print('\\n'.join(sys.path))"],
        cwd=installed.work,
        env=installed.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    paths = [Path(p).resolve() for p in proc.stdout.splitlines() if p]
    assert installed.site_packages in paths
    assert [p for p in paths if p.is_relative_to(ROOT)] == []
