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
    install_dag,
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
        target = install_dag(into)
    except OSError as exc:
        raise UsageError(f"--into {into}: cannot copy the DAG file there: {exc.strerror}") from None
    except LocalAirflowError as exc:
        print(f"tweetpipe airflow dag: {exc}", file=sys.stderr)
        return 1
    print(f"copied {resources.dag_file()} to {target}")
    return 0


def run_airflow_cli(args: argparse.Namespace) -> int:
    """``tweetpipe airflow up|down|dag``: start or stop the local Airflow, or place the DAG file.

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
