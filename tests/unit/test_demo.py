"""The demo's own logic: its directory, the connection it builds, its summary and exit code.

The run itself (``dag.test()``) is covered by tests/integration/test_dag.py, with the same
functions the demo calls.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

import pytest

from etl.adapters.cli import demo as cli_demo
from etl.adapters.cli import main
from etl.tools import demo

if TYPE_CHECKING:
    from pathlib import Path

SLUG = "account-ada_builds"
TOKEN = "unit-test-token-7f3a"


def _outcome(state: str, *, breach: bool) -> demo.RunOutcome:
    tasks = [
        demo.TaskOutcome("plan_sources", -1, None, "success"),
        demo.TaskOutcome("per_source.extract", 0, SLUG, "success"),
        demo.TaskOutcome("per_source.validate_raw", 0, SLUG, "success"),
        demo.TaskOutcome("per_source.transform", 0, SLUG, "success"),
        demo.TaskOutcome("per_source.validate_curated", 0, SLUG, "failed" if breach else "success"),
        demo.TaskOutcome("per_source.publish", 0, None, "upstream_failed" if breach else "success"),
        demo.TaskOutcome("build_docs", -1, None, "success"),
        demo.TaskOutcome("all_sources_published", -1, None, "failed" if breach else "skipped"),
    ]
    part = "source=account-ada_builds/interval=20230314T000000Z_20230315T000000Z"
    report = (
        {"curated": 11, "quarantined": 8, "duplicates": 0}
        if breach
        else {
            "curated": 19,
            "quarantined": 0,
            "duplicates": 0,
        }
    )
    failed = [
        {
            "expectation_type": "expect_table_row_count_to_be_between",
            "column": None,
            "rule": "quarantined_share",
            "severity": "critical",
        }
    ]
    xcoms: dict[tuple[str, int, str], Any] = {
        ("plan_sources", -1, "return_value"): [{"kind": "account", "value": "x", "slug": SLUG}],
        ("per_source.extract", 0, "return_value"): {
            "slug": SLUG,
            "tweets": 19,
            "cost": {
                "estimated_cost_micro_usd": 105_000,
                "posts_billable": 19,
                "user_reads_billable": 1,
            },
        },
        ("per_source.validate_raw", 0, "checkpoint"): {"success": True, "evaluated": 24, "rows": 1},
        ("per_source.transform", 0, "return_value"): {
            "slug": SLUG,
            "report": report,
            "quarantine_key": f"quarantine/{part}/rejected.jsonl",
        },
        ("per_source.validate_curated", 0, "checkpoint"): {
            "success": not breach,
            "evaluated": 54,
            "rows": report["curated"],
            "failed": failed if breach else [],
            "docs_page": "validations/tweets_curated/run/t/page.html",
        },
    }
    if not breach:
        xcoms[("per_source.publish", 0, "return_value")] = {
            "slug": SLUG,
            "curated_key": f"curated/{part}/tweets.csv",
        }
    return demo.RunOutcome("manual__x", state, tasks, xcoms, 12.0)


def _result(tmp_path: Path, *, breach: bool) -> demo.DemoResult:
    layout = demo.prepare_dir(tmp_path / "out")
    state = "failed" if breach else "success"
    return demo.DemoResult(layout, _outcome(state, breach=breach), breach, 30.0)


def test_prepare_dir_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")

    with pytest.raises(demo.DemoError, match="not made by the demo"):
        demo.prepare_dir(tmp_path)

    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_prepare_dir_cleans_its_own_outputs_only(tmp_path: Path) -> None:
    layout = demo.prepare_dir(tmp_path / "out")
    (layout.store / "curated").mkdir(parents=True)
    (layout.store / "curated" / "old.csv").write_text("old")
    (layout.root / "notes.txt").write_text("mine")

    again = demo.prepare_dir(tmp_path / "out")

    assert not again.store.exists()
    assert (again.root / "notes.txt").read_text() == "mine"
    assert again.log_file.is_relative_to(again.home)


def test_connection_keeps_the_token_in_the_password_only() -> None:
    conn = json.loads(demo.x_connection("http://127.0.0.1:8089", TOKEN))

    assert conn["password"] == TOKEN
    assert conn["host"] == "http://127.0.0.1:8089"
    assert TOKEN not in json.dumps({k: v for k, v in conn.items() if k != "password"})


def test_green_summary_names_counts_checkpoints_and_paths(tmp_path: Path) -> None:
    text = demo.format_summary(_result(tmp_path, breach=False))

    assert text.startswith("tweetpipe demo: DAG run SUCCESS")
    assert "sources 1, published 1; tweets extracted 19, curated 19, quarantined 0" in text
    assert "tweets extracted 19, curated 19, quarantined 0, duplicates 0" in text
    assert "validate_raw     passed (24 expectations on 1 rows)" in text
    assert "validate_curated passed (54 expectations on 19 rows)" in text
    assert "curated/source=account-ada_builds/interval=20230314T000000Z_" in text
    assert "quarantine/source=account-ada_builds/" in text
    assert "docs/index.html" in text and "lineage/events.jsonl" in text
    assert "failed tasks" not in text
    assert (
        "estimated cost   $0.105 at pay-per-use prices (19 billable posts, 1 user lookups)" in text
    )


def test_breach_summary_says_what_failed_and_where_the_evidence_is(tmp_path: Path) -> None:
    text = demo.format_summary(_result(tmp_path, breach=True))

    assert text.startswith("tweetpipe demo: DAG run FAILED (emulator drift mode")
    assert "sources 1, published 0; tweets extracted 19, curated 11, quarantined 8" in text
    assert (
        "validate_curated FAILED (54 expectations on 11 rows): "
        "expect_table_row_count_to_be_between(table) [quarantined_share]"
    ) in text
    assert "why: " in text and "validations/tweets_curated/run/t/page.html" in text
    assert "not published (curated/ unchanged)" in text
    assert "failed tasks     per_source.validate_curated[account-ada_builds]" in text


@pytest.mark.parametrize(("breach", "code"), [(False, 0), (True, 1)])
def test_exit_code_follows_the_dag_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, breach: bool, code: int
) -> None:
    result = _result(tmp_path, breach=breach)
    calls: list[tuple[Path, bool]] = []

    def fake_run_demo(directory: Path, *, breach: bool = False) -> demo.DemoResult:
        calls.append((directory, breach))
        return result

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)

    args = argparse.Namespace(dir=str(tmp_path / "out"), breach=breach)
    assert cli_demo.run_demo_cli(args) == code
    assert calls == [(tmp_path / "out", breach)]


def test_cli_reports_a_foreign_directory_as_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "precious.txt").write_text("keep me")

    code = main(["demo", "--dir", str(tmp_path)])

    assert code == 2
    assert "not made by the demo" in capsys.readouterr().err


def test_a_run_that_curated_nothing_says_so_and_why(tmp_path: Path) -> None:
    result = _result(tmp_path, breach=False)
    transformed = result.outcome.xcoms[("per_source.transform", 0, "return_value")]
    transformed["report"] = {"tweets_in": 0, "pages": 1, "curated": 0, "quarantined": 0}
    transformed["start"], transformed["end"] = (
        "2026-11-29T00:00:00+00:00",
        "2026-11-30T00:00:00+00:00",
    )

    text = demo.format_summary(result)

    assert (
        f"0 posts curated for source={SLUG} interval "
        "2026-11-29T00:00:00+00:00..2026-11-30T00:00:00+00:00: the API returned none"
    ) in text
    assert "0 posts curated" not in demo.format_summary(_result(tmp_path, breach=False))
