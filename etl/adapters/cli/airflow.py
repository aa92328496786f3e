"""``tweetpipe airflow up|down|dag``: a local Airflow 3 for the UI, and where the DAG file is."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from etl import resources
from etl.adapters.cli.exits import UsageError
from etl.errors import LocalAirflowError
from etl.tools.airflow_local import (
    DAGS_FOLDER,
    install_dags,
    start_local_airflow,
    stop_local_airflow,
)

if TYPE_CHECKING:
    import argparse


def _run_dag_cli(args: argparse.Namespace) -> int:
    if args.into is None:
        print(resources.dag_file())
        return 0
    into = Path(args.into)
    if into.exists() and not into.is_dir():
        raise UsageError(f"--into {into} is not a directory")
    try:
        targets = install_dags(into)
    except OSError as exc:
        raise UsageError(
            f"--into {into}: cannot copy the DAG files there: {exc.strerror}"
        ) from None
    except LocalAirflowError as exc:
        print(f"tweetpipe airflow dag: {exc}", file=sys.stderr)
        return 1
    for source, target in zip(resources.dag_files(), targets, strict=True):
        print(f"copied {source} to {target}")
    return 0


def _celery_options(args: argparse.Namespace) -> tuple[int, str | None]:
    """``--workers`` and ``--store`` checked: one clear line and exit 2 when they are bad."""
    from etl.config import parse_store_url
    from etl.errors import StoreError
    from etl.tools.airflow_celery import DEFAULT_WORKERS, MAX_WORKERS

    workers = DEFAULT_WORKERS if args.workers is None else args.workers
    if not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"--workers {workers}: give 1 to {MAX_WORKERS}")
    if args.store is not None:
        try:
            parse_store_url(args.store)
        except StoreError as exc:
            raise UsageError(f"--store: {exc}") from None
    return workers, args.store


def _up_celery(args: argparse.Namespace, directory: Path) -> int:
    from etl.tools.airflow_celery import start_celery_airflow

    workers, store = _celery_options(args)
    started_at = time.monotonic()
    try:
        inst = start_celery_airflow(
            directory,
            port=args.port,
            workers=workers,
            store=store,
            scheduled_runs=not args.triggered_only,
        )
    except LocalAirflowError as exc:
        print(f"tweetpipe airflow up: {exc}", file=sys.stderr)
        return 1
    s3 = f"  (S3 endpoint {inst.s3_endpoint}, moto)" if inst.s3_endpoint else ""
    print(
        f"Airflow (CeleryExecutor) is up after {time.monotonic() - started_at:.0f} s: {inst.url}\n"
        f"  login:     {inst.username} / {inst.password}"
        f"  (also in {inst.home / 'simple_auth_manager_passwords.json.generated'})\n"
        f"  workers:   {', '.join(inst.workers)}\n"
        f"  database:  PostgreSQL on 127.0.0.1:{inst.postgres_port}; "
        f"broker: Redis on 127.0.0.1:{inst.redis_port}  (passwords in {inst.directory / 'secrets'})\n"
        f"  DAGs:      {DAGS_FOLDER}\n"
        f"  store:     {inst.store}{s3}\n"
        f"  emulators: x_api_default {inst.emulator_urls['x_api_default']}, "
        f"x_api_drift {inst.emulator_urls['x_api_drift']} (drift mode)\n"
        f"  lineage:   {inst.lineage_file}\n"
        f"  logs:      {inst.log_dir}\n"
        f"  stop:      tweetpipe airflow down --dir {args.dir}"
    )
    return 0


def run_airflow_cli(args: argparse.Namespace) -> int:
    """``tweetpipe airflow up|down|dag``: start or stop the local Airflow, or place the DAG files.

    Args:
        args: parsed arguments with ``airflow_verb`` and ``dir`` (``up``, ``down``), ``port``
            (``up``) or ``into`` (``dag``).

    Returns:
        0 on success, 1 when it could not start or something was left running.

    Raises:
        UsageError: ``dag --into`` names something that is not a directory (exit code 2).
    """
    if args.airflow_verb == "dag":
        return _run_dag_cli(args)
    directory = Path(args.dir)
    if args.airflow_verb == "down":
        leftovers = stop_local_airflow(directory)
        if leftovers:
            print(f"still running after the stop: pids {leftovers}", file=sys.stderr)
            return 1
        print(f"stopped the local Airflow in {directory.resolve()}")
        return 0
    if args.executor == "celery":
        return _up_celery(args, directory)
    if args.workers is not None or args.store is not None:
        raise UsageError("--workers and --store need --executor celery")
    started_at = time.monotonic()
    try:
        inst = start_local_airflow(
            directory, port=args.port, scheduled_runs=not args.triggered_only
        )
    except LocalAirflowError as exc:
        print(f"tweetpipe airflow up: {exc}", file=sys.stderr)
        return 1
    print(
        f"Airflow is up after {time.monotonic() - started_at:.0f} s: {inst.url}\n"
        f"  login:     {inst.username} / {inst.password}"
        f"  (also in {inst.home / 'simple_auth_manager_passwords.json.generated'})\n"
        f"  DAGs:      {DAGS_FOLDER}\n"
        f"  store:     {inst.store_dir}  (Data Docs: {inst.store_dir / 'docs' / 'index.html'})\n"
        f"  emulators: x_api_default {inst.emulator_urls['x_api_default']}, "
        f"x_api_drift {inst.emulator_urls['x_api_drift']} (drift mode)\n"
        f"  lineage:   {inst.lineage_file}\n"
        f"  logs:      {inst.log_dir}\n"
        f"  stop:      make airflow-down  (or tweetpipe airflow down --dir {args.dir})"
    )
    return 0
