"""The distributed profile for real: CeleryExecutor, Redis, PostgreSQL, two workers, an S3 store.

One ``tweetpipe airflow up --executor celery --workers 2`` for the module (its own PostgreSQL
cluster and password-protected Redis, moto's S3 server as the store, the emulators; all on
127.0.0.1). Through the REST API:

- a green run of three sources succeeds, its tasks ran on both workers (the task instances'
  ``hostname``), and its curated objects are byte-identical to the same interval under
  ``dag.test()`` (run at the same time in a process of its own, against the same emulator);
- a breach run fails exactly as under ``dag.test()``: the same task instances, the same states;
- a worker is killed (SIGKILL, its whole process tree, as when its host dies) in the middle of an
  ``extract`` made slow by an emulator with a delay: the task is failed by the heartbeat timeout,
  retried on the other worker, and the run publishes exactly what the green run published;
- no password (PostgreSQL, Redis) is ever in a process's arguments or in a file outside
  ``secrets/``, and ``tweetpipe airflow down`` leaves no process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from etl.tools.airflow_local import PID_FILE_NAME, free_port, stop_local_airflow
from tests.e2e.conftest import ROOT, AirflowApi, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

DAG_ID = "tweetpipe"
SOURCES = ["account:ada_builds", "account:tomas_ng", "account:quietriver"]
BUCKET = "tweetpipe-local"
# In the emulator's corpus, 2023-03-16 has 4 posts of ada_builds (all of which drift=breach breaks),
# 3 of tomas_ng and 2 of quietriver (none broken): the breach run fails one source, publishes two.
LOGICAL_DATE = "2023-03-17T00:00:00+00:00"
INTERVAL_START = "2023-03-16T00:00:00+00:00"
# A logical date is unique per DAG; the runs differ by a second and share the data interval, the
# day before LOGICAL_DATE (as dag.test() gives a manual run), which names the partitions.
RUN_SECONDS = {"celery-green": 0, "celery-breach": 1, "celery-killed": 2}
RUN_TIMEOUT = 420.0
START_TIMEOUT = 300.0
TERMINAL = {"success", "failed"}
WORKERS = ["worker-1", "worker-2"]
# The killed run's extracts wait this long for each API response: a window to kill the worker in.
SLOW_SECONDS = 4.0


@dataclass
class CeleryProfile:
    """What ``airflow up --executor celery`` started, as the tests see it."""

    url: str
    directory: Path
    password: str = field(repr=False)
    up_output: str
    body: dict[str, Any]

    @property
    def pid_file(self) -> Path:
        return self.directory / PID_FILE_NAME

    def secrets(self) -> dict[str, str]:
        """The generated passwords, by file name."""
        names = ("postgres.password", "redis.password")
        return {n: (self.directory / "secrets" / n).read_text().strip() for n in names}

    def s3(self) -> Any:
        import boto3

        secret = (self.directory / "secrets" / "s3.secret").read_text().strip()
        return boto3.client(
            "s3",
            endpoint_url=self.body["s3_endpoint"],
            region_name="us-east-1",
            aws_access_key_id="tweetpipe-local",
            aws_secret_access_key=secret,
        )

    def curated(self, prefix: str) -> dict[str, bytes]:
        """Every object under ``<prefix>/curated/``, by key relative to the store's prefix."""
        client = self.s3()
        found: dict[str, bytes] = {}
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=f"{prefix}/curated/"
        )
        for page in pages:
            for obj in page.get("Contents", []):
                body = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
                found[obj["Key"].removeprefix(f"{prefix}/")] = body
        return found


