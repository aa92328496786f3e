"""Long-horizon benchmark: a year of daily runs, does the last run cost what the first did?

Runs ``--days`` daily intervals (default 365, the oldest first, ending yesterday) of ``--sources``
(default: the five of ``pipeline.yaml``) through the DAG's own task functions, in this process,
against the bundled X API emulator on 127.0.0.1 (its corpus covers the last 400 days, see
``etl.tools.emulator.corpus``) and a fresh local-directory store:

    extract -> validate_raw -> transform -> validate_curated -> publish   (each source)
    build_docs -> apply_retention                                          (each run)

exactly as ``dags/tweetpipe_dag.py`` chains them (``etl.adapters.airflow.tasks`` and
``etl.adapters.airflow.retention``; the payloads go through a JSON round trip as XCom would). The
docs are built by the DAG's ``build_docs`` task function, so whatever that calls (today the
incremental ``etl.steps.quality.docs_site.build_docs``) is what is measured. Retention applies
``pipeline.yaml``'s rules plus ``raw_days: 400``.

The process stays warm (one interpreter, modules imported once; one warm-up run into a
throw-away store before the measured ones). For each run it records the wall time of the
per-source chain, of the docs build and of retention, and the bytes the run wrote to the store
(every ``put``, ``put_file``, ``put_once`` and ``copy``, rewrites included). It prints them at
days 1, 30, 180 and 365 (those within ``--days``, and the last), with the median of the five runs
around each day (the machine is shared, single runs are noisy), and the totals; all runs go to
``bench/out/backfill-<days>.json``.

    python bench/bench_backfill.py --days 365        # the full year (hours on a 2-core machine)
    python bench/bench_backfill.py --days 30         # the short form

Target (issue 15): the last run within 1.2x of the first, docs build included.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from etl.storage.store import LocalStore  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

OUT = BENCH / "out"
TARGET = 1.2
CHECKPOINTS = (1, 30, 180, 365)
DEFAULT_SOURCES = (
    "account:ada_builds",
    "account:tomas_ng",
    "account:quietriver",
    "query:python",
    "query:#dataeng -is:retweet",
)
TOKEN = "bench-backfill-token"  # noqa: S105 - the emulator's, on loopback only
CONFIG = """\
sources: {}
retention:
  raw_days: 400
"""


class _ByteCounter:
    """Counts the bytes every LocalStore write sends, by wrapping the class's write methods."""

    def __init__(self) -> None:
        self.written = 0
        self._saved: dict[str, Callable[..., Any]] = {}

    def install(self) -> None:
        counter = self
        originals = {n: getattr(LocalStore, n) for n in ("put", "put_file", "put_once", "copy")}
        self._saved = originals

        def put(store: LocalStore, key: str, body: bytes, *a: Any, **k: Any) -> Any:
            counter.written += len(body)
            return originals["put"](store, key, body, *a, **k)

        def put_once(store: LocalStore, key: str, body: bytes, *a: Any, **k: Any) -> Any:
            counter.written += len(body)
            return originals["put_once"](store, key, body, *a, **k)

        def put_file(store: LocalStore, key: str, path: Path, *a: Any, **k: Any) -> Any:
            counter.written += Path(path).stat().st_size
            return originals["put_file"](store, key, path, *a, **k)

        def copy(store: LocalStore, src: str, dst: str) -> Any:
            counter.written += store._path(src).stat().st_size  # noqa: SLF001
            return originals["copy"](store, src, dst)

        for name, fn in (("put", put), ("put_once", put_once), ("put_file", put_file)):
            setattr(LocalStore, name, fn)
        LocalStore.copy = copy  # type: ignore[method-assign]

    def take(self) -> int:
        written, self.written = self.written, 0
        return written


def _xcom(payload: Any) -> Any:
    return json.loads(json.dumps(payload))


def _run_one_day(params: dict[str, Any], start: datetime, sources: list[Any]) -> dict[str, Any]:
    """One DAG run for ``[start, start + 1 day)``: every source, then docs, then retention."""
    from etl.adapters.airflow import docs, retention, tasks

    end = start + timedelta(days=1)
    run_id = f"backfill__{start:%Y-%m-%dT%H:%M:%S}+00:00"
    began = time.perf_counter()
    curated = 0
    for planned in sources:
        landed = _xcom(tasks.extract(planned, params, start, end))
        checked = _xcom(tasks.validate_raw(landed, params, run_id))
        staged = _xcom(tasks.transform(checked, params))
        audited = _xcom(tasks.validate_curated(staged, params, run_id))
        tasks.publish(audited, params)
        curated += int(staged["report"]["curated"])
    chain = time.perf_counter()
    built = _xcom(docs.build_docs(params, run_id))  # renders only this run's validations
    docs_done = time.perf_counter()
    kept = _xcom(retention.apply_retention(params))
    done = time.perf_counter()
    return {
        "interval": start.date().isoformat(),
        "seconds": round(done - began, 3),
        "chain_seconds": round(chain - began, 3),
        "docs_seconds": round(docs_done - chain, 3),
        "retention_seconds": round(done - docs_done, 3),
        "curated": curated,
        "docs_files": built["files"],
        "retention_deleted": kept["objects"],
        "retention_scanned": kept["scanned"],
    }


