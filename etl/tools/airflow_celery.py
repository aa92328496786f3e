"""The distributed profile of the local Airflow: CeleryExecutor, Redis, PostgreSQL, an S3 store.

``tweetpipe airflow up --executor celery --workers N`` runs what a production Celery deployment
runs, all on 127.0.0.1 and under one directory: a PostgreSQL cluster of its own (``initdb`` into
the directory) as the metadata database and Celery result backend, ``redis-server`` with a
password as the broker, the Airflow api-server, scheduler, dag-processor and triggerer, and N Celery
workers. Each worker has its own temporary directory and its own hostname as Airflow records it
(``[core] hostname_callable`` is :func:`worker_hostname`, which reads ``TWEETPIPE_WORKER_HOSTNAME``),
so the UI shows which worker ran a task. The store is an S3 endpoint (moto's server on loopback)
unless the caller names another, so no task can lean on a disk the others share.

Passwords (PostgreSQL, Redis) are generated once per directory and kept in 0600 files under
``secrets/``; Airflow reads the URLs that hold them through ``*_CMD`` settings (a ``cat`` of the
file) and Redis reads its own from a 0600 config file, so no process's arguments show them.

PostgreSQL refuses to run as root; when this runs as root, ``initdb`` and ``postgres`` run as the
``postgres`` system user (``setpriv``), which owns the cluster's directory. ``stop_local_airflow``
stops this profile too: every process here is in the pid file and carries the same marker.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from etl.errors import LocalAirflowError
from etl.tools.airflow_local import (
    _COMPONENTS,
    DAGS_FOLDER,
    DEFAULT_PORT,
    USERNAME,
    _airflow_command,
    _already_running,
    _check_alive,
    _check_port_free,
    _emulator_token,
    _layout,
    _migrate,
    _password,
    _spawn,
    _start_emulators,
    _Started,
    _stop,
    _tail,
    _wait_port,
    _write_pids,
    airflow_env,
    free_port,
    wait_healthy,
    write_local_settings,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

WORKER_HOSTNAME_ENV = "TWEETPIPE_WORKER_HOSTNAME"
DEFAULT_WORKERS = 2
MAX_WORKERS = 8
# Slots per worker: two, so that three tasks queued at once cannot all land on one worker.
WORKER_CONCURRENCY = 2
S3_BUCKET = "tweetpipe-local"
# A dead worker's task is failed (and retried elsewhere) after this many seconds without a
# heartbeat; Airflow's default of 300 s suits real hosts, not a profile that is tested by killing.
HEARTBEAT_TIMEOUT_SECONDS = 20
_PG_USER = "airflow"
_PG_DB = "airflow"
_SYSTEM_PG_USER = "postgres"
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}")
_SECRET_MODE = 0o600


def worker_hostname() -> str:
    """The hostname Airflow records for this process (``[core] hostname_callable``).

    A worker of the Celery profile gets its own name in ``TWEETPIPE_WORKER_HOSTNAME``; every
    other process (or a malformed value) falls back to the machine's FQDN, as Airflow's default.

    Returns:
        The hostname.
    """
    name = os.environ.get(WORKER_HOSTNAME_ENV, "")
    if _HOSTNAME_RE.fullmatch(name):
        return name
    return socket.getfqdn()


@dataclass(frozen=True)
class CeleryAirflow:
    """A running Celery profile and what it needs to be used.

    Attributes:
        url: the api-server's base URL (UI and REST API), on 127.0.0.1.
        username: the SimpleAuthManager user (role admin).
        password: that user's password (kept out of ``repr``).
        directory: the directory holding everything.
        home: ``AIRFLOW_HOME`` (airflow.cfg, the login file, task logs).
        store: the store URL the DAG writes to (``TWEETPIPE_STORE``).
        s3_endpoint: moto's URL when this profile started it, else None.
        lineage_file: where the OpenLineage events go (unless the environment says otherwise).
        log_dir: one log file per started process.
        pid_file: the JSON file naming every started process.
        emulator_urls: base URL of each emulator, by Airflow connection id.
        workers: the workers' hostnames, as Airflow records them on task instances.
        postgres_port: the metadata database's port on 127.0.0.1.
        redis_port: the broker's port on 127.0.0.1.
    """

    url: str
    username: str
    password: str = field(repr=False)
    directory: Path
    home: Path
    store: str
    s3_endpoint: str | None
    lineage_file: Path
    log_dir: Path
    pid_file: Path
    emulator_urls: dict[str, str]
    workers: list[str]
    postgres_port: int
    redis_port: int


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _SECRET_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, _SECRET_MODE)  # an older file keeps its mode through O_TRUNC


def _secret(path: Path) -> str:
    """A password generated once and kept in ``path`` (hex: safe in any URL and config file)."""
    if path.is_file():
        text = path.read_text(encoding="utf-8").strip()
        if re.fullmatch(r"[0-9a-f]{32,128}", text):
            return text
    value = secrets.token_hex(24)
    _write_secret(path, value + "\n")
    return value


def _as_root() -> bool:
    return os.geteuid() == 0


def _pg_bindir() -> Path:
    """Debian's PostgreSQL binaries (the highest installed major version)."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not found:
        raise LocalAirflowError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); "
            "run `make system-deps` (Debian package postgresql)"
        )
    return found[-1]


