"""A ``tweetpipe extract`` process killed midway, then run again: the window resumes.

The first run is a real process (``python -m etl extract``) against the emulator on loopback,
slowed down so it can be killed with SIGKILL between two pages. The rerun, an hour later by its
clock, talks to a second emulator with the same seed (the same corpus and tokens), so that
emulator's request log holds exactly the rerun's requests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from etl.config import Source, Window
from etl.steps.extract.run import extract_source, make_client
from etl.storage.keys import MANIFEST_NAME, open_window_key
from etl.storage.store import LocalStore
from etl.tools.emulator import Faults
from tests.integration.conftest import EMULATOR_TOKEN

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

ADA = Source("account", "ada_builds")
_DEADLINE = 120.0  # seconds for the first page to land (process start-up on a busy machine)


def _pages(store_dir: Path) -> list[Path]:
    return sorted((store_dir / "raw").rglob("page-*.json")) if (store_dir / "raw").exists() else []


def _kill_after_first_page(proc: subprocess.Popen[bytes], store_dir: Path) -> None:
    deadline = time.monotonic() + _DEADLINE
    while not _pages(store_dir):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        assert time.monotonic() < deadline, "no page landed in time"
        time.sleep(0.01)
    proc.kill()
    proc.wait(timeout=30)


def _tokens(log: list[Any]) -> list[str | None]:
    return [r.params.get("pagination_token") for r in log if r.kind == "users_tweets"]


def test_a_killed_incremental_extract_resumes_its_window_in_a_later_run(
    emulator_factory: Callable[..., Any], tmp_path: Path
) -> None:
    slow = emulator_factory(faults=Faults(slow_seconds=0.5))
    store_dir = tmp_path / "store"
    env = {**os.environ, "X_API_BASE_URL": slow.base_url, "X_BEARER_TOKEN": EMULATOR_TOKEN}
    argv = [sys.executable, "-m", "etl", "extract", "--account", ADA.value]
    proc = subprocess.Popen(
        [*argv, "--store", str(store_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _kill_after_first_page(proc, store_dir)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    killed = _pages(store_dir)
    assert proc.returncode == -9 and 1 <= len(killed) < 4  # 400 posts: four pages
    assert not list(store_dir.rglob(MANIFEST_NAME))
    store = LocalStore(store_dir)
    opened = json.loads(store.get(open_window_key(ADA.slug)))["label"]
    before = {p: p.read_bytes() for p in killed}
    fresh = emulator_factory()  # same seed: same corpus, same tokens

    resumed = extract_source(
        make_client(EMULATOR_TOKEN, fresh.base_url),
        store,
        ADA,
        Window(),
        clock=lambda: time.time() + 3600,
    )

    truth = fresh.corpus.ground_truth(username=ADA.value)
    landed = [t["id"] for k in resumed.page_keys for t in json.loads(store.get(k))["data"]]
    assert landed == list(truth)  # complete, in order, nothing twice
    assert resumed.window == opened and resumed.pages == 4
    assert resumed.resumed_pages == len(killed)
    rerun = fresh.request_log
    assert [r.kind for r in rerun] == ["users_tweets"] * (4 - len(killed))  # user id cached
    first, second = _tokens(slow.request_log), _tokens(rerun)
    twice = [t for t in second if t in first]
    # At most the request in flight when the process died is sent again: its page never landed.
    assert twice in ([], [first[-1]]) and len(first) <= len(killed) + 1
    assert all(p.read_bytes() == body for p, body in before.items())  # kept, not rewritten
    served = {r.body for r in slow.request_log + rerun if r.kind == "users_tweets"}
    assert {store.get(k) for k in resumed.page_keys} <= served
