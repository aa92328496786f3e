"""The real DAG through ``dag.test()``: green path, rerun, breach, and the S3 backend over HTTP.

One ``AIRFLOW_HOME`` (SQLite, migrated once) serves the module; each test starts its own emulator
on loopback and points the ``x_api_default`` connection at it. The runs use the demo's corpus and
logical date (data interval 2023-03-14), so what is asserted here is what ``tweetpipe demo`` shows.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from etl.storage.store import LocalStore
from etl.tools import demo
from tests.integration.conftest import EMULATOR_TOKEN

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.integration.conftest import S3Endpoint

SOURCES = ["account:ada_builds", "account:tomas_ng"]
SLUGS = ["account-ada_builds", "account-tomas_ng"]
PER_SOURCE = [
    "per_source.extract",
    "per_source.validate_raw",
    "per_source.transform",
    "per_source.validate_curated",
    "per_source.publish",
]


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("airflow")
    lineage = root / "lineage" / "events.jsonl"
    lineage.parent.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        for name, value in demo.airflow_environment(root / "home", lineage).items():
            mp.setenv(name, value)
        demo.configure_airflow(demo.airflow_environment(root / "home", lineage))
        demo.migrate_db()
        yield root


@pytest.fixture
def run(
    airflow_home: Path,
    emulator_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., demo.RunOutcome]:
    """Run the DAG once for the demo interval against a fresh emulator."""

    def _run(
        store: str, sources: list[str], *, drift: str | None = None, retries: int | None = 0
    ) -> demo.RunOutcome:
        from etl.tools.emulator import Faults

        server = emulator_factory(corpus=demo.demo_corpus(), faults=Faults(drift=drift))
        conn = demo.x_connection(server.base_url, EMULATOR_TOKEN)
        monkeypatch.setenv("AIRFLOW_CONN_X_API_DEFAULT", conn)
        conf = {"store": store, "sources": sources}
        return demo.run_dag(demo.DEMO_LOGICAL_DATE, conf, retries=retries)

    return _run


def _curated(store: LocalStore) -> dict[str, bytes]:
    return {key: store.get(key) for key in store.list("curated/")}


def _no_token_under(root: Path) -> list[str]:
    secret = EMULATOR_TOKEN.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()]


@pytest.fixture(scope="module")
def green(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Filled by the first green run, reused by the rerun and breach tests."""
    return {"root": tmp_path_factory.mktemp("green-store")}


def test_green_run_publishes_every_source(
    run: Callable[..., demo.RunOutcome], green: dict[str, Any], airflow_home: Path
) -> None:
    store_dir = green["root"] / "store"

    outcome = run(str(store_dir), SOURCES)

    assert outcome.state == "success"
    assert outcome.sources == SLUGS
    for task_id in PER_SOURCE:
        assert [outcome.task_state(task_id, i) for i in range(2)] == ["success"] * 2, task_id
    assert outcome.task_state("build_docs") == "success"
    # The watcher only runs when something failed.
    assert outcome.task_state("all_sources_published") == "skipped"
    store = LocalStore(store_dir)
    curated = _curated(store)
    assert sorted(curated) == sorted(
        f"curated/source={slug}/interval=20230314T000000Z_20230315T000000Z/tweets.csv"
        for slug in SLUGS
    )
    for slug, published in outcome.by_source("per_source.publish").items():
        report = published["report"]
        tweets = outcome.by_source("per_source.extract")[slug]["tweets"]
        assert tweets > 0
        # Nothing fetched is silently dropped.
        assert tweets == report["curated"] + report["quarantined"] + report["duplicates"]
        rows = curated[published["curated_key"]].decode().count("\r\n") - 1
        assert rows == report["curated"]
        assert store.exists(published["quarantine_key"])
        checkpoint = outcome.by_source("per_source.validate_curated", "checkpoint")[slug]
        assert checkpoint["success"] is True and checkpoint["rows"] == report["curated"]
    assert store.exists("docs/index.html")
    assert EMULATOR_TOKEN not in json.dumps(list(outcome.xcoms.values()))
    # Neither the metadata database nor the lineage events hold the token.
    assert _no_token_under(airflow_home) == []
    green["curated"] = curated
    green["events"] = _asset_events(outcome.run_id)
    green["lineage_lines"] = (airflow_home / "lineage" / "events.jsonl").read_text().splitlines()


