"""The pull-request comment of ``tweetpipe contracts review``: marker first, one verdict line,
gates, owners, the diff; always small enough for a comment, whatever the contracts hold."""

from __future__ import annotations

from etl.tools.contract_changes import Change
from etl.tools.contract_codeowners import OwnedPath
from etl.tools.contract_diff import ContractDiff, DiffReport
from etl.tools.contract_review import GateResult, Review, render_comment
from etl.tools.github_comment import COMMENT_MARKER, MAX_BODY_CHARS


def _gates(*failed: str) -> tuple[GateResult, ...]:
    names = ("contracts valid", "suites in sync", "reviewers by contract", "version bump")
    return tuple(GateResult(n, f"tweetpipe {n}", n not in failed, "summary") for n in names)


def _diff(changes: int, breaking: bool, text: str = "x") -> ContractDiff:
    return ContractDiff(
        "contracts/big.odcs.yaml",
        "main:contracts/big.odcs.yaml",
        "contracts/big.odcs.yaml",
        "1.0.0",
        "1.0.0",
        tuple(
            Change(f"big.col_{i}_{text * 300}", "k", breaking, f"{text * 600} {i}")
            for i in range(changes)
        ),
    )


def test_a_huge_diff_still_fits_in_one_comment_with_whole_tables() -> None:
    report = DiffReport((_diff(3000, True), _diff(3000, False)), base="main")
    review = Review("main", ("contracts/big.odcs.yaml",), _gates("version bump"), report)
    body = render_comment(review)
    assert len(body) <= MAX_BODY_CHARS
    lines = body.splitlines()
    assert lines[:2] == [COMMENT_MARKER, "### Contract review against `main`: fails (version bump)"]
    assert "#### 3000 breaking changes" in lines
    assert lines.count("</details>") == 1 and lines[-3] == "</details>"
    assert any(line.startswith("... and ") and line.endswith("to see them all.") for line in lines)
    rows = [line for line in lines if line.startswith("| `contracts/big")]
    assert rows and all(line.replace("\\|", "").count("|") in (4, 5) for line in rows)


def test_nothing_to_review_is_said_in_one_line() -> None:
    body = render_comment(Review("release/2.x", ()))
    assert body.splitlines()[:2] == [COMMENT_MARKER, "### Contract review: nothing to review"]
    assert "`release/2.x`" in body


def test_labels_and_owners_cannot_break_out_of_their_spans() -> None:
    owners = (OwnedPath("contracts/a.odcs.yaml", ("@acme/data",), "contracts/a.odcs.yaml"),)
    review = Review("we`ird|ref", ("contracts/a.odcs.yaml",), _gates(), None, owners)
    body = render_comment(review)
    assert body.splitlines()[1] == "### Contract review against ``we`ird|ref``: passes"
    assert "- `contracts/a.odcs.yaml`: `@acme/data`" in body
    for line in body.splitlines():
        if line.startswith("| "):
            assert line.replace("\\|", "").count("|") == 4, line
