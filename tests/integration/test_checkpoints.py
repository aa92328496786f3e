"""The GX checkpoints for real, on small synthetic CSVs and pages, and the Data Docs they leave.

Great Expectations is imported once for the module; every validation writes into one shared
Data Docs directory, so the last tests can check that the site lists all of them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import socket
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from etl.contracts.model import CURATED_CONTRACT, load_contract
from etl.errors import QualityGateFailed
from etl.steps.quality import (
    CheckpointSummary,
    build_docs_from_store,
    gate_failure,
    publish_docs,
    raise_on_failure,
    save_results,
    validate_curated,
    validate_curated_bytes,
    validate_raw_pages,
)
from etl.storage.store import LocalStore

if TYPE_CHECKING:
    from pathlib import Path

START = datetime(2024, 5, 1, tzinfo=UTC)
END = datetime(2024, 5, 2, tzinfo=UTC)
SECRET = "sk-test-secret-4f1e9c"
_BASE_ID = 1790000000000000000


def _row(i: int) -> dict[str, str]:
    tid = str(_BASE_ID + i)
    return {
        "tweet_id": tid,
        "author_id": "2244994945",
        "author_username": "tweetpipe_dev",
        "author_name": "Tweetpipe Dev",
        "created_at": f"2024-05-01T{i % 24:02d}:15:00.000Z",
        "text": f'post {i} with "quotes", a comma and\na newline & more',
        "lang": "en" if i % 4 else "ja",
        "conversation_id": tid,
        "in_reply_to_user_id": "",
        "referenced_tweet_type": "quoted" if i % 5 == 0 else "",
        "referenced_tweet_id": str(_BASE_ID - 1) if i % 5 == 0 else "",
        "referenced_tweets": json.dumps([{"type": "quoted", "id": str(_BASE_ID - 1)}])
        if i % 5 == 0
        else "[]",
        "retweet_count": str(i),
        "reply_count": "0",
        "like_count": str(3 * i),
        "quote_count": "0",
        "bookmark_count": "",
        "impression_count": "",
        "hashtags": json.dumps(["data"] if i % 2 else []),
        "mentions": "[]",
        "urls": json.dumps(["https://example.org/a"]),
        "possibly_sensitive": "false",
        "edit_history_tweet_ids": json.dumps([tid]),
        "withheld_country_codes": "[]",
        "source_page": "raw/source=tweetpipe_dev/page-0001.json",
    }


def _csv(rows: list[dict[str, str]], columns: list[str] | None = None) -> bytes:
    columns = columns or load_contract(CURATED_CONTRACT).column_names
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _report(curated: int, quarantined: int = 0) -> dict[str, int]:
    return {
        "tweets_in": curated + quarantined,
        "curated": curated,
        "quarantined": quarantined,
        "duplicates": 0,
    }


def _page(ids: list[str], result_count: int | None = None) -> bytes:
    data = [
        {"id": i, "text": "t", "author_id": "2244994945", "created_at": "2024-05-01T00:00:00.000Z"}
        for i in ids
    ]
    doc: dict[str, object] = {
        "meta": {"result_count": len(ids) if result_count is None else result_count}
    }
    if data:
        doc["data"] = data
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gx") / "site"


@pytest.fixture(scope="module")
def green(docs_dir: Path) -> CheckpointSummary:
    body = _csv([_row(i) for i in range(12)])
    return validate_curated_bytes(
        body,
        docs_dir=docs_dir,
        run_name="green__2024-05-01T00:00:00+00:00",
        interval_start=START,
        interval_end=END,
        report=_report(12),
    )


def _curated(docs_dir: Path, tmp: Path, name: str, body: bytes, **kwargs) -> CheckpointSummary:
    path = tmp / f"{name}.csv"
    path.write_bytes(body)
    args = {"interval_start": START, "interval_end": END, "report": _report(10)} | kwargs
    return validate_curated(path, docs_dir=docs_dir, run_name=name, **args)


def _failed(summary: CheckpointSummary) -> set[tuple[str, str | None]]:
    return {
        (f["expectation_type"], f.get("column"))
        for f in summary.failed
        if f["severity"] == "critical"
    }


def test_green_csv_passes_every_expectation(green, docs_dir):
    assert green.success, green.failed
    assert green.failed == [] and green.skipped == []
    assert green.evaluated == len(green.results) > 40
    assert green.rows == 12
    assert all(r["success"] for r in green.results)
    assert (docs_dir / green.docs_page).is_file()
    json.dumps(green.to_dict())  # fit for XCom
    raise_on_failure(green)


def _breach_bad_id() -> tuple[bytes, dict]:
    rows = [_row(i) for i in range(10)]
    rows[3]["tweet_id"] = "17900000x0000000003"
    return _csv(rows), {}


def _breach_duplicate_id() -> tuple[bytes, dict]:
    rows = [_row(i) for i in range(10)]
    rows[7]["tweet_id"] = rows[2]["tweet_id"]
    return _csv(rows), {}


def _breach_missing_column() -> tuple[bytes, dict]:
    columns = [c for c in load_contract(CURATED_CONTRACT).column_names if c != "author_id"]
    return _csv([_row(i) for i in range(10)], columns), {}


def _breach_quarantined_share() -> tuple[bytes, dict]:
    # 10 curated + 1 quarantined is 9.1% rejected, above the contract's 5%.
    return _csv([_row(i) for i in range(10)]), {"report": _report(10, quarantined=1)}


def _breach_stale_created_at() -> tuple[bytes, dict]:
    rows = [_row(i) for i in range(10)]
    rows[4]["created_at"] = "2024-04-30T23:59:59.999Z"
    return _csv(rows), {}


def _breach_empty_edit_history() -> tuple[bytes, dict]:
    # The contract's minItems 1: a post is always the first version of itself.
    rows = [_row(i) for i in range(10)]
    rows[6]["edit_history_tweet_ids"] = "[]"
    return _csv(rows), {}


# A value that is right but for a trailing line feed, in each kind of regex the suite derives: a
# contract pattern (tweet_id, author_username, lang), the timestamp format (created_at) and the
# integer type (retweet_count). GX searches with str.contains, where "$" matches before a final
# line feed: the suite's regexes end in \Z.
_TRAILING_LINE_FEED = ("tweet_id", "author_username", "lang", "created_at", "retweet_count")


def _breach_trailing_line_feed() -> tuple[bytes, dict]:
    rows = [_row(i) for i in range(10)]
    for i, column in enumerate(_TRAILING_LINE_FEED, start=2):
        rows[i][column] += "\n"
    return _csv(rows), {}


_BREACHES = {
    "bad_id_pattern": _breach_bad_id,
    "empty_edit_history": _breach_empty_edit_history,
    "duplicate_id": _breach_duplicate_id,
    "missing_column": _breach_missing_column,
    "quarantined_share": _breach_quarantined_share,
    "stale_created_at": _breach_stale_created_at,
    "trailing_line_feed": _breach_trailing_line_feed,
}


@pytest.fixture(scope="module")
def breaches(docs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Every breach, run once; the first under an audit hook and with secrets in the env."""
    tmp = tmp_path_factory.mktemp("breaches")
    connections: list[object] = []
    watching = [True]

    def audit(event: str, args: tuple) -> None:
        if watching[0] and event == "socket.connect":
            connections.append(args[1])

    sys.addaudithook(audit)  # hooks cannot be removed; the flag retires this one
    out: dict[str, object] = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("X_BEARER_TOKEN", SECRET)
        env.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        try:
            # A refused loopback connect proves the hook sees connects at all.
            with contextlib.suppress(OSError), socket.socket() as probe:
                probe.settimeout(1)
                probe.connect(("127.0.0.1", 9))
            body, kwargs = _breach_bad_id()
            out["bad_id_pattern"] = _curated(docs_dir, tmp, "bad_id_pattern", body, **kwargs)
        finally:
            watching[0] = False
    for name, make in _BREACHES.items():
        if name not in out:
            body, kwargs = make()
            out[name] = _curated(docs_dir, tmp, name, body, **kwargs)
    out["connections"] = connections
    return out


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bad_id_pattern", {("expect_column_values_to_match_regex", "tweet_id")}),
        ("duplicate_id", {("expect_column_values_to_be_unique", "tweet_id")}),
        (
            "empty_edit_history",
            {("expect_column_values_to_match_json_schema", "edit_history_tweet_ids")},
        ),
        (
            "missing_column",
            {
                ("expect_table_columns_to_match_ordered_list", None),
                ("expect_column_values_to_not_be_null", "author_id"),
                ("expect_column_values_to_match_regex", "author_id"),
            },
        ),
        ("quarantined_share", {("expect_table_row_count_to_be_between", None)}),
        ("stale_created_at", {("expect_column_min_to_be_between", "created_at")}),
        (
            "trailing_line_feed",
            {("expect_column_values_to_match_regex", c) for c in _TRAILING_LINE_FEED}
            # "42\n" is no number, so the count stays text, which no bound can hold either.
            | {("expect_column_values_to_be_between", "retweet_count")},
        ),
    ],
)
def test_breaches_fail_the_gate_naming_the_expectation(name, expected, breaches, docs_dir):
    summary = breaches[name]

    assert not summary.success
    assert _failed(summary) == expected
    with pytest.raises(QualityGateFailed) as err:
        raise_on_failure(summary)
    message = str(err.value)
    for type_, column in expected:
        assert f"{type_}({column or 'table'})" in message
    assert f"docs/{summary.docs_page}" in message
    assert (docs_dir / summary.docs_page).is_file()


