"""``etl.tools.airflow_local`` without Airflow: its settings, its pid file and its stop.

The stop is checked on a stand-in process tree shaped like Airflow's (a session leader, a child,
a grandchild in its own process group as a task process is, and an orphan re-parented to init),
so it runs in a second instead of the minute a real Airflow takes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from etl.errors import LocalAirflowError
from etl.tools import airflow_local
from etl.tools.airflow_local import (
    PID_FILE_NAME,
    airflow_env,
    start_local_airflow,
    stop_local_airflow,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

# Spawns a child that ignores SIGTERM (as a busy worker might) in its own process group, and an
# orphan in its own group that outlives its parent (a task process whose supervisor died), then
# waits. Prints the pids it made.
_TREE = r"""
import os, signal, subprocess, sys, time
sleeper = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"]
child = subprocess.Popen(sleeper, process_group=0)
orphan_parent = subprocess.Popen(
    [sys.executable, "-c",
     "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], process_group=0); print(p.pid, flush=True)"],
    stdout=subprocess.PIPE, text=True)
orphan = int(orphan_parent.stdout.readline())
orphan_parent.wait()
print(child.pid, orphan, flush=True)
time.sleep(120)
"""


def _layout(tmp_path: Path) -> dict[str, Path]:
    return {
        "root": tmp_path,
        "home": tmp_path / "airflow-home",
        "store": tmp_path / "store",
        "lineage": tmp_path / "lineage" / "events.jsonl",
    }


def test_env_binds_loopback_and_keeps_the_token_in_the_connection(tmp_path: Path) -> None:
    urls = {"x_api_default": "http://127.0.0.1:5001", "x_api_drift": "http://127.0.0.1:5002"}

    env = airflow_env(_layout(tmp_path), 18080, urls, "secret-token", scheduled_runs=False)

    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:18080"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] == "False"
    # A new user's DAG is ready to run, not paused.
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"
    assert env["TWEETPIPE_STORE"] == str(tmp_path / "store")
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    drift = json.loads(env["AIRFLOW_CONN_X_API_DRIFT"])
    assert (drift["host"], drift["port"], drift["schema"]) == ("127.0.0.1", 5002, "http")
    assert drift["password"] == "secret-token"
    # The token is in the connections and nowhere else.
    holders = [k for k, v in env.items() if "secret-token" in v]
    assert sorted(holders) == ["AIRFLOW_CONN_X_API_DEFAULT", "AIRFLOW_CONN_X_API_DRIFT"]


def test_task_slots_follow_the_cpus_unless_the_caller_sets_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW__CORE__PARALLELISM", raising=False)
    for cpus, slots in ((1, 2), (2, 2), (6, 6), (64, 8)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cpus: set(range(n)))
        env = airflow_env(_layout(tmp_path), 18080, {}, "t")
        assert env["AIRFLOW__CORE__PARALLELISM"] == str(slots), cpus

    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "3")
    assert airflow_env(_layout(tmp_path), 18080, {}, "t")["AIRFLOW__CORE__PARALLELISM"] == "3"


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[Path, list[int]]]:
    """A stand-in instance: a pid file naming one session leader with descendants."""
    env = {**os.environ, "TWEETPIPE_LOCAL_AIRFLOW": str(tmp_path.resolve())}
    leader = subprocess.Popen(
        [sys.executable, "-c", _TREE],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert leader.stdout is not None
    child, orphan = (int(p) for p in leader.stdout.readline().split())
    started = psutil.Process(leader.pid).create_time()
    body = {"processes": [{"name": "leader", "pid": leader.pid, "create_time": started}]}
    (tmp_path / PID_FILE_NAME).write_text(json.dumps(body), encoding="utf-8")
    pids = [leader.pid, child, orphan]
    try:
        yield tmp_path, pids
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        leader.wait(timeout=10)


def test_stop_ends_the_tree_by_pid_even_stubborn_and_orphaned(
    tree: tuple[Path, list[int]],
) -> None:
    directory, pids = tree
    orphan = psutil.Process(pids[2])
    # Neither a descendant nor in the leader's group: only its environment marks it as ours.
    assert orphan.ppid() != pids[0] and os.getpgid(orphan.pid) != pids[0]

    started = time.monotonic()
    leftovers = stop_local_airflow(directory, timeout=2)

    assert leftovers == []
    assert time.monotonic() - started < 15
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert alive == []
    assert not (directory / PID_FILE_NAME).exists()


def test_up_refuses_a_directory_that_is_already_running(tree: tuple[Path, list[int]]) -> None:
    directory, pids = tree

    with pytest.raises(LocalAirflowError, match="already runs"):
        start_local_airflow(directory, port=1)

    assert psutil.pid_exists(pids[0])  # and it touched nothing


def test_a_stale_pid_file_is_not_someone_elses_process(tmp_path: Path) -> None:
    # Our own pid, recorded with another start time: a recycled pid that must not be signalled.
    body = {"processes": [{"name": "old", "pid": os.getpid(), "create_time": 1.0}]}
    (tmp_path / PID_FILE_NAME).write_text(json.dumps(body), encoding="utf-8")

    assert airflow_local._already_running(tmp_path / PID_FILE_NAME) == []
    assert stop_local_airflow(tmp_path, timeout=1) == []
    assert psutil.pid_exists(os.getpid())


def test_up_refuses_a_busy_port_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        with pytest.raises(LocalAirflowError, match=f"127.0.0.1:{port} is not free"):
            start_local_airflow(tmp_path / "instance", port=port)

    assert not (tmp_path / "instance").exists()


def test_the_airflow_cli_is_this_interpreters_even_without_a_script_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pip install --user or a system Python put scripts elsewhere; `python -m airflow` is the
    # Airflow this interpreter imports, never some other `airflow` on PATH.
    python = tmp_path / "bin" / "python3"
    python.parent.mkdir()
    python.touch()
    monkeypatch.setattr(sys, "executable", str(python))

    assert airflow_local._airflow_command() == [str(python), "-m", "airflow"]

    (tmp_path / "bin" / "airflow").touch()
    assert airflow_local._airflow_command() == [str(tmp_path / "bin" / "airflow")]
