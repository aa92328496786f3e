"""The DAG's task functions, run in this process on the emulator and a local store, hand on the
payloads ``etl.payloads`` declares, and every lineage builder reads them without error.

``task_lineage`` swallows a builder's error (lineage must never fail a task), so a payload that
lost a field the builder reads would only show as missing lineage in a real run. Here each builder
is called directly on the payloads the task functions really produced, after the JSON round trip
XCom gives them, so such a mismatch fails a test instead.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from etl.adapters.airflow import docs as airflow_docs
from etl.adapters.airflow import retention, tasks
from etl.lineage import builders
from etl.lineage.datasets import StepLineage
from etl.payloads import (
    BuildDocsPayload,
    CheckpointPayload,
    ExtractPayload,
    PlannedSource,
    PublishPayload,
    RetentionPayload,
    SourceRef,
    TransformPayload,
    TransformReportPayload,
    ValidateCuratedPayload,
    ValidateRawPayload,
)
from etl.tools.demo import DEMO_CORPUS_END, DEMO_CORPUS_START, demo_corpus, x_connection
from tests.integration.conftest import EMULATOR_TOKEN

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.integration

SOURCE = "account:ada_builds"
START = datetime(2023, 3, 14, tzinfo=UTC)
END = datetime(2023, 3, 15, tzinfo=UTC)
RUN_ID = "manual__2023-03-15T00:00:00+00:00"
BASE_KEYS = ["source", "slug", "store", "namespace", "start", "end"]


def _xcom(payload: Any) -> Any:
    """What the next task (and the lineage listener) gets back: XCom stores JSON."""
    return json.loads(json.dumps(payload))


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One source through every task function, as the DAG chains them; each payload after XCom."""
    from etl.tools.emulator import start_emulator

    assert DEMO_CORPUS_START <= START < END <= DEMO_CORPUS_END
    store = tmp_path_factory.mktemp("store")
    server = start_emulator(corpus=demo_corpus(), token=EMULATOR_TOKEN, port=0)
    monkeypatch = pytest.MonkeyPatch()
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_X_API_DEFAULT", x_connection(server.base_url, EMULATOR_TOKEN)
        )
        # Retention with no grace: the candidate just published is deleted, so its lineage has
        # something to name.
        config = tmp_path_factory.mktemp("config") / "pipeline.yaml"
        config.write_text("retention:\n  grace_hours: 0\n", encoding="utf-8")
        params = {"store": str(store), "sources": [SOURCE], "config": str(config)}
        (planned,) = _xcom(tasks.plan_sources(params))
        landed = _xcom(tasks.extract(planned, params, START, END))
        checked = _xcom(tasks.validate_raw(landed, params, RUN_ID))
        staged = _xcom(tasks.transform(checked, params))
        audited = _xcom(tasks.validate_curated(staged, params, RUN_ID))
        published = _xcom(tasks.publish(audited, params))
        docs = _xcom(airflow_docs.build_docs(params))
        kept = _xcom(retention.apply_retention(params))
    finally:
        monkeypatch.undo()
        server.stop()
    return {
        "plan_sources": planned,
        "extract": landed,
        "validate_raw": checked,
        "transform": staged,
        "validate_curated": audited,
        "publish": published,
        "build_docs": docs,
        "apply_retention": kept,
    }


# Each task: the payload it reads (its first parameter) and the one it returns.
STEPS = {
    "extract": ("plan_sources", "extract"),
    "validate_raw": ("extract", "validate_raw"),
    "transform": ("validate_raw", "transform"),
    "validate_curated": ("transform", "validate_curated"),
    "publish": ("validate_curated", "publish"),
}
PAYLOAD_TYPES: dict[str, type[Any]] = {
    "plan_sources": PlannedSource,
    "extract": ExtractPayload,
    "validate_raw": ValidateRawPayload,
    "transform": TransformPayload,
    "validate_curated": ValidateCuratedPayload,
    "publish": PublishPayload,
    "build_docs": BuildDocsPayload,
    "apply_retention": RetentionPayload,
}


def test_every_builder_is_tested() -> None:
    assert set(STEPS) | {"apply_retention"} == set(builders.TASK_LINEAGE)


