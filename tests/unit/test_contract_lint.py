"""``tweetpipe contracts lint``: ODCS v3.1 schema, our rules, the views, and where findings point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from etl.adapters.cli import main
from etl.contracts.model import CONTRACTS_DIR
from etl.tools.contract_lint import (
    Finding,
    contract_files,
    ecma_differences,
    lint_file,
    lint_text,
    odcs_schema,
)
from tests.conftest import shared_reference

PAIRS = Path(__file__).parent / "contract_pairs"
BASE_TEXT = (PAIRS / "orders.odcs.yaml").read_text(encoding="utf-8")
REFERENCE_SCHEMA = "odcs/odcs-json-schema-v3.1.0.json"


def _line(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line number of the n-th line containing ``needle``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} not in the test contract"
    return hits[occurrence - 1]


def _edit(old: str, new: str, text: str = BASE_TEXT) -> str:
    assert text.count(old) == 1, f"{old!r} must occur once in the test contract"
    return text.replace(old, new)


def _only(findings: list[Finding], rule: str) -> Finding:
    matching = [f for f in findings if f.rule == rule]
    assert len(matching) == 1, findings
    return matching[0]


# --- clean contracts -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(CONTRACTS_DIR.glob("*.odcs.yaml")), ids=lambda p: p.name)
def test_the_repository_contracts_lint_clean(path: Path) -> None:
    assert lint_file(path) == []


def test_the_synthetic_base_contract_lints_clean() -> None:
    assert lint_text(BASE_TEXT, "orders.odcs.yaml") == []


def test_default_paths_are_the_repository_contracts() -> None:
    files = contract_files()
    assert files == sorted(CONTRACTS_DIR.glob("*.odcs.yaml"))
    assert len(files) >= 2


# --- the ODCS JSON Schema ------------------------------------------------------------------------
def test_the_bundled_schema_is_odcs_v3_1() -> None:
    schema = odcs_schema()
    assert schema["properties"]["apiVersion"]["default"] == "v3.1.0"
    assert "v3.2.0" not in schema["properties"]["apiVersion"]["enum"]
    assert "status" in schema["required"]


def test_the_bundled_schema_matches_the_reference_v3_1_0_schema() -> None:
    reference = json.loads(shared_reference(REFERENCE_SCHEMA).read_text(encoding="utf-8"))
    schema = odcs_schema()
    assert schema["required"] == reference["required"]
    assert schema["$defs"].keys() == reference["$defs"].keys()
    assert schema["$defs"]["SchemaBaseProperty"] == reference["$defs"]["SchemaBaseProperty"]


def test_a_wrong_enum_value_points_at_its_key_line() -> None:
    text = _edit(
        "  - name: quantity\n    logicalType: integer", "  - name: quantity\n    logicalType: int"
    )
    finding = _only(lint_text(text, "c.yaml"), "odcs-schema")
    assert finding.line == _line(text, "logicalType: int")
    assert finding.field == "schema[orders].properties[quantity].logicalType"
    assert "'int' is not one of" in finding.message


def test_an_unknown_key_points_at_the_key_itself() -> None:
    text = _edit("      maxLength: 200\n", "      maxLength: 200\n      maxLenght: 20\n")
    finding = _only(lint_text(text, "c.yaml"), "odcs-schema")
    assert finding.line == _line(text, "maxLenght")
    assert finding.field == "schema[orders].properties[note].logicalTypeOptions.maxLenght"
    assert "'maxLenght' is not allowed" in finding.message


def test_a_missing_required_top_level_field_is_reported() -> None:
    text = _edit("status: active\n", "")
    finding = _only(lint_text(text, "c.yaml"), "odcs-schema")
    assert "'status' is a required property" in finding.message


def test_an_option_of_another_type_is_rejected() -> None:
    # pattern is a string option; ODCS v3.1 does not allow it on an integer
    text = _edit("      minimum: 0\n", "      minimum: 0\n      pattern: ^[0-9]+$\n")
    finding = _only(lint_text(text, "c.yaml"), "odcs-schema")
    assert finding.line == _line(text, "pattern: ^[0-9]+$")


# --- our rules -----------------------------------------------------------------------------------
def test_a_column_without_description_points_at_the_column() -> None:
    text = _edit("    description: Items ordered.\n", "")
    findings = lint_text(text, "c.yaml")
    finding = _only(findings, "column-description")
    assert finding.field == "schema[orders].properties[quantity].description"
    assert finding.line == _line(text, "- name: quantity")
    assert str(finding).startswith(f"c.yaml:{finding.line}: schema[orders].properties[quantity]")


def test_a_blank_description_counts_as_missing() -> None:
    text = _edit("    description: Free text from the buyer.", "    description: '  '")
    finding = _only(lint_text(text, "c.yaml"), "column-description")
    assert finding.line == _line(text, "description: '  '")


def test_a_column_without_logical_type_is_reported() -> None:
    text = _edit("  - name: status\n    logicalType: string\n", "  - name: status\n")
    findings = lint_text(text, "c.yaml")
    finding = _only(findings, "column-type")
    assert finding.field == "schema[orders].properties[status].logicalType"
    assert finding.line == _line(text, "- name: status")
    # the pipeline's own reader refuses it too, and lint says so
    assert any(f.rule == "contract-spec" for f in findings)


def test_a_nested_property_needs_a_description_too() -> None:
    text = _edit(
        "    items:\n      name: item\n      logicalType: string\n",
        "    items:\n      name: item\n      logicalType: object\n      properties:\n"
        "      - name: label\n        logicalType: string\n",
    )
    finding = _only(lint_text(text, "c.yaml"), "column-description")
    assert finding.field == "schema[orders].properties[tags].items.properties[label].description"
    assert finding.line == _line(text, "- name: label")


def test_a_pattern_that_does_not_compile_points_at_the_pattern() -> None:
    text = _edit("pattern: ^[0-9]{1,10}$", "pattern: ^[0-9]{1,10$(")
    finding = _only(lint_text(text, "c.yaml"), "pattern")
    assert finding.line == _line(text, "pattern: ^[0-9]{1,10$(")
    assert finding.field == "schema[orders].properties[order_id].logicalTypeOptions.pattern"
    assert "does not compile" in finding.message


def test_a_pattern_python_reads_differently_from_ecma_is_reported() -> None:
    text = _edit("pattern: ^[0-9]{1,10}$", r"pattern: ^\d{1,10}$")
    finding = _only(lint_text(text, "c.yaml"), "pattern-ecma")
    assert finding.line == _line(text, r"pattern: ^\d")
    assert "[0-9]" in finding.message


@pytest.mark.parametrize(
    ("pattern", "needle"),
    [
        (r"^\d+$", r"\d"),
        (r"^[\w.]+$", r"\w"),
        (r"\bword\b", r"\b"),
        (r"\Aabc\Z", r"\A"),
        (r"^(?P<year>[0-9]{4})$", "(?P<name>"),
        (r"(?i)abc", "inline flags"),
        (r"^(?>a+)b$", "atomic"),
        (r"^a++$", "possessive"),
        (r"^a(?#note)$", "comments"),
    ],
)
def test_ecma_differences_flag_python_only_constructs(pattern: str, needle: str) -> None:
    problems = ecma_differences(pattern)
    assert any(needle in p for p in problems), problems


@pytest.mark.parametrize(
    "pattern",
    [
        r"^[0-9]{1,19}$",
        r"^[A-Za-z0-9_]{1,15}$",
        r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        r"^\+?[0-9]+\.[0-9]*$",  # escaped + and . are the same in both
        r"^[\\d]$",  # a literal backslash and d inside a class
        r"^(?:ab|cd)?$",
    ],
)
def test_ecma_differences_accept_the_common_subset(pattern: str) -> None:
    assert ecma_differences(pattern) == []


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "1.0.0.0", ""])
def test_a_version_that_is_not_semantic_is_reported(version: str) -> None:
    text = _edit("version: 1.2.0", f"version: '{version}'")
    finding = _only(lint_text(text, "c.yaml"), "version")
    assert finding.line == _line(text, "version: '")
    assert finding.field == "version"


def test_a_version_with_a_trailing_line_feed_is_reported() -> None:
    text = _edit("version: 1.2.0", 'version: "1.2.0\\n"')  # YAML's escape: a real line feed
    assert _only(lint_text(text, "c.yaml"), "version").field == "version"


@pytest.mark.parametrize("version", ["0.1.0", "2.10.3", "1.0.0-rc.1", "1.0.0+build.7"])
def test_semantic_versions_pass(version: str) -> None:
    text = _edit("version: 1.2.0", f"version: {version}")
    assert [f for f in lint_text(text, "c.yaml") if f.rule == "version"] == []


def test_a_numeric_version_is_reported_by_schema_and_semver_rule() -> None:
    text = _edit("version: 1.2.0", "version: 1.2")  # YAML reads a float
    findings = lint_text(text, "c.yaml")
    assert {f.rule for f in findings} >= {"version", "odcs-schema"}
    assert all(f.line == _line(text, "version: 1.2") for f in findings if f.field == "version")


def test_a_key_given_twice_is_reported_at_the_second() -> None:
    text = _edit(
        "    description: Order status.\n",
        "    description: Order status.\n    description: again\n",
    )
    finding = _only(lint_text(text, "c.yaml"), "yaml-duplicate-key")
    assert finding.line == _line(text, "description: again")


def test_a_property_name_used_twice_is_reported() -> None:
    text = _edit("  - name: note\n", "  - name: quantity\n")
    findings = lint_text(text, "c.yaml")
    finding = _only(findings, "column-name")
    assert finding.line == _line(text, "- name: quantity", occurrence=2)


def test_yaml_syntax_errors_name_the_line() -> None:
    text = _edit(
        "    description: Order status.\n", "    description: Order status.\n   bad: indent\n"
    )
    (finding,) = lint_text(text, "c.yaml")
    assert finding.rule == "yaml"
    assert finding.line == _line(text, "bad: indent")
    assert "\n" not in str(finding)


def test_a_document_that_is_not_a_mapping_is_one_finding() -> None:
    (finding,) = lint_text("- just\n- a list\n", "c.yaml")
    assert finding.rule == "yaml"
    assert finding.line == 1


# --- the views -----------------------------------------------------------------------------------
def test_a_rule_the_gx_suite_cannot_express_is_reported() -> None:
    text = _edit("    mustBeGreaterOrEqualTo: 10\n", "    mustNotBe: 10\n")
    findings = lint_text(text, "c.yaml")
    finding = _only(findings, "views")
    assert "GX suite" in finding.message
    assert "enough_rows" in finding.message


def test_a_timestamp_format_the_gate_cannot_render_is_reported() -> None:
    text = _edit(
        "  - name: note\n",
        "  - name: ordered_at\n    logicalType: timestamp\n    physicalType: string\n"
        "    description: When.\n    logicalTypeOptions:\n      format: yyyy-MM-dd QQ\n"
        "  - name: note\n",
    )
    findings = lint_text(text, "c.yaml")
    assert any(f.rule == "views" and "Pandera schema" in f.message for f in findings), findings


# --- command line --------------------------------------------------------------------------------
def test_cli_exits_0_on_clean_contracts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contracts", "lint", str(PAIRS / "orders.odcs.yaml")]) == 0
    assert "1 contract clean" in capsys.readouterr().out


def test_cli_exits_1_and_prints_file_line_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.odcs.yaml"
    bad.write_text(_edit("    description: Items ordered.\n", ""), encoding="utf-8")
    assert main(["contracts", "lint", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    line = _line(bad.read_text(encoding="utf-8"), "- name: quantity")
    assert f"{bad}:{line}: schema[orders].properties[quantity].description:" in out
    assert "1 finding(s) in 1 contract" in out


def test_cli_exits_2_on_a_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.odcs.yaml"
    assert main(["contracts", "lint", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_cli_exits_2_on_a_directory_without_contracts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["contracts", "lint", str(tmp_path)]) == 2
    assert "no *.odcs.yaml files" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("old", "new", "at"),
    [
        ("schema:\n- name: orders", "schema:\n- 1\n- name: orders", "- 1"),
        ("  properties:\n  - name: order_id", "  properties:\n  - 5\n  - name: order_id", "- 5"),
        ("  quality:\n  - name: duplicate_order_ids", "  quality:\n  - 7\n  - name: duplicate_order_ids", "- 7"),
        ("    logicalTypeOptions:\n      maxLength: 200", "    logicalTypeOptions: big", ": big"),
        ("    items:\n      name: item\n      logicalType: string", "    items: strings", ": strings"),
    ],
    ids=["schema item", "property", "quality rule", "options", "items"],
)  # fmt: skip
def test_malformed_structure_is_a_finding_not_a_crash(old: str, new: str, at: str) -> None:
    text = _edit(old, new)
    findings = lint_text(text, "c.yaml")
    assert findings
    assert {f.rule for f in findings} == {"odcs-schema"}
    assert any(f.line == _line(text, at) for f in findings), findings
