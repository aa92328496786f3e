"""A local Airflow 3 for the UI: start it in the background, stop it by process id.

This is the orchestration adapter for running the real DAG in real Airflow services on one machine.
It runs what ``airflow standalone`` runs in Airflow 3.3 — ``api-server``, ``scheduler``,
``dag-processor`` and ``triggerer`` with the LocalExecutor, SQLite and the SimpleAuthManager — as
separate background processes, with two differences that ``airflow standalone`` cannot be told
to make: the scheduler and triggerer run with ``--skip-serve-logs`` (their log servers bind every
interface and fixed ports; the api-server reads the task logs from local disk anyway), and the
process ids go to a pid file, so ``stop_local_airflow`` can end exactly what was started.

Next to Airflow it starts the bundled X API emulator on loopback (twice: a clean one behind the
``x_api_default`` connection and a drift-mode one behind ``x_api_drift``), and points the DAG at a
local-directory store under the same directory. Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl import resources
from etl.errors import LocalAirflowError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    import psutil

# The repository's dags/ in a checkout, the wheel's bundled copy when installed.
DAGS_FOLDER = resources.dags_dir()
DEFAULT_DIR = "airflow-local"
DEFAULT_PORT = 8080
USERNAME = "admin"
PID_FILE_NAME = "airflow-local.json"
# Every process we start carries this variable, so a stop can find stragglers by their
# environment (a re-parented grandchild) and never touches anything it did not start.
_MARKER = "TWEETPIPE_LOCAL_AIRFLOW"
_COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("api-server", ("api-server",)),
    ("scheduler", ("scheduler", "--skip-serve-logs")),
    ("dag-processor", ("dag-processor",)),
    ("triggerer", ("triggerer", "--skip-serve-logs")),
)
_HEALTH_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
PARALLELISM_SETTING = "AIRFLOW__CORE__PARALLELISM"
"""The LocalExecutor's task slots: one per CPU unless the caller's environment sets it."""
_MAX_PARALLELISM = 8


def local_parallelism() -> int:
    """Task slots for the LocalExecutor: one per CPU this process may use, 2 to 8.

    The tasks run on this machine, and the quality gates are CPU-bound: more of them at once than
    there are CPUs only stretches each one (on 2 CPUs, 4 slots doubled a gate's duration and
    made no run finish sooner; see the README's Benchmarks).

    Returns:
        The slot count.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(2, min(_MAX_PARALLELISM, cpus or 2))


@dataclass(frozen=True)
class LocalAirflow:
    """A running local Airflow and what it needs to be used.

    Attributes:
        url: the api-server's base URL (UI and REST API), on 127.0.0.1.
        username: the SimpleAuthManager user (role admin).
        password: that user's password (kept out of ``repr``).
        directory: the directory holding everything below.
        home: ``AIRFLOW_HOME`` (SQLite database, airflow.cfg, the passwords file, task logs).
        store_dir: the local-directory object store the DAG writes to (``TWEETPIPE_STORE``).
        lineage_file: where the OpenLineage events go (unless the environment says otherwise).
        log_dir: one log file per started process.
        pid_file: the JSON file naming every started process.
        emulator_urls: base URL of each emulator, by Airflow connection id.
    """

    url: str
    username: str
    password: str = field(repr=False)
    directory: Path
    home: Path
    store_dir: Path
    lineage_file: Path
    log_dir: Path
    pid_file: Path
    emulator_urls: dict[str, str]


@dataclass(frozen=True)
class _Started:
    name: str
    pid: int
    create_time: float


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the api-server binds: a port in TIME_WAIT after a recent stop is free to it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise LocalAirflowError(
                f"127.0.0.1:{port} is not free ({exc.strerror}); pick another with --port"
            ) from None


def _layout(directory: Path) -> dict[str, Path]:
    root = directory.resolve()
    return {
        "root": root,
        "home": root / "airflow-home",
        "store": root / "store",
        "logs": root / "logs",
        "lineage": root / "lineage" / "events.jsonl",
        "pid_file": root / PID_FILE_NAME,
    }


def _password(home: Path) -> str:
    """The admin password, generated once per AIRFLOW_HOME in the file SimpleAuthManager reads."""
    path = home / "simple_auth_manager_passwords.json.generated"
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8") or "{}")
        if isinstance(stored.get(USERNAME), str):
            return str(stored[USERNAME])
    password = secrets.token_urlsafe(12)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({USERNAME: password}) + "\n")
    return password


