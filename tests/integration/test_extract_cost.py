"""Pay-per-use end to end: ``tweetpipe extract`` (``--dry-run``, ``--max-cost-usd``) against the
emulator on loopback, every request counted at the emulator's side."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import requests

from etl.adapters.cli import main
from etl.storage.keys import is_page_key
from etl.storage.store import LocalStore
from etl.tools.emulator import Corpus, Faults
from tests.conftest import shared_reference
from tests.integration.conftest import EMULATOR_TOKEN

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = pytest.mark.integration

START, END = datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 2, 1, tzinfo=UTC)
WINDOW = ["--start", "2023-01-01T00:00:00Z", "--end", "2023-02-01T00:00:00Z"]
QUERY = "from:ada_builds OR from:tomas_ng OR from:quietriver"


def _corpus() -> Corpus:
    return Corpus(7, accounts=3, posts_per_account=[400, 400, 200], start=START, end=END)


@pytest.fixture
def emulator_at(
    emulator_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    def start(**kwargs: Any) -> Any:
        server = emulator_factory(corpus=_corpus(), **kwargs)
        monkeypatch.setenv("X_API_BASE_URL", server.base_url)
        monkeypatch.setenv("X_BEARER_TOKEN", EMULATOR_TOKEN)
        return server

    return start


def _posts(store: LocalStore) -> list[str]:
    pages = [k for k in store.list("raw/") if is_page_key(k)]
    return [t["id"] for k in pages for t in json.loads(store.get(k)).get("data", [])]


def _manifest(store: LocalStore) -> dict[str, Any]:
    (key,) = [k for k in store.list("raw/") if k.endswith("/_manifest.json")]
    doc: dict[str, Any] = json.loads(store.get(key))
    return doc


def test_the_window_holds_1000_posts() -> None:
    assert len(_corpus().ground_truth(query=QUERY, start_time=START, end_time=END)) == 1000


def test_a_dry_run_sends_only_counts_and_lookup_requests(
    emulator_at: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = emulator_at()
    store = tmp_path / "store"

    code = main(
        [
            "extract",
            "--dry-run",
            "--query",
            QUERY,
            "--account",
            "quietriver",
            "--store",
            str(store),
            *WINDOW,
        ]
    )

    out, err = capsys.readouterr()
    assert code == 0, out + err
    kinds = [r.kind for r in server.request_log]
    assert sorted(kinds) == ["tweets_counts_all", "users_by_username"]  # 2023 is long past
    assert "1000" in out and "$5.00" in out  # the query: 1,000 posts at $0.005
    assert "public_metrics.tweet_count" in out
    assert "total: 1200 posts expected, $6.01 expected" in out  # + 200 posts and a lookup
    assert "no post was read" in out
    assert not [k for k in LocalStore(store).list("") if k.startswith("raw/")]
    assert EMULATOR_TOKEN not in out + err


def test_a_two_dollar_cap_reads_at_most_400_posts_then_the_next_run_continues(
    emulator_at: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = emulator_at()
    store_dir = tmp_path / "store"
    args = ["extract", "--query", QUERY, "--store", str(store_dir), *WINDOW]

    code = main([*args, "--max-cost-usd", "2.00"])

    out, err = capsys.readouterr()
    store = LocalStore(store_dir)
    assert code == 1, out + err
    assert "STOPPED" in out and "--max-cost-usd" in out
    read = _posts(store)
    assert len(read) == 400 and len(set(read)) == 400
    served = [r for r in server.request_log if r.kind == "tweets_search_recent"]
    assert sum(int(r.params["max_results"]) for r in served) <= 400
    manifest = _manifest(store)
    assert manifest["complete"] is False and manifest["incomplete"]["name"] == "--max-cost-usd"
    assert manifest["cost"]["estimated_cost_usd"] == 2.0
    assert "estimated cost: $2.00" in out

    code = main(args)

    out = capsys.readouterr().out
    assert code == 0, out
    read = _posts(store)
    assert len(read) == 1000 and len(set(read)) == 1000
    manifest = _manifest(store)
    assert manifest["complete"] is True
    assert manifest["cost"]["posts_billable"] == 1000
    assert manifest["cost"]["estimated_cost_micro_usd"] == 5_000_000
    assert "estimated cost: $3.00" in out  # this run read the other 600


def test_an_uncapped_run_records_exactly_what_it_read(
    emulator_at: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = emulator_at()
    store_dir = tmp_path / "store"

    code = main(["extract", "--account", "tomas_ng", "--store", str(store_dir), *WINDOW])

    out = capsys.readouterr().out
    assert code == 0, out
    served = sum(
        len(json.loads(r.body).get("data", []))
        for r in server.request_log
        if r.kind == "users_tweets"
    )
    assert served == len(_posts(LocalStore(store_dir))) == 400
    cost = _manifest(LocalStore(store_dir))["cost"]
    assert cost["posts_billable"] == 400 and cost["user_reads_billable"] == 1
    assert cost["estimated_cost_micro_usd"] == 400 * 5_000 + 10_000
    assert "estimated cost: $2.01" in out


def test_a_usage_cap_429_stops_the_source_without_retrying_and_is_reported(
    emulator_at: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = emulator_at(faults=Faults(usage_cap=150))
    store_dir = tmp_path / "store"

    code = main(["extract", "--query", QUERY, "--store", str(store_dir), *WINDOW])

    out = capsys.readouterr().out
    assert code == 1
    assert "STOPPED" in out and "X API usage cap (Monthly, Product) reached" in out
    statuses = [r.status for r in server.request_log if r.kind == "tweets_search_recent"]
    assert statuses == [200, 200, 429]  # 200 posts served, then one 429, never repeated
    manifest = _manifest(LocalStore(store_dir))
    assert manifest["incomplete"]["limit"] == "usage_cap"
    assert len(_posts(LocalStore(store_dir))) == 200


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf", "1e3", "0.0000001", "2000000"])
def test_a_bad_cap_is_one_line_and_exit_2(
    emulator_at: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    server = emulator_at()

    code = main(["extract", "--query", "x", "--store", str(tmp_path), "--max-cost-usd", value])

    _, err = capsys.readouterr()
    assert code == 2
    assert "--max-cost-usd" in err and len(err.strip().splitlines()) == 1
    assert server.request_log == []


# --- the emulator's counts and usage endpoints, against the OpenAPI document ----------------------
def _get(server: Any, path: str, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {EMULATOR_TOKEN}"}
    return requests.get(f"{server.base_url}{path}", params=params, headers=headers, timeout=10)


def _errors(schema_name: str, instance: Any) -> list[str]:
    import jsonschema

    openapi = json.loads(shared_reference("x-api-v2/openapi.json").read_text())
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": openapi["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def test_counts_and_usage_answer_as_the_openapi_document_says(
    emulator_at: Callable[..., Any],
) -> None:
    server = emulator_at()
    window = {"start_time": "2023-01-01T00:00:00Z", "end_time": "2023-02-01T00:00:00Z"}

    by_day = _get(server, "/2/tweets/counts/recent", query=QUERY, granularity="day", **window)
    by_hour = _get(server, "/2/tweets/counts/all", query=QUERY, **window)
    usage = _get(
        server,
        "/2/usage/tweets",
        days=3,
        **{"usage.fields": "project_usage,daily_project_usage,project_cap"},
    )
    bad = _get(server, "/2/tweets/counts/recent", query=QUERY, granularity="week")

    assert _errors("Get2TweetsCountsRecentResponse", by_day.json()) == []
    assert _errors("Get2TweetsCountsAllResponse", by_hour.json()) == []
    assert _errors("Get2UsageTweetsResponse", usage.json()) == []
    assert bad.status_code == 400 and _errors("Problem", bad.json()) == []
    days = by_day.json()
    assert len(days["data"]) == 31 and days["meta"]["total_tweet_count"] == 1000
    assert sum(b["tweet_count"] for b in days["data"]) == 1000
    assert len(by_hour.json()["data"]) == 31 * 24  # hour is the default granularity
    assert set(usage.json()["data"]) == {"project_usage", "daily_project_usage", "project_cap"}


def test_usage_counts_what_was_served_and_the_cap_answers_429(
    emulator_at: Callable[..., Any],
) -> None:
    server = emulator_at(faults=Faults(usage_cap=100))

    first = _get(server, "/2/tweets/search/recent", query=QUERY, max_results=100)
    capped = _get(server, "/2/tweets/search/recent", query=QUERY, max_results=100)
    usage = _get(server, "/2/usage/tweets")

    assert first.status_code == 200
    assert capped.status_code == 429
    body = capped.json()
    assert body["type"] == "https://api.twitter.com/2/problems/usage-capped"
    assert body["title"] == "UsageCapExceeded" and body["period"] == "Monthly"
    assert _errors("UsageCapExceededProblem", body) == []
    assert usage.json()["data"]["project_usage"] == 100
    assert usage.json()["data"]["project_cap"] == 100


# --- the DAG's extract task -------------------------------------------------------------------------
@pytest.fixture
def dag_params(
    emulator_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, Any]:
    from etl.tools.demo import x_connection

    server = emulator_factory(corpus=_corpus())
    monkeypatch.setenv("AIRFLOW_CONN_X_API_DEFAULT", x_connection(server.base_url, EMULATOR_TOKEN))
    return {"store": str(tmp_path / "store"), "sources": ["account:ada_builds", f"query:{QUERY}"]}


def test_the_extract_task_reports_the_cost_in_its_xcom(dag_params: dict[str, Any]) -> None:
    from etl.adapters.airflow import tasks
    from etl.payloads import CostPayload

    planned = tasks.plan_sources(dag_params)[0]
    landed = json.loads(json.dumps(tasks.extract(planned, dag_params, START, END)))

    assert set(landed["cost"]) == CostPayload.__required_keys__
    assert landed["cost"]["posts_billable"] == landed["tweets"] == 400
    assert landed["cost"]["estimated_cost_micro_usd"] == 400 * 5_000 + 10_000


def test_a_spent_budget_fails_the_extract_task_without_retry(dag_params: dict[str, Any]) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from etl.adapters.airflow import tasks
    from etl.errors import SpendingStopped

    planned = tasks.plan_sources(dag_params)[0]
    # $0.06 over two sources: $0.03 each; the lookup ($0.01) leaves less than 5 posts cost.
    params = {**dag_params, "max_cost_usd": 0.06}

    with pytest.raises(AirflowFailException, match="max_cost_usd / 2 sources") as caught:
        tasks.extract(planned, params, START, END)

    assert isinstance(caught.value.__cause__, SpendingStopped)


@pytest.mark.parametrize("value", ["2", -1, float("nan"), float("inf"), True, 10**7])
def test_a_bad_cap_param_fails_the_task_naming_it(dag_params: dict[str, Any], value: Any) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from etl.adapters.airflow import tasks

    planned = tasks.plan_sources(dag_params)[0]

    with pytest.raises(AirflowFailException, match="max_cost_usd param must be"):
        tasks.extract(planned, {**dag_params, "max_cost_usd": value}, START, END)
