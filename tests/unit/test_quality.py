"""Suites derived from the contracts, `expectations sync`, the raw-page table and the summary.

Nothing here imports Great Expectations; the checkpoints run in tests/integration.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace

import pytest

from etl.adapters.cli import expectations as cli_expectations
from etl.adapters.cli import main
from etl.contracts import suites
from etl.contracts.model import CURATED_CONTRACT, RAW_PAGE_CONTRACT, QualityRule, load_contract
from etl.contracts.suites import (
    EXPECTATIONS_DIR,
    JSON_SCHEMA_DIALECT,
    derive_expectations,
    flatten_page,
    load_suite_file,
    page_checks,
    page_columns,
    render_suite,
    sync_expectations,
)
from etl.errors import ContractError, QualityGateFailed
from etl.steps import quality
from etl.steps.quality import CheckpointSummary


def _find(exps: list[dict], type_: str, column: str | None = None) -> list[dict]:
    return [e for e in exps if e["type"] == type_ and e["kwargs"].get("column") == column]


@pytest.fixture(scope="module")
def curated():
    return load_contract(CURATED_CONTRACT)


@pytest.fixture(scope="module")
def raw():
    return load_contract(RAW_PAGE_CONTRACT)


# --- derivation -----------------------------------------------------------------------------------
def test_curated_suite_carries_the_contract_constraints(curated):
    exps = derive_expectations(curated)

    (columns,) = _find(exps, "expect_table_columns_to_match_ordered_list")
    assert columns["kwargs"]["column_list"] == curated.column_names
    assert _find(exps, "expect_column_values_to_not_be_null", "tweet_id")
    assert not _find(exps, "expect_column_values_to_not_be_null", "lang")  # optional column
    (regex,) = _find(exps, "expect_column_values_to_match_regex", "tweet_id")
    assert regex["kwargs"]["regex"] == r"^[0-9]{1,19}\Z"
    (in_set,) = _find(exps, "expect_column_values_to_be_in_set", "referenced_tweet_type")
    assert in_set["kwargs"]["value_set"] == ["retweeted", "quoted", "replied_to"]
    (between,) = _find(exps, "expect_column_values_to_be_between", "like_count")
    assert between["kwargs"] == {"column": "like_count", "min_value": 0}
    (schema,) = _find(exps, "expect_column_values_to_match_json_schema", "hashtags")
    assert schema["kwargs"]["json_schema"] == {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "array",
        "items": {"type": "string"},
    }
    (length,) = _find(exps, "expect_column_value_lengths_to_be_between", "source_page")
    assert length["kwargs"]["min_value"] == 1
    assert all(e["meta"]["source"] == "contract" for e in exps)
    assert all(e["meta"]["version"] == curated.version for e in exps)


def test_array_item_options_become_a_json_schema_expectation(curated):
    (count,) = [
        e
        for e in derive_expectations(curated)
        if e["meta"]["rules"] == ["edit_history_tweet_ids.itemCount"]
    ]
    assert count["type"] == "expect_column_values_to_match_json_schema"
    assert count["kwargs"]["json_schema"] == {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "array",
        "minItems": 1,
    }

    col = replace(curated.column("hashtags"), min_items=None, max_items=3, unique_items=True)
    spec = replace(curated, columns=(col,))
    (count,) = [
        e for e in derive_expectations(spec) if e["meta"]["rules"] == ["hashtags.itemCount"]
    ]
    assert count["kwargs"]["json_schema"] == {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "array",
        "maxItems": 3,
        "uniqueItems": True,
    }


def test_every_json_schema_names_the_single_document_dialect(curated):
    """GX checks each value with ``jsonschema.validate``, which checks the schema against its
    dialect's metaschema every time: draft 7's is one document, 2020-12's (the default) many."""
    import jsonschema

    schemas = [
        e["kwargs"]["json_schema"]
        for e in derive_expectations(curated)
        if e["type"] == "expect_column_values_to_match_json_schema"
    ]

    assert len(schemas) == 7
    for schema in schemas:
        assert jsonschema.validators.validator_for(schema) is jsonschema.Draft7Validator
        jsonschema.Draft7Validator.check_schema(schema)
    hashtags = schemas[1]
    assert jsonschema.Draft7Validator(hashtags).is_valid(["a", "b"])
    assert not jsonschema.Draft7Validator(hashtags).is_valid(["a", 1])


