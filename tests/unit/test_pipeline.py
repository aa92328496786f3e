"""The orchestration adapter outside a running task: configuration, connections, the gate.

What Airflow does with the exceptions is covered by tests/integration/test_dag.py; here the
adapter's own decisions: which store and sources a run gets, how a connection becomes a base URL,
and that a breach becomes the one failure Airflow never retries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from airflow.sdk.exceptions import AirflowFailException

from etl import pipeline
from etl.quality import CheckpointSummary, QualityGateFailed

if TYPE_CHECKING:
    from pathlib import Path


def _config(tmp_path: Path, body: str) -> str:
    path = tmp_path / "pipeline.yaml"
    path.write_text(body, encoding="utf-8")
    return str(path)


def _summary(success: bool) -> CheckpointSummary:
    failed = [
        {
            "expectation_type": "expect_column_values_to_not_be_null",
            "column": "created_at",
            "rule": None,
            "severity": "critical",
            "unexpected_count": 4,
            "success": False,
        }
    ]
    return CheckpointSummary(
        suite="tweets_curated",
        success=success,
        evaluated=54,
        failed=[] if success else failed,
        results=[],
        docs_page="validations/tweets_curated/run/20240101T000000Z/batch.html",
        run_name="run__account-a",
        rows=12,
    )


def test_sources_from_params_are_parsed_and_deduplicated(tmp_path: Path) -> None:
    params = {
        "sources": ["account:ada_builds", "@Ada_Builds", "query:#python -is:retweet"],
        "config": _config(tmp_path, "sources: {accounts: [ignored]}\n"),
    }

    planned = pipeline.plan_sources(params)

    assert planned == [
        {"kind": "account", "value": "ada_builds", "slug": "account-ada_builds"},
        {"kind": "query", "value": "#python -is:retweet", "slug": planned[1]["slug"]},
    ]
    assert planned[1]["slug"].startswith("query-python-is-retweet-")


def test_sources_default_to_the_config_file(tmp_path: Path) -> None:
    params = {"sources": [], "config": _config(tmp_path, "sources: {accounts: [a, b]}\n")}

    assert [s["value"] for s in pipeline.plan_sources(params)] == ["a", "b"]


@pytest.mark.parametrize(
    ("sources", "config", "message"),
    [
        (["nasa"], "sources: {}\n", "neither 'account:NAME'"),
        (["account:not a name"], "sources: {}\n", "not a valid X username"),
        ([], "sources: {}\n", "no sources"),
    ],
)
def test_bad_sources_fail_without_retries(
    tmp_path: Path, sources: list[str], config: str, message: str
) -> None:
    params = {"sources": sources, "config": _config(tmp_path, config)}

    with pytest.raises(AirflowFailException, match=message):
        pipeline.plan_sources(params)


def test_store_param_wins_then_environment_then_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, "store: s3://from-config/p\n")
    monkeypatch.setenv(pipeline.STORE_ENV, "/from/env")

    assert pipeline.store_url({"store": "/from/param", "config": config}) == "/from/param"
    assert pipeline.store_url({"store": "", "config": config}) == "/from/env"
    monkeypatch.delenv(pipeline.STORE_ENV)
    assert pipeline.store_url({"store": "", "config": config}) == "s3://from-config/p"


def test_no_store_anywhere_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pipeline.STORE_ENV, raising=False)
    params = {"store": "", "config": _config(tmp_path, "sources: {}\n")}

    with pytest.raises(AirflowFailException, match="no store: set the DAG param 'store'"):
        pipeline.store_url(params)


@pytest.mark.parametrize(
    ("host", "port", "schema", "expected"),
    [
        ("https://api.twitter.com", None, None, "https://api.twitter.com"),
        ("http://127.0.0.1:8089/", None, "", "http://127.0.0.1:8089"),
        ("127.0.0.1", 8089, "http", "http://127.0.0.1:8089"),
        ("api.x.com", None, None, "https://api.x.com"),
        ("", None, None, None),
        (None, 443, "https", None),
    ],
)
def test_connection_fields_make_the_base_url(
    host: str | None, port: int | None, schema: str | None, expected: str | None
) -> None:
    assert pipeline._base_url(host, port, schema) == expected


def test_a_breach_fails_without_retries_and_keeps_the_evidence() -> None:
    with pytest.raises(AirflowFailException) as err:
        pipeline._gate(_summary(success=False))

    message = str(err.value)
    assert "expect_column_values_to_not_be_null(created_at)" in message
    assert "4 unexpected" in message
    assert "docs/validations/tweets_curated/run/" in message
    assert isinstance(err.value.__cause__, QualityGateFailed)


def test_a_passing_checkpoint_is_handed_on() -> None:
    doc = pipeline._gate(_summary(success=True))

    assert doc["success"] is True
    assert doc["rows"] == 12


def test_the_extract_client_takes_the_body_limit_from_the_environment_or_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = '{"conn_type": "http", "host": "http://127.0.0.1:9", "password": "a-token"}'
    monkeypatch.setenv("AIRFLOW_CONN_X_API_DEFAULT", conn)
    monkeypatch.delenv("X_API_MAX_BODY_BYTES", raising=False)
    params = {"config": _config(tmp_path, "api:\n  max_body_bytes: 4096\n")}

    assert pipeline._x_client(params).session.max_body_bytes == 4096
    monkeypatch.setenv("X_API_MAX_BODY_BYTES", "65536")
    assert pipeline._x_client(params).session.max_body_bytes == 65536
    params = {"config": str(tmp_path / "absent.yaml")}
    monkeypatch.delenv("X_API_MAX_BODY_BYTES")
    assert pipeline._x_client(params).session.max_body_bytes == 8 * 1024 * 1024
