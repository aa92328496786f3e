"""``tweetpipe extract`` end to end: emulator on loopback, local and S3 stores, then transform."""

from __future__ import annotations

import csv
import json
from typing import TYPE_CHECKING, Any

from etl.cli import main
from etl.land import is_page_key
from etl.resources import default_config
from etl.store import LocalStore, open_store
from tests.integration.conftest import EMULATOR_TOKEN

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from tests.integration.conftest import S3Endpoint

WINDOW = ["--start", "2023-01-01T00:00:00Z", "--end", "2023-01-15"]


def test_extract_with_the_config_then_transform_reads_raw(
    emulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = tmp_path / "store"

    code = main(
        [
            "extract",
            "--config",
            str(default_config()),
            "--store",
            str(store_dir),
            *WINDOW,
        ]
    )

    out, err = capsys.readouterr()
    assert code == 0, out + err
    store = LocalStore(store_dir)
    pages = [k for k in store.list("raw/") if is_page_key(k)]
    posts = {t["id"] for k in pages for t in json.loads(store.get(k)).get("data", [])}
    requests_sent = len(emulator.request_log)
    assert f"total: {requests_sent} requests (3 user lookups, 0 retries), {len(pages)} pages" in out
    for slug in ("account-ada_builds", "account-tomas_ng", "account-quietriver"):
        assert f"\n{slug}  " in out and store.exists(f"state/watermarks/{slug}.json")
    assert out.count(" landed ") == 5 and "FAILED" not in out
    assert "posts/s" not in err  # no progress bar when stderr is not a terminal
    assert EMULATOR_TOKEN not in out + err

    rerun = main(
        [
            "extract",
            "--config",
            str(default_config()),
            "--store",
            str(store_dir),
            *WINDOW,
        ]
    )
    rerun_out = capsys.readouterr().out
    assert rerun == 0 and len(emulator.request_log) == requests_sent
    assert "5 source(s) skipped: their window was already complete" in rerun_out

    code = main(["transform", str(store_dir / "raw"), "--out", str(tmp_path / "curated")])

    assert code == 0, capsys.readouterr()
    report = json.loads((tmp_path / "curated" / "report.json").read_text())
    assert report["pages"] == len(pages) and report["pages_quarantined"] == 0
    with (tmp_path / "curated" / "tweets.csv").open(encoding="utf-8") as fh:
        curated = {row["tweet_id"] for row in csv.DictReader(fh)}
    assert curated <= posts
    assert report["tweets_in"] == report["curated"] + report["quarantined"] + report["duplicates"]
    assert len(curated) + report["quarantined"] == len(posts)


def test_a_failing_source_fails_alone_with_exit_1_into_s3(
    emulator: Any, moto_server: S3Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["extract", "--account", "ghost_account", "--account", "@nadia_k", "--query", "data"]

    code = main([*argv, "--store", moto_server.store_url, *WINDOW])

    out, err = capsys.readouterr()
    assert code == 1
    assert "FAILED @ghost_account failed: user lookup of @ghost_account found no user" in out
    assert "account-nadia_k" in out and out.count(" landed ") == 2
    store = open_store(moto_server.store_url)
    manifests = [k for k in store.list("raw/") if k.endswith("/_manifest.json")]
    assert len(manifests) == 2 and not any("ghost" in k for k in store.list(""))
    assert EMULATOR_TOKEN not in out + err
