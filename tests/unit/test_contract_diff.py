"""``tweetpipe contracts diff``: each classification on a pair of contracts, the version gate, the
output formats, and ``--base`` against a real (temporary) git repository."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from etl.adapters.cli import main
from etl.errors import DiffInputError
from etl.tools.contract_diff import DiffReport, diff_against_ref, diff_documents, diff_files
from etl.tools.contract_diff_report import docs_url_setting, render
from tests.git_repo import git

if TYPE_CHECKING:
    from collections.abc import Callable

    from etl.tools.contract_changes import Change

PAIRS = Path(__file__).parent / "contract_pairs"
BASE: dict[str, Any] = yaml.safe_load((PAIRS / "orders.odcs.yaml").read_text(encoding="utf-8"))

Doc = dict[str, Any]


def _new(edit: Callable[[Doc], object], version: str | None = None) -> Doc:
    doc = copy.deepcopy(BASE)
    edit(doc)
    if version is not None:
        doc["version"] = version
    return doc


def _columns(doc: Doc) -> list[Doc]:
    props: list[Doc] = doc["schema"][0]["properties"]
    return props


def _col(doc: Doc, name: str) -> Doc:
    return next(p for p in _columns(doc) if p["name"] == name)


def _opts(doc: Doc, name: str) -> Doc:
    opts: Doc = _col(doc, name).setdefault("logicalTypeOptions", {})
    return opts


def _rule(doc: Doc, name: str) -> Doc:
    return next(r for r in doc["schema"][0]["quality"] if r["name"] == name)


def _changes(edit: Callable[[Doc], object]) -> list[Change]:
    return list(diff_documents(BASE, _new(edit), "orders").changes)


def _kinds(changes: list[Change]) -> set[tuple[str, str, bool]]:
    return {(c.where, c.kind, c.breaking) for c in changes}


def _remove(doc: Doc, name: str) -> None:
    doc["schema"][0]["properties"] = [p for p in _columns(doc) if p["name"] != name]


def _add(doc: Doc, prop: Doc) -> None:
    _columns(doc).append(prop)


def _set(target: Callable[[Doc], Doc], **values: Any) -> Callable[[Doc], object]:
    return lambda doc: target(doc).update(values)


def _drop(target: Callable[[Doc], Doc], key: str) -> Callable[[Doc], object]:
    return lambda doc: target(doc).pop(key)


def _valid_values(values: list[str]) -> Callable[[Doc], object]:
    def edit(doc: Doc) -> None:
        _col(doc, "status")["quality"][0]["arguments"]["validValues"] = values

    return edit


def _rename(doc: Doc) -> None:
    _col(doc, "note")["name"] = "comment"


def _move_note_first(doc: Doc) -> None:
    props = _columns(doc)
    props.insert(0, props.pop(3))


_NEW_OPTIONAL = {
    "name": "coupon",
    "logicalType": "string",
    "description": "Code.",
    "required": False,
}
_NEW_REQUIRED = {
    "name": "currency",
    "logicalType": "string",
    "description": "ISO.",
    "required": True,
}

# (id, edit, the one change expected: where, kind, breaking)
CASES: list[tuple[str, Callable[[Doc], object], str, str, bool]] = [
    ("column removed", lambda d: _remove(d, "note"), "orders.note", "column-removed", True),
    ("column renamed", _rename, "orders.note", "column-renamed", True),
    ("optional column added", lambda d: _add(d, _NEW_OPTIONAL), "orders.coupon", "optional-column-added", False),
    ("required column added", lambda d: _add(d, _NEW_REQUIRED), "orders.currency", "required-column-added", True),
    ("int to number widening", _set(lambda d: _col(d, "quantity"), logicalType="number"), "orders.quantity", "logicalType-changed", True),
    ("string to integer narrowing", _set(lambda d: _col(d, "note"), logicalType="integer"), "orders.note", "logicalType-changed", True),
    ("physical type widened", _set(lambda d: _col(d, "quantity"), physicalType="int128"), "orders.quantity", "physicalType-changed", True),
    ("nullable to required", _set(lambda d: _col(d, "note"), required=True), "orders.note", "required-added", True),
    ("required to nullable", _set(lambda d: _col(d, "status"), required=False), "orders.status", "required-removed", True),
    ("uniqueness added", _set(lambda d: _col(d, "note"), unique=True), "orders.note", "unique-added", True),
    ("uniqueness removed", _set(lambda d: _col(d, "order_id"), unique=False), "orders.order_id", "unique-removed", False),
    ("pattern added", _set(lambda d: _opts(d, "note"), pattern="^[a-z ]*$"), "orders.note", "check-tightened", True),
    ("pattern removed", _drop(lambda d: _opts(d, "order_id"), "pattern"), "orders.order_id", "check-loosened", False),
    # {1,10} -> {1,20} is in fact looser, but regex inclusion is not decided in general
    ("pattern changed", _set(lambda d: _opts(d, "order_id"), pattern="^[0-9]{1,20}$"), "orders.order_id", "check-changed", True),
    ("maximum lowered", _set(lambda d: _opts(d, "quantity"), maximum=50), "orders.quantity", "check-tightened", True),
    ("maximum raised", _set(lambda d: _opts(d, "quantity"), maximum=1000), "orders.quantity", "check-loosened", False),
    ("minimum removed", _drop(lambda d: _opts(d, "quantity"), "minimum"), "orders.quantity", "check-loosened", False),
    ("minimum made exclusive", lambda d: _opts(d, "quantity").update(exclusiveMinimum=_opts(d, "quantity").pop("minimum")), "orders.quantity", "check-tightened", True),
    ("range shifted both ways", _set(lambda d: _opts(d, "quantity"), minimum=10, maximum=1000), "orders.quantity", "check-changed", True),
    ("maxLength lowered", _set(lambda d: _opts(d, "note"), maxLength=100), "orders.note", "check-tightened", True),
    ("maxLength raised", _set(lambda d: _opts(d, "note"), maxLength=500), "orders.note", "check-loosened", False),
    ("minLength added", _set(lambda d: _opts(d, "note"), minLength=1), "orders.note", "check-tightened", True),
    ("enum value removed", _valid_values(["open"]), "orders.status", "enum-values-removed", True),
    # consumers that match every status exhaustively meet a value they never handled
    ("enum value added", _valid_values(["open", "shipped", "returned"]), "orders.status", "enum-values-added", True),
    ("enum removed", lambda d: _col(d, "status").pop("quality"), "orders.status", "enum-removed", True),
    ("description changed", _set(lambda d: _col(d, "note"), description="Anything."), "orders.note", "description-changed", False),
    ("items type changed", _set(lambda d: _col(d, "tags")["items"], logicalType="integer"), "orders.tags[]", "logicalType-changed", True),
    ("column order changed", _move_note_first, "orders", "column-order-changed", False),
    ("rule added", lambda d: d["schema"][0]["quality"].append({"name": "few_rows", "metric": "rowCount", "mustBeLessThan": 10000}), "orders", "rule-added", True),
    ("rule removed", lambda d: d["schema"][0]["quality"].pop(1), "orders", "rule-removed", False),
    ("rule threshold raised", _set(lambda d: _rule(d, "enough_rows"), mustBeGreaterOrEqualTo=20), "orders", "check-tightened", True),
    ("rule threshold lowered", _set(lambda d: _rule(d, "enough_rows"), mustBeGreaterOrEqualTo=5), "orders", "check-loosened", False),
    ("rule severity to warning", _set(lambda d: _rule(d, "enough_rows"), severity="warning"), "orders", "check-loosened", False),
    ("rule metric changed", _set(lambda d: _rule(d, "enough_rows"), metric="nullValues"), "orders", "check-changed", True),
    ("dataset physicalName", _set(lambda d: d["schema"][0], physicalName="orders_v2.csv"), "orders", "physicalName-changed", True),
    ("dataset description", _set(lambda d: d["schema"][0], description="Orders."), "orders", "description-changed", False),
    ("contract name", _set(lambda d: d, name="shop_orders"), "contract", "name-changed", True),
    ("owners changed", _set(lambda d: d["team"], name="warehouse"), "contract", "team-changed", False),
    ("status deprecated", _set(lambda d: d, status="deprecated"), "contract", "status-changed", False),
    ("status retired", _set(lambda d: d, status="retired"), "contract", "status-changed", True),
    ("dataset removed", lambda d: d["schema"].clear(), "orders", "dataset-removed", True),
    ("dataset added", lambda d: d["schema"].append({"name": "refunds", "properties": []}), "refunds", "dataset-added", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "where", "kind", "breaking"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_change_is_classified(edit: Callable[[Doc], object], where: str, kind: str, breaking: bool) -> None:  # fmt: skip
    changes = _changes(edit)
    assert (where, kind, breaking) in _kinds(changes), changes
    # the verdict of the whole diff is the verdict of the case (nothing else breaking sneaks in)
    assert any(c.breaking for c in changes) is breaking, changes


def test_int_to_string_widening_is_breaking_for_consumers_parsing_ints() -> None:
    changes = _changes(
        _set(lambda d: _col(d, "quantity"), logicalType="string", physicalType="string")
    )
    assert _kinds(changes) >= {
        ("orders.quantity", "logicalType-changed", True),
        ("orders.quantity", "physicalType-changed", True),
    }
    message = next(c.message for c in changes if c.kind == "logicalType-changed")
    assert "'integer'" in message and "'string'" in message


def test_a_rename_is_one_change_not_a_removal_plus_an_addition() -> None:
    changes = _changes(_rename)
    assert [(c.kind, c.old, c.new) for c in changes] == [("column-renamed", "note", "comment")]


def test_a_removed_and_a_different_added_column_are_not_a_rename() -> None:
    def edit(doc: Doc) -> None:
        _remove(doc, "note")
        _add(doc, _NEW_REQUIRED)

    assert {c.kind for c in _changes(edit)} == {"column-removed", "required-column-added"}


def test_enum_order_alone_is_no_change() -> None:
    assert _changes(_valid_values(["shipped", "open"])) == []


def test_identical_contracts_have_no_changes() -> None:
    diff = diff_documents(BASE, copy.deepcopy(BASE), "orders")
    assert diff.changes == ()
    assert diff.ok
    assert diff.required_bump is None


def test_nested_properties_are_compared() -> None:
    def nested(doc: Doc) -> Doc:
        items: Doc = _col(doc, "tags")["items"]
        return items

    def with_fields(doc: Doc) -> None:
        nested(doc).update(
            logicalType="object",
            properties=[
                {"name": "label", "logicalType": "string", "description": "L.", "required": True},
                {"name": "weight", "logicalType": "integer", "description": "W."},
            ],
        )

    old = _new(with_fields)
    new = copy.deepcopy(old)
    nested(new)["properties"].pop(1)
    changes = diff_documents(old, new, "orders").changes
    assert [(c.where, c.kind, c.breaking) for c in changes] == [
        ("orders.tags[].weight", "column-removed", True)
    ]


# --- the version gate ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "ok"),
    [("1.2.0", False), ("1.2.1", False), ("1.3.0", False), ("2.0.0", True), ("3.0.0", True)],
)
def test_breaking_changes_need_a_major_bump(version: str, ok: bool) -> None:
    new = _new(lambda d: _remove(d, "note"), version=version)
    diff = diff_documents(BASE, new, "orders")
    assert diff.breaking
    assert diff.ok is ok
    assert diff.required_bump == "major"
    if not ok:
        assert "2.0.0" in diff.verdict()


def test_a_version_that_is_not_semantic_never_counts_as_a_bump() -> None:
    new = _new(lambda d: _remove(d, "note"), version="next")
    assert not diff_documents(BASE, new, "orders").ok


def test_non_breaking_changes_pass_without_a_bump() -> None:
    diff = diff_documents(BASE, _new(lambda d: _add(d, _NEW_OPTIONAL)), "orders")
    assert diff.ok
    assert diff.required_bump == "minor"


def test_added_contract_is_a_non_breaking_change() -> None:
    diff = diff_documents(None, BASE, "orders")
    assert [(c.kind, c.breaking) for c in diff.changes] == [("contract-added", False)]
    assert diff.ok


@pytest.mark.parametrize(
    ("status", "ok"), [("active", False), ("deprecated", False), ("retired", True)]
)
def test_a_removed_contract_is_breaking_unless_retired(status: str, ok: bool) -> None:
    diff = diff_documents(_new(_set(lambda d: d, status=status)), None, "orders")
    assert [(c.kind, c.breaking) for c in diff.changes] == [("contract-removed", True)]
    assert diff.ok is ok


# --- output --------------------------------------------------------------------------------------
def _report(version: str = "1.2.0") -> DiffReport:
    def edit(doc: Doc) -> None:
        _remove(doc, "note")
        _add(doc, {**_NEW_OPTIONAL, "name": "a|b", "description": "pipe | inside"})

    return DiffReport((diff_documents(BASE, _new(edit, version), "contracts/orders.odcs.yaml"),))


def test_text_output_lists_every_change_and_the_verdict() -> None:
    text = render(_report(), "text")
    assert "BREAKING      orders.note" in text
    assert "non-breaking  orders.a|b" in text
    assert "need a major version bump (1.2.0 -> 2.0.0)" in text
    assert text.rstrip().endswith("FAIL (breaking change without a major version bump)")


def test_json_output_is_complete() -> None:
    data = json.loads(render(_report(), "json"))
    assert data["ok"] is False
    (contract,) = data["contracts"]
    assert contract["required_bump"] == "major"
    assert contract["major_bumped"] is False
    assert {(c["where"], c["kind"], c["breaking"]) for c in contract["changes"]} == {
        ("orders.note", "column-removed", True),
        ("orders.a|b", "optional-column-added", False),
    }


def test_markdown_output_is_a_table_with_escaped_cells() -> None:
    md = render(_report("2.0.0"), "markdown")
    lines = md.splitlines()
    assert lines[0] == (
        "### Contract changes: passes "
        "(1 breaking change with a major version bump, 1 non-breaking change)"
    )
    assert "| `contracts/orders.odcs.yaml` | `orders.note` | column removed |" in lines
    assert "| `contracts/orders.odcs.yaml` | `orders.a\\|b` | optional column added |" in lines
    # every table row has the same number of unescaped separators as its header
    rows = [line for line in lines if line.startswith("| ")]
    for row in rows:
        assert row.replace("\\|", "").count("|") in (4, 5), row


def test_markdown_opens_with_the_verdict_breaking_first_the_rest_folded() -> None:
    md = render(_report(), "markdown")
    lines = md.splitlines()
    assert lines[0] == (
        "### Contract changes: fails (1 breaking change without a major version bump: "
        "`contracts/orders.odcs.yaml` needs version 2.0.0, is 1.2.0)"
    )
    breaking = lines.index("#### 1 breaking change")
    folded = lines.index("<details><summary>1 non-breaking change</summary>")
    closed = lines.index("</details>")
    removed = lines.index("| `contracts/orders.odcs.yaml` | `orders.note` | column removed |")
    added = next(i for i, line in enumerate(lines) if "optional column added" in line)
    assert breaking < removed < folded < added < closed
    assert lines[folded + 1] == ""  # the host renders markdown inside <details> after a blank line


def test_markdown_without_breaking_changes_has_no_breaking_section() -> None:
    report = DiffReport((diff_documents(BASE, _new(lambda d: _add(d, _NEW_OPTIONAL)), "o"),))
    md = render(report, "markdown")
    assert md.splitlines()[0] == "### Contract changes: passes (1 non-breaking change)"
    assert "breaking change\n" not in md and "<details>" in md


def test_markdown_shows_values_from_the_contract_as_text() -> None:
    def edit(doc: Doc) -> None:
        _opts(doc, "note")["pattern"] = "^</details><img src=x> @octocat [x](http://e.invalid)$"

    md = render(DiffReport((diff_documents(BASE, _new(edit), "orders"),)), "markdown")
    assert "</details>" not in md.replace("\n</details>\n", "")
    assert "<img" not in md
    assert "@octocat" not in md and "@\u2060octocat" in md
    assert "[x](" not in md and "\\[x\\](" in md


def test_markdown_links_each_contract_to_its_docs_page(repo: Path) -> None:
    contracts = repo / "contracts"
    _write(contracts / "orders.odcs.yaml", _new(lambda d: _add(d, _NEW_OPTIONAL), "1.3.0"))
    md = render(diff_against_ref("HEAD", contracts), "markdown", "https://docs.example.org/c")
    assert (
        "| [`contracts/orders.odcs.yaml`](https://docs.example.org/c/orders.html) | 1.3.0"
        in md.replace("1.2.0 -&gt; ", "")
    )
    assert md.rstrip().endswith("Contract docs: https://docs.example.org/c/index.html")
    assert "docs.example.org" not in render(diff_against_ref("HEAD", contracts), "markdown")


@pytest.mark.parametrize(
    ("given", "env", "url"),
    [
        (None, {}, None),
        (None, {"TWEETPIPE_CONTRACT_DOCS_URL": ""}, None),
        (
            None,
            {"TWEETPIPE_CONTRACT_DOCS_URL": "https://d.example.org/x/"},
            "https://d.example.org/x",
        ),
        ("http://127.0.0.1:8000/docs", {"TWEETPIPE_CONTRACT_DOCS_URL": "https://o"}, None),
    ],
)
def test_docs_url_from_the_flag_else_the_environment(
    given: str | None, env: dict[str, str], url: str | None
) -> None:
    assert docs_url_setting(given, env) == (url or given)


@pytest.mark.parametrize(
    "bad",
    ["javascript:alert(1)", "https://x.example.org/a b", "https://x.example.org/)[y](z", "ftp://x"],
)
def test_a_bad_docs_url_is_a_usage_error(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    argv = ["contracts", "diff", "--base", "HEAD", "--dir", str(repo / "contracts")]
    assert main([*argv, "--docs-url", bad]) == 2
    assert "--docs-url" in capsys.readouterr().err
    monkeypatch.setenv("TWEETPIPE_CONTRACT_DOCS_URL", bad)
    assert main(argv) == 2
    assert "TWEETPIPE_CONTRACT_DOCS_URL" in capsys.readouterr().err


# --- files and the command line ------------------------------------------------------------------
def _write(path: Path, doc: Doc) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_diff_files_reads_both_files(tmp_path: Path) -> None:
    old = _write(tmp_path / "old.odcs.yaml", BASE)
    new = _write(tmp_path / "new.odcs.yaml", _new(lambda d: _remove(d, "note")))
    (diff,) = diff_files(old, new).contracts
    assert diff.old_source == str(old)
    assert [c.kind for c in diff.changes] == ["column-removed"]


@pytest.mark.parametrize(("version", "code"), [("1.3.0", 1), ("2.0.0", 0)])
def test_cli_exit_code_follows_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str, code: int
) -> None:
    old = _write(tmp_path / "old.odcs.yaml", BASE)
    new = _write(tmp_path / "new.odcs.yaml", _new(lambda d: _remove(d, "note"), version))
    assert main(["contracts", "diff", str(old), str(new), "--format", "json"]) == code
    assert json.loads(capsys.readouterr().out)["ok"] is (code == 0)


@pytest.mark.parametrize(
    "argv",
    [
        ["contracts", "diff"],
        ["contracts", "diff", "only-one.yaml"],
        ["contracts", "diff", "a.yaml", "b.yaml", "--base", "HEAD"],
        ["contracts", "diff", "missing-old.yaml", "missing-new.yaml"],
    ],
)
def test_cli_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "error" in capsys.readouterr().err


def test_a_file_that_is_not_a_contract_is_a_usage_error(tmp_path: Path) -> None:
    old = _write(tmp_path / "old.odcs.yaml", BASE)
    bad = tmp_path / "bad.odcs.yaml"
    bad.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(DiffInputError, match="bad.odcs.yaml"):
        diff_files(old, bad)


# --- --base against a git repository -------------------------------------------------------------
@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "contracts").mkdir(parents=True)
    git(root, "init", "-q")
    _write(root / "contracts" / "orders.odcs.yaml", BASE)
    (root / "contracts" / "notes.txt").write_text("not a contract\n", encoding="utf-8")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "orders 1.2.0")
    return root


def test_base_compares_the_working_tree_with_a_revision(repo: Path) -> None:
    contracts = repo / "contracts"
    _write(contracts / "orders.odcs.yaml", _new(lambda d: _remove(d, "note")))
    report = diff_against_ref("HEAD", contracts)
    assert report.base == "HEAD"
    (diff,) = report.contracts
    assert diff.contract == "contracts/orders.odcs.yaml"
    assert diff.old_source == "HEAD:contracts/orders.odcs.yaml"
    assert [c.kind for c in diff.changes] == ["column-removed"]
    assert not report.ok


def test_base_sees_committed_history(repo: Path) -> None:
    contracts = repo / "contracts"
    _write(contracts / "orders.odcs.yaml", _new(lambda d: _remove(d, "note"), version="2.0.0"))
    git(repo, "commit", "-q", "-am", "orders 2.0.0: note removed")
    assert diff_against_ref("HEAD", contracts).contracts[0].changes == ()
    report = diff_against_ref("HEAD~1", contracts)
    assert report.ok
    assert report.contracts[0].major_bumped


def test_base_reports_added_and_removed_contracts(repo: Path) -> None:
    contracts = repo / "contracts"
    (contracts / "orders.odcs.yaml").unlink()
    _write(contracts / "refunds.odcs.yaml", _new(_set(lambda d: d, name="refunds")))
    report = diff_against_ref("HEAD", contracts)
    kinds = {d.contract: [c.kind for c in d.changes] for d in report.contracts}
    assert kinds == {
        "contracts/orders.odcs.yaml": ["contract-removed"],
        "contracts/refunds.odcs.yaml": ["contract-added"],
    }
    assert not report.ok


def test_base_with_an_unknown_revision_is_a_usage_error(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(DiffInputError, match="HEAD~1"):
        diff_against_ref("HEAD~1", repo / "contracts")
    argv = ["contracts", "diff", "--base", "no-such-ref", "--dir", str(repo / "contracts")]
    assert main(argv) == 2
    assert "no-such-ref" in capsys.readouterr().err


def test_base_outside_a_git_tree_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "contracts").mkdir()
    with pytest.raises(DiffInputError):
        diff_against_ref("HEAD", tmp_path / "contracts")


def test_cli_base_markdown(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    contracts = repo / "contracts"
    _write(contracts / "orders.odcs.yaml", _new(lambda d: _add(d, _NEW_OPTIONAL), "1.3.0"))
    argv = ["contracts", "diff", "--base", "HEAD", "--dir", str(contracts), "--format", "markdown"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("### Contract changes against `HEAD`: passes")
    assert "| `contracts/orders.odcs.yaml` | `orders.coupon` | optional column added |" in out