@pytest.mark.parametrize("task", sorted(PAYLOAD_TYPES))
def test_each_task_returns_exactly_the_declared_payload(chain: dict[str, Any], task: str) -> None:
    payload = chain[task]

    assert set(payload) == PAYLOAD_TYPES[task].__required_keys__
    nested = {
        "report": TransformReportPayload,
        "checkpoint": CheckpointPayload,
        "source": SourceRef,
    }
    for key, payload_type in nested.items():
        if key in payload and task != "plan_sources":
            assert set(payload[key]) == payload_type.__required_keys__, key


@pytest.mark.parametrize("task", sorted(STEPS))
def test_every_builder_reads_the_real_payloads(chain: dict[str, Any], task: str) -> None:
    given, returned = STEPS[task]
    build: Callable[[builders.TaskCall[Any, Any]], StepLineage] = builders.TASK_LINEAGE[task]

    # Called directly, not through task_lineage: an error here fails the test.
    at_start = build(builders.TaskCall(payload=chain[given]))
    at_complete = build(builders.TaskCall(payload=chain[given], result=chain[returned]))

    assert at_start.inputs, f"{task}: no input at START"
    assert at_complete.inputs, f"{task}: no input at COMPLETE"
    if task in ("validate_raw", "validate_curated"):
        facets = at_complete.inputs[0].inputFacets or {}
        assert {"dataQualityAssertions", "dataQualityMetrics"} <= set(facets)
    else:
        assert at_complete.outputs, f"{task}: no output at COMPLETE"
        assert all(d.namespace == "file" for d in at_complete.outputs)


def test_retention_lineage_drops_the_published_candidate(chain: dict[str, Any]) -> None:
    build = builders.TASK_LINEAGE["apply_retention"]

    built = build(builders.TaskCall(payload=None, result=chain["apply_retention"]))

    assert [d.name for d in built.outputs] == [chain["publish"]["staging_key"]]
    (dropped,) = built.outputs
    assert dropped.facets["lifecycleStateChange"].lifecycleStateChange.value == "DROP"
    assert chain["apply_retention"]["deleted"][0]["reason"] == "published"


def test_the_payloads_chain_into_one_graph(chain: dict[str, Any]) -> None:
    def names(task: str) -> tuple[set[str], set[str]]:
        given, returned = STEPS[task]
        built = builders.TASK_LINEAGE[task](
            builders.TaskCall(payload=chain[given], result=chain[returned])
        )
        return {d.name for d in built.inputs}, {d.name for d in built.outputs}

    _, raw = names("extract")
    validated_raw, _ = names("validate_raw")
    read_raw, staged = names("transform")
    audited, _ = names("validate_curated")
    read_staging, curated = names("publish")

    assert validated_raw == raw == read_raw
    assert audited <= staged and read_staging == audited
    assert curated == {chain["publish"]["curated_key"]}


def test_the_xcom_json_keeps_the_keys_of_the_step_results(chain: dict[str, Any]) -> None:
    """The payloads are built field by field; their keys are still those the DAG always pushed
    (the step's ``to_dict()`` plus the base fields), so earlier runs and the UI read the same."""
    from etl.steps.extract.run import SourceResult
    from etl.steps.publish import Published, StagedCandidate
    from etl.steps.quality import CheckpointSummary
    from etl.steps.transform.curate import TransformReport

    def fields(cls: Any) -> list[str]:
        return list(cls.__dataclass_fields__)

    assert list(chain["transform"]) == [*BASE_KEYS, *fields(StagedCandidate), "report"]
    assert list(chain["transform"]["report"]) == [*fields(TransformReport), "passed"]
    assert list(chain["validate_raw"]["checkpoint"]) == fields(CheckpointSummary)
    assert list(chain["publish"])[len(BASE_KEYS) :][: len(fields(Published))] == fields(Published)
    assert list(chain["extract"]) == [*fields(SourceResult), *BASE_KEYS[1:]]


def test_a_builder_error_is_logged_at_error_with_its_trace(
    chain: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    renamed = dict(chain["transform"])
    renamed["staged_key"] = renamed.pop("staging_key")  # a field renamed on one side only

    with caplog.at_level(logging.ERROR, logger="etl.lineage.builders"):
        built = builders.task_lineage(
            "validate_curated", builders.TaskCall(payload=renamed, result=None)
        )

    assert built == StepLineage()  # the task itself is never failed by its lineage
    (record,) = [r for r in caplog.records if r.name == "etl.lineage.builders"]
    assert record.levelno == logging.ERROR
    assert "validate_curated" in record.getMessage()
    assert "Traceback" in record.getMessage() and "KeyError: 'staging_key'" in record.getMessage()