def _x_connection(url: str, token: str) -> str:
    """An Airflow connection, JSON-serialised for an ``AIRFLOW_CONN_*`` variable."""
    host, _, port = url.removeprefix("http://").partition(":")
    return json.dumps(
        {"conn_type": "http", "host": host, "port": int(port), "schema": "http", "password": token}
    )


def airflow_env(
    layout: Mapping[str, Path],
    port: int,
    emulator_urls: Mapping[str, str],
    token: str,
    dags_folder: Path = DAGS_FOLDER,
    scheduled_runs: bool = True,
) -> dict[str, str]:
    """The environment every Airflow process of the local instance runs with.

    Args:
        layout: the paths from the instance directory (``home``, ``store``, ``root``, ``lineage``).
        port: the api-server port on 127.0.0.1.
        emulator_urls: emulator base URL by connection id (``x_api_default``, ``x_api_drift``).
        token: the bearer token the emulators accept; only ever passed in the environment.
        dags_folder: the DAG folder (default: :func:`etl.resources.dags_dir`).
        scheduled_runs: False keeps the scheduler from creating any run by itself
            (``[scheduler] use_job_schedule``): neither the DAG's scheduled runs nor the
            asset-triggered runs of a DAG scheduled on the curated Assets; triggered runs and
            backfills still run.

    Returns:
        A copy of the current environment with the Airflow settings and connections added.
    """
    base_url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    checkout = resources.CHECKOUT_ROOT
    env.update(
        {
            "PATH": os.pathsep.join([venv_bin, env.get("PATH", "")]),
            # The DAG imports etl: from a checkout, make it the checkout's even without an
            # editable install; an installed wheel is importable as it is.
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(checkout or ""), env.get("PYTHONPATH", "")) if p
            ),
            "AIRFLOW_HOME": str(layout["home"]),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(scheduled_runs),
            # A new user's DAG is ready to run: unpaused when the dag-processor first sees it.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "TWEETPIPE_STORE": str(layout["store"]),
            _MARKER: str(layout["root"]),
        }
    )
    # LocalExecutor starts one worker process per parallelism slot; a caller's own setting wins.
    env.setdefault(PARALLELISM_SETTING, str(local_parallelism()))
    # Lineage goes to a file next to the store unless the caller's environment sends it elsewhere.
    env.setdefault(
        "AIRFLOW__OPENLINEAGE__TRANSPORT",
        json.dumps(
            {"type": "file", "log_file_path": str(layout["lineage"]), "append": True},
        ),
    )
    for conn_id, url in emulator_urls.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = _x_connection(url, token)
    return env


def _spawn(
    name: str,
    argv: list[str],
    env: Mapping[str, str],
    log_dir: Path,
    stdout: bool = True,
    cwd: Path | None = None,
) -> _Started:
    import psutil

    log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it from here on
    try:
        # A new session per process: no terminal signal reaches it, and its group can be
        # signalled as one.
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log if stdout else subprocess.DEVNULL,
            stderr=log,
            env=dict(env),
            cwd=str(cwd or log_dir.parent),
            start_new_session=True,
        )
    finally:
        log.close()
    return _Started(name, proc.pid, psutil.Process(proc.pid).create_time())


def _write_pids(pid_file: Path, started: Iterable[_Started], extra: Mapping[str, Any]) -> None:
    body = {**extra, "processes": [asdict(s) for s in started]}
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, pid_file)


