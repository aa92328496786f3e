"""tweetpipe: posts from the X API v2 into curated CSV, gated by Pandera and Great Expectations.

Per source and data interval (one mapped task instance per source, so one account's breach is one
red box and the other sources still publish):

    extract -> validate_raw -> transform -> validate_curated -> publish

then, for the whole run, ``build_docs`` publishes the Data Docs site (also after a failure, so the
failure is documented), ``apply_retention`` deletes what the retention rules let go, and
``all_sources_published`` fails the run when any source did not reach ``curated/``.

Only object keys and small summaries travel through XCom; their shapes are in ``etl.payloads``, and
each per-source task's first parameter is the payload it reads (its lineage is built from it). Nothing heavy is imported here: each task
imports ``etl.adapters.airflow.tasks``, which imports the step it runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import (
    AssetAlias,
    CronTriggerTimetable,
    Param,
    TriggerRule,
    dag,
    task,
    task_group,
)

from etl.adapters.airflow.assets import CURATED_ALIAS
from etl.adapters.airflow.lineage_operator import lineage_task

# Imported at run time, not under TYPE_CHECKING: TaskFlow resolves the return annotations when it
# parses the DAG, and a mapping's keys then also go to XCom one by one (multiple_outputs).
from etl.payloads import (  # noqa: TC001
    BuildDocsPayload,
    ExtractPayload,
    PlannedSource,
    PublishPayload,
    RetentionPayload,
    TransformPayload,
    ValidateCuratedPayload,
    ValidateRawPayload,
)

_SOURCE_LABEL = "{{ tweetpipe_source }}"  # set by etl.adapters.airflow.tasks while the task runs
_NO_URL_CREDENTIALS = r"^(?![A-Za-z][A-Za-z0-9+.-]*://[^/]*@)"

default_args: dict[str, Any] = {
    # Transient trouble (API outage, S3 hiccup) is retried with backoff; a quality breach raises
    # AirflowFailException in etl.adapters.airflow.tasks and is never retried.
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}

params = {
    "sources": Param(
        [],
        type=["null", "array"],
        items={"type": "string"},
        title="Sources",
        description="'account:NAME' or 'query:TEXT', one per line. Empty: the sources of the "
        "pipeline config.",
    ),
    # Resolved where the task runs, not here: this file may be a copy in another DAGs folder, and
    # a worker's installation path need not be the scheduler's.
    # Optional params are nullable, so the trigger form accepts them empty (Trigger stays
    # enabled); the description says what empty means.
    "config": Param(
        None,
        type=["null", "string"],
        title="Pipeline config (pipeline.yaml)",
        description="A pipeline.yaml path on the workers. Empty: the one shipped with tweetpipe. "
        "Its sources and store are used; its api.base_url is not (the X API connection's host is).",
    ),
    "store": Param(
        None,
        type=["null", "string"],
        # A URL with user:password@ is refused when the run is triggered: the run's conf goes
        # into every OpenLineage event and the metadata database, so it must never hold one.
        pattern=_NO_URL_CREDENTIALS,
        title="Store",
        description="s3://bucket/prefix or a directory. Empty: $TWEETPIPE_STORE on the workers, "
        "else the config's store. No credentials in the URL: S3 credentials come from the AWS "
        "connection.",
    ),
    "x_conn_id": Param(
        "x_api_default",
        type="string",
        title="X API connection",
        description="An HTTP connection named x_api_* (or listed in TWEETPIPE_X_CONN_IDS); its "
        "host is the API base URL, its password the bearer token. Default: x_api_default.",
    ),
    "aws_conn_id": Param(
        "aws_default",
        type="string",
        title="AWS connection",
        description="The connection holding the S3 credentials of an s3:// store (without it: "
        "boto3's default chain). Default: aws_default.",
    ),
    "max_cost_usd": Param(
        None,
        type=["null", "number"],
        minimum=0,
        maximum=1_000_000,
        title="Cost cap (USD)",
        description="The most this run may spend on X API reads, shared out among its sources; "
        "empty: the config's budget (if any). A source stops before a request that could exceed "
        "it and fails without retry.",
    ),
}


@lineage_task(trigger_rule=TriggerRule.ALL_DONE)
def apply_retention(params: dict[str, Any]) -> RetentionPayload:
    """Apply the config's `retention:` rules: delete expired `raw/` windows, published or
    abandoned `staging/` candidates and old Data Docs pages, never what a curated partition
    derives from. Logs every deletion; its lineage names each dropped dataset."""
    from etl.adapters.airflow import retention

    return retention.apply_retention(params)


@dag(
    dag_id="tweetpipe",
    schedule=CronTriggerTimetable("0 0 * * *", timezone="UTC", interval=timedelta(days=1)),
    # The earliest interval a backfill may ask for. With catchup off the scheduler runs only the
    # latest daily interval by itself, never the backlog since then.
    start_date=datetime(2022, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args=default_args,
    params=params,
    tags=["tweetpipe", "data-quality"],
    doc_md=__doc__,
)
def tweetpipe() -> None:
    @task
    def plan_sources(params: dict[str, Any]) -> list[PlannedSource]:
        """List the sources of this run (the `sources` param, else `pipeline.yaml`); each one
        becomes one mapped instance of the per-source tasks."""
        from etl.adapters.airflow import tasks

        return tasks.plan_sources(params)

    @lineage_task(map_index_template=_SOURCE_LABEL)
    def extract(
        source: PlannedSource,
        params: dict[str, Any],
        data_interval_start: datetime,
        data_interval_end: datetime,
    ) -> ExtractPayload:
        """Fetch the source's posts for the data interval through the `x_api_default` connection
        and land every response body unchanged under `raw/`, with a manifest; a rerun of the same
        interval finds the landed window and fetches nothing."""
        from etl.adapters.airflow import tasks

        return tasks.extract(source, params, data_interval_start, data_interval_end)

    @lineage_task(map_index_template=_SOURCE_LABEL)
    def validate_raw(
        landed: ExtractPayload, params: dict[str, Any], run_id: str
    ) -> ValidateRawPayload:
        """Quality gate 1: run the Great Expectations checkpoint on the landed pages' response
        envelope. A breach fails this task (not retried) and stops the source here."""
        from etl.adapters.airflow import tasks

        return tasks.validate_raw(landed, params, run_id)

    @lineage_task(map_index_template=_SOURCE_LABEL)
    def transform(checked: ValidateRawPayload, params: dict[str, Any]) -> TransformPayload:
        """Flatten the raw pages into the curated CSV through the Pandera gate built from the data
        contract; write the candidate to `staging/` and every rejected row, with its reason, to
        `quarantine/`."""
        from etl.adapters.airflow import tasks

        return tasks.transform(checked, params)

    @lineage_task(map_index_template=_SOURCE_LABEL)
    def validate_curated(
        staged: TransformPayload, params: dict[str, Any], run_id: str
    ) -> ValidateCuratedPayload:
        """Quality gate 2: run the Great Expectations checkpoint on the candidate in `staging/`
        (contract columns, uniqueness, freshness, quarantined share). A breach fails this task
        (not retried) and nothing reaches `curated/`."""
        from etl.adapters.airflow import tasks

        return tasks.validate_curated(staged, params, run_id)

    @lineage_task(map_index_template=_SOURCE_LABEL, outlets=[AssetAlias(CURATED_ALIAS)])
    def publish(audited: ValidateCuratedPayload, params: dict[str, Any]) -> PublishPayload:
        """Publish the audited candidate: copy exactly the bytes the checkpoint passed from
        `staging/` to `curated/`, replacing the partition's previous version in one step; then
        announce it as an event of the source's curated Asset (rows, quarantined, interval,
        sha256, contract version), which DAGs scheduled on `tweetpipe_curated` run after."""
        from etl.adapters.airflow import tasks

        return tasks.publish(audited, params)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def build_docs(params: dict[str, Any], run_id: str) -> BuildDocsPayload:
        """Render this run's validations into the Great Expectations Data Docs site under `docs/`
        and update its index (older pages are left as they are). Runs also when a gate failed, so
        the failure is shown."""
        from etl.adapters.airflow import docs

        return docs.build_docs(params, run_id)

    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
    def all_sources_published(params: dict[str, Any]) -> None:
        """Fail the run when any source failed (a quality breach, or extraction after its
        retries): Airflow decides a run's state by its last tasks, and `build_docs` succeeds
        even then. Skipped when every source was published."""
        from etl.adapters.airflow import tasks

        tasks.fail_run(params)

    @task_group
    def per_source(source: PlannedSource) -> Any:
        """One source through write–audit–publish."""
        landed = extract(source)
        checked = validate_raw(landed)
        staged = transform(checked)
        audited = validate_curated(staged)
        return publish(audited)

    published = per_source.expand(source=plan_sources())
    docs = build_docs()
    published >> docs >> apply_retention()
    [published, docs] >> all_sources_published()


tweetpipe()
