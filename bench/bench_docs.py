"""Benchmark one run's Data Docs build on a store with a short and with a long history.

Two local stores hold the published site of ``--small`` and ``--large`` earlier validations (daily
runs of 3 sources, 2 gates each, so 2,000 validations span about 11 months): the results under
``docs/results/``, a page for each under ``docs/validations/``, and the month-split index, as the
incremental build leaves them. The history is seeded from one real checkpoint result, renamed per
run (the build lists the pages and never reads them, so their content does not change its cost).
Then, alternating between the two stores, ``--repeat`` times: one more run's 6 validations are
saved, and ``build_docs`` (what ``tweetpipe docs build`` and the DAG's task call) is timed, with
the bytes it writes to the published site. GX is imported once before, by a warm-up build, since
it costs both the same.

``--old`` also times the build this one replaced (download every result, GX rebuilds the whole
site, upload all of it) at ``--old-sizes``.

``--retention`` then applies retention to the large store, counting its requests to the index
(``docs/index*``): a rule that expires nothing; one that expires the oldest day's pages (the index
of its month is rewritten before they go), then their results; then a 90-day rule on the whole
history at once.

    python bench/bench_docs.py [--small 20] [--large 2000] [--repeat 3] [--old] [--retention]

Targets (issue 15): time ratio large/small at most 1.5x; bytes written per run a few MB at most.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from etl.steps.quality import validate_curated_bytes  # noqa: E402
from etl.steps.quality.docs import build_docs_from_store, publish_docs  # noqa: E402
from etl.steps.quality.docs_index import (  # noqa: E402
    IndexState,
    fragment_path,
    month_of,
    render_months,
)
from etl.steps.quality.docs_page import PageContext  # noqa: E402
from etl.steps.quality.docs_site import build_docs, index_entry, page_for  # noqa: E402
from etl.storage.keys import VALIDATIONS_DIR, docs_validation_time, partition_for  # noqa: E402
from etl.storage.store import LocalStore  # noqa: E402

OUT = BENCH / "out"
TIME_TARGET = 1.5
BYTES_TARGET = 4 * 1024 * 1024
SOURCES = ("account-ada", "account-bob", "query-python")
SUITES = ("tweets_curated", "x_api_v2_tweets_page")
START = datetime(2023, 3, 14, tzinfo=UTC)


def _template(work: Path) -> tuple[dict[str, Any], str]:
    """One real curated-gate result and its rendered page (the history is copies of them)."""
    header = "tweet_id,author_id,author_username,created_at,text\n"
    rows = "".join(f"17{i:017d},12,ada,2023-03-14T10:00:00.000Z,post {i}\n" for i in range(5))
    body = (header + rows).encode()
    summary = validate_curated_bytes(
        body,
        docs_dir=work / "gx",
        run_name="template",
        interval_start=START,
        interval_end=START + timedelta(days=1),
        report=None,
        partition=partition_for("account-ada", START, START + timedelta(days=1)),
    )
    (result,) = (work / "gx" / "results").rglob("*.json")
    doc = json.loads(result.read_text(encoding="utf-8"))
    page = (work / "gx" / str(summary.docs_page)).read_text(encoding="utf-8")
    return doc, page


def _result(
    doc: dict[str, Any], suite: str, source: str, run_at: datetime, when: datetime
) -> tuple[str, str]:
    run = f"{_run_id(run_at)}__{source}"
    copy = json.loads(json.dumps(doc))
    copy["suite_name"] = suite
    copy["meta"]["run_id"] = {"run_name": run, "run_time": when.isoformat()}
    copy["meta"]["tweetpipe"]["source"] = source
    stamp = when.strftime("%Y%m%dT%H%M%S.%fZ")
    return f"results/{suite}/{run}/{stamp}/tweetpipe-{suite}.json", json.dumps(copy)


def _run_id(when: datetime) -> str:
    return f"scheduled__{when:%Y-%m-%dT%H:%M:%S}"


def _run_results(doc: dict[str, Any], when: datetime) -> list[tuple[str, str]]:
    return [
        _result(doc, suite, source, when, when + timedelta(seconds=i))
        for i, (source, suite) in enumerate((s, t) for s in SOURCES for t in SUITES)
    ]


def _seed(root: Path, doc: dict[str, Any], page: str, count: int, now: datetime) -> LocalStore:
    """A store whose published site already holds ``count`` validations, daily runs back from now."""
    store = LocalStore(root)
    docs = root / "docs"
    ctx = PageContext.for_store(store)
    entries: list[dict[str, Any]] = []
    runs = -(-count // (len(SOURCES) * len(SUITES)))

    def write(site_path: str, text: str) -> None:
        (docs / site_path).parent.mkdir(parents=True, exist_ok=True)
        (docs / site_path).write_text(text, encoding="utf-8")

    for day in range(runs, 0, -1):
        run = []
        for path, text in _run_results(doc, now - timedelta(days=day))[: count - len(entries)]:
            (docs / path).parent.mkdir(parents=True, exist_ok=True)
            (docs / path).write_text(text, encoding="utf-8")
            (docs / page_for(path)).parent.mkdir(parents=True, exist_ok=True)
            (docs / page_for(path)).write_text(page, encoding="utf-8")
            run.append(index_entry(json.loads(text), path, ctx))
        # One fragment per daily build, as the DAG's build_docs leaves them.
        write(fragment_path(month_of(run[0]), run), json.dumps(run, sort_keys=True, indent=0))
        entries += run
    months: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        months.setdefault(month_of(entry), []).append(entry)
    render_months(IndexState(), months, write)
    return store


def _add_run(store: LocalStore, doc: dict[str, Any], when: datetime) -> None:
    for path, text in _run_results(doc, when):
        store.put(f"docs/{path}", text.encode(), "application/json")


def _timed_build(store: LocalStore, work: Path, runs: list[str] | None) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    began = time.perf_counter()
    build = build_docs(store, work, runs=runs)
    took = time.perf_counter() - began
    return {
        "seconds": took,
        "bytes": build.bytes_written,
        "files": len(build.written),
        "rendered": build.rendered,
        "results": build.results,
    }


def _old_build(root: Path, doc: dict[str, Any], count: int, now: datetime) -> dict[str, Any]:
    store = LocalStore(root)
    runs = -(-count // 6)
    written = 0
    for day in range(runs, 0, -1):
        for path, text in _run_results(doc, now - timedelta(days=day))[: count - written]:
            store.put(f"docs/{path}", text.encode(), "application/json")
            written += 1
    with tempfile.TemporaryDirectory(prefix="bench-docs-old-") as tmp:
        began = time.perf_counter()
        site = build_docs_from_store(store, Path(tmp))
        keys = publish_docs(site, store)
        took = time.perf_counter() - began
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    return {"validations": count, "seconds": took, "bytes": size, "files": len(keys)}


class _Counted:
    """A store that counts requests, those to the index (``docs/index*``) apart, and bytes put."""

    _OPS = ("get", "put", "put_file", "exists", "list", "scan", "delete_many")

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner
        self.ops: collections.Counter[str] = collections.Counter()
        self.index_bytes = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self._OPS:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            key = args[0] if args else ""
            index = isinstance(key, str) and key.startswith("docs/index")
            self.ops[f"{name} {'index' if index else 'other'}"] += 1
            if index and name == "put":
                self.index_bytes += len(args[1])
            return attr(*args, **kwargs)

        return call


def _retention_costs(root: Path, now: datetime) -> list[dict[str, Any]]:
    """Retention on the large store, counting its requests to the index, in four runs: a rule
    that expires nothing; one day's pages (what each daily run meets once the history is older
    than the rule); that day's results too; then a rule of 90 days set on the whole history at
    once (the first run after a deployment adopts it: most months expire together)."""
    from etl.config import RetentionPolicy
    from etl.steps.quality.docs_site import mark_expired
    from etl.steps.retain import apply_retention

    inner = LocalStore(root)
    times = (docs_validation_time(k, VALIDATIONS_DIR) for k in inner.list("docs/validations/"))
    oldest = min(t for t in times if t is not None)
    # Whole days from the oldest validation's next day to now: the rule that expires its day.
    one_day = math.floor((now - oldest - timedelta(days=1)) / timedelta(days=1))
    cases = (
        ("nothing expires", RetentionPolicy(docs_pages_days=one_day + 30)),
        ("one day's pages", RetentionPolicy(docs_pages_days=one_day)),
        ("their results too", RetentionPolicy(docs_pages_days=one_day, docs_results_days=one_day)),
        ("90 days, first time", RetentionPolicy(docs_pages_days=90)),
    )
    rows = []
    for name, policy in cases:
        store = _Counted(inner)
        began = time.perf_counter()
        report = apply_retention(
            store,  # type: ignore[arg-type]
            policy,
            now=now,
            docs_index=lambda expiry, s=store: mark_expired(s, expiry),  # type: ignore[misc]
        )
        took = time.perf_counter() - began
        index = {k.split()[0]: v for k, v in store.ops.items() if k.endswith(" index")}
        months = {k.split("/")[2] for k in report.index_written if k.endswith("expired.json")}
        rows.append(
            {
                "case": name,
                "seconds": took,
                "deleted": report.objects,
                "months": len(months),
                "index_requests": index,
                "index_written": len(report.index_written),
                "index_bytes": store.index_bytes,
                "other_requests": sum(v for k, v in store.ops.items() if k.endswith(" other")),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--old", action="store_true", help="also time the old full rebuild")
    parser.add_argument("--old-sizes", type=int, nargs="*", default=[20, 400])
    parser.add_argument(
        "--retention", action="store_true", help="also count what retention costs the index"
    )
    args = parser.parse_args(argv)

    work = OUT / "work" / "docs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    now = datetime.now(UTC).replace(microsecond=0)
    doc, page = _template(work / "template")
    stores = {n: _seed(work / f"store-{n}", doc, page, n, now) for n in (args.small, args.large)}
    # Warm-up on a third store: imports GX, renders the shared files once (as any first build).
    warm = _seed(work / "store-warm", doc, page, 6, now)
    _add_run(warm, doc, now)
    _timed_build(warm, work / "build", None)
    for store in stores.values():  # the first build of each store publishes its shared files
        _add_run(store, doc, now)
        _timed_build(store, work / "build", None)

    samples: dict[int, list[dict[str, Any]]] = {n: [] for n in stores}
    whole: dict[int, list[dict[str, Any]]] = {n: [] for n in stores}
    for i in range(args.repeat):
        for n, store in stores.items():
            # The DAG's build: its run's results only (run_prefix of the run id).
            when = now + timedelta(minutes=2 * i + 1)
            _add_run(store, doc, when)
            samples[n].append(_timed_build(store, work / "build", [_run_id(when) + "__"]))
            # tweetpipe docs build: every result of the store compared with the pages.
            _add_run(store, doc, when + timedelta(minutes=1))
            whole[n].append(_timed_build(store, work / "build", None))
    table = {
        n: {
            "earlier_validations": n,
            "median_seconds": statistics.median(s["seconds"] for s in runs),
            "max_bytes": max(s["bytes"] for s in runs),
            "files": max(s["files"] for s in runs),
            "rendered": runs[-1]["rendered"],
        }
        for n, runs in samples.items()
    }
    ratio = table[args.large]["median_seconds"] / table[args.small]["median_seconds"]
    whole_s = {n: statistics.median(s["seconds"] for s in runs) for n, runs in whole.items()}
    print(
        f"{'earlier validations':>20} {'median s':>9} {'bytes written':>14} {'files':>6} {'pages':>6}"
    )
    for row in table.values():
        print(
            f"{row['earlier_validations']:>20} {row['median_seconds']:>9.3f} "
            f"{row['max_bytes']:>14,} {row['files']:>6} {row['rendered']:>6}"
        )
    print(f"time ratio {args.large}/{args.small}: {ratio:.2f}x (target <= {TIME_TARGET}x)")
    print(
        "whole-store diff (tweetpipe docs build, no run given): "
        + ", ".join(f"{n}: {t:.3f} s" for n, t in whole_s.items())
        + f", ratio {whole_s[args.large] / whole_s[args.small]:.2f}x"
    )
    old = []
    if args.old:
        for n in args.old_sizes:
            old.append(_old_build(work / f"old-{n}", doc, n, now))
            print(
                f"old full rebuild, {n:>5} validations: {old[-1]['seconds']:.2f} s, "
                f"{old[-1]['bytes']:,} bytes uploaded in {old[-1]['files']} files"
            )
    retention = []
    if args.retention:
        retention = _retention_costs(work / f"store-{args.large}", now)
        for row in retention:
            print(
                f"retention, {row['case']:>20}: {row['seconds']:.3f} s, {row['deleted']:>4} "
                f"objects deleted in {row['months']} months; index requests "
                f"{dict(sorted(row['index_requests'].items()))} ({row['index_written']} files, "
                f"{row['index_bytes']:,} bytes written)"
            )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "docs.json").write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "when": now.isoformat(),
                "runs": samples,
                "whole_store": whole,
                "table": list(table.values()),
                "ratio": ratio,
                "old": old,
                "retention": retention,
            },
            indent=1,
            default=str,
        ),
        encoding="utf-8",
    )
    worst = max(row["max_bytes"] for row in table.values())
    ok = ratio <= TIME_TARGET and worst <= BYTES_TARGET
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