def _tweetpipe(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "etl", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def profile() -> Iterator[CeleryProfile]:
    """``tweetpipe airflow up --executor celery --workers 2``, torn down whatever happens."""
    # Not under pytest's 0700 temporary root: PostgreSQL runs as the postgres user (we are root in
    # CI) and must be able to reach its cluster's directory.
    base = Path(tempfile.mkdtemp(prefix="tweetpipe-celery-"))
    base.chmod(0o755)
    directory = base / "airflow"
    port = free_port()
    started = time.monotonic()
    try:
        proc = _tweetpipe(
            *("airflow", "up", "--executor", "celery", "--workers", "2"),
            *("--dir", str(directory), "--port", str(port), "--triggered-only"),
            timeout=START_TIMEOUT + 60,
        )
        assert proc.returncode == 0, f"airflow up failed:\n{proc.stdout}\n{proc.stderr}"
        print(f"\n[e2e celery] airflow up: healthy after {time.monotonic() - started:.0f} s")
        home = directory / "airflow-home"
        passwords = json.loads(
            (home / "simple_auth_manager_passwords.json.generated").read_text(encoding="utf-8")
        )
        yield CeleryProfile(
            url=f"http://127.0.0.1:{port}",
            directory=directory,
            password=passwords["admin"],
            up_output=proc.stdout + proc.stderr,
            body=json.loads((directory / PID_FILE_NAME).read_text(encoding="utf-8")),
        )
    finally:
        _tweetpipe("airflow", "down", "--dir", str(directory), timeout=120)
        stop_local_airflow(directory, timeout=10)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def api(profile: CeleryProfile) -> AirflowApi:
    return AirflowApi(profile.url, "admin", profile.password)


def _leaked_into_arguments(secrets: dict[str, str]) -> list[str]:
    """Processes whose command line holds one of the passwords (there must be none)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        found += [f"{proc.info['pid']}: {name}" for name, s in secrets.items() if s in line]
    return found


def _task_instances(api: AirflowApi, run_id: str) -> list[dict[str, Any]]:
    doc = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", limit=100)
    return list(doc["task_instances"])


def _states(tis: list[dict[str, Any]]) -> dict[tuple[str, int], str]:
    return {(ti["task_id"], ti["map_index"]): ti["state"] for ti in tis}


def _trigger(api: AirflowApi, run_id: str, conf: dict[str, Any]) -> None:
    api.post(
        f"/dags/{DAG_ID}/dagRuns",
        {
            "dag_run_id": run_id,
            "logical_date": LOGICAL_DATE.replace(":00+", f":{RUN_SECONDS[run_id]:02d}+"),
            "data_interval_start": INTERVAL_START,
            "data_interval_end": LOGICAL_DATE,
            "conf": conf,
        },
    )


def _wait_finished(
    api: AirflowApi, run_ids: list[str], secrets: dict[str, str], leaks: list[str]
) -> dict[str, str]:
    def finished() -> dict[str, str] | None:
        # While tasks run, no process (task processes included) shows a password.
        leaks.extend(_leaked_into_arguments(secrets))
        states = {r: api.get(f"/dags/{DAG_ID}/dagRuns/{r}")["state"] for r in run_ids}
        return states if set(states.values()) <= TERMINAL else None

    result: dict[str, str] = wait_until("the runs to finish", finished, RUN_TIMEOUT, interval=3)
    return result


@pytest.fixture(scope="module")
def runs(
    profile: CeleryProfile, api: AirflowApi, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A green and a breach run on Celery, and the same two under ``dag.test()`` meanwhile."""
    emulators = profile.body["emulators"]
    spec = {
        "green": {"conf": {"sources": SOURCES}, "x_url": emulators["x_api_default"]},
        "breach": {
            "conf": {"sources": SOURCES, "x_conn_id": "x_api_drift"},
            "x_url": emulators["x_api_drift"],
        },
    }
    for run in spec.values():
        run["logical_date"] = LOGICAL_DATE
    reference = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "e2e" / "dag_test_reference.py")]
        + [str(tmp_path_factory.mktemp("dag-test")), json.dumps(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            "the DAG to be parsed",
            lambda: api.get("/dags", dag_id_pattern=DAG_ID)["total_entries"],
            timeout=120,
        )
        assert api.get("/importErrors")["total_entries"] == 0
        api.patch(f"/dags/{DAG_ID}", {"is_paused": False})
        started = time.monotonic()
        _trigger(api, "celery-green", {"sources": SOURCES, "store": f"s3://{BUCKET}/green"})
        _trigger(
            api,
            "celery-breach",
            {"sources": SOURCES, "store": f"s3://{BUCKET}/breach", "x_conn_id": "x_api_drift"},
        )
        leaks: list[str] = []
        states = _wait_finished(api, ["celery-green", "celery-breach"], profile.secrets(), leaks)
        print(f"\n[e2e celery] green and breach finished after {time.monotonic() - started:.0f} s")
        out, err = reference.communicate(timeout=RUN_TIMEOUT)
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.communicate()
    assert reference.returncode == 0, err[-3000:]
    return {
        "states": states,
        "green": _task_instances(api, "celery-green"),
        "breach": _task_instances(api, "celery-breach"),
        "reference": json.loads(out.strip().splitlines()[-1]),
        "leaks": leaks,
    }


def test_up_reports_the_workers_and_no_password(profile: CeleryProfile) -> None:
    out = profile.up_output

    assert "Airflow (CeleryExecutor) is up" in out
    assert "workers:   worker-1, worker-2" in out
    assert f"s3://{BUCKET}/store" in out
    for secret in profile.secrets().values():
        assert secret not in out


def test_passwords_live_in_0600_files_and_in_no_process_arguments(
    profile: CeleryProfile,
) -> None:
    secrets_dir = profile.directory / "secrets"

    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    files = list(secrets_dir.iterdir())
    assert {p.name for p in files} >= {"postgres.password", "redis.password", "broker_url"}
    assert {p.stat().st_mode & 0o777 for p in files} == {0o600}
    assert (profile.directory / "redis" / "redis.conf").stat().st_mode & 0o777 == 0o600
    assert _leaked_into_arguments(profile.secrets()) == []


def test_every_service_listens_on_loopback_only(profile: CeleryProfile) -> None:
    listening = []
    for proc in _our_processes(profile):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            listening += [c.laddr for c in proc.net_connections("inet") if c.status == "LISTEN"]

    # api-server, PostgreSQL, Redis, moto and the two emulators at least.
    assert len(listening) >= 6
    assert {addr.ip for addr in listening} == {"127.0.0.1"}


def test_each_worker_runs_in_a_directory_of_its_own(profile: CeleryProfile) -> None:
    # Celery rewrites its process title over /proc/PID/environ, so the environment each worker
    # gets (hostname, TMPDIR) is checked in tests/integration/test_airflow_celery_profile.py; the
    # task instances' hostnames are checked after the runs.
    entries = {e["name"]: e for e in _read_pids(profile)["processes"]}
    cwds = {name: Path(psutil.Process(entries[name]["pid"]).cwd()) for name in WORKERS}

    for name, cwd in cwds.items():
        assert cwd == profile.directory / "workers" / name
        assert (cwd / "tmp").is_dir()


def test_redis_refuses_a_client_without_the_password(profile: CeleryProfile) -> None:
    import redis

    port = int(profile.up_output.split("Redis on 127.0.0.1:")[1].split()[0])
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    with pytest.raises(redis.AuthenticationError):
        client.ping()
    secret = profile.secrets()["redis.password"]
    assert redis.Redis(host="127.0.0.1", port=port, password=secret, socket_timeout=5).ping()


def test_green_run_spreads_over_both_workers_and_matches_dag_test(runs: dict[str, Any]) -> None:
    assert runs["states"]["celery-green"] == "success", _states(runs["green"])
    ran = [ti for ti in runs["green"] if ti["state"] == "success"]
    hosts = {ti["hostname"] for ti in ran}

    assert hosts == set(WORKERS), [(t["task_id"], t["map_index"], t["hostname"]) for t in ran]
    reference = runs["reference"]["green"]
    assert reference["state"] == "success"
    assert _states(runs["green"]) == {(t, i): s for t, i, s in reference["tasks"]}


def test_green_curated_objects_are_byte_identical_to_dag_test(
    profile: CeleryProfile, runs: dict[str, Any]
) -> None:
    curated = profile.curated("green")
    expected = {k: bytes.fromhex(v) for k, v in runs["reference"]["green"]["curated"].items()}

    assert len(curated) == len(SOURCES)
    assert sorted(curated) == sorted(expected)
    for key, body in expected.items():
        assert curated[key] == body, key


def test_breach_run_fails_exactly_as_under_dag_test(runs: dict[str, Any]) -> None:
    states = _states(runs["breach"])
    reference = runs["reference"]["breach"]

    assert runs["states"]["celery-breach"] == "failed"
    assert reference["state"] == "failed"
    assert states == {(t, i): s for t, i, s in reference["tasks"]}
    # ada_builds (map index 0) fails its curated gate and does not publish; the others do.
    gates = [states[("per_source.validate_curated", i)] for i in range(len(SOURCES))]
    assert gates == ["failed", "success", "success"], states
    publish = [states[("per_source.publish", i)] for i in range(len(SOURCES))]
    assert publish == ["upstream_failed", "success", "success"], states
    assert states[("all_sources_published", -1)] == "failed"
    # A breach is never retried: every failed gate failed on its first try.
    tries = {ti["try_number"] for ti in runs["breach"] if ti["state"] == "failed"}
    assert tries == {1}


def test_no_password_in_process_arguments_during_the_runs(runs: dict[str, Any]) -> None:
    assert runs["leaks"] == []


def _kill_tree(root: psutil.Process) -> list[int]:
    """SIGKILL a process and every descendant at once, as a host that dies: stop all, then kill."""
    procs = [root, *root.children(recursive=True)]
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGSTOP)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)
    return [p.pid for p in procs]


