"""Lineage facets are built from the contract and the checkpoint results, and the CLI emits them."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from openlineage.client.serde import Serde

from etl.contracts.model import RAW_PAGE_CONTRACT, load_contract
from etl.errors import QualityGateFailed
from etl.lineage import builders, datasets, emit, facets
from etl.steps.quality import CheckpointSummary
from etl.storage.keys import object_path
from tests.openlineage_schemas import OUR_FACETS, validate_event

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TOKEN = "AAAAtest-bearer-token-0123456789-never-in-lineage"


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    # The client also reads ./openlineage.yml and ~/.openlineage: keep the developer's out.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in (
        "OPENLINEAGE_CONFIG",
        "OPENLINEAGE_URL",
        "OPENLINEAGE_DISABLED",
        "OPENLINEAGE_NAMESPACE",
        "AIRFLOW__OPENLINEAGE__NAMESPACE",
        "AIRFLOW__OPENLINEAGE__TRANSPORT",
    ):
        monkeypatch.delenv(var, raising=False)
    for var in [v for v in os.environ if v.startswith("OPENLINEAGE__")]:
        monkeypatch.delenv(var)
    yield
    # The client turns OPENLINEAGE_URL into OPENLINEAGE__TRANSPORT__... variables in os.environ
    # itself; drop those so no other test inherits a transport.
    for var in [v for v in os.environ if v.startswith("OPENLINEAGE__TRANSPORT__TRANSPORTS__")]:
        del os.environ[var]


def _json(obj: Any) -> Any:
    return json.loads(Serde.to_json(obj))


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# --- names --------------------------------------------------------------------------------------
def test_job_names_match_airflow_task_names() -> None:
    # The provider names a task's job <dag_id>.<task_id>; per-source tasks sit in a task group.
    assert emit.job_name("transform") == "tweetpipe.per_source.transform"
    assert emit.job_name("validate_curated") == "tweetpipe.per_source.validate_curated"
    assert emit.job_name("build_docs") == "tweetpipe.build_docs"


def test_job_namespace_prefers_openlineage_then_airflow_then_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert emit.job_namespace() == "tweetpipe"
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "from-airflow")
    assert emit.job_namespace() == "from-airflow"
    monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "shared")
    assert emit.job_namespace() == "shared"


# --- facets -------------------------------------------------------------------------------------
def test_schema_facet_lists_every_contract_column_with_type_and_description() -> None:
    contract = load_contract()

    facet = _json(facets.schema_facet(contract))

    fields = facet["fields"]
    assert [f["name"] for f in fields] == contract.column_names
    assert [f["ordinal_position"] for f in fields] == list(range(1, len(fields) + 1))
    by_name = {f["name"]: f for f in fields}
    assert by_name["like_count"]["type"] == "integer"
    assert by_name["created_at"]["type"] == "timestamp"
    assert by_name["hashtags"]["type"] == "array<string>"
    assert by_name["tweet_id"]["description"] == contract.column("tweet_id").description


def test_raw_schema_facet_nests_the_page_envelope() -> None:
    facet = _json(facets.schema_facet(load_contract(RAW_PAGE_CONTRACT)))

    top = {f["name"]: f for f in facet["fields"]}
    assert set(top) == {"data", "includes", "meta", "errors"}
    tweet_fields = {f["name"] for f in top["data"]["fields"]}
    assert {"id", "text", "author_id", "public_metrics"} <= tweet_fields
    assert {f["name"] for f in top["meta"]["fields"]} >= {"result_count", "next_token"}


def test_column_lineage_maps_raw_json_paths_to_curated_columns() -> None:
    contract = load_contract()
    raw = ("s3://bucket", "raw/source=account-nasa/endpoint=users_tweets/window=w")

    facet = _json(facets.column_lineage_facet(contract, [raw]))

    fields = facet["fields"]
    like = fields["like_count"]["inputFields"]
    assert [(f["namespace"], f["name"], f["field"]) for f in like] == [
        (*raw, "data[].public_metrics.like_count")
    ]
    assert like[0]["transformations"][0] == {"type": "DIRECT", "subtype": "IDENTITY"}
    text = fields["text"]["inputFields"]
    assert {f["field"] for f in text} == {"data[].note_tweet.text", "data[].text"}
    assert text[0]["transformations"][0]["subtype"] == "TRANSFORMATION"
    assert "html-unescape" in text[0]["transformations"][0]["description"]
    # source_page is computed from the object's name, not read from a JSON path.
    assert "source_page" not in fields
    assert set(fields) == {c.name for c in contract.columns if c.sources}


def test_identity_column_lineage_copies_every_column() -> None:
    contract = load_contract()
    staging = ("file", "staging/source=a/interval=i/tweets.csv")

    facet = _json(facets.identity_column_lineage_facet(contract, staging))

    assert set(facet["fields"]) == set(contract.column_names)
    assert facet["fields"]["text"]["inputFields"][0]["field"] == "text"


def test_quality_assertions_one_per_expectation_with_observed_values() -> None:
    results = [
        facets.AssertionResult("expect_column_values_to_not_be_null", True, "tweet_id", 0),
        facets.AssertionResult(
            "expect_table_row_count_to_be_between",
            False,
            None,
            3,
            {"min_value": 5},
            params={"min_value": 5},
        ),
    ]

    facet = _json(facets.quality_assertions_facet(results))

    assert facet["assertions"] == [
        {
            "assertion": "expect_column_values_to_not_be_null",
            "success": True,
            "column": "tweet_id",
            "actual": "0",
        },
        {
            "assertion": "expect_table_row_count_to_be_between",
            "success": False,
            "actual": "3",
            "expected": '{"min_value": 5}',
            "params": {"min_value": 5},
        },
    ]


def test_metrics_and_statistics_facets_carry_counts() -> None:
    metrics = _json(facets.quality_metrics_facet(12, {"lang": 2, "text": 0}, size=900))
    stats = _json(facets.output_statistics_facet(10, 4096, file_count=1))

    assert metrics["rowCount"] == 12 and metrics["bytes"] == 900
    assert metrics["columnMetrics"] == {"lang": {"nullCount": 2}, "text": {"nullCount": 0}}
    assert (stats["rowCount"], stats["size"], stats["fileCount"]) == (10, 4096, 1)


def test_error_facet_scrubs_the_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    try:
        raise RuntimeError(f"request with Authorization: Bearer {TOKEN} failed")
    except RuntimeError as exc:
        facet = _json(facets.error_facet(exc))

    assert TOKEN not in json.dumps(facet)
    assert "Bearer ***" in facet["message"]
    assert facet["programmingLanguage"] == "python"
    assert "RuntimeError" in facet["stackTrace"]


def test_step_lineage_merge_replaces_datasets_by_name() -> None:
    first = datasets.StepLineage(inputs=[datasets.input_dataset("file", "raw/a")])
    facet = facets.quality_metrics_facet(3)
    later = datasets.StepLineage(
        inputs=[
            datasets.input_dataset("file", "raw/a", input_facets={"dataQualityMetrics": facet})
        ],
        outputs=[datasets.output_dataset("file", "staging/a")],
    )

    merged = first.merge(later)

    assert [d.name for d in merged.inputs] == ["raw/a"]
    assert merged.inputs[0].inputFacets == {"dataQualityMetrics": facet}
    assert [d.name for d in merged.outputs] == ["staging/a"]


def test_task_lineage_never_raises_from_a_broken_builder() -> None:
    def broken(call: builders.TaskCall) -> datasets.StepLineage:
        raise KeyError("staging_key")

    assert builders.task_lineage("transform", builders.TaskCall(), broken) == datasets.StepLineage()
    assert builders.task_lineage("no_such_step", builders.TaskCall()) == datasets.StepLineage()


# --- emission from the CLI ----------------------------------------------------------------------
def _sample_lineage() -> datasets.StepLineage:
    curated = load_contract()
    raw = ("file", "raw/source=account-nasa/endpoint=users_tweets/window=w")
    return datasets.StepLineage(
        inputs=[
            datasets.input_dataset(
                *raw,
                facets={"schema": facets.schema_facet(load_contract(RAW_PAGE_CONTRACT))},
                input_facets={"dataQualityMetrics": facets.quality_metrics_facet(4, size=10)},
            )
        ],
        outputs=[
            datasets.output_dataset(
                "file",
                "staging/source=account-nasa/interval=i/tweets.csv",
                facets={
                    "schema": facets.schema_facet(curated),
                    "columnLineage": facets.column_lineage_facet(curated, [raw]),
                },
                output_facets={"outputStatistics": facets.output_statistics_facet(4, 512)},
            )
        ],
    )


def test_lineage_run_writes_start_and_complete_to_the_default_file(tmp_path: Path) -> None:
    events_file = tmp_path / "out" / "openlineage.jsonl"
    window = (datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC))

    with emit.lineage_run(
        "transform", _sample_lineage().inputs, default_file=events_file, nominal=window
    ) as run:
        run.add(datasets.StepLineage(outputs=_sample_lineage().outputs))

    assert run.destination == f"file {events_file}"
    start, complete = _events(events_file)
    assert [start["eventType"], complete["eventType"]] == ["START", "COMPLETE"]
    assert start["run"]["runId"] == complete["run"]["runId"] == run.run_id
    assert complete["job"] == {
        "namespace": "tweetpipe",
        "name": "tweetpipe.per_source.transform",
        "facets": complete["job"]["facets"],
    }
    assert complete["job"]["facets"]["jobType"]["jobType"] == "TASK"
    assert start["outputs"] == []
    assert [o["name"] for o in complete["outputs"]] == [
        "staging/source=account-nasa/interval=i/tweets.csv"
    ]
    assert complete["run"]["facets"]["nominalTime"]["nominalStartTime"].startswith("2024-05-01")


def test_lineage_run_emits_fail_with_error_message_and_reraises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    events_file = tmp_path / "events.jsonl"

    with (
        pytest.raises(ValueError, match="gate"),
        emit.lineage_run("validate_curated", default_file=events_file),
    ):
        raise ValueError(f"gate breached (token {TOKEN})")

    start, fail = _events(events_file)
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    assert fail["run"]["facets"]["errorMessage"]["message"] == "gate breached (token ***)"
    assert TOKEN not in events_file.read_text(encoding="utf-8")


def test_lineage_run_fail_without_exception(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"

    with emit.lineage_run("validate_raw", default_file=events_file) as run:
        run.fail("2 expectations failed")

    assert [e["eventType"] for e in _events(events_file)] == ["START", "FAIL"]
    assert _events(events_file)[1]["run"]["facets"]["errorMessage"]["message"] == (
        "2 expectations failed"
    )


def test_cli_follows_airflow_transport_and_openlineage_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared.jsonl"
    monkeypatch.setenv(
        "AIRFLOW__OPENLINEAGE__TRANSPORT",
        json.dumps({"type": "file", "log_file_path": str(shared), "append": True}),
    )
    with emit.lineage_run("extract", default_file=tmp_path / "unused.jsonl"):
        pass
    assert len(_events(shared)) == 2
    assert not (tmp_path / "unused.jsonl").exists()

    monkeypatch.setenv("OPENLINEAGE_URL", "http://127.0.0.1:9/")
    client, destination = emit.lineage_client(tmp_path / "unused.jsonl")
    assert client.transport.kind == "http"
    assert destination == "http http://127.0.0.1:9/"
    assert not (tmp_path / "unused.jsonl").exists()

    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    assert emit.lineage_client()[1] == "disabled"


def test_without_configuration_or_local_outputs_events_go_to_the_console(tmp_path: Path) -> None:
    with emit.lineage_run("extract", default_file=emit.events_file(None)) as run:
        pass

    assert run.destination == "console"
    assert list(tmp_path.iterdir()) == []  # the working directory: no file left behind
    assert emit.events_file(tmp_path / "out") == tmp_path / "out" / "lineage" / "events.jsonl"


def test_unreachable_marquez_does_not_fail_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An openlineage.yml naming an HTTP endpoint on a closed loopback port (9, discard), no retries:
    # every emit fails, and the step must still succeed.
    config = tmp_path / "openlineage.yml"
    config.write_text(
        "transport:\n  type: http\n  url: http://127.0.0.1:9\n  timeout: 1\n"
        "  retry:\n    total: 0\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))

    with emit.lineage_run("transform") as run:
        result = 42

    assert result == 42 and run.error is None
    assert run.destination == "http http://127.0.0.1:9"


def test_cli_events_have_the_structure_marquez_needs(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    with emit.lineage_run("transform", default_file=events_file) as run:
        run.add(_sample_lineage())

    complete = _events(events_file)[-1]
    for key in ("eventTime", "producer", "schemaURL", "run", "job", "inputs", "outputs"):
        assert key in complete
    (raw,) = complete["inputs"]
    assert raw["namespace"] == "file"
    assert set(raw["facets"]) == {"schema"} and set(raw["inputFacets"]) == {"dataQualityMetrics"}
    (staging,) = complete["outputs"]
    assert set(staging["facets"]) == {"schema", "columnLineage"}
    assert set(staging["outputFacets"]) == {"outputStatistics"}
    for facet in (*raw["facets"].values(), *staging["outputFacets"].values()):
        assert facet["_producer"] and facet["_schemaURL"].startswith("https://openlineage.io/spec/")


def test_cli_events_validate_against_the_openlineage_schemas(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    with emit.lineage_run("transform", default_file=events_file) as run:
        run.add(_sample_lineage())
        run.add(
            datasets.StepLineage(
                inputs=[
                    datasets.input_dataset(
                        "file",
                        "staging/x",
                        input_facets={
                            "dataQualityAssertions": facets.quality_assertions_facet(
                                [facets.AssertionResult("expect_x", False, "text", [1, 2])]
                            )
                        },
                    )
                ]
            )
        )
        run.fail(RuntimeError("breach"))

    events = _events(events_file)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    for event in events:
        assert validate_event(event, OUR_FACETS) == []


# --- the steps' builders (payloads as etl.adapters.airflow.tasks builds them) ---------------------
NS = "s3://tweets-bucket"
RAW = "raw/source=account-nasa/endpoint=users_tweets/window=20240501T000000Z_20240502T000000Z"
PART = "source=account-nasa/interval=20240501T000000Z_20240502T000000Z"
IN_BUCKET = "prod/"  # the store is s3://tweets-bucket/prod: dataset names are paths in the bucket
BASE = {
    "source": {"kind": "account", "value": "nasa"},
    "slug": "account-nasa",
    "store": "s3://tweets-bucket/prod",
    "namespace": NS,
    "start": "2024-05-01T00:00:00+00:00",
    "end": "2024-05-02T00:00:00+00:00",
}
LANDED = {
    **BASE,
    "page_keys": [f"{RAW}/page-00001.json", f"{RAW}/page-00002.json"],
    "manifest_key": f"{RAW}/_manifest.json",
    "pages": 2,
    "tweets": 150,
}
REPORT = {
    "tweets_in": 150,
    "curated": 140,
    "quarantined": 8,
    "duplicates": 2,
    "api_errors": 0,
    "pages": 2,
    "pages_quarantined": 0,
    "check_failures": {"tweet_id:pattern": 8},
    "fatal": [],
    "contract": "tweets_curated 1.0.0",
    "passed": True,
}
STAGED = {
    **BASE,
    "staging_key": f"staging/{PART}/tweets.csv",
    "quarantine_key": f"quarantine/{PART}/rejected.jsonl",
    "sha256": "ab" * 32,
    "size": 65_000,
    "quarantine_size": 2_048,
    "report": REPORT,
}
CHECKPOINT = {
    "suite": "tweets_curated",
    "success": False,
    "evaluated": 3,
    "failed": [],
    "docs_page": None,
    "run_name": "manual__2024-05-02__account-nasa",
    "rows": 140,
    "skipped": [],
    "parameters": {},
    "results": [
        {
            "expectation_type": "expect_column_values_to_not_be_null",
            "column": "tweet_id",
            "success": True,
            "unexpected_count": 0,
            "severity": "critical",
        },
        {
            "expectation_type": "expect_column_values_to_match_regex",
            "column": "lang",
            "success": True,
            "unexpected_count": 0,
            "missing_count": 12,
            "rule": "lang_pattern",
        },
        {
            "expectation_type": "expect_table_row_count_to_equal",
            "column": None,
            "success": False,
            "observed_value": 140,
            "expected": {"value": 142},
            "severity": "critical",
        },
    ],
}


def _build(step: str, **call: Any) -> dict[str, Any]:
    built = builders.task_lineage(step, builders.TaskCall(**call))
    return {
        "inputs": [_json(d) for d in built.inputs],
        "outputs": [_json(d) for d in built.outputs],
    }


def test_extract_reads_the_endpoint_and_writes_the_raw_window() -> None:
    start = _build("extract", payload={"kind": "query", "value": "python", "slug": "query-python"})
    planned = {"kind": "account", "value": "nasa", "slug": "account-nasa"}
    done = _build("extract", payload=planned, result=LANDED)

    assert [(d["namespace"], d["name"]) for d in start["inputs"]] == [
        ("https://api.twitter.com", "/2/tweets/search/recent")
    ]
    assert start["outputs"] == []
    assert done["inputs"][0]["name"] == "/2/users/{id}/tweets"
    (raw,) = done["outputs"]
    assert (raw["namespace"], raw["name"]) == (NS, IN_BUCKET + RAW)
    assert [f["name"] for f in raw["facets"]["schema"]["fields"]][0] == "data"
    stats = raw["outputFacets"]["outputStatistics"]
    assert (stats["rowCount"], stats["fileCount"]) == (150, 2)


def test_validate_raw_puts_the_checkpoint_on_the_raw_window() -> None:
    raw_checkpoint = {
        "suite": "x_api_v2_tweets_page",
        "success": True,
        "rows": 2,
        "results": [
            {
                "expectation_type": "expect_table_row_count_to_be_between",
                "column": None,
                "success": True,
                "observed_value": 2,
            },
            {
                "expectation_type": "expect_column_values_to_be_in_set",
                "column": "bad_data",
                "success": True,
                "unexpected_count": 0,
                "missing_count": 0,
            },
        ],
    }

    done = _build(
        "validate_raw",
        payload=LANDED,
        result={**LANDED, "checkpoint": raw_checkpoint},
    )

    (raw,) = done["inputs"]
    assert raw["name"] == IN_BUCKET + RAW and done["outputs"] == []
    table, flag = raw["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert (table["assertion"], table["success"], table["actual"]) == (
        "expect_table_row_count_to_be_between",
        True,
        "2",
    )
    # bad_data is a flag the gate derives per page, not a field of the raw schema.
    assert "column" not in flag and flag["params"] == {"column": "bad_data"}
    metrics = raw["inputFacets"]["dataQualityMetrics"]
    assert (metrics["rowCount"], metrics["columnMetrics"]) == (2, {})


def test_failed_gate_reports_its_results_from_the_wrapped_exception() -> None:
    try:
        try:
            raise QualityGateFailed(
                "quality gate tweets_curated failed", CheckpointSummary(**CHECKPOINT)
            )
        except QualityGateFailed as exc:
            raise RuntimeError(str(exc)) from exc  # as AirflowFailException wraps it
    except RuntimeError as wrapped:
        error = wrapped

    failed = _build("validate_curated", payload=STAGED, error=error)

    (staging,) = failed["inputs"]
    assert staging["name"] == f"{IN_BUCKET}staging/{PART}/tweets.csv"
    assert [f["name"] for f in staging["facets"]["schema"]["fields"]] == (
        load_contract().column_names
    )
    assertions = staging["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert [(a["assertion"], a["success"], a.get("column")) for a in assertions] == [
        ("expect_column_values_to_not_be_null", True, "tweet_id"),
        ("expect_column_values_to_match_regex", True, "lang"),
        ("expect_table_row_count_to_equal", False, None),
    ]
    assert assertions[2]["actual"] == "140" and assertions[2]["expected"] == '{"value": 142}'
    assert assertions[1]["name"] == "lang_pattern"
    metrics = staging["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 140
    assert metrics["columnMetrics"] == {"tweet_id": {"nullCount": 0}, "lang": {"nullCount": 12}}


def test_transform_writes_staging_with_column_lineage_and_quarantine() -> None:
    checked = {**LANDED, "checkpoint": CHECKPOINT}

    done = _build("transform", payload=checked, result=STAGED)

    assert [d["name"] for d in done["inputs"]] == [IN_BUCKET + RAW]
    staging, quarantine = done["outputs"]
    assert staging["name"] == f"{IN_BUCKET}staging/{PART}/tweets.csv"
    like = staging["facets"]["columnLineage"]["fields"]["like_count"]["inputFields"]
    assert [(f["namespace"], f["name"], f["field"]) for f in like] == [
        (NS, IN_BUCKET + RAW, "data[].public_metrics.like_count")
    ]
    assert staging["outputFacets"]["outputStatistics"] == {
        **staging["outputFacets"]["outputStatistics"],
        "rowCount": 140,
        "size": 65_000,
    }
    assert quarantine["name"] == f"{IN_BUCKET}quarantine/{PART}/rejected.jsonl"
    assert quarantine["outputFacets"]["outputStatistics"]["rowCount"] == 8
    assert [f["name"] for f in quarantine["facets"]["schema"]["fields"]] == [
        "kind",
        "reason",
        "source",
        "record",
    ]


def test_publish_copies_staging_to_curated() -> None:
    audited = {**STAGED, "checkpoint": CHECKPOINT}
    published = {
        **BASE,
        "curated_key": f"curated/{PART}/tweets.csv",
        "sha256": "ab" * 32,
        "size": 65_000,
        "replaced": False,
        "unchanged": False,
        "staging_key": STAGED["staging_key"],
        "quarantine_key": STAGED["quarantine_key"],
        "report": REPORT,
    }

    start = _build("publish", payload=audited)
    done = _build("publish", payload=audited, result=published)

    assert [d["name"] for d in start["inputs"]] == [IN_BUCKET + STAGED["staging_key"]]
    (curated,) = done["outputs"]
    assert (curated["namespace"], curated["name"]) == (NS, f"{IN_BUCKET}curated/{PART}/tweets.csv")
    text = curated["facets"]["columnLineage"]["fields"]["text"]["inputFields"]
    assert [(f["name"], f["field"]) for f in text] == [(IN_BUCKET + STAGED["staging_key"], "text")]
    assert curated["outputFacets"]["outputStatistics"]["rowCount"] == 140


def test_local_names_follow_the_store_keys(tmp_path: Path) -> None:
    window = tmp_path / "store" / RAW
    window.mkdir(parents=True)
    (window / "page-00001.json").write_text("{}")

    assert datasets.local_name(window) == RAW
    assert datasets.local_name(window / "page-00001.json") == RAW
    assert datasets.local_name(tmp_path / "elsewhere.json") == str(tmp_path / "elsewhere.json")
    inputs = builders.cli_transform_inputs([window, window / "page-00001.json"])
    assert [d.name for d in inputs] == [RAW]


def test_quarantine_schema_matches_what_the_transform_writes() -> None:
    import io

    from etl.steps.transform.curate import transform_pages

    page = {
        "data": [
            {
                "id": "not-an-id",
                "text": "x",
                "author_id": "12",
                "created_at": "2024-05-01T00:00:00Z",
            }
        ],
        "meta": {"result_count": 1},
    }
    quarantine = io.StringIO()

    transform_pages([("raw/p.json", json.dumps(page).encode())], io.StringIO(), quarantine)

    lines = [json.loads(line) for line in quarantine.getvalue().splitlines()]
    assert lines, "the post with a bad id should be quarantined"
    assert list(lines[0]) == [name for name, _, _ in facets.QUARANTINE_COLUMNS]


def test_object_names_are_paths_in_the_bucket_or_store_keys() -> None:
    key = "curated/source=a/interval=i/tweets.csv"
    assert object_path("s3://bucket/team/prod/", key) == f"team/prod/{key}"
    assert object_path("s3://bucket", key) == key
    assert object_path("/data/tweetpipe-store", key) == key


def test_url_credentials_are_scrubbed_from_error_facets() -> None:
    error = ValueError(
        'Invalid bucket name "AKIAEXAMPLE:wJalrXUtnFEMI@bucket": s3://AKIAEXAMPLE:wJalrXUtnFEMI@b/p'
    )

    facet = facets.error_facet(error)

    assert "wJalrXUtnFEMI" not in facet.message + (facet.stackTrace or "")
    assert "s3://***@b/p" in facet.message
