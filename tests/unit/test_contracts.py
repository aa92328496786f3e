"""The Pandera gate is built from the contract: every rule comes from the YAML, none is typed twice."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pandas as pd
import pandera.pandas as pa
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.contracts.formats import TimestampFormat
from etl.contracts.model import CURATED_CONTRACT, ColumnSpec, ContractSpec, load_contract
from etl.contracts.pandera_schema import (
    Mistyped,
    _column_regex,
    _fullmatches,
    _json_array_of,
    _string_arrays,
    pandera_schema,
)
from etl.errors import ContractError

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def contract() -> ContractSpec:
    return load_contract()


def _spec(*columns: ColumnSpec) -> ContractSpec:
    return ContractSpec(
        path=CURATED_CONTRACT,
        id="t",
        name="t",
        version="1",
        dataset="t",
        description="",
        columns=columns,
        quality=(),
        raw={},
    )


def _failures(
    spec: ContractSpec, data: dict[str, list[str | None]]
) -> list[tuple[str, str, object]]:
    frame = pd.DataFrame({k: pd.Series(v, dtype="str") for k, v in data.items()})
    try:
        pandera_schema(spec).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        return sorted(
            (str(c), str(k).split(" ")[0], i)
            for c, k, i in zip(cases["column"], cases["check"], cases["index"], strict=True)
        )
    return []


def test_schema_has_every_contract_column_with_its_constraints(contract: ContractSpec) -> None:
    schema = pandera_schema(contract)
    assert list(schema.columns) == contract.column_names
    for col in contract.columns:
        assert schema.columns[col.name].nullable is not col.required, col.name
        assert schema.columns[col.name].unique is col.unique, col.name
    assert schema.columns["tweet_id"].unique


def test_curated_contract_declares_what_the_gate_needs(contract: ContractSpec) -> None:
    assert contract.column("created_at").format == "yyyy-MM-ddTHH:mm:ss.SSSZ"
    assert contract.column("hashtags").items_type == "string"
    assert contract.column("referenced_tweets").items_type == "object"
    share = contract.rule("quarantined_share")
    assert share is not None and share.fatal and share.unit == "percent"


def test_a_changed_yaml_changes_the_gate(tmp_path: Path) -> None:
    doc = yaml.safe_load(CURATED_CONTRACT.read_text(encoding="utf-8"))
    lang = next(p for p in doc["schema"][0]["properties"] if p["name"] == "lang")
    lang["logicalTypeOptions"]["pattern"] = "^(en|de)$"
    changed = tmp_path / "c.odcs.yaml"
    changed.write_text(yaml.safe_dump(doc), encoding="utf-8")
    spec = load_contract(changed)
    frame = {"lang": ["en", "ja"]}
    only_lang = dataclasses.replace(spec, columns=(spec.column("lang"),))
    before = dataclasses.replace(spec, columns=(load_contract().column("lang"),))
    assert _failures(before, frame) == []
    assert _failures(only_lang, frame) == [("lang", "pattern", 1)]


def test_lazy_validation_reports_every_failure_not_the_first() -> None:
    spec = _spec(
        ColumnSpec("id", "string", required=True, unique=True, pattern="^[0-9]+$"),
        ColumnSpec("n", "integer", minimum=0, maximum=10),
    )
    got = _failures(spec, {"id": ["1", "x", None, "1"], "n": ["3", "-1", "eleven", "11"]})
    assert got == [
        ("id", "field_uniqueness", 0),
        ("id", "field_uniqueness", 3),
        ("id", "not_nullable", 2),
        ("id", "pattern", 1),
        ("n", "coerce_dtype('Int64')", 2),
        ("n", "dtype('Int64')", 2),
        ("n", "maximum", 3),
        ("n", "minimum", 1),
    ]


def test_integer_columns_are_int64_and_reject_what_int64_cannot_hold(
    contract: ContractSpec,
) -> None:
    assert str(pandera_schema(contract).columns["like_count"].dtype) == "Int64"
    spec = _spec(ColumnSpec("n", "integer", minimum=0))
    big = str(2**63)  # one past the largest int64
    got = _failures(spec, {"n": ["0", str(2**63 - 1), big, None]})
    assert [g for g in got if g[1].startswith("coerce")] == [("n", "coerce_dtype('Int64')", 2)]


def test_pattern_must_match_in_full_even_before_a_trailing_newline() -> None:
    spec = _spec(ColumnSpec("id", "string", pattern="^[0-9]{1,19}$"))
    assert _failures(spec, {"id": ["12", "12\n", "1" * 20]}) == [
        ("id", "pattern", 1),
        ("id", "pattern", 2),
    ]


_PATTERNS = [
    "^[0-9]{1,19}$",
    "^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
    "[0-9]{2}\\-[a-z]|x",
    "a.b",
    "\\s*",
]


@settings(max_examples=200, deadline=None)
@given(
    pattern=st.sampled_from(_PATTERNS),
    values=st.lists(st.text(st.sampled_from("0123ab-x\n\r. "), max_size=5), max_size=6),
)
def test_pattern_check_of_a_column_agrees_with_matching_each_value(
    pattern: str, values: list[str]
) -> None:
    # The whole-column match (values joined by line feeds) must give the per-value verdicts.
    regex = re.compile(pattern)
    got = _fullmatches(regex, pd.Series(values, dtype="str")).tolist()
    assert got == [regex.fullmatch(v) is not None for v in values]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.text(st.sampled_from('[]", a\\\x00é'), max_size=8), max_size=5))
def test_string_array_check_of_a_column_agrees_with_parsing_each_value(values: list[str]) -> None:
    is_json = _json_array_of("string")
    got = _string_arrays(pd.Series(values, dtype="str"), is_json).tolist()
    assert got == [is_json(v) for v in values]


def test_string_array_check_accepts_plain_columns_and_rejects_a_smuggled_nul() -> None:
    is_json = _json_array_of("string")
    column = pd.Series(["[]", '["a", "b_1"]', '["é"]'], dtype="str")
    assert _string_arrays(column, is_json).all()
    # '[]\x00[]' would read as two arrays if the NUL were taken for the separator.
    assert _string_arrays(pd.Series(["[]\x00[]", "[]"], dtype="str"), is_json).tolist() == [
        False,
        True,
    ]


def test_a_pattern_that_can_match_a_line_feed_is_matched_value_by_value() -> None:
    assert _column_regex(re.compile("a.b")) is None
    assert _column_regex(re.compile("[^a]")) is None
    assert _column_regex(re.compile("(?s)x")) is None
    assert _column_regex(re.compile("^[0-9]{1,19}$")) is not None
    # "1\n2" joined with its neighbour would look like two valid values; it is one invalid one.
    got = _fullmatches(re.compile("^[0-9]+$"), pd.Series(["1\n2", "3"], dtype="str")).tolist()
    assert got == [False, True]


def test_boolean_timestamp_and_allowed_values() -> None:
    spec = _spec(
        ColumnSpec("flag", "boolean"),
        ColumnSpec("at", "timestamp", format="yyyy-MM-ddTHH:mm:ss.SSSZ"),
        ColumnSpec("kind", "string", allowed_values=("a", "b")),
    )
    data: dict[str, list[str | None]] = {
        "flag": ["true", "false", "True"],
        "at": ["2024-01-01T00:00:00.000Z", "2024-02-30T00:00:00.000Z", "2024-01-01T00:00:00Z"],
        "kind": ["a", None, "c"],
    }
    assert _failures(spec, data) == [
        ("at", "timestamp", 1),
        ("at", "timestamp", 2),
        ("flag", "boolean", 2),
        ("kind", "allowed", 2),
    ]


def test_array_columns_must_hold_json_arrays_of_their_item_type() -> None:
    spec = _spec(
        ColumnSpec("tags", "array", items_type="string"),
        ColumnSpec("refs", "array", items_type="object"),
    )
    data: dict[str, list[str | None]] = {
        "tags": ["[]", '["a", "b\\"c", "\\u00e9"]', "[1]", '["a",]', "not json"],
        "refs": ['[{"type": "quoted", "id": "1"}]', "[]", '["x"]', "{}", "[{}]"],
    }
    assert _failures(spec, data) == [
        ("refs", "json_array", 2),
        ("refs", "json_array", 3),
        ("tags", "json_array", 2),
        ("tags", "json_array", 3),
        ("tags", "json_array", 4),
    ]


def test_array_item_counts_and_uniqueness_come_from_the_contract() -> None:
    spec = _spec(
        ColumnSpec("ids", "array", items_type="string", min_items=1),
        ColumnSpec("pair", "array", min_items=2, max_items=2, unique_items=True),
    )
    data: dict[str, list[str | None]] = {
        "ids": ['["1"]', "[]", " [ ] ", '["1", "2"]', "[]"],
        "pair": ["[1, 2]", "[1, 1]", "[1]", '[{"a": 1}, {"a": 2}]', "[1, 2, 3]"],
    }
    assert _failures(spec, data) == [
        ("ids", "item_count", 1),
        ("ids", "item_count", 2),
        ("ids", "item_count", 4),
        ("pair", "item_count", 1),
        ("pair", "item_count", 2),
        ("pair", "item_count", 4),
    ]


def test_json_type_check_rejects_mistyped_cells_and_the_other_checks_skip_them() -> None:
    spec = _spec(
        ColumnSpec("text", "string", pattern="^[a-z]+$", max_length=3),
        ColumnSpec("n", "integer", minimum=0),
    )
    frame = pd.DataFrame(
        {
            "text": pd.Series(["abc", Mistyped("object", '{"a": 1}'), None], dtype=object),
            "n": pd.Series([1, Mistyped("string", '"7"'), -1], dtype=object),
        }
    )
    with pytest.raises(pa.errors.SchemaErrors) as err:
        pandera_schema(spec).validate(frame, lazy=True)
    cases = err.value.failure_cases
    got = sorted(
        (str(c), str(k), str(f), i)
        for c, k, f, i in zip(
            cases["column"], cases["check"], cases["failure_case"], cases["index"], strict=True
        )
        if not str(k).startswith(("dtype(", "coerce_dtype("))  # the same cells, another view
    )
    assert got == [
        ("n", "json_type integer", 'a JSON string: "7"', 1),
        ("n", "minimum 0", "-1", 2),
        ("text", "json_type string", 'a JSON object: {"a": 1}', 1),
    ]
    # Without the json_type checks (for units known to hold none) the schema is otherwise equal.
    lean = pandera_schema(spec, json_types=False)
    assert [c.name for c in lean.columns["text"].checks] == [
        c.name for c in pandera_schema(spec).columns["text"].checks if c.name != "json_type"
    ]


def test_number_columns_reject_what_json_cannot_hold() -> None:
    spec = _spec(ColumnSpec("x", "number"))
    got = _failures(spec, {"x": ["1.5", "-2e3", "Infinity", "NaN", "inf", "7"]})
    assert got == [("x", "number", 2), ("x", "number", 3), ("x", "number", 4)]


def test_lengths_and_utf8() -> None:
    spec = _spec(
        ColumnSpec("name", "string", max_length=3), ColumnSpec("src", "string", min_length=1)
    )
    got = _failures(spec, {"name": ["abc", "abcd", "a\ud800"], "src": ["x", "", "y"]})
    assert got == [("name", "length", 1), ("name", "utf8", 2), ("src", "length", 1)]


def test_missing_column_is_reported() -> None:
    spec = _spec(ColumnSpec("a", "string"), ColumnSpec("b", "string"))
    assert _failures(spec, {"a": ["x"]}) == [("t", "column_in_dataframe", None)]


def test_timestamp_format_translation() -> None:
    fmt = TimestampFormat.parse("yyyy-MM-ddTHH:mm:ss.SSSZ")
    assert fmt.strptime == "%Y-%m-%dT%H:%M:%S.%fZ"
    assert fmt.pattern.fullmatch("2024-05-01T12:34:56.789Z")
    assert not fmt.pattern.fullmatch("2024-05-01T12:34:56Z")
    moment = datetime(2024, 5, 1, 12, 34, 56, 789999, tzinfo=UTC)
    assert fmt.render(moment) == "2024-05-01T12:34:56.789Z"
    assert TimestampFormat.parse("yyyy-MM-dd").render(moment) == "2024-05-01"


def test_unsupported_timestamp_token_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="unsupported token 'E'"):
        TimestampFormat.parse("EEE yyyy")


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(value=_JSON_VALUES, spaced=st.booleans())
def test_json_array_checks_agree_with_json_loads(value: object, spaced: bool) -> None:
    # The checks' regular-expression fast paths must say exactly what json.loads would.
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": ") if spaced else (",", ":"))
    is_list = isinstance(value, list)
    assert _json_array_of("string")(text) is (is_list and all(isinstance(v, str) for v in value))
    assert _json_array_of("object")(text) is (is_list and all(isinstance(v, dict) for v in value))
    if is_list:  # an array cut before its closing bracket is no array at all
        assert not _json_array_of("object")(text[:-1])
        assert not _json_array_of("string")(text[:-1])


def test_every_value_matches_judges_each_value_not_the_joined_text() -> None:
    from etl.contracts.pandera_schema import every_value_matches

    stamp = re.compile(r"[0-9]{4}-[0-9]{2}")
    assert every_value_matches(stamp, ["2024-05", "1999-12"])
    assert not every_value_matches(stamp, ["2024-05", "2024-5"])
    assert not every_value_matches(stamp, ["2024-05", None])
    # Joined by line feeds, "2024-05\n1999-12" must not pass as one value holding a line feed.
    assert not every_value_matches(stamp, ["2024-05\n1999-12"])
    assert not every_value_matches(re.compile(r"(?s).+"), ["a", 3])
