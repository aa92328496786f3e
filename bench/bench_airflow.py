"""What a source costs in a real Airflow: task seconds per source, with and without the preload.

``python bench/bench_airflow.py [--sources N] [--modes off on]`` starts the local Airflow of
``tweetpipe airflow up`` (LocalExecutor, SQLite, the emulators; ``--triggered-only``) once per
mode, triggers one run of the tweetpipe DAG over N sources (the emulator's accounts, then search
queries) for the demo's data interval, waits for it, and reads every task instance's duration
from the REST API. Mode ``off`` sets ``TWEETPIPE_PRELOAD=0`` (each task process imports Great
Expectations and the steps itself, as before the preload); mode ``on`` is the profile as shipped
(:func:`etl.adapters.airflow.preload.preload_for_airflow` in the scheduler).

It prints, per mode, the mean duration of each per-source task, the mean task-seconds per source
and the issue's ratio: task-seconds per source / (tasks per source x mean duration of the
cheapest per-source task), target at most 2. Results go to ``bench/out/airflow.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from statistics import mean
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from etl.adapters.airflow.preload import PRELOAD_ENV  # noqa: E402
from etl.tools import airflow_local  # noqa: E402
from etl.tools.demo import DEMO_LOGICAL_DATE  # noqa: E402

DAG_ID = "tweetpipe"
ACCOUNTS = ["ada_builds", "tomas_ng", "quietriver", "nadia_k", "pixelfox"]
QUERIES = ["python", "data", "sql", "rust", "cloud", "ai", "open source", "pipeline", "test"]
TARGET = 2.0


def sources(n: int) -> list[str]:
    """N distinct sources: the emulator's accounts first, then search queries."""
    pool = [f"account:{a}" for a in ACCOUNTS] + [f"query:{q}" for q in QUERIES]
    pool += [f"query:{q} -is:retweet" for q in QUERIES] + [f"query:{q} lang:en" for q in QUERIES]
    if n > len(pool):
        raise SystemExit(f"at most {len(pool)} sources")
    return pool[:n]


class _Api:
    def __init__(self, url: str, username: str, password: str) -> None:
        import requests

        self.url = url
        token = requests.post(
            f"{url}/auth/token", json={"username": username, "password": password}, timeout=30
        ).json()["access_token"]
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.session.request(method, f"{self.url}/api/v2{path}", timeout=60, **kwargs)
        resp.raise_for_status()
        return resp.json()


