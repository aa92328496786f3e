"""``etl.tools.airflow_celery`` without starting Airflow: settings, secrets, hostnames, bad input.

The profile itself runs in ``tests/e2e/test_airflow_celery.py``; these check in a second what
must hold for it: the passwords are only in 0600 files (the settings name the files), each worker's
hostname is its own, and a bad ``--workers``/``--store`` is one line and exit 2 before anything
starts.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from etl.adapters.cli import main
from etl.errors import LocalAirflowError
from etl.tools import airflow_celery
from etl.tools.airflow_celery import WORKER_HOSTNAME_ENV, celery_env, worker_hostname


def test_a_worker_s_hostname_is_its_own_and_a_bad_one_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(WORKER_HOSTNAME_ENV, "worker-2")
    assert worker_hostname() == "worker-2"

    for bad in ("", "worker 2", "-x", "w" * 64, "wörker", "worker-2\n"):
        monkeypatch.setenv(WORKER_HOSTNAME_ENV, bad)
        assert worker_hostname() == socket.getfqdn(), bad


def test_passwords_are_generated_once_into_0600_files(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "redis.password"

    first = airflow_celery._secret(path)

    assert len(first) == 48
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    assert airflow_celery._secret(path) == first
    # Anything else in the file (hand-edited, truncated) is replaced by a new password.
    path.write_text("short\n")
    assert airflow_celery._secret(path) != first
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_settings_name_the_password_files_and_hold_no_password(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    airflow_celery._write_urls(secrets_dir, 5432, "a" * 48, 6379, "b" * 48)
    base = {
        "PATH": os.environ["PATH"],
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # A caller's own database URL must not override the profile's.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////tmp/other.db",
    }

    env = celery_env(base, secrets_dir, workers=3, store="s3://bucket/prefix")

    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "6"
    assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "etl.tools.airflow_celery.worker_hostname"
    assert env["TWEETPIPE_STORE"] == "s3://bucket/prefix"
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env
    assert int(env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"]) < 60
    assert not [k for k, v in env.items() if "a" * 48 in v or "b" * 48 in v]
    files = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": "postgresql+psycopg2://airflow:",
        "AIRFLOW__CELERY__RESULT_BACKEND_CMD": "db+postgresql+psycopg2://airflow:",
        "AIRFLOW__CELERY__BROKER_URL_CMD": "redis://:",
    }
    for name, scheme in files.items():
        command, path = env[name].split(" ", 1)
        assert command == "cat"
        text = Path(path).read_text(encoding="utf-8")
        # Airflow uses a *_CMD's output as it is: no trailing newline in the URL.
        assert text.startswith(scheme) and text == text.strip()
        assert Path(path).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "celery", "--workers", "0"], "--workers 0: give 1 to 8"),
        (["--executor", "celery", "--workers", "9"], "--workers 9: give 1 to 8"),
        (["--workers", "2"], "--workers and --store need --executor celery"),
        (["--store", "s3://b/p"], "--workers and --store need --executor celery"),
        (["--executor", "celery", "--store", "s3://KEY:SECRET@bucket/p"], "carries credentials"),
        (["--executor", "kubernetes"], "invalid choice"),
    ],
)
def test_bad_up_options_are_one_line_and_exit_2_before_anything_starts(
    args: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory = tmp_path / "instance"

    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(["airflow", "up", "--dir", str(directory), *args]))

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and "SECRET" not in err
    assert not directory.exists()


def test_a_cluster_directory_the_postgres_user_cannot_reach_is_one_clear_error(
    tmp_path: Path,
) -> None:
    # pytest's temporary root is 0700: as root, PostgreSQL (run as the postgres user) cannot
    # enter it, and initdb's own error would not say why.
    pg_root = tmp_path / "airflow" / "postgres"
    pg_root.mkdir(parents=True)
    if os.geteuid() != 0:
        airflow_celery._check_reachable_by_postgres(pg_root)  # our own user: nothing to check
        return

    airflow_celery._chown_to_postgres(pg_root)
    with pytest.raises(LocalAirflowError, match="postgres user, which cannot reach") as caught:
        airflow_celery._check_reachable_by_postgres(pg_root)

    assert str(pg_root) in str(caught.value) and "--dir" in str(caught.value)


def test_each_worker_gets_its_own_hostname_and_temporary_directory(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin", "TMPDIR": "/tmp"}

    one = airflow_celery.worker_env(base, "worker-1", tmp_path / "worker-1")
    two = airflow_celery.worker_env(base, "worker-2", tmp_path / "worker-2")

    assert (one[WORKER_HOSTNAME_ENV], two[WORKER_HOSTNAME_ENV]) == ("worker-1", "worker-2")
    assert one["TMPDIR"] == str(tmp_path / "worker-1" / "tmp")
    assert two["TMPDIR"] == str(tmp_path / "worker-2" / "tmp")
    assert base == {"PATH": "/usr/bin", "TMPDIR": "/tmp"}