def _asset_events(run_id: str) -> list[Any]:
    """The asset events a run's tasks emitted, from the metadata database."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    with create_session() as session:
        query = (
            select(AssetEvent)
            .options(joinedload(AssetEvent.asset))
            .where(AssetEvent.source_run_id == run_id)
            .order_by(AssetEvent.id)
        )
        events = list(session.scalars(query).unique())
        for event in events:
            session.expunge(event)
        return events


def test_each_publish_announces_its_partition_as_an_asset_event(green: dict[str, Any]) -> None:
    from etl.adapters.airflow.tasks import summarize_published
    from etl.contracts.model import load_contract
    from etl.lineage.datasets import curated_dataset_uri

    if "events" not in green:
        pytest.fail("the green run did not finish; see test_green_run_publishes_every_source")
    store_dir = green["root"] / "store"
    store = LocalStore(store_dir)
    events = green["events"]

    assert sorted(e.asset.uri for e in events) == [
        curated_dataset_uri(str(store_dir), slug) for slug in SLUGS
    ]
    assert {e.source_task_id for e in events} == {"per_source.publish"}
    for event in events:
        extra = event.extra
        body = store.get(extra["curated_key"])
        assert extra["sha256"] == hashlib.sha256(body).hexdigest()
        assert extra["rows"] == body.decode().count("\r\n") - 1
        assert extra["quarantined"] >= 0
        assert (extra["interval_start"], extra["interval_end"]) == (
            "2023-03-14T00:00:00+00:00",
            "2023-03-15T00:00:00+00:00",
        )
        assert extra["contract_version"] == load_contract().version
        assert event.asset.uri.endswith(f"/curated/source={extra['source']}")

    # The example consumer, fed these events as Airflow hands them to an asset-triggered run.
    written = summarize_published({"alias": events}, {})

    assert len(written) == len(SLUGS)
    for key, event in zip(written, events, strict=True):
        summary = json.loads(store.get(key))
        assert key.startswith(f"summaries/source={event.extra['source']}/interval=")
        assert summary["posts"] == event.extra["rows"]
        assert summary["sha256"] == event.extra["sha256"]


def test_lineage_events_name_the_tasks(green: dict[str, Any]) -> None:
    if "lineage_lines" not in green:
        pytest.fail("the green run did not finish; see test_green_run_publishes_every_source")
    events = [json.loads(line) for line in green["lineage_lines"]]
    jobs = {e["job"]["name"] for e in events if e.get("eventType") == "COMPLETE"}

    assert "tweetpipe.per_source.extract" in jobs
    assert "tweetpipe.per_source.publish" in jobs
    assert all(EMULATOR_TOKEN not in line for line in green["lineage_lines"])


def test_rerun_of_the_interval_is_byte_identical(
    run: Callable[..., demo.RunOutcome], green: dict[str, Any]
) -> None:
    if "curated" not in green:
        pytest.fail("the green run did not finish; see test_green_run_publishes_every_source")
    store_dir = green["root"] / "store"

    outcome = run(str(store_dir), SOURCES)

    assert outcome.state == "success"
    # The landed window is found, nothing is fetched again.
    assert [x["status"] for x in outcome.by_source("per_source.extract").values()] == [
        "skipped",
        "skipped",
    ]
    assert all(p["unchanged"] for p in outcome.by_source("per_source.publish").values())
    assert _curated(LocalStore(store_dir)) == green["curated"]
    assert _no_token_under(green["root"]) == []


def test_breach_fails_the_run_and_keeps_the_previous_curated_version(
    run: Callable[..., demo.RunOutcome], green: dict[str, Any], tmp_path: Path
) -> None:
    if "curated" not in green:
        pytest.fail("the green run did not finish; see test_green_run_publishes_every_source")
    # The same store after a good run, with raw/ and state/ gone so the interval is fetched
    # again, now from an API that drifted. A query that matches nothing shows the other
    # sources still publish.
    store_dir = tmp_path / "store"
    shutil.copytree(green["root"] / "store", store_dir)
    for prefix in ("raw", "state"):
        shutil.rmtree(store_dir / prefix)
    sources = [*SOURCES, "query:zzzznomatch"]

    # The DAG's own retry settings: a breach must fail at once, not be retried.
    outcome = run(str(store_dir), sources, drift="breach", retries=None)

    assert outcome.state == "failed"
    assert [outcome.task_state("per_source.validate_curated", i) for i in range(3)] == [
        "failed",
        "failed",
        "success",
    ]
    assert [outcome.task_state("per_source.publish", i) for i in range(3)] == [
        "upstream_failed",
        "upstream_failed",
        "success",
    ]
    gates = [t for t in outcome.tasks if t.task_id == "per_source.validate_curated"]
    assert [t.tries for t in gates] == [1, 1, 1]
    assert outcome.task_state("build_docs") == "success"
    assert outcome.task_state("all_sources_published") == "failed"
    store = LocalStore(store_dir)
    curated = _curated(store)
    for key, body in green["curated"].items():
        assert curated[key] == body, f"{key} changed after a breach"
    assert len(curated) == len(green["curated"]) + 1  # the empty query's partition
    # Only what was published is announced: the empty query's partition, not the breaches.
    events = _asset_events(outcome.run_id)
    assert [e.extra["source"] for e in events] == outcome.sources[2:]
    for slug in SLUGS:
        checkpoint = outcome.by_source("per_source.validate_curated", "checkpoint")[slug]
        assert checkpoint["success"] is False and checkpoint["failed"]
        # The failed validation is in the published Data Docs, page and index.
        assert store.exists(f"docs/{checkpoint['docs_page']}")
        assert checkpoint["run_name"] in store.get("docs/index.html").decode()
        assert store.get(outcome.by_source("per_source.transform")[slug]["quarantine_key"])


def test_s3_store_over_http(run: Callable[..., demo.RunOutcome], moto_server: S3Endpoint) -> None:
    outcome = run(moto_server.store_url, SOURCES[:1])

    assert outcome.state == "success"
    objects = moto_server.objects()
    published = outcome.by_source("per_source.publish")[SLUGS[0]]
    assert f"tweetpipe/{published['curated_key']}" in objects
    assert "tweetpipe/docs/index.html" in objects
    assert any(k.startswith("tweetpipe/raw/source=account-ada_builds/") for k in objects)
    assert not [k for k, body in objects.items() if EMULATOR_TOKEN.encode() in body]
    assert published["store"] == moto_server.store_url


STORE_SECRET = "SuperSecretValue123"
SECRET_STORE = f"s3://AKIAEXAMPLEKEY:{STORE_SECRET}@tweetpipe-bucket/p"


def _new_events(lineage: Path, before: int) -> str:
    return lineage.read_text()[before:] if lineage.exists() else ""


def test_a_store_param_with_credentials_is_refused_at_trigger(
    run: Callable[..., demo.RunOutcome], airflow_home: Path
) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    lineage = airflow_home / "lineage" / "events.jsonl"
    before = len(lineage.read_text()) if lineage.exists() else 0

    # The run's conf goes into every OpenLineage event: such a run must never start.
    with pytest.raises(ParamValidationError, match="store"):
        run(SECRET_STORE, SOURCES[:1])

    assert STORE_SECRET not in _new_events(lineage, before)


def test_a_store_variable_with_credentials_fails_without_showing_them(
    run: Callable[..., demo.RunOutcome],
    airflow_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TWEETPIPE_STORE", SECRET_STORE)
    lineage = airflow_home / "lineage" / "events.jsonl"
    before = len(lineage.read_text()) if lineage.exists() else 0

    outcome = run("", SOURCES[:1])

    assert outcome.state == "failed"
    assert outcome.task_state("per_source.extract", 0) == "failed"
    out, err = capfd.readouterr()
    assert "TWEETPIPE_STORE: the store URL carries credentials" in out + err
    assert STORE_SECRET not in out + err and "AKIAEXAMPLEKEY" not in out + err
    events = _new_events(lineage, before)
    assert "carries credentials" in events  # the FAIL event says why...
    assert STORE_SECRET not in events  # ...and holds no part of the URL
    assert "AKIAEXAMPLEKEY" not in events


# --- the X API connection: a run's params never send a secret elsewhere -------------------------
AWS_SECRET = "aws-secret-key-that-must-stay-home"


class _Trap(BaseHTTPRequestHandler):
    """Answers 404 to everything and records what it was sent (the token, were it sent)."""

    def _record(self) -> None:
        self.server.seen.append((self.path, dict(self.headers)))  # type: ignore[attr-defined]
        self.send_response(404)
        self.end_headers()

    do_GET = do_POST = _record

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


@pytest.fixture
def trap() -> Iterator[Any]:
    """A loopback HTTP server that should never be reached; ``trap.seen`` lists what did."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trap)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _config_pointing_at(tmp_path: Path, url: str) -> str:
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"api: {{base_url: '{url}'}}\nsources: {{accounts: [ada_builds]}}\n")
    return str(path)