def test_bad_id_evidence_names_the_value_and_is_on_the_page(breaches, docs_dir):
    summary = breaches["bad_id_pattern"]

    (failure,) = [f for f in summary.failed if f["expectation_type"].endswith("match_regex")]
    assert failure["unexpected_count"] == 1
    assert failure["partial_unexpected_list"] == ["17900000x0000000003"]
    assert "17900000x0000000003" in str(gate_failure(summary))
    page = (docs_dir / summary.docs_page).read_text(encoding="utf-8")
    assert "17900000x0000000003" in page and "tweet_id" in page
    assert "^[0-9]{1,19}\\Z" in page  # the failed expectation, as GX renders it


def test_share_and_freshness_failures_show_observed_and_bound(breaches):
    share = str(gate_failure(breaches["quarantined_share"]))
    stale = str(gate_failure(breaches["stale_created_at"]))

    assert "observed 10; expected min_value=11" in share  # ceil(95% of 11)
    assert "2024-04-30T23:59:59.999" in stale and "2024-05-01T00:00:00" in stale


def test_missing_column_is_reported_with_the_gx_error(breaches):
    summary = breaches["missing_column"]

    regex = next(
        f
        for f in summary.failed
        if f.get("column") == "author_id" and f["expectation_type"].endswith("match_regex")
    )
    assert "author_id" in regex["exception"]
    (columns,) = [f for f in summary.failed if f["expectation_type"].endswith("ordered_list")]
    assert "author_id" not in columns["observed_value"]