@contextmanager
def _emulator(days: int) -> Iterator[str]:
    """The emulator with the last ``days`` days (and a margin) on a free loopback port."""
    from etl.tools.demo import x_connection
    from etl.tools.emulator import Corpus, start_emulator

    corpus = Corpus(recent_days=days + 5)
    server = start_emulator(corpus=corpus, token=TOKEN, port=0)
    saved = os.environ.get("AIRFLOW_CONN_X_API_DEFAULT")
    os.environ["AIRFLOW_CONN_X_API_DEFAULT"] = x_connection(server.base_url, TOKEN)
    try:
        yield server.base_url
    finally:
        server.stop()
        if saved is None:
            os.environ.pop("AIRFLOW_CONN_X_API_DEFAULT", None)
        else:
            os.environ["AIRFLOW_CONN_X_API_DEFAULT"] = saved


def _around(runs: list[dict[str, Any]], day: int, field: str) -> float:
    """The median of ``field`` over the five runs centred on ``day`` (1-based), within range."""
    lo, hi = max(0, day - 3), min(len(runs), day + 2)
    return float(statistics.median(r[field] for r in runs[lo:hi]))


def _table(runs: list[dict[str, Any]]) -> list[str]:
    days = sorted({d for d in CHECKPOINTS if d <= len(runs)} | {len(runs)})
    lines = [
        f"{'day':>4} {'interval':>10} {'run s':>7} {'median5 s':>9} {'chain s':>8} "
        f"{'docs s':>7} {'retain s':>8} {'written MB':>10} {'median5 MB':>10} {'curated':>7}"
    ]
    for day in days:
        r = runs[day - 1]
        lines.append(
            f"{day:>4} {r['interval']:>10} {r['seconds']:>7.2f} "
            f"{_around(runs, day, 'seconds'):>9.2f} {r['chain_seconds']:>8.2f} "
            f"{r['docs_seconds']:>7.2f} {r['retention_seconds']:>8.3f} "
            f"{r['bytes_written'] / 1e6:>10.2f} {_around(runs, day, 'bytes_written') / 1e6:>10.2f} "
            f"{r['curated']:>7}"
        )
    return lines


def run(days: int, sources_text: list[str], out: Path) -> dict[str, Any]:
    """Run the benchmark; returns the results written to ``out``."""
    from etl.adapters.airflow import tasks

    work = OUT / f"backfill-{days}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "store").mkdir(parents=True)
    (work / "warm-up").mkdir()
    config = work / "pipeline.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    counter = _ByteCounter()
    counter.install()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=days)
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    with _emulator(days + 1) as base_url:
        params: dict[str, Any] = {"sources": sources_text, "config": str(config)}
        sources = _xcom(tasks.plan_sources({**params, "store": str(work / "store")}))
        # Warm-up: imports, GX's first context, bytecode; into a store that is then dropped.
        _run_one_day({**params, "store": str(work / "warm-up")}, first - timedelta(days=1), sources)
        counter.take()
        params["store"] = str(work / "store")
        for n in range(days):
            result = _run_one_day(params, first + timedelta(days=n), sources)
            result["bytes_written"] = counter.take()
            runs.append(result)
            print(
                f"day {n + 1}/{days} {result['interval']}: {result['seconds']:.2f} s "
                f"(docs {result['docs_seconds']:.2f} s), {result['bytes_written'] / 1e6:.2f} MB",
                flush=True,
            )
    total = time.perf_counter() - started
    ratio = _around(runs, len(runs), "seconds") / _around(runs, 1, "seconds")
    results = {
        "days": days,
        "sources": sources_text,
        "emulator": base_url,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "total_seconds": round(total, 1),
        "total_bytes_written": sum(r["bytes_written"] for r in runs),
        "store_bytes": sum(p.stat().st_size for p in (work / "store").rglob("*") if p.is_file()),
        "ratio_last_to_first": round(ratio, 3),
        "target": TARGET,
        "runs": runs,
    }
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--days", type=int, default=365, help="daily intervals (default 365)")
    parser.add_argument(
        "--source", action="append", metavar="SPEC", help="account:NAME or query:TEXT (repeat)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.days <= 395:
        parser.error("--days must be from 1 to 395 (the emulator covers the last 400 days)")
    # GX logs every closure it skips at INFO, hundreds of lines a run; the table is what counts.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    OUT.mkdir(exist_ok=True)
    out = OUT / f"backfill-{args.days}.json"
    results = run(args.days, list(args.source or DEFAULT_SOURCES), out)
    runs = results["runs"]
    print("\n".join(_table(runs)))
    print(
        f"total: {results['total_seconds']:.0f} s for {args.days} runs of "
        f"{len(results['sources'])} sources (warm-up included); "
        f"{results['total_bytes_written'] / 1e6:.1f} MB written, store "
        f"{results['store_bytes'] / 1e6:.1f} MB"
    )
    ratio = results["ratio_last_to_first"]
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"last/first run (median of 5): {ratio:.2f}x, target <= {TARGET}x: {verdict}")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
