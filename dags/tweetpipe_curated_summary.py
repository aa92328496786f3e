"""tweetpipe_curated_summary: an example consumer of the curated data, scheduled on its Assets.

Every `publish` of the tweetpipe DAG adds an event to its source's curated Asset through the alias
`tweetpipe_curated` (`extra`: rows, quarantined, the interval, the sha256 of the published bytes,
the contract version). This DAG is scheduled on that alias, so it runs after publishes, and never
after a breach (a failed gate never reaches `publish`). For each partition announced it writes
`summaries/source=<slug>/interval=<…>/summary.json` beside the curated data: posts, quarantined,
authors, top languages, first and last post, likes.

Asset-triggered runs are created by the scheduler's job schedule: with it off (`[scheduler]
use_job_schedule = False`, e.g. `tweetpipe airflow up --triggered-only`) the events stay queued.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import AssetAlias, Param, dag, task

from etl.adapters.airflow.assets import CURATED_ALIAS


@dag(
    dag_id="tweetpipe_curated_summary",
    schedule=[AssetAlias(CURATED_ALIAS)],
    start_date=datetime(2022, 1, 1, tzinfo=UTC),
    catchup=False,
    params={
        "aws_conn_id": Param(
            "aws_default",
            type="string",
            title="AWS connection",
            description="For an s3:// store: the connection holding its credentials.",
        )
    },
    tags=["tweetpipe", "consumer"],
    doc_md=__doc__,
)
def tweetpipe_curated_summary() -> None:
    @task(inlets=[AssetAlias(CURATED_ALIAS)])
    def summarize(params: dict[str, Any], triggering_asset_events: Any = None) -> list[str]:
        """Summarise every curated partition whose publish triggered this run, under
        `summaries/` beside it; a partition replaced since its event is left to its own event."""
        from etl.adapters.airflow import tasks

        return tasks.summarize_published(triggering_asset_events or {}, params)

    summarize()


tweetpipe_curated_summary()
