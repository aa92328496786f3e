"""Benchmark ``tweetpipe transform`` against the naive baseline on the same generated input.

For each size the input is generated once (``bench/generate.py``, fixed seed) and reused. Both
tools run in an environment like a user's, built from ``uv.lock`` without the dev group
(``bench/out/venv``): in the dev environment pandera also imports hypothesis's strategies on its
first validation, which an installed ``tweetpipe`` does not have.

Each command runs as a child process. Timed runs measure wall time around it and CPU time as the
child's user + system time (its worker processes included) from ``os.wait4``; nothing else runs
meanwhile. Peak RSS comes from separate runs, one per tool and size, that sample the resident
memory of the child and its worker processes every 20 ms with psutil: the sampling costs CPU,
which on a small machine would slow a tool using every core more than one using a single core,
so it stays out of the timings. Timed runs alternate between the tools so machine load hits all
of them, and the median of ``--repeat`` runs is kept. Before measuring, each tool runs once on a
small input so Python's bytecode cache is warm for both (as on any machine after the first run).
``tweetpipe`` runs as a user runs it (default workers: one per CPU for inputs this large) and,
for reference, with ``--workers 1``. The naive baseline holds everything in memory, so by
default it runs only up to ``--naive-max`` posts.

    python bench/bench_transform.py --sizes 100000 1000000 --repeat 3

Targets (issue 3): at 100,000 posts the transform is at least 2.5x faster than the baseline; its
peak RSS at 1,000,000 posts is at most 1.3x its peak at 100,000.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
from generate import write_jsonl

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
SPEED_TARGET = 2.5
MEMORY_TARGET = 1.3


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in (proc, *proc.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _run(cmd: list[str], watch: bool = False) -> dict[str, float]:
    """Run ``cmd``: wall and CPU seconds; with ``watch``, also the peak RSS (MiB) of it and its
    workers together."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = 0
    if watch:
        watched = psutil.Process(proc.pid)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _tree_rss(watched))
            time.sleep(0.02)
    else:
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode not in (0, 1):  # 1: a gate breach is a result, not a crash
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    peak = max(peak, usage.ru_maxrss * 1024)  # Linux reports KiB; covers a run shorter than 20 ms
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": peak / 2**20}


@functools.cache
def user_env() -> Path:
    """The ``bin`` directory of an environment with the locked runtime dependencies only."""
    venv = OUT / "venv"
    uv = os.environ.get("UV") or shutil.which("uv")
    command = [uv] if uv else [sys.executable, "-m", "uv"]
    subprocess.run(
        [*command, "sync", "--frozen", "--no-dev", "--quiet"],
        cwd=BENCH.parent,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)},
        check=True,
    )
    return venv / "bin"


def _commands(data: Path, size: int) -> dict[str, list[str]]:
    work = OUT / "work" / str(size)
    bin_dir = user_env()
    tweetpipe = [str(bin_dir / "tweetpipe"), "transform", str(data)]
    return {
        "tweetpipe": [*tweetpipe, "--out", str(work / "default")],
        "tweetpipe --workers 1": [*tweetpipe, "--out", str(work / "one"), "--workers", "1"],
        "naive": [
            str(bin_dir / "python"),
            str(BENCH / "naive_transform.py"),
            str(data),
            str(work / "naive.csv"),
        ],
    }


def _input(size: int, seed: int) -> Path:
    data = OUT / "data" / f"tweets-{size}-seed{seed}.jsonl"
    if not data.exists():
        print(f"generating {data} ...", file=sys.stderr)
        write_jsonl(data, size, seed)
    return data


def warm_up(seed: int) -> None:
    """One run of every tool on a small input: compiles and caches the bytecode of both."""
    for cmd in _commands(_input(1000, seed), 1000).values():
        _run(cmd)


def bench_size(size: int, seed: int, repeat: int, naive: bool) -> dict[str, dict[str, float]]:
    """Measure the tools on ``size`` posts: per tool the median wall and CPU time, peak RSS."""
    data = _input(size, seed)
    tools = _commands(data, size)
    if not naive:
        del tools["naive"]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in tools}
    for _ in range(repeat):
        for name, cmd in tools.items():
            runs[name].append(_run(cmd))
            m = runs[name][-1]
            print(
                f"{size:>9} {name:<22} {m['wall_s']:7.2f} s wall {m['cpu_s']:7.2f} s cpu",
                file=sys.stderr,
            )
    peaks = {name: _run(cmd, watch=True)["peak_rss_mib"] for name, cmd in tools.items()}
    for name, peak in peaks.items():
        print(f"{size:>9} {name:<22} {peak:7.0f} MiB peak RSS", file=sys.stderr)
    return {
        name: {
            "wall_s": statistics.median(m["wall_s"] for m in samples),
            "cpu_s": statistics.median(m["cpu_s"] for m in samples),
            "peak_rss_mib": peaks[name],
            "input_mib": data.stat().st_size / 2**20,
        }
        for name, samples in runs.items()
    }


def _table(results: dict[int, dict[str, dict[str, float]]]) -> str:
    lines = [
        "| posts | input | tool | wall (s) | CPU (s) | peak RSS (MiB) | speed-up vs naive (wall) |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for size, tools in results.items():
        naive = tools.get("naive")
        for name, m in tools.items():
            ratio = f"{naive['wall_s'] / m['wall_s']:.2f}x" if naive else "—"
            lines.append(
                f"| {size:,} | {m['input_mib']:.0f} MiB | {name} | {m['wall_s']:.2f} | "
                f"{m['cpu_s']:.2f} | {m['peak_rss_mib']:.0f} | {ratio} |"
            )
    return "\n".join(lines)


def _verdicts(results: dict[int, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    small, large = min(results), max(results)
    if "naive" in results[small]:
        naive = results[small]["naive"]["wall_s"]
        for tool in ("tweetpipe", "tweetpipe --workers 1"):
            speed = naive / results[small][tool]["wall_s"]
            out[f"speed-up of {tool}"] = {"posts": small, "ratio": speed, "target": SPEED_TARGET}
    if large != small:
        grow = (
            results[large]["tweetpipe"]["peak_rss_mib"]
            / results[small]["tweetpipe"]["peak_rss_mib"]
        )
        out["peak RSS growth"] = {
            "from": small,
            "to": large,
            "ratio": grow,
            "target": MEMORY_TARGET,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--naive-max", type=int, default=100_000)
    args = parser.parse_args()
    os.chdir(BENCH.parent)
    warm_up(args.seed)
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
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
        },
        "repeat": args.repeat,
        "results": {str(k): v for k, v in results.items()},
        "verdicts": verdicts,
        "table": table,
    }
    (OUT / "transform.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(table)
    for name, v in verdicts.items():
        ok = v["ratio"] >= v["target"] if name.startswith("speed") else v["ratio"] <= v["target"]
        print(f"{name}: {v['ratio']:.2f}x (target {v['target']}x) {'PASS' if ok else 'FAIL'}")
    print(f"results: {OUT / 'transform.json'}")


if __name__ == "__main__":
    main()