def test_a_dataset_rule_repeating_a_column_rule_is_folded_into_one_expectation(curated):
    exps = derive_expectations(curated)

    (unique,) = _find(exps, "expect_column_values_to_be_unique", "tweet_id")
    assert unique["meta"]["rules"] == ["tweet_id.unique", "duplicate_tweet_ids"]


def test_timestamp_format_becomes_an_anchored_regex(curated):
    exps = derive_expectations(curated)
    (ts,) = [
        e
        for e in _find(exps, "expect_column_values_to_match_regex", "created_at")
        if e["meta"]["rules"] == ["created_at.logicalType"]
    ]
    regex = re.compile(ts["kwargs"]["regex"])

    assert regex.search("2024-05-01T12:34:56.789Z")
    assert not regex.search("2024-05-01 12:34:56")
    assert not regex.search("2024-05-01T12:34:56Z")  # the contract asks for milliseconds
    assert not regex.search("2024-05-01T12:34:56.789Z\n")


def test_every_derived_regex_refuses_a_trailing_line_feed(curated):
    # GX's pandas engine searches (str.contains), where "$" also matches before a final "\n".
    examples = {
        "tweet_id": "1790000000000000001",
        "author_id": "2244994945",
        "author_username": "tweetpipe_dev",
        "created_at": "2024-05-01T12:34:56.789Z",
        "lang": "en",
        "retweet_count": "42",
    }
    checked = 0
    regexes = [
        e
        for e in derive_expectations(curated)
        if e["type"] == "expect_column_values_to_match_regex"
    ]
    for exp in regexes:
        value = examples.get(exp["kwargs"]["column"])
        if value is None:
            continue
        regex = re.compile(exp["kwargs"]["regex"])
        assert regex.search(value), exp
        assert not regex.search(value + "\n"), exp
        checked += 1
    assert checked >= len(examples)


def test_quarantined_share_bound_is_the_ceiling_of_95_percent(curated):
    (share,) = [
        e for e in derive_expectations(curated) if "quarantined_share" in e["meta"]["rules"]
    ]
    expression = share["kwargs"]["min_value"]["$PARAMETER"]

    def bound(curated_rows: int, quarantined: int) -> int:
        # The same arithmetic GX's parameter parser does (trunc is int()).
        env = {"trunc": int, "curated": curated_rows, "quarantined": quarantined}
        return int(eval(expression, {"__builtins__": {}}, env))

    assert bound(95, 5) == 95  # exactly 5% quarantined passes with 95 rows
    assert bound(95, 6) == 96  # 95.95 rows needed: 95 is too few
    assert bound(19, 1) == 19
    assert bound(0, 0) == 0


def test_changing_a_column_spec_changes_the_suite(curated):
    before = derive_expectations(curated)
    author = curated.column("author_id")
    changed = replace(
        curated,
        columns=tuple(
            replace(c, pattern="^[1-9][0-9]*$", required=False, maximum=10) if c is author else c
            for c in curated.columns
        ),
    )

    after = derive_expectations(changed)

    assert after != before
    (regex,) = _find(after, "expect_column_values_to_match_regex", "author_id")
    assert regex["kwargs"]["regex"] == r"^[1-9][0-9]*\Z"
    assert not _find(after, "expect_column_values_to_not_be_null", "author_id")
    (between,) = _find(after, "expect_column_values_to_be_between", "author_id")
    assert between["kwargs"]["max_value"] == 10


def test_a_rule_without_a_gx_mapping_is_refused_by_name(curated):
    odd = QualityRule(name="freshness_sla", metric="freshness", operator="mustBe", threshold=1)
    spec = replace(curated, quality=(*curated.quality, odd))

    with pytest.raises(ContractError, match="freshness_sla"):
        derive_expectations(spec)


