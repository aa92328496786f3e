"""The orchestration adapter outside a running task: configuration, connections, the gate.

What Airflow does with the exceptions is covered by tests/integration/test_dag.py; here the
adapter's own decisions: which store and sources a run gets, how a connection becomes a base URL,
and that a breach becomes the one failure Airflow never retries.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from airflow.sdk.exceptions import AirflowFailException

from etl.adapters.airflow import tasks as pipeline
from etl.errors import QualityGateFailed
from etl.steps.quality import CheckpointSummary
from etl.storage.store import LocalStore, S3Store

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


def test_a_breach_fails_without_retries_and_keeps_the_evidence(tmp_path: Path) -> None:
    with pytest.raises(AirflowFailException) as err:
        pipeline._gate(_summary(success=False), LocalStore(tmp_path))

    message = str(err.value)
    assert "expect_column_values_to_not_be_null(created_at)" in message
    assert "4 unexpected" in message
    # A path the user can open, not a store key.
    page = f"Data Docs: {tmp_path.resolve()}/docs/validations/tweets_curated/run/"
    assert page in message
    assert isinstance(err.value.__cause__, QualityGateFailed)


def test_a_breach_on_s3_names_the_page_by_its_s3_url() -> None:
    store = S3Store("bucket", "team/tweets", client=object())

    with pytest.raises(AirflowFailException) as err:
        pipeline._gate(_summary(success=False), store)

    assert "Data Docs: s3://bucket/team/tweets/docs/validations/tweets_curated/run/" in str(
        err.value
    )


def test_the_failed_run_points_at_the_data_docs_index(tmp_path: Path) -> None:
    with pytest.raises(AirflowFailException) as err:
        pipeline.fail_run({"store": str(tmp_path)})

    assert f"Data Docs at {tmp_path.resolve()}/docs/index.html" in str(err.value)


def test_a_passing_checkpoint_is_handed_on(tmp_path: Path) -> None:
    doc = pipeline._gate(_summary(success=True), LocalStore(tmp_path))

    assert doc["success"] is True
    assert doc["rows"] == 12


def test_the_extract_client_takes_the_body_limit_from_the_deployment_not_the_run_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = '{"conn_type": "http", "host": "http://127.0.0.1:9", "password": "a-token"}'
    monkeypatch.setenv("AIRFLOW_CONN_X_API_DEFAULT", conn)
    monkeypatch.delenv("X_API_MAX_BODY_BYTES", raising=False)
    # A config a run's params may name is no place for the deployment's limits.
    params = {"config": _config(tmp_path, "api:\n  max_body_bytes: 1073741824\n")}

    assert pipeline._x_client(params).session.max_body_bytes == 8 * 1024 * 1024
    monkeypatch.setenv("X_API_MAX_BODY_BYTES", "65536")
    assert pipeline._x_client(params).session.max_body_bytes == 65536


# --- which connection may be used for the X API, and where its token goes -----------------------
AWS_SECRET = "aws-secret-key-that-must-stay-home"
X_TOKEN = "x-api-bearer-token-for-tests"


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


@pytest.fixture
def made_clients(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None]]:
    """Every client the adapter makes, as (token, base_url); no client sends anything here."""
    import etl.steps.extract.run

    made: list[tuple[str, str | None]] = []
    real = etl.steps.extract.run.make_client

    def record(token: str, base_url: str | None = None, **kwargs: object) -> object:
        made.append((token, base_url))
        return real(token, base_url)

    monkeypatch.setattr(etl.steps.extract.run, "make_client", record)
    for name in (pipeline.X_CONN_IDS_ENV, "X_API_BASE_URL", "X_BEARER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return made


@pytest.mark.parametrize(
    ("conn_id", "listed", "message"),
    [
        ("aws_default", "", "is not an X API connection"),
        ("my_aws", "", "is not an X API connection"),
        # Listed by the deployment, but of another type: still never used as a bearer token.
        ("aws_default", "x_api_default,aws_default", "is of type aws, not http"),
        ("x_api_aws", "", "is of type aws, not http"),
    ],
)
def test_only_an_x_api_connection_lends_its_password_as_the_bearer_token(
    conn_id: str,
    listed: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    made_clients: list[tuple[str, str | None]],
) -> None:
    _connection(
        monkeypatch,
        conn_id,
        conn_type="aws",
        host="http://127.0.0.1:9",
        login="AKIAEXAMPLE",
        password=AWS_SECRET,
    )
    if listed:
        monkeypatch.setenv(pipeline.X_CONN_IDS_ENV, listed)

    with pytest.raises(AirflowFailException, match=message) as err:
        pipeline._x_client({"x_conn_id": conn_id})

    assert made_clients == []
    assert AWS_SECRET not in str(err.value)


def test_the_api_host_comes_from_the_connection_not_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, made_clients: list[tuple[str, str | None]]
) -> None:
    elsewhere = _config(tmp_path, "api: {base_url: 'http://127.0.0.1:9/collect'}\n")
    _connection(
        monkeypatch,
        "x_api_default",
        conn_type="http",
        host="http://127.0.0.1:8089",
        password=X_TOKEN,
    )
    _connection(monkeypatch, "x_api_drift", conn_type="http", password=X_TOKEN)

    pipeline._x_client({"config": elsewhere})
    pipeline._x_client({"config": elsewhere, "x_conn_id": "x_api_drift"})
    monkeypatch.setenv("X_API_BASE_URL", "http://127.0.0.1:8090")  # the deployment's setting
    pipeline._x_client({"config": elsewhere, "x_conn_id": "x_api_drift"})

    assert made_clients == [
        (X_TOKEN, "http://127.0.0.1:8089"),
        (X_TOKEN, None),  # no host on the connection: the real API, not the config's URL
        (X_TOKEN, "http://127.0.0.1:8090"),
    ]


def test_an_allow_list_replaces_the_naming_convention(
    monkeypatch: pytest.MonkeyPatch, made_clients: list[tuple[str, str | None]]
) -> None:
    monkeypatch.setenv(pipeline.X_CONN_IDS_ENV, " twitter_prod ")
    _connection(monkeypatch, "twitter_prod", conn_type="http", password=X_TOKEN)
    _connection(monkeypatch, "x_api_default", conn_type="http", password=X_TOKEN)

    pipeline._x_client({"x_conn_id": "twitter_prod"})
    with pytest.raises(AirflowFailException, match="is not an X API connection"):
        pipeline._x_client({"x_conn_id": "x_api_default"})

    assert made_clients == [(X_TOKEN, None)]


def test_a_connection_host_with_credentials_is_refused_unquoted(
    monkeypatch: pytest.MonkeyPatch, made_clients: list[tuple[str, str | None]]
) -> None:
    _connection(
        monkeypatch, "x_api_default", conn_type="http", host="http://u:hunter22@h", password=X_TOKEN
    )

    with pytest.raises(AirflowFailException, match="must not carry credentials") as err:
        pipeline._x_client({})

    assert "hunter22" not in str(err.value) and made_clients == []


# --- bad settings from params: one message, nothing quoted that could be a secret --------------
def test_a_store_with_credentials_is_refused_without_quoting_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "wJalrXUtnFEMIK7MDENGbPxRfiCY"
    monkeypatch.delenv(pipeline.STORE_ENV, raising=False)
    config = _config(tmp_path, f"store: s3://AKIAEXAMPLE:{secret}@bucket/p\n")

    for params, where in (
        ({"store": f"s3://AKIAEXAMPLE:{secret}@bucket/p"}, "the DAG param 'store'"),
        ({"store": "", "config": config}, "store: the store URL carries credentials"),
    ):
        with pytest.raises(AirflowFailException, match="carries credentials") as err:
            pipeline.store_url(params)
        assert where in str(err.value)
        assert secret not in str(err.value) and "AKIAEXAMPLE" not in str(err.value)
    monkeypatch.setenv(pipeline.STORE_ENV, f"s3://AKIAEXAMPLE:{secret}@bucket/p")
    with pytest.raises(AirflowFailException, match=f"{pipeline.STORE_ENV}: the store URL") as err:
        pipeline.store_url({"store": ""})
    assert secret not in str(err.value)


def test_a_config_param_naming_another_file_quotes_none_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(pipeline.STORE_ENV, raising=False)
    cases = {
        "passwords": "db_password: hunter2-the-secret\n",
        "broken": "user: admin\npassword: 'hunter2-the-secret\n",
        "nested": "sources:\n  accounts: [ok]\n  token: hunter2-the-secret\n",
        "value": "sources:\n  accounts: ['hunter2-the-secret']\n",
    }
    for name, body in cases.items():
        path = tmp_path / name
        path.write_text(body, encoding="utf-8")
        for call in (pipeline.plan_sources, pipeline.store_url):
            with pytest.raises(AirflowFailException) as err:
                call({"sources": [], "store": "", "config": str(path)})
            message = str(err.value)
            assert "hunter2" not in message, (name, message)
            assert message.startswith(f"{path}:"), message
            assert message.count(str(path)) == 1, message


def test_more_sources_than_airflow_maps_are_refused_up_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = [f"user_{i}" for i in range(1025)]
    config = _config(tmp_path, f"sources: {{accounts: [{', '.join(accounts)}]}}\n")

    with pytest.raises(AirflowFailException, match=r"1025 sources.* at most 1024 .*max_map_length"):
        pipeline.plan_sources({"sources": [], "config": config})
    # The limit is Airflow's setting, not a constant.
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "2")
    with pytest.raises(AirflowFailException, match="3 sources, but Airflow maps at most 2"):
        pipeline.plan_sources({"sources": ["@a", "@b", "@c"]})
    assert len(pipeline.plan_sources({"sources": ["@a", "@b"]})) == 2


def test_a_username_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, 'sources:\n  accounts: ["hostile\\n"]\n')

    with pytest.raises(AirflowFailException, match=r"accounts\[0\]: is not a valid X username"):
        pipeline.plan_sources({"sources": [], "config": config})