def test_a_checkpoint_stays_on_the_machine_and_keeps_secrets_out(breaches, docs_dir):
    summary = breaches["bad_id_pattern"]

    assert ("127.0.0.1", 9) in breaches["connections"]  # the probe: the hook works
    remote = [
        a
        for a in breaches["connections"]
        if not (isinstance(a, tuple) and a[0] in ("127.0.0.1", "::1", "localhost"))
    ]
    assert remote == []
    assert SECRET not in str(gate_failure(summary))
    assert SECRET not in json.dumps(summary.to_dict())
    for path in docs_dir.rglob("*"):
        if path.is_file() and path.suffix in (".html", ".json"):
            assert SECRET not in path.read_text(encoding="utf-8", errors="replace"), path


def test_without_report_or_rows_the_dependent_checks_are_skipped_not_passed(docs_dir, tmp_path):
    summary = _curated(
        docs_dir, tmp_path, "header_only", _csv([]), report=None, interval_start=START
    )

    assert summary.success, summary.failed
    assert summary.rows == 0
    skipped = {s["rule"]: s["reason"] for s in summary.skipped}
    assert "parameter curated" in skipped["quarantined_share"]
    assert "parameter curated" in skipped["row_count_matches_report"]
    assert skipped["created_at_not_before_interval"] == "the batch has no rows"
    ran = {r.get("rule") for r in summary.results}
    assert not ran & set(skipped)