def test_raw_page_suite_checks_every_contract_property(raw):
    exps = derive_expectations(raw)
    checked = {c for e in exps for c in e["meta"]["rules"]}

    assert {"data", "data[].id", "data[].author_id", "meta.result_count", "errors"} <= checked
    (columns,) = _find(exps, "expect_table_columns_to_match_ordered_list")
    assert columns["kwargs"]["column_list"] == page_columns(raw)
    (parsed,) = _find(exps, "expect_column_values_to_be_in_set", "parsed_ok")
    assert parsed["kwargs"]["value_set"] == [True]
    # Post-level breaches are quarantined by the transform; the envelope ones stop the run.
    assert (
        _find(exps, "expect_column_values_to_be_in_set", "bad_data_id")[0]["severity"] == "warning"
    )
    assert "severity" not in _find(exps, "expect_column_values_to_be_in_set", "bad_meta")[0]


# --- the raw page table ---------------------------------------------------------------------------
def _page(**overrides: object) -> bytes:
    doc: dict[str, object] = {
        "data": [
            {
                "id": "1790000000000000001",
                "text": "hello",
                "author_id": "42",
                "created_at": "2024-05-01T10:00:00.000Z",
                "edit_history_tweet_ids": ["1790000000000000001"],
            }
        ],
        "includes": {"users": [{"id": "42", "username": "ana"}]},
        "meta": {"result_count": 1, "newest_id": "1790000000000000001"},
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


def test_a_good_page_flattens_to_zero_violations(raw):
    row = flatten_page("raw/a/1.json", _page(), page_checks(raw))

    assert row["parsed_ok"] is True
    assert (row["data_len"], row["result_count"]) == (1, 1)
    assert all(row[c.column] == 0 for c in page_checks(raw))
    assert list(row) == page_columns(raw)


def test_violations_are_counted_per_property(raw):
    posts = [
        {"id": "12ab", "text": "x", "author_id": "1", "created_at": "t"},
        {"id": "7", "text": "y", "created_at": "t", "public_metrics": [1]},
        "not a post",
    ]
    body = _page(data=posts, meta={"result_count": 101}, errors="oops")

    row = flatten_page("raw/a/2.json", body, page_checks(raw))

    assert row["bad_data_id"] == 1  # pattern
    assert row["bad_data_author_id"] == 1  # missing
    assert row["bad_data_public_metrics"] == 1  # not an object
    assert row["bad_data"] == 1  # an item that is not an object
    assert row["bad_meta_result_count"] == 1  # above 100
    assert row["bad_errors"] == 1  # not an array
    assert row["bad_data_text"] == 0
    assert (row["data_len"], row["result_count"]) == (3, 101)


def test_an_empty_edit_history_is_counted_against_min_items(raw):
    posts = [
        {"id": "1", "text": "x", "author_id": "1", "created_at": "t", "edit_history_tweet_ids": []},
        {
            "id": "2",
            "text": "y",
            "author_id": "1",
            "created_at": "t",
            "edit_history_tweet_ids": ["2"],
        },
    ]
    row = flatten_page("raw/a/3.json", _page(data=posts), page_checks(raw))
    assert row["bad_data_edit_history_tweet_ids"] == 1


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_marked_unparsed(raw, body):
    row = flatten_page("raw/a/3.json", body, page_checks(raw))

    assert row["parsed_ok"] is False
    assert row["bad_data_id"] is None


def test_raw_pages_frame_types(raw):
    frame = quality.raw_pages_frame([("k1", _page()), ("k2", b"nope")], raw)

    assert list(frame.columns) == page_columns(raw)
    assert frame["parsed_ok"].tolist() == [True, False]
    assert str(frame["bad_data_id"].dtype) == "Int64"
    assert frame["bad_data_id"].isna().tolist() == [False, True]


# --- the curated batch ----------------------------------------------------------------------------
def test_curated_frame_reads_text_exactly_and_types_counts(tmp_path, curated):
    header = ",".join(curated.column_names)
    values = {c: "" for c in curated.column_names}
    values |= {"tweet_id": "9007199254740993123", "like_count": "7", "retweet_count": "x"}
    path = tmp_path / "c.csv"
    path.write_text(header + "\n" + ",".join(values[c] for c in curated.column_names) + "\n")

    frame = quality.curated_frame(path, curated)

    assert frame.loc[0, "tweet_id"] == "9007199254740993123"  # above 2**53, unchanged
    assert frame.loc[0, "lang"] is None  # empty field = missing value
    assert str(frame["like_count"].dtype) == "Int64" and frame.loc[0, "like_count"] == 7
    assert frame.loc[0, "retweet_count"] == "x"  # stays text for the type check to name it


def test_an_unreadable_csv_is_named(tmp_path, curated):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")

    with pytest.raises(ValueError, match="empty.csv"):
        quality.curated_frame(path, curated)


# --- suite files and sync -------------------------------------------------------------------------
def test_committed_suites_are_in_sync_with_the_contracts():
    assert sync_expectations(check=True) == []
    assert main(["expectations", "sync", "--check"]) == 0


def test_committed_suites_only_use_parameters_the_gate_supplies():
    supplied = {"interval_start", "interval_end", "tweets_in", "curated", "quarantined"}
    supplied |= {"duplicates", "trunc"}
    for name in (suites.CURATED_SUITE, suites.RAW_PAGE_SUITE):
        doc = load_suite_file(name)
        used = quality._parameter_names([e["kwargs"] for e in doc["expectations"]])
        assert used <= supplied, (name, used - supplied)
        hand = [e for e in doc["expectations"] if e["meta"]["source"] != "contract"]
        assert hand and all(e["meta"]["source"] == "hand-written" for e in hand)


def test_render_keeps_hand_written_expectations_and_replaces_stale_derived_ones(curated):
    hand = {
        "type": "expect_table_row_count_to_be_between",
        "kwargs": {"min_value": 3},
        "meta": {"source": "hand-written", "name": "mine"},
    }
    stale = {
        "type": "expect_column_values_to_match_regex",
        "kwargs": {"column": "tweet_id", "regex": "^old$"},
        "meta": {"source": "contract", "rules": ["tweet_id.pattern"]},
    }

    doc = json.loads(render_suite(curated, {"expectations": [stale, hand]}))

    assert doc["expectations"][-1] == hand
    assert stale not in doc["expectations"]
    assert doc["expectations"][:-1] == derive_expectations(curated)


@pytest.fixture
def repo_copy(tmp_path, monkeypatch):
    """A copy of contracts/ and expectations/ that the CLI works on."""
    contracts = tmp_path / "contracts"
    shutil.copytree(CURATED_CONTRACT.parent, contracts)
    shutil.copytree(EXPECTATIONS_DIR, tmp_path / "expectations")
    paths = (contracts / CURATED_CONTRACT.name, contracts / RAW_PAGE_CONTRACT.name)
    monkeypatch.setattr(cli_expectations, "EXPECTATIONS_DIR", tmp_path / "expectations")
    monkeypatch.setattr(cli_expectations, "SUITE_CONTRACTS", paths)
    return tmp_path


def test_sync_check_names_the_file_a_contract_change_makes_stale(repo_copy, capsys):
    contract = repo_copy / "contracts" / CURATED_CONTRACT.name
    suite = repo_copy / "expectations" / "tweets_curated.json"
    text = contract.read_text()
    contract.write_text(text.replace("maxLength: 100", "maxLength: 50"))
    before = suite.read_text()

    assert main(["expectations", "sync", "--check"]) == 1
    assert "expectations/tweets_curated.json" in capsys.readouterr().err
    assert suite.read_text() == before  # --check writes nothing

    assert main(["expectations", "sync"]) == 0
    assert main(["expectations", "sync", "--check"]) == 0
    doc = json.loads(suite.read_text())
    (length,) = _find(
        doc["expectations"], "expect_column_value_lengths_to_be_between", "author_name"
    )
    assert length["kwargs"]["max_value"] == 50
    hand_before = [
        e for e in json.loads(before)["expectations"] if e["meta"]["source"] != "contract"
    ]
    assert [e for e in doc["expectations"] if e["meta"]["source"] != "contract"] == hand_before


def test_sync_reports_an_unmappable_contract(repo_copy, capsys):
    contract = repo_copy / "contracts" / CURATED_CONTRACT.name
    contract.write_text(contract.read_text().replace("logicalType: boolean", "logicalType: blob"))

    assert main(["expectations", "sync", "--check"]) == 1
    assert "blob" in capsys.readouterr().err


# --- summary and exception ------------------------------------------------------------------------
def _summary(**overrides: object) -> CheckpointSummary:
    failed = {
        "expectation_type": "expect_column_values_to_match_regex",
        "column": "tweet_id",
        "rule": "tweet_id.pattern",
        "severity": "critical",
        "success": False,
        "unexpected_count": 2,
        "partial_unexpected_list": ["12ab", "x"],
    }
    values: dict[str, object] = {
        "suite": "tweets_curated",
        "success": False,
        "evaluated": 3,
        "failed": [failed],
        "results": [failed],
        "docs_page": "validations/tweets_curated/r1/20240501T000000.000000Z/b.html",
        "run_name": "r1",
        "rows": 10,
    }
    values.update(overrides)
    return CheckpointSummary(**values)  # type: ignore[arg-type]


def test_summary_round_trips_through_json():
    summary = _summary()

    again = CheckpointSummary.from_dict(json.loads(json.dumps(summary.to_dict())))

    assert again == summary


def test_gate_failure_names_expectation_column_counts_and_page():
    with pytest.raises(QualityGateFailed) as err:
        quality.raise_on_failure(_summary(), docs_base="s3://bucket/docs/")

    message = str(err.value)
    assert "expect_column_values_to_match_regex(tweet_id)" in message
    assert "2 unexpected" in message and "'12ab'" in message
    assert "s3://bucket/docs/validations/tweets_curated/r1/" in message
    assert err.value.summary.run_name == "r1"


def test_a_passed_gate_does_not_raise():
    quality.raise_on_failure(_summary(success=True, failed=[]))


def test_expectations_without_their_parameters_or_rows_are_skipped():
    needs_report = {"kwargs": {"value": {"$PARAMETER": "curated"}}, "meta": {}}
    aggregate = {"kwargs": {"column": "created_at"}, "meta": {"skip_if_empty": True}}

    assert quality._skip_reason(needs_report, {"curated": None}, rows=5) is not None
    assert quality._skip_reason(needs_report, {"curated": 5}, rows=5) is None
    assert quality._skip_reason(aggregate, {}, rows=0) == "the batch has no rows"
    assert quality._skip_reason(aggregate, {}, rows=1) is None


def test_run_names_are_made_safe_for_paths_and_keys():
    assert quality._safe_run_name("manual__2024-05-01T00:00:00+00:00/x") == (
        "manual__2024-05-01T00_00_00_00_00_x"
    )
    with pytest.raises(ValueError):
        quality._safe_run_name("///")


def test_report_without_counts_is_refused():
    with pytest.raises(ValueError, match="curated"):
        quality._report_counts({"tweets_in": 3})


def test_values_with_a_trailing_line_feed_do_not_pass_anchored_patterns() -> None:
    import pandas as pd

    column = pd.Series(["1", "2\n"], dtype=object)

    # "$" also matches before a final line feed in Python: whole matches only.
    assert quality._as_numbers(column, "integer") is column
    assert suites.ecma_search("^[0-9]{1,19}$", "123")
    assert not suites.ecma_search("^[0-9]{1,19}$", "123\n")
    assert suites.ecma_search(r"^[$]\$$", "$$") and not suites.ecma_search(r"^a$", "a\n")