def _worker_process(profile: CeleryProfile, name: str) -> psutil.Process:
    for entry in _read_pids(profile)["processes"]:
        if entry["name"] == name:
            return psutil.Process(entry["pid"])
    raise AssertionError(f"no {name} in the pid file")


def _read_pids(profile: CeleryProfile) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(profile.pid_file.read_text(encoding="utf-8"))
    return body


def test_a_killed_worker_s_task_is_retried_on_the_other_and_nothing_is_lost(
    profile: CeleryProfile, api: AirflowApi, runs: dict[str, Any]
) -> None:
    from etl.tools.emulator import DEMO_TOKEN, Faults, start_emulator

    if runs["states"]["celery-green"] != "success":
        pytest.fail("the green run failed; see test_green_run_spreads_over_both_workers")
    slow = start_emulator(port=0, token=str(DEMO_TOKEN), faults=Faults(slow_seconds=SLOW_SECONDS))
    try:
        host, port = slow.base_url.removeprefix("http://").split(":")
        api.post(
            "/connections",
            {
                "connection_id": "x_api_slow",
                "conn_type": "http",
                "host": host,
                "port": int(port),
                "schema": "http",
                "password": str(DEMO_TOKEN),
            },
        )
        # One source: the run is only as long as the test needs.
        conf = {"sources": SOURCES[:1], "store": f"s3://{BUCKET}/killed", "x_conn_id": "x_api_slow"}
        _trigger(api, "celery-killed", conf)

        def extract_running() -> dict[str, Any] | None:
            for ti in _task_instances(api, "celery-killed"):
                if ti["task_id"] == "per_source.extract" and ti["map_index"] == 0:
                    if ti["state"] == "running" and ti["hostname"] in WORKERS:
                        return ti
            return None

        victim = wait_until("extract[0] to run", extract_running, timeout=180, interval=0.5)
        started = time.monotonic()
        killed = _kill_tree(_worker_process(profile, victim["hostname"]))
        print(f"\n[e2e celery] killed {victim['hostname']} ({len(killed)} processes)")
        state = _wait_finished(api, ["celery-killed"], profile.secrets(), [])["celery-killed"]
        print(f"[e2e celery] the run finished {time.monotonic() - started:.0f} s after the kill")
    finally:
        slow.stop()

    tis = {(t["task_id"], t["map_index"]): t for t in _task_instances(api, "celery-killed")}
    assert state == "success", {k: t["state"] for k, t in tis.items()}
    retried = tis[("per_source.extract", 0)]
    survivor = next(w for w in WORKERS if w != victim["hostname"])
    assert retried["try_number"] >= 2
    assert retried["hostname"] == survivor
    tries = api.get(
        f"/dags/{DAG_ID}/dagRuns/celery-killed/taskInstances/per_source.extract/0/tries"
    )
    first = next(t for t in tries["task_instances"] if t["try_number"] == 1)
    assert first["hostname"] == victim["hostname"]
    assert first["state"] in ("failed", "up_for_retry"), first
    # Nothing lost, nothing duplicated: exactly the green run's (= dag.test()'s) curated bytes.
    green = {k: v for k, v in profile.curated("green").items() if "account-ada_builds" in k}
    assert len(green) == 1
    assert profile.curated("killed") == green


