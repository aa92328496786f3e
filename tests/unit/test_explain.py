"""A failed gate in a user's terms (etl.steps.quality.explain) and at the end of the gate's message."""

from __future__ import annotations

import pytest

from etl.contracts.model import CURATED_CONTRACT, load_contract
from etl.errors import QualityGateFailed
from etl.steps import quality
from etl.steps.quality import CheckpointSummary, explain_failure

SHARE = {
    "expectation_type": "expect_table_row_count_to_be_between",
    "column": None,
    "rule": "quarantined_share",
    "severity": "critical",
    "success": False,
    "observed_value": 1,
    "expected": {"min_value": 4},
}


def _summary(failed: list[dict[str, object]], **parameters: object) -> CheckpointSummary:
    return CheckpointSummary(
        suite="tweets_curated",
        success=False,
        evaluated=40,
        failed=failed,
        results=failed,
        docs_page="validations/tweets_curated/r1/t/b.html",
        run_name="r1",
        rows=1,
        parameters=dict(parameters),
    )


def test_the_quarantined_share_is_told_as_posts_and_percent_against_the_contract():
    text = explain_failure(
        SHARE, {"curated": 1, "quarantined": 3}, rows=1, contract=load_contract(CURATED_CONTRACT)
    )

    assert text == "quarantined 3 of 4 posts (75 %); the contract allows at most 5 %"


def test_the_gate_message_ends_with_the_failure_in_a_users_terms():
    summary = _summary([SHARE], curated=1, quarantined=3)

    with pytest.raises(QualityGateFailed) as err:
        quality.raise_on_failure(summary, docs_base="/srv/store/docs/")

    lines = str(err.value).splitlines()
    assert lines[-1].strip() == "quarantined 3 of 4 posts (75 %); the contract allows at most 5 %"
    # The GX terms stay for whoever reads the expectation itself.
    assert "observed 1; expected min_value=4" in str(err.value)
    assert "Data Docs: /srv/store/docs/validations/tweets_curated/r1/t/b.html" in lines


@pytest.mark.parametrize(
    ("entry", "parameters", "expected"),
    [
        (
            {
                "expectation_type": "expect_column_values_to_match_regex",
                "column": "tweet_id",
                "rule": "tweet_id.pattern",
                "severity": "critical",
                "unexpected_count": 2,
                "partial_unexpected_list": ["12ab", "x"],
            },
            {},
            "2 of 8 rows (25 %) break tweet_id.pattern in column tweet_id, e.g. '12ab', 'x'",
        ),
        (
            {
                "expectation_type": "expect_table_row_count_to_equal",
                "severity": "critical",
                "observed_value": 7,
                "expected": {"value": 8},
            },
            {"curated": 8},
            "the staged file holds 7 rows, but the transform reported 8 curated posts: rows were "
            "lost or added between transform and audit",
        ),
        (
            {
                "expectation_type": "expect_column_min_to_be_between",
                "column": "created_at",
                "severity": "critical",
                "observed_value": "2024-04-30T23:00:00.000Z",
                "expected": {"min_value": "2024-05-01T00:00:00+00:00"},
            },
            {},
            "the oldest post in created_at (2024-04-30T23:00:00.000Z) is older than the data "
            "interval's start (2024-05-01T00:00:00+00:00)",
        ),
        (
            {
                "expectation_type": "expect_column_values_to_be_unique",
                "column": "tweet_id",
                "rule": "duplicate_tweet_ids",
                "severity": "warning",
                "unexpected_count": 1,
            },
            {},
            "1 of 8 rows (12 %) break duplicate_tweet_ids in column tweet_id (severity warning: "
            "reported only)",
        ),
    ],
)
def test_each_kind_of_failure_reads_as_counts_and_bounds(entry, parameters, expected):
    assert explain_failure(entry, parameters, rows=8) == expected


def test_an_unknown_expectation_falls_back_to_the_gx_terms():
    entry = {
        "expectation_type": "expect_column_mean_to_be_between",
        "column": "like_count",
        "severity": "critical",
        "observed_value": 0.5,
        "expected": {"min_value": 1},
    }

    assert explain_failure(entry, {}, rows=3) == (
        "expect_column_mean_to_be_between on like_count: observed 0.5, expected min_value=1"
    )


def test_a_share_without_the_report_counts_is_not_invented():
    text = explain_failure(SHARE, {}, rows=1, contract=load_contract(CURATED_CONTRACT))

    assert "posts" not in text
    assert text == "the batch holds 1 rows; it must hold at least 4"