def _wait_port(port: int, started: _Started, log_dir: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive([started], log_dir)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise LocalAirflowError(f"{started.name} did not listen on 127.0.0.1:{port} in {timeout:.0f} s")


def _check_alive(started: Iterable[_Started], log_dir: Path) -> None:
    import psutil

    for s in started:
        try:
            proc = psutil.Process(s.pid)
            same = abs(proc.create_time() - s.create_time) < 0.01
            alive = same and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            alive = False
        if not alive:
            tail = _tail(log_dir / f"{s.name}.log")
            raise LocalAirflowError(f"{s.name} (pid {s.pid}) exited; last log lines:\n{tail}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_healthy(
    url: str,
    timeout: float = 180.0,
    check: Callable[[], None] | None = None,
    interval: float = 1.0,
) -> dict[str, Any]:
    """Poll ``/api/v2/monitor/health`` until every component reports healthy.

    Args:
        url: the api-server base URL.
        timeout: seconds to wait at most.
        check: an optional callable run on every poll (raises to stop waiting early).
        interval: seconds between polls.

    Returns:
        The last health document.

    Raises:
        LocalAirflowError: not healthy within ``timeout``.
    """
    import requests

    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if check is not None:
            check()
        with contextlib.suppress(requests.RequestException, ValueError):
            resp = requests.get(f"{url}/api/v2/monitor/health", timeout=5)
            if resp.status_code == 200:
                last = resp.json()
                states = [last.get(c, {}).get("status") for c in _HEALTH_COMPONENTS]
                if all(s == "healthy" for s in states):
                    return last
        time.sleep(interval)
    raise LocalAirflowError(f"Airflow at {url} not healthy after {timeout:.0f} s: {last}")


def _emulator_token() -> str:
    from etl.tools.emulator import DEMO_TOKEN

    return str(DEMO_TOKEN)


def _start_emulators(
    env: Mapping[str, str], log_dir: Path, started: list[_Started], timeout: float
) -> dict[str, str]:
    """A clean emulator and a drift-mode one, both on free loopback ports."""
    modes = {"x_api_default": (), "x_api_drift": ("--fault", "drift=breach")}
    urls = {}
    for conn_id, fault in modes.items():
        port = free_port()
        argv = [sys.executable, "-m", "etl", "emulator", "--port", str(port), *fault]
        # The emulator's banner on stdout names the demo token; only its errors are kept.
        proc = _spawn(f"emulator-{conn_id}", argv, env, log_dir, stdout=False)
        started.append(proc)
        _wait_port(port, proc, log_dir, timeout)
        urls[conn_id] = f"http://127.0.0.1:{port}"
    return urls


def _already_running(pid_file: Path) -> list[int]:
    if not pid_file.is_file():
        return []
    return [p.pid for p in _live_processes(_read_started(pid_file))]


def start_local_airflow(
    directory: Path,
    port: int = DEFAULT_PORT,
    dags_folder: Path = DAGS_FOLDER,
    timeout: float = 180.0,
    scheduled_runs: bool = True,
) -> LocalAirflow:
    """Start the emulators and the Airflow components in the background and wait until healthy.

    Args:
        directory: holds ``AIRFLOW_HOME``, the store, the logs and the pid file (created).
        port: the api-server port on 127.0.0.1.
        dags_folder: the DAG folder (default: :func:`etl.resources.dags_dir`).
        timeout: seconds to wait for the database migration and for health, each.
        scheduled_runs: False: only triggered runs (and backfills) run, no scheduled and no
            asset-triggered ones (see :func:`airflow_env`).

    Returns:
        Where the instance is and how to log in.

    Raises:
        LocalAirflowError: already running there, or a process died or stayed unhealthy
            (everything started is stopped again before raising).
    """
    layout = _layout(directory)
    if running := _already_running(layout["pid_file"]):
        raise LocalAirflowError(
            f"a local Airflow already runs from {layout['root']} (pids {running}); stop it first"
        )
    _check_port_free(port)
    for key in ("home", "store", "logs"):
        layout[key].mkdir(parents=True, exist_ok=True)
    layout["lineage"].parent.mkdir(parents=True, exist_ok=True)
    password = _password(layout["home"])
    write_local_settings(layout["home"])
    started: list[_Started] = []
    url = f"http://127.0.0.1:{port}"
    try:
        base_env = airflow_env(layout, port, {}, "", dags_folder)
        emulator_urls = _start_emulators(base_env, layout["logs"], started, timeout)
        env = airflow_env(
            layout, port, emulator_urls, _emulator_token(), dags_folder, scheduled_runs
        )
        extra = {"url": url, "emulators": emulator_urls, "store": str(layout["store"])}
        _write_pids(layout["pid_file"], started, extra)
        _migrate(env, layout["logs"], timeout)
        for name, args in _COMPONENTS:
            started.append(_spawn(name, [*_airflow_command(), *args], env, layout["logs"]))
            _write_pids(layout["pid_file"], started, extra)
        wait_healthy(url, timeout, check=lambda: _check_alive(started, layout["logs"]))
    except BaseException:
        _stop(started, timeout=30.0)
        layout["pid_file"].unlink(missing_ok=True)
        raise
    return LocalAirflow(
        url=url,
        username=USERNAME,
        password=password,
        directory=layout["root"],
        home=layout["home"],
        store_dir=layout["store"],
        lineage_file=layout["lineage"],
        log_dir=layout["logs"],
        pid_file=layout["pid_file"],
        emulator_urls=emulator_urls,
    )


LOCAL_SETTINGS = '''"""Written by tweetpipe airflow up: preload the tasks' modules where task processes fork."""

from etl.adapters.airflow.preload import preload_for_airflow

preload_for_airflow()
'''


def write_local_settings(home: Path) -> Path:
    """Write ``$AIRFLOW_HOME/config/airflow_local_settings.py``, which Airflow imports in every
    component: it calls :func:`etl.adapters.airflow.preload.preload_for_airflow`, so the
    scheduler (and a Celery worker) import Great Expectations and the steps once and every forked
    task process inherits them (``TWEETPIPE_PRELOAD=0`` turns it off).

    Args:
        home: ``AIRFLOW_HOME``.

    Returns:
        The file written.
    """
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    path = config / "airflow_local_settings.py"
    path.write_text(LOCAL_SETTINGS, encoding="utf-8")
    return path


def _airflow_command() -> list[str]:
    """This interpreter's Airflow CLI: the script beside it (a venv), else ``python -m airflow``.

    An installation whose scripts live elsewhere (``pip install --user``, a system Python) has no
    ``airflow`` beside the interpreter, and another ``airflow`` on PATH may be another Airflow.
    """
    script = Path(sys.executable).parent / "airflow"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "airflow"]