def _as_postgres(argv: list[str]) -> list[str]:
    """``argv`` run as the ``postgres`` system user when we are root (PostgreSQL refuses root)."""
    if not _as_root():
        return argv
    return [
        "setpriv",
        f"--reuid={_SYSTEM_PG_USER}",
        f"--regid={_SYSTEM_PG_USER}",
        "--init-groups",
        "--",
        *argv,
    ]


def _chown_to_postgres(path: Path) -> None:
    if _as_root():
        shutil.chown(path, _SYSTEM_PG_USER, _SYSTEM_PG_USER)


def _check_reachable_by_postgres(pg_root: Path) -> None:
    """As root, the ``postgres`` user must be able to reach the cluster's directory."""
    if not _as_root():
        return
    probe = subprocess.run(
        _as_postgres(["test", "-w", str(pg_root)]), stdin=subprocess.DEVNULL, check=False
    )
    if probe.returncode != 0:
        raise LocalAirflowError(
            f"PostgreSQL runs as the {_SYSTEM_PG_USER} user, which cannot reach {pg_root}: "
            "pick a --dir whose parent directories others may enter (chmod o+x), e.g. under /tmp"
        )


def _init_postgres(pg_root: Path, password: str, log_dir: Path) -> Path:
    """``initdb`` a cluster into ``pg_root/data`` once; superuser ``airflow`` with a password."""
    data = pg_root / "data"
    if (data / "PG_VERSION").is_file():
        return data
    pg_root.mkdir(mode=0o700, exist_ok=True)
    _chown_to_postgres(pg_root)
    _check_reachable_by_postgres(pg_root)
    # initdb reads the password from a file only its user can read, removed right after.
    pwfile = pg_root / "initdb.pw"
    _write_secret(pwfile, password + "\n")
    _chown_to_postgres(pwfile)
    argv = [
        str(_pg_bindir() / "initdb"),
        "--pgdata",
        str(data),
        "--username",
        _PG_USER,
        "--pwfile",
        str(pwfile),
        "--auth-host=scram-sha-256",
        "--auth-local=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
        "--no-instructions",
    ]
    try:
        with open(log_dir / "initdb.log", "ab") as log:
            subprocess.run(
                _as_postgres(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=120,
            )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise LocalAirflowError(f"initdb failed: {exc}\n{_tail(log_dir / 'initdb.log')}") from None
    finally:
        pwfile.unlink(missing_ok=True)
    return data


def _start_postgres(data: Path, port: int, log_dir: Path, env: Mapping[str, str]) -> _Started:
    argv = [
        str(_pg_bindir() / "postgres"),
        "-D",
        str(data),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"port={port}",
        # TCP on loopback only: no socket file in a system directory another cluster may use.
        "-c",
        "unix_socket_directories=",
        "-c",
        "max_connections=200",
        "-c",
        "fsync=off",
    ]
    return _spawn("postgres", _as_postgres(argv), env, log_dir)


def _create_database(port: int, password: str, timeout: float) -> None:
    """Create the ``airflow`` database once the server accepts connections (bounded wait)."""
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = psycopg2.connect(
                host="127.0.0.1",
                port=port,
                user=_PG_USER,
                password=password,
                dbname="postgres",
                connect_timeout=5,
            )
            break
        except psycopg2.OperationalError as exc:
            if time.monotonic() > deadline:
                raise LocalAirflowError(f"PostgreSQL on 127.0.0.1:{port}: {exc}") from None
            time.sleep(0.5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (_PG_DB,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE DATABASE {_PG_DB}")
    finally:
        conn.close()


def _start_redis(root: Path, port: int, password: str, env: Mapping[str, str]) -> _Started:
    """``redis-server`` on loopback with ``requirepass`` from a 0600 config file, no persistence."""
    redis = shutil.which("redis-server")
    if redis is None:
        raise LocalAirflowError(
            "redis-server is not installed; run `make system-deps` (Debian package redis-server)"
        )
    workdir = root / "redis"
    workdir.mkdir(mode=0o700, exist_ok=True)
    conf = workdir / "redis.conf"
    _write_secret(
        conf,
        "\n".join(
            [
                "bind 127.0.0.1",
                f"port {port}",
                "protected-mode yes",
                f"requirepass {password}",
                f"dir {workdir}",
                'save ""',
                "appendonly no",
                "daemonize no",
                'logfile ""',
                "",
            ]
        ),
    )
    return _spawn("redis", [redis, str(conf)], env, root / "logs")


def _start_moto(env: Mapping[str, str], log_dir: Path, timeout: float) -> tuple[_Started, str]:
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = _spawn("s3", argv, env, log_dir)
    _wait_port(port, proc, log_dir, timeout)
    return proc, f"http://127.0.0.1:{port}"


def _create_bucket(endpoint: str, env: Mapping[str, str]) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=S3_BUCKET)


def _s3_env(endpoint: str, key_file: Path) -> dict[str, str]:
    """moto's endpoint for boto3 and the ``aws_default`` connection (moto takes any key)."""
    secret = _secret(key_file)
    conn = {
        "conn_type": "aws",
        "login": "tweetpipe-local",
        "password": secret,
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "tweetpipe-local",
        "AWS_SECRET_ACCESS_KEY": secret,
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(conn),
    }


def _cat(path: Path) -> str:
    return f"cat {shlex.quote(str(path))}"


def celery_env(
    base: Mapping[str, str], secrets_dir: Path, workers: int, store: str
) -> dict[str, str]:
    """The Celery profile's settings on top of :func:`etl.tools.airflow_local.airflow_env`.

    The URLs holding passwords are read from files by ``*_CMD`` settings, never put in the
    environment or in arguments.

    Args:
        base: the local profile's environment.
        secrets_dir: the 0700 directory with ``sql_alchemy_conn``, ``broker_url`` and
            ``result_backend`` (each 0600).
        workers: the number of Celery workers (sizes the scheduler's parallelism).
        store: the store URL the DAG writes to.

    Returns:
        The environment for every Airflow process of the profile.
    """
    env = dict(base)
    for name in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL"):
        env.pop(name, None)  # a caller's value would win over the _CMD settings below
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(workers * WORKER_CONCURRENCY),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": _cat(secrets_dir / "sql_alchemy_conn"),
            "AIRFLOW__CELERY__BROKER_URL_CMD": _cat(secrets_dir / "broker_url"),
            "AIRFLOW__CELERY__RESULT_BACKEND_CMD": _cat(secrets_dir / "result_backend"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            # One message per free slot: a busy worker does not sit on tasks another could run.
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_SECONDS),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
            "TWEETPIPE_STORE": store,
        }
    )
    return env


