"""A 30-day backfill through real Airflow: ``airflow backfill create`` on the local profile.

``tweetpipe airflow up`` (LocalExecutor, SQLite), then the Airflow CLI creates a backfill of the
last 30 daily intervals for one source, as an operator would after a first deployment. The
emulator behind the profile covers the days up to now, so every interval has posts. Every run must
succeed, and every interval's curated partition must be in the store afterwards. One source keeps
it to a few minutes; everything waits with a bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from etl.storage.keys import partition_for
from etl.tools.airflow_local import DAGS_FOLDER
from tests.e2e.conftest import ROOT, wait_until

if TYPE_CHECKING:
    from tests.e2e.conftest import AirflowApi, RunningAirflow

DAG_ID = "tweetpipe"
DAYS = 30
SOURCE = "account:ada_builds"
SLUG = "account-ada_builds"
BACKFILL_TIMEOUT = 2400.0


def _airflow_cli(airflow: RunningAirflow, *args: str) -> subprocess.CompletedProcess[str]:
    """The Airflow CLI against the profile's metadata database, as its own processes see it."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow.home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # The other processes write to the same SQLite file: wait for its lock, up to 2 minutes.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow.home / 'airflow.db'}?timeout=120",
    }
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _backfill_runs(api: AirflowApi) -> list[dict[str, Any]]:
    doc = api.get(f"/dags/{DAG_ID}/dagRuns", run_type="backfill", limit=100)
    return list(doc["dag_runs"])


def _drop_partial_backfill(api: AirflowApi) -> None:
    """Cancel a backfill that failed midway and delete the runs it had created."""
    for backfill in api.get("/backfills", dag_id=DAG_ID)["backfills"]:
        if backfill["completed_at"] is None:
            api.put(f"/backfills/{backfill['id']}/cancel")
    for run in _backfill_runs(api):
        api.delete(f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}")


def _create_backfill(airflow: RunningAirflow, api: AirflowApi, *args: str) -> int:
    """``airflow backfill create``, retried (at most 5 tries) when SQLite refuses a write.

    On the profile's SQLite database a write from inside the CLI's read transaction fails at once
    ("database is locked") when another process is committing: SQLite's deadlock rule, which no
    busy timeout helps. Airflow then leaves the backfill half created (it cleans up only after
    PostgreSQL's and MySQL's lock errors), so it is cancelled and its runs deleted before the
    next try, as an operator would.

    Returns:
        How many tries it took.
    """
    for attempt in range(1, 6):
        created = _airflow_cli(airflow, "backfill", "create", *args)
        if created.returncode == 0:
            return attempt
        output = created.stdout[-2000:] + created.stderr[-2000:]
        assert "database is locked" in output, output
        _drop_partial_backfill(api)
        time.sleep(5)
    pytest.fail("airflow backfill create hit a locked SQLite database 5 times")


def test_a_30_day_backfill_publishes_every_interval(
    airflow: RunningAirflow, api: AirflowApi
) -> None:
    wait_until(
        "the DAG to be parsed",
        lambda: api.get("/dags", dag_id_pattern=DAG_ID)["total_entries"],
        timeout=180,
    )
    # Paused while the runs are created (fewer writers on the SQLite file meanwhile, and no run
    # of a half-created backfill starts); unpaused right after.
    api.patch(f"/dags/{DAG_ID}", {"is_paused": True})
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # A daily run's data interval is the day before its logical date: these 30 logical dates
    # cover the 30 days up to today.
    first, last = today - timedelta(days=DAYS - 1), today
    started = time.monotonic()

    tries = _create_backfill(
        airflow,
        api,
        "--dag-id",
        DAG_ID,
        "--from-date",
        first.isoformat(),
        "--to-date",
        last.isoformat(),
        # One run at a time: Airflow 3.3 creates an asset announced through an alias on its first
        # event, and two runs announcing a new source's asset at the same moment race on the
        # asset table's unique key (the API server then fails the second publish: seen with 3
        # runs at once, 1 run of 30). README "Backfills" says so.
        "--max-active-runs",
        "1",
        "--dag-run-conf",
        json.dumps({"sources": [SOURCE]}),
    )
    api.patch(f"/dags/{DAG_ID}", {"is_paused": False})

    def finished() -> list[dict[str, Any]] | None:
        runs = _backfill_runs(api)
        done = [r for r in runs if r["state"] in ("success", "failed")]
        return runs if len(runs) == DAYS and len(done) == DAYS else None

    runs = wait_until(f"{DAYS} backfill runs to finish", finished, BACKFILL_TIMEOUT, interval=10)
    took = time.monotonic() - started
    print(f"\n[e2e] {DAYS}-day backfill of 1 source finished in {took:.0f} s ({tries} tries)")

    assert sorted(r["state"] for r in runs) == ["success"] * DAYS
    starts = sorted(datetime.fromisoformat(r["data_interval_start"]) for r in runs)
    assert starts == [today - timedelta(days=DAYS - n) for n in range(DAYS)]
    missing = [
        s.date().isoformat()
        for s in starts
        if not (airflow.store / partition_for(SLUG, s, s + timedelta(days=1)).curated_key).is_file()
    ]
    assert missing == []
    # Every interval had posts (the emulator covers the last 400 days): no header-only CSV.
    sizes = [
        (airflow.store / partition_for(SLUG, s, s + timedelta(days=1)).curated_key)
        .read_text(encoding="utf-8")
        .count("\n")
        for s in starts
    ]
    assert min(sizes) >= 2
    # Retention ran after each run's docs, and left the published partitions' raw windows alone.
    assert len(list((airflow.store / "raw" / f"source={SLUG}").glob("endpoint=*/window=*"))) == DAYS
