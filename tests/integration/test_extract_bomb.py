"""``tweetpipe extract`` in its own process against a gzip bomb: its memory stays small.

The fake X API serves a 256 MiB bomb (about 256 kB of gzip) on loopback; the CLI runs as a child
process that reports its own peak RSS. Before the body limit it decoded the whole bomb, wrote it to
``raw/`` and peaked above 2 GB; with the 8 MiB limit it stays near its baseline (about 70 MB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

from etl.storage.store import LocalStore
from tests.unit.fake_x_api import EPOCH, FakeClock, FakeXApi, Fault, gzip_bomb, serve_on_loopback

if TYPE_CHECKING:
    from pathlib import Path

TOKEN = "bomb-test-bearer-token-0c1e"
# The child's own peak: VmHWM belongs to the memory map exec gave it, whereas ru_maxrss would
# carry over the peak of the (large) test process that spawned it.
PROBE = """\
import re, sys
from pathlib import Path
from etl.adapters.cli import main
code = main(sys.argv[1:])
status = Path("/proc/self/status").read_text()
print("maxrss_kib", re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
sys.exit(code)
"""


def test_the_cli_stays_small_on_a_gzip_bomb(tmp_path: Path) -> None:
    """A 256 MiB bomb: the CLI's peak RSS stays far below it (it was over 2 GB before the cap)."""
    api = FakeXApi(FakeClock(EPOCH.timestamp() + 3 * 86400), TOKEN)
    api.add_posts("alice", 30)
    api.script = [Fault(200, gzip_bomb(256 << 20), headers={"content-encoding": "gzip"})]
    with serve_on_loopback(api) as server:
        env = {**os.environ, "X_BEARER_TOKEN": TOKEN, "X_API_BASE_URL": server}
        env.pop("X_API_MAX_BODY_BYTES", None)
        argv = [
            "extract",
            "--query",
            "post",
            "--store",
            str(tmp_path / "s"),
            "--start",
            "2024-05-01",
            "--end",
            "2024-05-02",
        ]
        done = subprocess.run(
            [sys.executable, "-c", PROBE, *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    assert done.returncode == 0, done.stdout + done.stderr
    peak_kib = int(done.stdout.rsplit("maxrss_kib ", 1)[1])
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib} KiB"
    store = LocalStore(tmp_path / "s")
    [manifest] = [k for k in store.list("raw/") if k.endswith("/_manifest.json")]
    refusal = json.loads(store.get(manifest))["pages"][0]["rejected"][0]["refusal"]
    assert refusal["cause"] == "decoded bytes" and refusal["max_body_bytes"] == 8 << 20
    kept = sum(len(store.get(k)) for k in store.list("raw/"))
    assert kept < 1 << 20  # the bomb's first wire bytes and one real page, not 256 MiB