# Airflow takes a *_CMD setting's output as it is, so these files end without a newline.
def _write_urls(
    secrets_dir: Path, pg_port: int, pg_password: str, redis_port: int, redis_password: str
) -> None:
    db = f"{_PG_USER}:{pg_password}@127.0.0.1:{pg_port}/{_PG_DB}"
    _write_secret(secrets_dir / "sql_alchemy_conn", f"postgresql+psycopg2://{db}")
    _write_secret(secrets_dir / "result_backend", f"db+postgresql+psycopg2://{db}")
    _write_secret(secrets_dir / "broker_url", f"redis://:{redis_password}@127.0.0.1:{redis_port}/0")


def worker_env(env: Mapping[str, str], name: str, workdir: Path) -> dict[str, str]:
    """One worker's environment: its hostname and its own temporary directory.

    Args:
        env: the profile's environment (:func:`celery_env`).
        name: the worker's hostname (``worker-N``).
        workdir: the worker's directory; ``tmp/`` in it becomes ``TMPDIR``.

    Returns:
        The environment for that worker and every task process it forks.
    """
    return {**env, WORKER_HOSTNAME_ENV: name, "TMPDIR": str(workdir / "tmp")}


def _start_worker(
    index: int, env: Mapping[str, str], root: Path, log_dir: Path
) -> tuple[_Started, str]:
    """One Celery worker with its own hostname, temporary directory and pid file."""
    name = f"worker-{index}"
    workdir = root / "workers" / name
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    argv = [
        *_airflow_command(),
        "celery",
        "worker",
        "--celery-hostname",
        f"{name}@127.0.0.1",
        "--concurrency",
        str(WORKER_CONCURRENCY),
        "--pid",
        str(workdir / "worker.pid"),
        # Its log server would bind a fixed port on every interface, once per worker; the task
        # logs are read from AIRFLOW_HOME/logs by the api-server instead.
        "--skip-serve-logs",
    ]
    return _spawn(name, argv, worker_env(env, name, workdir), log_dir, cwd=workdir), name


