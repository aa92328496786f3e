"""The DAG file parses cleanly, is shaped as documented, and imports nothing heavy.

The DAG is parsed once, in a fresh interpreter with a throw-away ``AIRFLOW_HOME``: the parse must
not depend on (or leak into) whatever this test session imported, and ``sys.modules`` there shows
exactly what parsing the file pulled in.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.conftest import ROOT, run_probe

DAGS = ROOT / "dags"

_PARSE = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(sys.argv[1])
dag = bag.dags.get("tweetpipe")
heavy = ("pandas", "great_expectations", "tweepy", "boto3", "pandera", "openlineage.client",
         "etl.adapters.airflow.tasks", "etl.steps.quality", "etl.steps.transform", "etl.steps.extract")
out = {
    "import_errors": {str(k): v for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dags),
    "heavy_modules": sorted(m for m in heavy if m in sys.modules),
}
consumer = bag.dags.get("tweetpipe_curated_summary")
if consumer is not None:
    condition = consumer.timetable.asset_condition
    out["consumer"] = {
        "timetable": type(consumer.timetable).__name__,
        "aliases": sorted(o.name for o in condition.objects if type(o).__name__ == "AssetAlias"),
        "tasks": sorted(t.task_id for t in consumer.tasks),
    }
if dag is not None:
    out["params"] = sorted(dag.params.keys())
    out["param_schemas"] = {
        k: {
            **dag.params.get_param(k).schema,
            "default": dag.params.get_param(k).value,
            "description": dag.params.get_param(k).description,
        }
        for k in dag.params.keys()
    }
    out["outlets"] = {
        t.task_id: [[type(o).__name__, getattr(o, "name", None)] for o in t.outlets]
        for t in dag.tasks if t.outlets
    }
    out["timetable"] = type(dag.timetable).__name__
    out["catchup"] = dag.catchup
    out["tasks"] = {
        t.task_id: {
            "upstream": sorted(t.upstream_task_ids),
            "trigger_rule": str(t.trigger_rule.value if hasattr(t.trigger_rule, "value")
                                else t.trigger_rule),
            "retries": t.retries,
            "backoff": float(t.retry_exponential_backoff or 0),
            "doc": bool((t.doc_md or t.doc or "").strip()),
            "map_index_template": getattr(t, "map_index_template", None),
            "mapped_group": type(t.task_group).__name__ if t.task_group else None,
        }
        for t in dag.tasks
    }
print("@@" + json.dumps(out))
"""

PER_SOURCE = [
    "per_source.extract",
    "per_source.validate_raw",
    "per_source.transform",
    "per_source.validate_curated",
    "per_source.publish",
]


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "PYTHONPATH": str(ROOT),
    }
    result: dict[str, Any] = run_probe(_PARSE, str(DAGS), env=env, timeout=120)
    return result


def test_dagbag_imports_without_errors(parsed: dict[str, Any]) -> None:
    assert parsed["import_errors"] == {}
    assert parsed["dag_ids"] == ["tweetpipe", "tweetpipe_curated_summary"]


def test_parsing_imports_nothing_heavy(parsed: dict[str, Any]) -> None:
    # Parse time stays well under a second only if the steps' libraries load in the tasks.
    assert parsed["heavy_modules"] == []


def test_tasks_and_flow(parsed: dict[str, Any]) -> None:
    tasks = parsed["tasks"]

    assert sorted(tasks) == sorted(
        ["plan_sources", *PER_SOURCE, "build_docs", "apply_retention", "all_sources_published"]
    )
    chain = ["plan_sources", *PER_SOURCE]
    for before, after in zip(chain, chain[1:], strict=False):
        assert tasks[after]["upstream"] == [before], after
    assert tasks["build_docs"]["upstream"] == ["per_source.publish"]
    assert tasks["all_sources_published"]["upstream"] == ["build_docs", "per_source.publish"]
    # Retention runs once the docs are published, also after a failed gate.
    assert tasks["apply_retention"]["upstream"] == ["build_docs"]
    assert tasks["apply_retention"]["trigger_rule"] == "all_done"


def test_one_mapped_instance_per_source(parsed: dict[str, Any]) -> None:
    for task_id in PER_SOURCE:
        assert parsed["tasks"][task_id]["mapped_group"] == "MappedTaskGroup", task_id
        # The UI labels each instance with the source's slug instead of a bare index.
        assert parsed["tasks"][task_id]["map_index_template"] == "{{ tweetpipe_source }}"
    assert parsed["tasks"]["build_docs"]["mapped_group"] in (None, "TaskGroup")


def test_trigger_rules_document_failures_and_fail_the_run(parsed: dict[str, Any]) -> None:
    tasks = parsed["tasks"]

    assert tasks["build_docs"]["trigger_rule"] == "all_done"
    assert tasks["all_sources_published"]["trigger_rule"] == "one_failed"
    for task_id in ["plan_sources", *PER_SOURCE]:
        assert tasks[task_id]["trigger_rule"] == "all_success", task_id


def test_retries_back_off_exponentially(parsed: dict[str, Any]) -> None:
    for task_id in PER_SOURCE:
        assert parsed["tasks"][task_id]["retries"] >= 2, task_id
        assert parsed["tasks"][task_id]["backoff"] > 1.0, task_id
    # Failing the run is a verdict, not a transient error.
    assert parsed["tasks"]["all_sources_published"]["retries"] == 0


def test_every_task_is_documented(parsed: dict[str, Any]) -> None:
    undocumented = [t for t, info in parsed["tasks"].items() if not info["doc"]]

    assert undocumented == []


def test_daily_interval_schedule_and_params(parsed: dict[str, Any]) -> None:
    assert parsed["timetable"] == "CronTriggerTimetable"
    assert parsed["catchup"] is False
    assert parsed["params"] == [
        "aws_conn_id",
        "config",
        "max_cost_usd",
        "sources",
        "store",
        "x_conn_id",
    ]


@pytest.mark.parametrize("name", ["config", "store"])
def test_optional_params_can_stay_empty_in_the_trigger_form(parsed: dict[str, Any], name: str):
    """The form keeps Trigger disabled while a field's value breaks its schema; an empty field
    is null there, so an optional param must accept null, and say what empty means."""
    import jsonschema

    schema = dict(parsed["param_schemas"][name])
    default = schema.pop("default")

    assert default is None
    jsonschema.validate(None, schema)
    jsonschema.validate("s3://bucket/prefix", schema)
    assert "Empty:" in schema["description"]


def test_the_sources_may_stay_empty_too(parsed: dict[str, Any]) -> None:
    import jsonschema

    schema = {k: v for k, v in parsed["param_schemas"]["sources"].items() if k != "default"}

    jsonschema.validate(None, schema)
    jsonschema.validate([], schema)
    assert "Empty:" in schema["description"]


def test_params_with_defaults_show_them_in_their_description(parsed: dict[str, Any]) -> None:
    for name in ("x_conn_id", "aws_conn_id"):
        schema = parsed["param_schemas"][name]
        assert f"Default: {schema['default']}." in schema["description"], name


def test_publish_announces_the_curated_assets_and_the_consumer_is_scheduled_on_them(
    parsed: dict[str, Any],
) -> None:
    assert parsed["outlets"] == {"per_source.publish": [["AssetAlias", "tweetpipe_curated"]]}
    assert parsed["consumer"] == {
        "timetable": "AssetTriggeredTimetable",
        "aliases": ["tweetpipe_curated"],
        "tasks": ["summarize"],
    }