def _wait(what: str, probe: Any, timeout: float, interval: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def run_mode(mode: str, n: int, timeout: float) -> dict[str, Any]:
    """Start a local Airflow in ``mode``, run the DAG over N sources, return the durations."""
    os.environ[PRELOAD_ENV] = "1" if mode == "on" else "0"
    with tempfile.TemporaryDirectory(prefix=f"tweetpipe-bench-{mode}-") as tmp:
        directory = Path(tmp)
        port = airflow_local.free_port()
        started = time.monotonic()
        inst = airflow_local.start_local_airflow(
            directory, port=port, timeout=600, scheduled_runs=False
        )
        try:
            up = time.monotonic() - started
            api = _Api(inst.url, inst.username, inst.password)
            _wait(
                "the DAG to be parsed",
                lambda: api.call("GET", "/dags", params={"dag_id_pattern": DAG_ID})[
                    "total_entries"
                ],
                300,
            )
            api.call("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
            run_id = f"bench-{mode}"
            start, end = DEMO_LOGICAL_DATE - timedelta(days=1), DEMO_LOGICAL_DATE
            api.call(
                "POST",
                f"/dags/{DAG_ID}/dagRuns",
                json={
                    "dag_run_id": run_id,
                    "logical_date": end.isoformat(),
                    "data_interval_start": start.isoformat(),
                    "data_interval_end": end.isoformat(),
                    "conf": {"sources": sources(n)},
                },
            )
            run = _wait(
                "the run to finish",
                lambda: (
                    d
                    if (d := api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}"))["state"]
                    in ("success", "failed")
                    else None
                ),
                timeout,
            )
            tis = api.call(
                "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}
            )["task_instances"]
            phases = task_phases(inst.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}")
        finally:
            airflow_local.stop_local_airflow(directory)
    report = _report(mode, n, up, run, tis)
    report["parallelism"] = int(
        os.environ.get(airflow_local.PARALLELISM_SETTING, airflow_local.local_parallelism())
    )
    report["phases"] = _phase_means(phases, tis)
    return report


def _timestamp(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(entry["timestamp"]).replace("Z", "+00:00")).timestamp()


def _log_phases(path: Path) -> dict[str, float] | None:
    """Where one task process spent its time, from its own log's timestamps.

    ``pre``: from the first line to the end of Airflow's "Pre Execute" group (DAG file parse,
    OpenLineage START); ``execute``: the task function; ``post``: XCom push, OpenLineage
    COMPLETE, to the last line.
    """
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and "timestamp" in entry:
                entries.append(entry)
    events = [str(e.get("event", "")) for e in entries]
    if "::endgroup::" not in events or "::group::Post Execute" not in events:
        return None
    first, last = _timestamp(entries[0]), _timestamp(entries[-1])
    pre_end = _timestamp(entries[events.index("::endgroup::")])
    post = _timestamp(entries[events.index("::group::Post Execute")])
    return {"pre": pre_end - first, "execute": post - pre_end, "post": last - post}


def task_phases(run_dir: Path) -> dict[str, list[dict[str, float]]]:
    """Per task id, the phases of each of its first attempts' logs under ``run_dir``."""
    found: dict[str, list[dict[str, float]]] = {}
    for path in sorted(run_dir.glob("task_id=*/map_index=*/attempt=1.log")):
        phases = _log_phases(path)
        if phases is not None:
            task_id = path.parent.parent.name.split("=", 1)[1]
            found.setdefault(task_id, []).append(phases)
    return found


def _phase_means(
    phases: dict[str, list[dict[str, float]]], tis: list[dict[str, Any]]
) -> dict[str, dict[str, float]]:
    """Mean phases per per-source task, next to Airflow's mean ``duration`` of the task (which
    ends when the task reports its state, before the OpenLineage COMPLETE event of ``post``)."""
    durations: dict[str, list[float]] = {}
    for ti in tis:
        durations.setdefault(ti["task_id"], []).append(float(ti.get("duration") or 0.0))
    means: dict[str, dict[str, float]] = {}
    for task_id, found in sorted(phases.items()):
        if not task_id.startswith("per_source."):
            continue
        row = {"duration": mean(durations[task_id])}
        row |= {k: mean(p[k] for p in found) for k in ("pre", "execute", "post")}
        means[task_id] = {k: round(v, 3) for k, v in row.items()}
    return means


def _report(
    mode: str, n: int, up: float, run: dict[str, Any], tis: list[dict[str, Any]]
) -> dict[str, Any]:
    per_task: dict[str, list[float]] = {}
    for ti in tis:
        per_task.setdefault(ti["task_id"], []).append(float(ti.get("duration") or 0.0))
    per_source = {t: d for t, d in per_task.items() if t.startswith("per_source.")}
    means = {t: mean(d) for t, d in per_source.items()}
    seconds_per_source = sum(sum(d) for d in per_source.values()) / n
    floor = len(per_source) * min(means.values())
    return {
        "mode": mode,
        "sources": n,
        "state": run["state"],
        "startup_seconds": round(up, 1),
        "run_seconds": round(float(run.get("duration") or 0.0), 1),
        "mean_task_seconds": {t: round(v, 3) for t, v in sorted(means.items())},
        "other_tasks": {t: round(mean(d), 3) for t, d in per_task.items() if t not in per_source},
        "task_seconds_per_source": round(seconds_per_source, 3),
        "floor": round(floor, 3),
        "ratio": round(seconds_per_source / floor, 2),
    }


def _print(results: list[dict[str, Any]]) -> None:
    tasks = sorted({t for r in results for t in r["mean_task_seconds"]})
    head = f"{'per-source task (mean s)':32}" + "".join(f"{r['mode']:>12}" for r in results)
    print(head)
    for t in tasks:
        print(f"{t:32}" + "".join(f"{r['mean_task_seconds'].get(t, 0):12.2f}" for r in results))
    for label, key in (
        ("task-seconds per source", "task_seconds_per_source"),
        ("floor (tasks x cheapest)", "floor"),
        ("ratio (target <= 2)", "ratio"),
        ("run wall time (s)", "run_seconds"),
        ("airflow up (s)", "startup_seconds"),
    ):
        print(f"{label:32}" + "".join(f"{r[key]:12.2f}" for r in results))
    print(f"{'run state':32}" + "".join(f"{r['state']:>12}" for r in results))
    print(f"{'parallelism':32}" + "".join(f"{r['parallelism']:>12}" for r in results))
    print("where a task's seconds go (Airflow's duration; phases from the task log's timestamps):")
    for r in results:
        for task_id, row in r["phases"].items():
            cells = "  ".join(f"{k} {v:5.2f}" for k, v in row.items())
            print(f"  {r['mode']:>3} {task_id:30} {cells}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=20)
    parser.add_argument("--modes", nargs="+", choices=("off", "on"), default=["off", "on"])
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    parser.add_argument(
        "--parallelism",
        type=int,
        help="the LocalExecutor's task slots (default: the profile's, one per CPU)",
    )
    args = parser.parse_args(argv)
    if args.parallelism is not None:
        if not 1 <= args.parallelism <= 64:
            parser.error("--parallelism must be from 1 to 64")
        os.environ[airflow_local.PARALLELISM_SETTING] = str(args.parallelism)
    results = [run_mode(mode, args.sources, args.timeout) for mode in args.modes]
    _print(results)
    out = BENCH / "out"
    out.mkdir(exist_ok=True)
    (out / "airflow.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    on = next((r for r in results if r["mode"] == "on"), None)
    return 0 if on is None or (on["ratio"] <= TARGET and on["state"] == "success") else 1


if __name__ == "__main__":
    sys.exit(main())