def test_no_password_in_any_file_outside_secrets(profile: CeleryProfile) -> None:
    secrets = [s.encode() for s in profile.secrets().values()]
    skip = {profile.directory / "secrets", profile.directory / "postgres"}
    files = [
        p
        for p in profile.directory.rglob("*")
        if p.is_file() and not any(d in p.parents for d in skip) and p.name != "redis.conf"
    ]

    assert len(files) > 20  # component logs, task logs, airflow.cfg, lineage
    assert [str(p) for p in files if any(s in p.read_bytes() for s in secrets)] == []


def _our_processes(profile: CeleryProfile) -> list[psutil.Process]:
    procs: dict[int, psutil.Process] = {}
    for entry in _read_pids(profile)["processes"]:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc = psutil.Process(entry["pid"])
            if abs(proc.create_time() - entry["create_time"]) < 0.01:
                procs[proc.pid] = proc
                procs.update({c.pid: c for c in proc.children(recursive=True)})
    return list(procs.values())


def _mentioning(directory: Path) -> list[int]:
    """Pids of processes whose command line or environment names ``directory`` (not ours)."""
    needle = str(directory).encode()
    mine = {os.getpid(), *(c.pid for c in psutil.Process().children(recursive=True))}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        for part in ("cmdline", "environ"):
            with contextlib.suppress(OSError):
                if needle in (entry / part).read_bytes():
                    found.append(int(entry.name))
                    break
    return found


def test_airflow_down_leaves_no_process(profile: CeleryProfile) -> None:
    before = _our_processes(profile)
    # Airflow, the workers (and their pools), PostgreSQL (and its backends), Redis, moto,
    # two emulators.
    assert len(before) >= 12
    assert {p.username() for p in before} >= ({"postgres"} if os.geteuid() == 0 else set())

    proc = _tweetpipe("airflow", "down", "--dir", str(profile.directory), timeout=120)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    alive = [p.pid for p in before if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert _mentioning(profile.directory) == []
    assert not profile.pid_file.exists()