def test_another_connection_type_is_never_used_as_the_x_api_token(
    airflow_home: Path,
    trap: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    aws = {"conn_type": "aws", "login": "AKIAEXAMPLE", "password": AWS_SECRET}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(aws))
    conf = {
        "store": str(tmp_path / "store"),
        "x_conn_id": "aws_default",
        "config": _config_pointing_at(tmp_path, trap.url),
    }

    outcome = demo.run_dag(demo.DEMO_LOGICAL_DATE, conf, retries=None)

    assert outcome.state == "failed"
    extract = [t for t in outcome.tasks if t.task_id == "per_source.extract"]
    assert [(t.state, t.tries) for t in extract] == [("failed", 1)]  # refused, not retried
    assert trap.seen == []
    out, err = capfd.readouterr()
    assert "'aws_default' is not an X API connection" in out + err
    assert AWS_SECRET not in out + err
    assert AWS_SECRET not in (airflow_home / "lineage" / "events.jsonl").read_text()


def test_the_config_cannot_move_the_api_host(
    airflow_home: Path,
    trap: Any,
    emulator_factory: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = emulator_factory(corpus=demo.demo_corpus())
    # A connection without a host: the deployment's X_API_BASE_URL says where the API is.
    conn = {"conn_type": "http", "password": EMULATOR_TOKEN}
    monkeypatch.setenv("AIRFLOW_CONN_X_API_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("X_API_BASE_URL", server.base_url)
    conf = {"store": str(tmp_path / "store"), "config": _config_pointing_at(tmp_path, trap.url)}

    outcome = demo.run_dag(demo.DEMO_LOGICAL_DATE, conf)

    assert outcome.state == "success"
    assert outcome.sources == ["account-ada_builds"]
    assert trap.seen == [] and len(server.request_log) > 0