def _migrate(env: Mapping[str, str], log_dir: Path, timeout: float) -> None:
    """Create or upgrade the SQLite metadata database (writes airflow.cfg with fresh secrets)."""
    with open(log_dir / "db-migrate.log", "ab") as log:
        try:
            subprocess.run(
                [*_airflow_command(), "db", "migrate"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                timeout=timeout,
                check=True,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            tail = _tail(log_dir / "db-migrate.log")
            raise LocalAirflowError(f"airflow db migrate failed: {exc}\n{tail}") from None


def _read_started(pid_file: Path) -> list[_Started]:
    try:
        body = json.loads(pid_file.read_text(encoding="utf-8"))
        return [
            _Started(p["name"], int(p["pid"]), float(p["create_time"])) for p in body["processes"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LocalAirflowError(f"unreadable pid file {pid_file}: {exc}") from None


def _live_processes(started: Iterable[_Started]) -> list[psutil.Process]:
    """The started processes still running (a reused pid with another start time is not ours)."""
    import psutil

    alive = []
    for s in started:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc = psutil.Process(s.pid)
            if abs(proc.create_time() - s.create_time) < 0.01:
                alive.append(proc)
    return alive


def _marked(root: str) -> list[psutil.Process]:
    """Processes carrying our marker for this directory: descendants, even re-parented ones."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            if proc.environ().get(_MARKER) == root:
                found.append(proc)
    return found


def _kill(procs: Iterable[psutil.Process]) -> None:
    import psutil

    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # a group leader takes its whole group along
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def _stop(started: Iterable[_Started], timeout: float, root: str | None = None) -> list[int]:
    import psutil

    leaders = _live_processes(started)
    procs: dict[int, psutil.Process] = {p.pid: p for p in leaders}
    for proc in leaders:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.update({c.pid: c for c in proc.children(recursive=True)})
    if root is not None:
        procs.update({p.pid: p for p in _marked(root)})
    # Only the components themselves get SIGTERM, as ``airflow standalone`` does it: each shuts
    # its own children down (the scheduler waits for its executor's workers, which a direct
    # SIGTERM would leave it waiting for).
    for proc in leaders:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(list(procs.values()), timeout=timeout)
    if alive:
        _kill(alive)
        _, alive = psutil.wait_procs(alive, timeout=5)
    leftovers = [p.pid for p in alive]
    if root is not None:
        # Anything spawned while we were stopping (a task process mid-start) is caught here.
        late = [p for p in _marked(root) if p.pid not in procs]
        _kill(late)
        _, still = psutil.wait_procs(late, timeout=5)
        leftovers += [p.pid for p in still]
    return leftovers


def stop_local_airflow(directory: Path, timeout: float = 30.0) -> list[int]:
    """Stop everything ``start_local_airflow`` started from ``directory``, by process id.

    Each started process gets SIGTERM; whatever of it, its process group, its descendants or
    anything else carrying this directory's marker is still alive after ``timeout`` gets SIGKILL.

    Args:
        directory: the directory given to ``start_local_airflow``.
        timeout: seconds to wait for a graceful exit before SIGKILL.

    Returns:
        The pids still alive afterwards (empty when everything stopped).
    """
    layout = _layout(directory)
    started = _read_started(layout["pid_file"]) if layout["pid_file"].is_file() else []
    leftovers = _stop(started, timeout, root=str(layout["root"]))
    if not leftovers:
        layout["pid_file"].unlink(missing_ok=True)
    return leftovers


def install_dags(into: Path) -> list[Path]:
    """Copy the tweetpipe DAG files into a DAGs folder, each replacing an earlier copy in one step.

    The files are :func:`etl.resources.dag_files`: the pipeline (``tweetpipe_dag.py``) and the
    example consumer scheduled on its curated Assets (``tweetpipe_curated_summary.py``). Both are
    checked before either is copied, so a broken install leaves the folder as it was. The copies
    import ``etl`` from the installed package, so every Airflow component that parses or runs them
    (dag-processor, scheduler, workers) needs the same tweetpipe wheel installed.

    Args:
        into: the DAGs folder (created when missing).

    Returns:
        The copied files, in the order of :func:`etl.resources.dag_files`.

    Raises:
        LocalAirflowError: ``into`` is not a directory, or a DAG file is missing.
    """
    sources = resources.dag_files()
    for source in sources:
        if not source.is_file():
            raise LocalAirflowError(f"the DAG file {source} is missing; reinstall tweetpipe")
    if into.exists() and not into.is_dir():
        raise LocalAirflowError(f"{into} is not a directory")
    into.mkdir(parents=True, exist_ok=True)
    return [_install_file(source, into) for source in sources]


def _install_file(source: Path, into: Path) -> Path:
    target = into / source.name
    # Not a .py name while it is written: a dag-processor scanning the folder must never parse a
    # half-written file.
    partial = into / f".{source.name}.partial"
    shutil.copyfile(source, partial)
    os.replace(partial, target)
    return target
