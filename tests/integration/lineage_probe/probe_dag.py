"""A small DAG that exercises ``@lineage_task`` alone, run by ``test_lineage_events.py``.

``python tests/integration/lineage_probe/probe_dag.py`` runs it once through ``dag.test()``; the
caller sets the Airflow environment (``etl.tools.demo.airflow_environment``: a fresh SQLite
``AIRFLOW_HOME``, the OpenLineage file transport) with this folder as the DAGs folder, since
``dag.test()`` parses the DAG from there. It exits 0 when the run ended as designed: failed,
because ``gate`` always breaches. It is a script, not a test module: an Airflow process caches its
lineage transport, so it runs in its own process.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import dag

from etl.adapters.airflow.lineage_operator import lineage_task
from etl.lineage import builders, datasets, facets

NAMESPACE = "file"
ROWS = 3


class ProbeBreach(Exception):
    """A gate's failure carrying its summary, as ``etl.steps.quality.QualityGateFailed`` does."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__("probe gate failed: 1 of 1 expectations failed")
        self.summary = summary


def produce_lineage(call: builders.TaskCall) -> datasets.StepLineage:
    """Input named by the argument (known at START), output from the result (at COMPLETE)."""
    key = call.payload
    inputs = [datasets.input_dataset(NAMESPACE, key)]
    if not isinstance(call.result, dict):
        return datasets.StepLineage(inputs=inputs)
    stats = facets.output_statistics_facet(call.result["rows"], call.result["size"])
    output = datasets.output_dataset(
        NAMESPACE, call.result["written"], output_facets={"outputStatistics": stats}
    )
    return datasets.StepLineage(inputs=inputs, outputs=[output])


def gate_lineage(call: builders.TaskCall) -> datasets.StepLineage:
    """The validated input; on failure, with the gate's results taken from the exception."""
    validated = datasets.input_dataset(NAMESPACE, call.payload)
    summary = getattr(call.error, "summary", None)
    if summary is not None:
        validated.inputFacets = {
            "dataQualityAssertions": facets.quality_assertions_facet(
                facets.AssertionResult(
                    r["expectation_type"], r["success"], r["column"], r["observed"]
                )
                for r in summary["results"]
            )
        }
    return datasets.StepLineage(inputs=[validated])


@dag(dag_id="lineage_probe", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=UTC))
def lineage_probe() -> None:
    @lineage_task(lineage=produce_lineage)
    def produce(key: str) -> dict[str, Any]:
        """Write a staged copy of ``key``."""
        return {"written": key.replace("raw/", "staging/"), "rows": ROWS, "size": 42}

    @lineage_task(lineage=gate_lineage, retries=0)
    def gate(key: str) -> None:
        """Always breach."""
        result = {"expectation_type": "expect_x", "success": False, "column": "c", "observed": 7}
        raise ProbeBreach({"results": [result]})

    produce.expand(key=["raw/a.json", "raw/b.json"])
    gate("staging/a.json")


probe = lineage_probe()


def main() -> int:
    """Run the probe DAG once; 0 when it failed as designed."""
    from etl.tools.demo import migrate_db

    migrate_db()
    run = probe.test()
    print(f"probe dag run state: {run.state}")
    return 0 if str(run.state) == "failed" else 1


if __name__ == "__main__":
    sys.exit(main())