def test_naive_interval_bounds_are_refused(docs_dir, tmp_path):
    with pytest.raises(ValueError, match="interval_start"):
        _curated(docs_dir, tmp_path, "naive", _csv([]), interval_start=datetime(2024, 5, 1))


def test_raw_page_with_an_empty_edit_history_warns(docs_dir):
    page = json.loads(_page([str(_BASE_ID), str(_BASE_ID + 1)]))
    page["data"][1]["edit_history_tweet_ids"] = []
    summary = validate_raw_pages(
        [("raw/s/page-1.json", json.dumps(page).encode())], docs_dir=docs_dir, run_name="raw_edits"
    )

    warning = next(
        f for f in summary.failed if f.get("column") == "bad_data_edit_history_tweet_ids"
    )
    assert warning["severity"] == "warning"  # the transform quarantines that post


def test_raw_pages_gate(docs_dir):
    good = [
        ("raw/s/page-1.json", _page([str(_BASE_ID), str(_BASE_ID + 1)])),
        ("raw/s/page-2.json", _page([])),
    ]

    passed = validate_raw_pages(good, docs_dir=docs_dir, run_name="raw_green")

    assert passed.success, passed.failed
    assert passed.rows == 2

    breach = [
        *good,
        ("raw/s/page-3.json", b'{"data": [{"id": "1"'),  # truncated body
        ("raw/s/page-4.json", _page(["12ab"], result_count=5)),
    ]
    failed = validate_raw_pages(breach, docs_dir=docs_dir, run_name="raw_breach")

    assert not failed.success
    assert _failed(failed) == {
        ("expect_column_values_to_be_in_set", "parsed_ok"),
        ("expect_column_pair_values_to_be_equal", "result_count,data_len"),
    }
    warning = next(f for f in failed.failed if f.get("column") == "bad_data_id")
    assert warning["severity"] == "warning"  # the transform quarantines that post
    message = str(gate_failure(failed))
    assert "raw/s/page-3.json" in message and "raw/s/page-4.json" in message


def test_site_lists_every_run_and_rebuilds_from_the_store(green, breaches, docs_dir, tmp_path):
    bad_id = breaches["bad_id_pattern"]
    index = (docs_dir / "index.html").read_text(encoding="utf-8")
    assert green.run_name in index and bad_id.run_name in index
    assert "_validation_success_text': 'Failed'" in index
    assert "_validation_success_text': 'Success'" in index

    store = LocalStore(tmp_path / "store")
    saved = save_results(docs_dir, store)
    assert saved and all(k.startswith("docs/results/") and k.endswith(".json") for k in saved)
    assert not any("/." in k for k in saved)

    site = build_docs_from_store(store, tmp_path / "rebuilt")
    rebuilt = (site / "index.html").read_text(encoding="utf-8")
    assert green.run_name in rebuilt and bad_id.run_name in rebuilt
    assert (site / green.docs_page).is_file()
    assert (site / "expectations" / "tweets_curated.html").is_file()
    assert (site / "expectations" / "x_api_v2_tweets_page.html").is_file()

    keys = publish_docs(site, store)

    assert "docs/index.html" in keys
    assert f"docs/{green.docs_page}" in keys
    assert store.get("docs/index.html") == (site / "index.html").read_bytes()
    assert set(saved) <= set(keys)


def test_without_a_page_the_result_is_kept_and_the_rebuilt_site_has_the_page(tmp_path):
    """The DAG's gates skip rendering (a third of a small checkpoint's time): build_docs renders
    the page from the stored result, at the path the summary names."""
    docs = tmp_path / "gx"
    summary = validate_raw_pages(
        [("raw/s/page-1.json", _page([str(_BASE_ID)]))],
        docs_dir=docs,
        run_name="no_page",
        build_page=False,
    )

    assert summary.docs_page is not None
    assert not (docs / summary.docs_page).exists()
    store = LocalStore(tmp_path / "store")
    save_results(docs, store)
    site = build_docs_from_store(store, tmp_path / "site")
    assert (site / summary.docs_page).is_file()