def _wait_workers_ready(started: list[_Started], log_dir: Path, timeout: float) -> None:
    """Each worker logs ``NAME@127.0.0.1 ready.`` once it consumes from the broker (bounded wait)."""
    deadline = time.monotonic() + timeout
    pending = {s.name for s in started}
    while pending:
        _check_alive(started, log_dir)
        for name in sorted(pending):
            text = (log_dir / f"{name}.log").read_text(encoding="utf-8", errors="replace")
            if f"{name}@127.0.0.1 ready." in text:
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise LocalAirflowError(
                f"Celery workers not ready after {timeout:.0f} s: {sorted(pending)}"
            )
        time.sleep(0.5)


def start_celery_airflow(
    directory: Path,
    port: int = DEFAULT_PORT,
    workers: int = DEFAULT_WORKERS,
    store: str | None = None,
    dags_folder: Path = DAGS_FOLDER,
    timeout: float = 240.0,
    scheduled_runs: bool = True,
) -> CeleryAirflow:
    """Start the Celery profile in the background and wait until it is healthy.

    Args:
        directory: holds the clusters, ``AIRFLOW_HOME``, the secrets, the logs and the pid file.
        port: the api-server port on 127.0.0.1.
        workers: how many Celery workers (1 to 8).
        store: the store URL; None starts moto's S3 server and uses a bucket on it.
        dags_folder: the DAG folder (default: :func:`etl.resources.dags_dir`).
        timeout: seconds to wait for each service, the migration and health.
        scheduled_runs: False: only triggered runs (and backfills) run, no scheduled and no
            asset-triggered ones (see :func:`etl.tools.airflow_local.airflow_env`).

    Returns:
        Where the instance is and how to log in.

    Raises:
        LocalAirflowError: already running there, a missing system package, or a process died
            or stayed unhealthy (everything started is stopped again before raising).
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise LocalAirflowError(f"--workers must be 1 to {MAX_WORKERS}, not {workers}")
    layout = _layout(directory)
    root = layout["root"]
    if running := _already_running(layout["pid_file"]):
        raise LocalAirflowError(
            f"a local Airflow already runs from {root} (pids {running}); stop it first"
        )
    _check_port_free(port)
    for key in ("home", "logs"):
        layout[key].mkdir(parents=True, exist_ok=True)
    layout["lineage"].parent.mkdir(parents=True, exist_ok=True)
    secrets_dir = root / "secrets"
    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(secrets_dir, 0o700)
    pg_password = _secret(secrets_dir / "postgres.password")
    redis_password = _secret(secrets_dir / "redis.password")
    password = _password(layout["home"])
    write_local_settings(layout["home"])  # the workers preload what tasks import, as locally
    started: list[_Started] = []
    url = f"http://127.0.0.1:{port}"
    logs = layout["logs"]
    try:
        base_env = airflow_env(layout, port, {}, "", dags_folder)
        data = _init_postgres(root / "postgres", pg_password, logs)
        pg_port, redis_port = free_port(), free_port()
        started.append(_start_postgres(data, pg_port, logs, base_env))
        extra: dict[str, object] = {"url": url, "executor": "celery"}
        _write_pids(layout["pid_file"], started, extra)
        started.append(_start_redis(root, redis_port, redis_password, base_env))
        _write_pids(layout["pid_file"], started, extra)
        _wait_port(pg_port, started[0], logs, timeout)
        _create_database(pg_port, pg_password, timeout)
        _wait_port(redis_port, started[1], logs, timeout)
        _write_urls(secrets_dir, pg_port, pg_password, redis_port, redis_password)
        s3_endpoint = None
        s3_env: dict[str, str] = {}
        if store is None:
            moto, s3_endpoint = _start_moto(base_env, logs, timeout)
            started.append(moto)
            s3_env = _s3_env(s3_endpoint, secrets_dir / "s3.secret")
            _create_bucket(s3_endpoint, s3_env)
            store = f"s3://{S3_BUCKET}/store"
        emulator_urls = _start_emulators(base_env, logs, started, timeout)
        local = airflow_env(
            layout, port, emulator_urls, _emulator_token(), dags_folder, scheduled_runs
        )
        env = celery_env({**local, **s3_env}, secrets_dir, workers, store)
        extra.update({"emulators": emulator_urls, "store": store, "s3_endpoint": s3_endpoint})
        _write_pids(layout["pid_file"], started, extra)
        _migrate(env, logs, timeout)
        for name, args in _COMPONENTS:
            started.append(_spawn(name, [*_airflow_command(), *args], env, logs))
            _write_pids(layout["pid_file"], started, extra)
        names = []
        worker_procs = []
        for index in range(1, workers + 1):
            proc, hostname = _start_worker(index, env, root, logs)
            started.append(proc)
            worker_procs.append(proc)
            names.append(hostname)
            _write_pids(layout["pid_file"], started, {**extra, "workers": names})
        wait_healthy(url, timeout, check=lambda: _check_alive(started, logs))
        _wait_workers_ready(worker_procs, logs, timeout)
    except BaseException:
        _stop(started, timeout=30.0, root=str(root))
        layout["pid_file"].unlink(missing_ok=True)
        raise
    return CeleryAirflow(
        url=url,
        username=USERNAME,
        password=password,
        directory=root,
        home=layout["home"],
        store=store,
        s3_endpoint=s3_endpoint,
        lineage_file=layout["lineage"],
        log_dir=logs,
        pid_file=layout["pid_file"],
        emulator_urls=emulator_urls,
        workers=names,
        postgres_port=pg_port,
        redis_port=redis_port,
    )
