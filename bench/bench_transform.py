"""Benchmark ``tweetpipe transform`` against the naive baseline on the same generated input.

For each size the input is generated once (``bench/generate.py``, fixed seed) and reused. Each
command runs as a child process; wall time is measured around it and peak RSS is the child's own
``ru_maxrss`` from ``os.wait4``. Runs alternate between the two tools so machine load hits both,
and the median wall time of ``--repeat`` runs is kept. The naive baseline holds everything in
memory, so by default it runs only up to ``--naive-max`` posts.

    python bench/bench_transform.py --sizes 100000 1000000 --repeat 3

Targets (issue 3): at 100,000 posts the transform is at least 2.5x faster than the baseline; its
peak RSS at 1,000,000 posts is at most 1.3x its peak at 100,000.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from generate import write_jsonl

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
SPEED_TARGET = 2.5
MEMORY_TARGET = 1.3


def _run(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; wall seconds and peak RSS in MiB of that child alone."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def _commands(data: Path, size: int) -> dict[str, list[str]]:
    work = OUT / "work" / str(size)
    return {
        "tweetpipe": [sys.executable, "-m", "etl.cli", "transform", str(data), "--out", str(work)],
        "naive": [
            sys.executable,
            str(BENCH / "naive_transform.py"),
            str(data),
            str(work / "naive.csv"),
        ],
    }


def bench_size(size: int, seed: int, repeat: int, naive: bool) -> dict[str, dict[str, float]]:
    """Measure both tools on ``size`` posts; per tool the median wall time and the peak RSS."""
    data = OUT / "data" / f"tweets-{size}-seed{seed}.jsonl"
    if not data.exists():
        print(f"generating {data} ...", file=sys.stderr)
        write_jsonl(data, size, seed)
    tools = _commands(data, size)
    if not naive:
        del tools["naive"]
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in tools}
    for _ in range(repeat):
        for name, cmd in tools.items():
            runs[name].append(_run(cmd))
            print(f"{size:>9} {name:<10} {runs[name][-1][0]:7.2f} s", file=sys.stderr)
    return {
        name: {
            "wall_s": statistics.median(w for w, _ in samples),
            "peak_rss_mib": max(r for _, r in samples),
            "input_mib": data.stat().st_size / 2**20,
        }
        for name, samples in runs.items()
    }


def _table(results: dict[int, dict[str, dict[str, float]]]) -> str:
    lines = [
        "| posts | tool | wall time (s) | peak RSS (MiB) | speed-up vs naive |",
        "|---:|---|---:|---:|---:|",
    ]
    for size, tools in results.items():
        naive = tools.get("naive")
        for name, m in tools.items():
            ratio = f"{naive['wall_s'] / m['wall_s']:.2f}x" if naive else "—"
            lines.append(
                f"| {size:,} | {name} | {m['wall_s']:.2f} | {m['peak_rss_mib']:.0f} | {ratio} |"
            )
    return "\n".join(lines)


def _verdicts(results: dict[int, dict[str, dict[str, float]]]) -> dict[str, object]:
    out: dict[str, object] = {}
    small, large = min(results), max(results)
    if "naive" in results[small]:
        speed = results[small]["naive"]["wall_s"] / results[small]["tweetpipe"]["wall_s"]
        out["speedup_at_smallest"] = {"posts": small, "ratio": speed, "target": SPEED_TARGET}
    if large != small:
        grow = (
            results[large]["tweetpipe"]["peak_rss_mib"]
            / results[small]["tweetpipe"]["peak_rss_mib"]
        )
        out["rss_growth"] = {"from": small, "to": large, "ratio": grow, "target": MEMORY_TARGET}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--naive-max", type=int, default=100_000)
    args = parser.parse_args()
    os.chdir(BENCH.parent)  # `-m etl.cli` resolves against the repository
    results = {
        size: bench_size(size, args.seed, args.repeat, naive=size <= args.naive_max)
        for size in sorted(args.sizes)
    }
    table = _table(results)
    verdicts = _verdicts(results)
    OUT.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "transform",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "repeat": args.repeat,
        "results": {str(k): v for k, v in results.items()},
        "verdicts": verdicts,
        "table": table,
    }
    (OUT / "transform.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(table)
    for name, v in verdicts.items():
        assert isinstance(v, dict)
        ok = v["ratio"] >= v["target"] if name.startswith("speed") else v["ratio"] <= v["target"]
        print(f"{name}: {v['ratio']:.2f}x (target {v['target']}x) {'PASS' if ok else 'FAIL'}")
    print(f"results: {OUT / 'transform.json'}")


if __name__ == "__main__":
    main()
