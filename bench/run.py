"""``make bench``: every benchmark of the project, one after another, with their default sizes.

Each benchmark prints its table and writes its JSON results under ``bench/out/``. Add a new one
by appending its script to :data:`BENCHMARKS`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# The backfill bench runs its short form here (30 daily runs); the full year is
# ``python bench/bench_backfill.py --days 365`` (about 35 minutes on a 2-core machine).
BENCHMARKS = (
    ["bench_transform.py"],
    ["bench_extract.py"],
    ["bench_docs.py"],
    ["bench_airflow.py"],
    ["bench_backfill.py", "--days", "30"],
)


def main() -> int:
    for script, *args in BENCHMARKS:
        print(f"== {script} {' '.join(args)}", flush=True)
        code = subprocess.call([sys.executable, str(BENCH / script), *args])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
