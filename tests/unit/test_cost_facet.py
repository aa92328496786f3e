"""The ``tweetpipe_cost`` run facet: our own JSON Schema, extending OpenLineage's ``RunFacet``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from jsonschema import Draft202012Validator
from openlineage.client.serde import Serde

from etl.lineage import builders, datasets, emit
from etl.lineage.cost_facet import FACET_KEY, SCHEMA, SCHEMA_URL, cost_facet
from etl.pricing import Prices
from etl.steps.extract.cost import CostCounts
from tests.openlineage_schemas import OUR_FACETS, registry, validate_event

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit

COST = CostCounts(
    posts_read=120, posts_billable=100, posts_deduplicated=20, user_reads=1, user_reads_billable=1
).payload(Prices())


def _errors(instance: Any) -> list[str]:
    validator = Draft202012Validator({"$ref": SCHEMA_URL}, registry=registry())
    return [e.message for e in validator.iter_errors(instance)]


def test_the_schema_is_a_valid_json_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA_URL.startswith(SCHEMA["$id"] + "#/$defs/")


def test_the_facet_validates_against_its_schema_url() -> None:
    facet = cost_facet([("query-python", "landed", COST), ("account-nasa", "stopped", COST)])
    assert facet is not None

    doc = json.loads(Serde.to_json(facet))

    assert doc["_schemaURL"] == SCHEMA_URL and doc["_producer"]
    assert doc["estimatedCostMicroUsd"] == 2 * (100 * 5_000 + 10_000)
    assert doc["estimatedCostUsd"] == 1.02
    assert doc["prices"]["post_read_usd"] == 0.005
    assert _errors(doc) == []


@pytest.mark.parametrize(
    "change",
    [
        {"estimatedCostUsd": -1},
        {"sources": [{"slug": "x", "status": "landed"}]},
        {"prices": {"post_read_usd": "0.005"}},
        {"_schemaURL": None},
    ],
)
def test_the_schema_refuses_what_is_not_a_cost(change: dict[str, Any]) -> None:
    facet = cost_facet([("query-python", "landed", COST)])
    doc = {**json.loads(Serde.to_json(facet)), **change}

    assert _errors(doc) != []


def test_the_extract_tasks_lineage_carries_the_facet() -> None:
    landed = {
        "source": {"kind": "query", "value": "python"},
        "slug": "query-python",
        "status": "landed",
        "store": "/tmp/store",
        "namespace": "file",
        "manifest_key": "raw/source=query-python/endpoint=tweets_search_recent/window=w/_manifest.json",
        "pages": 2,
        "tweets": 120,
        "cost": COST,
    }

    lineage = builders.extract_outputs(landed)  # type: ignore[arg-type]

    facet = lineage.run_facets[FACET_KEY]
    assert json.loads(Serde.to_json(facet))["sources"][0]["posts_billable"] == 100


def test_an_emitted_event_with_the_facet_validates(tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    facet = cost_facet([("query-python", "landed", COST)])
    assert facet is not None

    with emit.lineage_run("extract", default_file=events_file) as run:
        run.add(datasets.StepLineage(run_facets={FACET_KEY: facet}))

    complete = [json.loads(line) for line in events_file.read_text().splitlines()][-1]
    assert complete["run"]["facets"][FACET_KEY]["_schemaURL"] == SCHEMA_URL
    assert FACET_KEY in OUR_FACETS
    assert validate_event(complete, OUR_FACETS) == []


def test_a_stopped_extract_task_still_reports_what_it_spent() -> None:
    from etl.config import Source
    from etl.errors import SpendingStopped

    stop = SpendingStopped(Source("query", "python"), "budget", limit="budget", name="max_cost_usd")
    stop.cost = dict(COST)
    failure = RuntimeError("wrapped, as AirflowFailException wraps it")
    failure.__cause__ = stop
    planned = {"kind": "query", "value": "python", "slug": "query-python"}

    lineage = builders.TASK_LINEAGE["extract"](builders.TaskCall(payload=planned, error=failure))

    doc = json.loads(Serde.to_json(lineage.run_facets[FACET_KEY]))
    assert doc["sources"][0]["status"] == "stopped"
    assert doc["estimatedCostMicroUsd"] == COST["estimated_cost_micro_usd"]
    assert _errors(doc) == []
