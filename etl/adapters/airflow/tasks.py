"""The orchestration adapter: one function per DAG task, from Airflow's world to the steps.

Each function resolves what only the orchestrator knows (the DAG params, the ``x_api_default`` and
``aws_default`` connections, the run id) and calls one step of ``etl``.

Trust: whoever may trigger the DAG chooses the params, so a param never decides where a secret
goes. The X API's host comes from the X API connection itself (or the deployment's
``X_API_BASE_URL``), never from a param or the config file a param names; and only a connection
meant for the X API (see :func:`x_connection_allowed`) is ever used as one. Settings from params
are checked and reported without quoting what could be a secret (a store URL's credentials, a
config file's content). Tasks hand over nothing but
object keys and small summaries (the returned dicts, which go to XCom); every task downloads what
it needs from the store into its own temporary directory, so the DAG runs unchanged on a Celery or
Kubernetes executor.

What each task returns is declared in :mod:`etl.payloads` and built here field by field; the
lineage builders (:mod:`etl.lineage.builders`) read the same types. Every per-source payload
carries the same base fields (:class:`etl.payloads.PerSourcePayload`), so any task can find its
way from it::

    source     {"kind": "account"|"query", "value": ...}
    slug       the source's key-safe name (``account-nasa``)
    store      the store's URL (``s3://bucket/prefix`` or a directory), without credentials
    namespace  the store's lineage namespace (``s3://bucket`` or ``file``)
    start/end  the data interval, ISO 8601 UTC

A quality breach raises :class:`airflow.sdk.exceptions.AirflowFailException`, which Airflow never
retries (the same data would fail the same way); the checkpoint's summary is pushed to XCom under
``checkpoint`` first, pass or fail. Every other error propagates, so the task's retries with
exponential backoff apply to it.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl import resources
from etl.config import STORE_ENV
from etl.errors import PipelineError
from etl.storage.keys import DOCS_PREFIX

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from etl.config import Source
    from etl.payloads import (
        CheckpointPayload,
        ExtractPayload,
        PerSourcePayload,
        PlannedSource,
        PublishPayload,
        SourceRef,
        TransformPayload,
        TransformReportPayload,
        ValidateCuratedPayload,
        ValidateRawPayload,
    )
    from etl.steps.extract.client import XClient
    from etl.steps.extract.cost import Spending
    from etl.steps.extract.run import SourceResult
    from etl.steps.quality import CheckpointSummary
    from etl.steps.transform.curate import TransformReport
    from etl.storage.keys import Partition
    from etl.storage.store import Store

DEFAULT_CONFIG = resources.default_config()
log = logging.getLogger(__name__)
X_CONN_ID = "x_api_default"
X_CONN_IDS_ENV = "TWEETPIPE_X_CONN_IDS"
"""Deployment setting: comma-separated ids of the connections that may be used for the X API.
Unset: ids ``x_api`` and ``x_api_*``. Either way the connection's type must be HTTP."""
X_CONN_TYPES = ("http", "https")
_X_CONN_NAME = re.compile(r"x_api(?:_[A-Za-z0-9_]+)?")
_SHOWN_ID = re.compile(r"[A-Za-z0-9_.-]{1,200}")
DEFAULT_MAX_MAP_LENGTH = 1024  # Airflow's default for [core] max_map_length
AWS_CONN_ID = "aws_default"
CHECKPOINT_XCOM_KEY = "checkpoint"
# The rendered map index of a per-source task (see the DAG's ``map_index_template``).
MAP_INDEX_CONTEXT_KEY = "tweetpipe_source"


# --- configuration ----------------------------------------------------------------------------
def _param(params: Mapping[str, Any], name: str, default: str = "") -> str:
    value = params.get(name)
    return str(value).strip() if value not in (None, "") else default


def _config_path(params: Mapping[str, Any]) -> Path:
    return Path(_param(params, "config", str(DEFAULT_CONFIG)))


def store_url(params: Mapping[str, Any]) -> str:
    """The store to use: the ``store`` param, else ``$TWEETPIPE_STORE``, else ``pipeline.yaml``.

    Args:
        params: the DAG run's params.

    Returns:
        ``s3://bucket/prefix`` or a local directory, its shape checked.

    Raises:
        AirflowFailException: none of the three names a store, the config cannot be read, or the
            URL is malformed (carries credentials, say); the message names which setting and
            quotes none of it (a PipelineError, not retried).
    """
    from etl.config import parse_store_url
    from etl.errors import StoreError

    where, url = "the DAG param 'store'", _param(params, "store")
    if not url:
        where, url = STORE_ENV, os.environ.get(STORE_ENV, "").strip()
    if not url:
        from etl.config import load_config
        from etl.errors import ConfigError

        config = _config_path(params)
        try:
            # load_config checks the file's store: as parse_store_url does.
            url = (load_config(config).store_url or "") if config.is_file() else ""
        except ConfigError as exc:
            raise _not_retried(PipelineError(str(exc))) from None
        if not url:
            raise _not_retried(
                PipelineError(
                    f"no store: set the DAG param 'store', the {STORE_ENV} variable, or 'store:' "
                    f"in {config}"
                )
            )
        return url
    try:
        parse_store_url(url)
    except StoreError as exc:
        raise _not_retried(PipelineError(f"{where}: {exc}")) from None
    return url


def open_pipeline_store(params: Mapping[str, Any]) -> Store:
    """Open the run's store; S3 credentials come from the ``aws_default`` connection.

    The connection id can be changed with the ``aws_conn_id`` param. Without such a connection the
    amazon provider falls back to boto3's default chain (instance role, ``AWS_*`` variables), and
    ``AWS_ENDPOINT_URL`` still points it at MinIO, LocalStack or moto.

    Args:
        params: the DAG run's params.

    Returns:
        The store.
    """
    from etl.config import parse_store_url
    from etl.errors import StoreError
    from etl.storage.store import S3Store, open_store

    url = store_url(params)
    location = parse_store_url(url)
    if location.kind != "s3":
        try:
            return open_store(url, check=True)
        except StoreError as exc:
            raise _not_retried(PipelineError(str(exc))) from None
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    client = S3Hook(aws_conn_id=_param(params, "aws_conn_id", AWS_CONN_ID)).get_conn()
    return S3Store(location.bucket, location.prefix, client=client)


def _source_from_text(text: str) -> Source:
    from etl.config import parse_source

    return parse_source(text)


def plan_sources(params: Mapping[str, Any]) -> list[PlannedSource]:
    """The sources to extract in this run, one mapped task instance each.

    Args:
        params: the DAG run's params: ``sources`` (``account:NAME``, ``@NAME`` or
            ``query:TEXT`` strings) or, when that is empty, ``config`` (``pipeline.yaml``).

    Returns:
        ``{"kind", "value", "slug"}`` per source, without duplicates.

    Raises:
        AirflowFailException: a source is malformed, there is none, or there are more than
            Airflow maps in one run (``[core] max_map_length``); not retried.
    """
    from etl.config import dedupe_sources, load_sources
    from etl.errors import ConfigError

    requested = params.get("sources") or []
    try:
        if requested:
            sources = dedupe_sources([_source_from_text(str(s)) for s in requested])
        else:
            sources = load_sources(_config_path(params))
    except ConfigError as exc:
        raise _not_retried(PipelineError(str(exc))) from exc
    if not sources:
        raise _not_retried(
            PipelineError(
                f"no sources: the 'sources' param is empty and so is {_config_path(params)}"
            )
        )
    limit = _max_map_length()
    if len(sources) > limit:
        # Airflow refuses to map more task instances than this: fail here, saying so, rather
        # than after the push with no source run at all.
        raise _not_retried(
            PipelineError(
                f"{len(sources)} sources, but Airflow maps at most {limit} task instances per "
                "task ([core] max_map_length): split the sources across runs (the 'sources' "
                "param) or raise the setting"
            )
        )
    return [{"kind": s.kind, "value": s.value, "slug": s.slug} for s in sources]


def _max_map_length() -> int:
    try:
        from airflow.sdk.configuration import conf

        return int(conf.getint("core", "max_map_length", fallback=DEFAULT_MAX_MAP_LENGTH))
    except (ImportError, ValueError):
        return DEFAULT_MAX_MAP_LENGTH


# --- Airflow glue -------------------------------------------------------------------------------
def _not_retried(exc: Exception) -> Exception:
    """``exc`` as a failure Airflow does not retry; the original stays its ``__cause__``."""
    from airflow.sdk.exceptions import AirflowFailException

    failure = AirflowFailException(str(exc))
    failure.__cause__ = exc
    return failure


def _context() -> Mapping[str, Any] | None:
    try:
        from airflow.sdk import get_current_context

        return get_current_context()
    except Exception:  # noqa: BLE001 - outside a running task there is no context
        return None


def _name_map_index(slug: str) -> None:
    """Show the source's slug instead of a bare map index in the Airflow UI."""
    context = _context()
    if context is not None:
        context[MAP_INDEX_CONTEXT_KEY] = slug  # type: ignore[index]


def _push_checkpoint(summary: CheckpointPayload) -> None:
    context = _context()
    if context is not None:
        context["ti"].xcom_push(key=CHECKPOINT_XCOM_KEY, value=summary)


def x_connection_allowed(conn_id: str) -> bool:
    """Whether a run may use connection ``conn_id`` for the X API (its type is checked later).

    Args:
        conn_id: the ``x_conn_id`` param.

    Returns:
        True when ``conn_id`` is listed in ``$TWEETPIPE_X_CONN_IDS``, or, with that unset, is
        ``x_api`` or starts with ``x_api_``.
    """
    listed = {c.strip() for c in os.environ.get(X_CONN_IDS_ENV, "").split(",") if c.strip()}
    if listed:
        return conn_id in listed
    return _X_CONN_NAME.fullmatch(conn_id) is not None


def _x_client(params: Mapping[str, Any]) -> XClient:
    """The X API client from the connection (password = bearer token, host = API base URL).

    The bearer token goes only where the connection (or the deployment's ``X_API_BASE_URL``)
    points, and only a connection meant for the X API is used: neither the params nor the config
    file they may name can send a connection's password to another host.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from etl.config import api_base_url_problem
    from etl.steps.extract.run import make_client, resolve_max_body_bytes

    conn_id = _param(params, "x_conn_id", X_CONN_ID)
    shown = repr(conn_id) if _SHOWN_ID.fullmatch(conn_id) else "(not a plain id)"
    if not x_connection_allowed(conn_id):
        raise _not_retried(
            PipelineError(
                f"x_conn_id {shown} is not an X API connection: use x_api_default, an HTTP "
                f"connection named x_api_*, or one listed in {X_CONN_IDS_ENV}"
            )
        )
    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        conn = None
    if conn is not None:
        if (conn.conn_type or "").lower() not in X_CONN_TYPES:
            # Another service's connection: its password is never sent as a bearer token.
            kind = conn.conn_type if _SHOWN_ID.fullmatch(conn.conn_type or "") else "another"
            raise _not_retried(
                PipelineError(
                    f"connection {shown} is of type {kind}, not http: only an HTTP connection "
                    "holding the X API bearer token may be used as x_conn_id"
                )
            )
        token, base_url = conn.password or "", _base_url(conn.host, conn.port, conn.schema)
    else:
        # As the CLI does: the variables stand in for a missing connection.
        token, base_url = os.environ.get("X_BEARER_TOKEN", ""), None
    # A connection without a host uses the deployment's setting, else the real API.
    base_url = base_url or os.environ.get("X_API_BASE_URL", "").strip() or None
    if not token.strip():
        raise _not_retried(
            PipelineError(
                f"no X API bearer token: create the Airflow connection {shown} with the token "
                "as its password (or set X_BEARER_TOKEN)"
            )
        )
    if base_url is not None and (problem := api_base_url_problem(base_url)):
        raise _not_retried(PipelineError(f"the X API base URL of {shown} {problem}"))
    # Like the host, the body limit is the deployment's (X_API_MAX_BODY_BYTES, else 8 MiB), never
    # a per-run config's.
    return make_client(token, base_url, max_body_bytes=resolve_max_body_bytes(None))


def _base_url(host: str | None, port: int | None, scheme: str | None) -> str | None:
    """``https://api.x.com``-style base URL from a connection's host, port and schema."""
    if not host:
        return None
    if "://" not in host:
        host = f"{scheme or 'https'}://{host}"
    return f"{host.rstrip('/')}:{port}" if port else host.rstrip("/")


# --- the per-source chain -------------------------------------------------------------------------
def _partition(summary: PerSourcePayload) -> Partition:
    from etl.storage.keys import partition_for

    start = datetime.fromisoformat(summary["start"])
    end = datetime.fromisoformat(summary["end"])
    return partition_for(summary["slug"], start, end)


@contextmanager
def _workdir(step: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"tweetpipe-{step}-") as tmp:
        yield Path(tmp)


def _download_pages(store: Store, keys: Sequence[str]) -> list[tuple[str, bytes]]:
    return [(key, store.get(key)) for key in keys]


def extract(
    source: PlannedSource, params: Mapping[str, Any], start: datetime, end: datetime
) -> ExtractPayload:
    """Task ``extract``: fetch one source over the data interval and land the pages in ``raw/``.

    Args:
        source: one item of :func:`plan_sources`.
        params: the DAG run's params.
        start: ``data_interval_start``.
        end: ``data_interval_end``.

    Returns:
        The extract summary (``page_keys``, ``manifest_key``, counts) with the base fields.
    """
    from etl.config import Source, Window
    from etl.errors import SpendingStopped
    from etl.steps.extract.run import extract_source

    src = Source(source["kind"], source["value"])  # type: ignore[arg-type]
    _name_map_index(src.slug)
    store = open_pipeline_store(params)
    client = _x_client(params)
    spending = _spending(params, store, client)
    try:
        result = extract_source(client, store, src, Window(start, end), spending=spending)
    except SpendingStopped as exc:
        raise _not_retried(exc) from exc  # a retry would meet the same spent budget or cap
    return _extract_payload(result, store, _iso(start), _iso(end))


def _spending(params: Mapping[str, Any], store: Store, client: XClient) -> Spending:
    """Prices and budget of this source's task: the config's, with the ``max_cost_usd`` param
    as the per-run cap, shared out among the run's sources (they run in parallel)."""
    from etl.config import load_config
    from etl.pricing import parse_usd
    from etl.steps.extract.cost import Spending, split_run_cap, with_month_spent

    path = _config_path(params)
    try:
        config = load_config(path) if path.is_file() else None
        cap = params.get("max_cost_usd")
        if isinstance(cap, str):  # the param is a JSON number; text means a hand-made conf
            raise ValueError("max_cost_usd param must be a number of US dollars, not text")
        run_cap = None if cap is None else parse_usd(cap, "max_cost_usd param")
    except ValueError as exc:  # ConfigError included: bad input, retrying cannot fix it
        raise _not_retried(PipelineError(str(exc))) from None
    spending = Spending.from_config(config, run_cap, "max_cost_usd")
    if spending.budget.per_run is not None:
        shares = len(plan_sources(params))
        run_name = spending.cap_name("per_run")
        spending.budget, spending.names = split_run_cap(spending.budget, shares, run_name)
    with_month_spent(spending, store, client, datetime.now(UTC))
    return spending


def _extract_payload(result: SourceResult, store: Store, start: str, end: str) -> ExtractPayload:
    # The order of SourceResult.to_dict(), then the base fields: the XCom JSON of earlier runs.
    return {
        "source": _source_ref(result.source),
        "status": result.status,
        "window": result.window,
        "page_keys": list(result.page_keys),
        "manifest_key": result.manifest_key,
        "pages": result.pages,
        "tweets": result.tweets,
        "api_errors": result.api_errors,
        "requests": result.requests,
        "user_lookups": result.user_lookups,
        "retries": result.retries,
        "rate_limit_waits": result.rate_limit_waits,
        "wait_seconds": result.wait_seconds,
        "resumed_pages": result.resumed_pages,
        "rejected_keys": list(result.rejected_keys),
        "newest_id": result.newest_id,
        "watermark": result.watermark,
        "cost": result.cost,
        "slug": result.source.slug,
        "store": store.url,
        "namespace": store.namespace,
        "start": start,
        "end": end,
    }


def _source_ref(source: Source) -> SourceRef:
    return {"kind": source.kind, "value": source.value}


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _checkpoint_payload(summary: CheckpointSummary) -> CheckpointPayload:
    return {
        "suite": summary.suite,
        "success": summary.success,
        "evaluated": summary.evaluated,
        "failed": summary.failed,
        "results": summary.results,
        "docs_page": summary.docs_page,
        "run_name": summary.run_name,
        "rows": summary.rows,
        "skipped": summary.skipped,
        "parameters": summary.parameters,
    }


def _report_payload(report: TransformReport) -> TransformReportPayload:
    return {
        "tweets_in": report.tweets_in,
        "curated": report.curated,
        "quarantined": report.quarantined,
        "duplicates": report.duplicates,
        "api_errors": report.api_errors,
        "pages": report.pages,
        "pages_quarantined": report.pages_quarantined,
        "check_failures": dict(sorted(report.check_failures.items())),
        "fatal": list(report.fatal),
        "contract": report.contract,
        "passed": report.passed,
    }


def _gate(summary: CheckpointSummary, store: Store) -> CheckpointPayload:
    """Push a checkpoint summary to XCom, then fail the task (not retried) if it failed; the
    message names the Data Docs page where a user can open it (a path, or an s3:// URL)."""
    from etl.errors import QualityGateFailed
    from etl.steps.quality import raise_on_failure
    from etl.storage.keys import object_location

    doc = _checkpoint_payload(summary)
    _push_checkpoint(doc)
    try:
        raise_on_failure(summary, docs_base=object_location(store.url, DOCS_PREFIX))
    except QualityGateFailed as exc:
        raise _not_retried(exc) from exc
    return doc


def validate_raw(
    landed: ExtractPayload, params: Mapping[str, Any], run_id: str
) -> ValidateRawPayload:
    """Task ``validate_raw``: the GX checkpoint on the landed pages' response envelope.

    Args:
        landed: the payload :func:`extract` returned.
        params: the DAG run's params.
        run_id: the Airflow run id (names the validation in Data Docs).

    Returns:
        The base fields, the page keys and the checkpoint summary.
    """
    from etl.steps.quality import validate_raw_pages
    from etl.steps.quality.docs import save_results

    _name_map_index(landed["slug"])
    store = open_pipeline_store(params)
    with _workdir("validate-raw") as tmp:
        pages = _download_pages(store, landed["page_keys"])
        # No page here: build_docs renders every page from the saved results.
        summary = validate_raw_pages(
            pages,
            docs_dir=tmp / "gx",
            run_name=_run_name(run_id, landed["slug"]),
            partition=_partition(landed),
            build_page=False,
        )
        save_results(tmp / "gx", store, prefix=DOCS_PREFIX)
    checkpoint = _gate(summary, store)
    return {
        "source": landed["source"],
        "slug": landed["slug"],
        "store": landed["store"],
        "namespace": landed["namespace"],
        "start": landed["start"],
        "end": landed["end"],
        "page_keys": list(landed["page_keys"]),
        "manifest_key": landed["manifest_key"],
        "tweets": landed["tweets"],
        "checkpoint": checkpoint,
    }


def _run_name(run_id: str, slug: str) -> str:
    return f"{run_id}__{slug}"


def transform(checked: ValidateRawPayload, params: Mapping[str, Any]) -> TransformPayload:
    """Task ``transform``: raw pages to the curated candidate in ``staging/``, rejects to
    ``quarantine/``.

    Args:
        checked: the payload :func:`validate_raw` returned.
        params: the DAG run's params.

    Returns:
        The base fields, the staged keys, the candidate's digest and the transform report.
    """
    from etl.payloads import nothing_curated, partition_label
    from etl.steps.publish import stage
    from etl.steps.transform.curate import transform_pages

    _name_map_index(checked["slug"])
    store = open_pipeline_store(params)
    partition = _partition(checked)
    with _workdir("transform") as tmp:
        pages = _download_pages(store, checked["page_keys"])
        csv_path, rejects_path = tmp / "tweets.csv", tmp / "rejected.jsonl"
        with (
            open(csv_path, "w", encoding="utf-8", newline="") as csv_out,
            open(rejects_path, "w", encoding="utf-8", newline="") as rejects_out,
        ):
            report = transform_pages(pages, csv_out, rejects_out)
        staged = stage(store, partition, csv_path, rejects_path)
    where = partition_label(checked["slug"], checked["start"], checked["end"])
    empty = nothing_curated(report.to_dict(), where)
    if empty:
        # A quiet window is not a failure, but it must show in the task log, not pass unseen.
        log.warning("%s", empty)
    return {
        "source": checked["source"],
        "slug": checked["slug"],
        "store": checked["store"],
        "namespace": checked["namespace"],
        "start": checked["start"],
        "end": checked["end"],
        "staging_key": staged.staging_key,
        "quarantine_key": staged.quarantine_key,
        "sha256": staged.sha256,
        "size": staged.size,
        "quarantine_size": staged.quarantine_size,
        "report": _report_payload(report),
    }


def validate_curated(
    staged: TransformPayload, params: Mapping[str, Any], run_id: str
) -> ValidateCuratedPayload:
    """Task ``validate_curated``: the GX checkpoint on the candidate waiting in ``staging/``.

    Args:
        staged: the payload :func:`transform` returned.
        params: the DAG run's params.
        run_id: the Airflow run id (names the validation in Data Docs).

    Returns:
        The base fields, the audited key and digest, and the checkpoint summary.
    """
    from etl.steps.quality import validate_curated as run_checkpoint
    from etl.steps.quality.docs import save_results

    _name_map_index(staged["slug"])
    store = open_pipeline_store(params)
    partition = _partition(staged)
    report = staged["report"]
    with _workdir("validate-curated") as tmp:
        csv_path = tmp / "tweets.csv"
        store.download(staged["staging_key"], csv_path)
        summary = run_checkpoint(
            csv_path,
            docs_dir=tmp / "gx",
            run_name=_run_name(run_id, staged["slug"]),
            interval_start=partition.start,
            interval_end=partition.end,
            report=dict(report),
            partition=partition,
            build_page=False,
        )
        save_results(tmp / "gx", store, prefix=DOCS_PREFIX)
    checkpoint = _gate(summary, store)
    if not report["passed"]:
        # The GX suite covers the Pandera gate's fatal checks too; this keeps a rejected
        # candidate out of curated/ even if the two ever disagree.
        raise _not_retried(
            PipelineError(
                f"Pandera gate failed for {staged['staging_key']}: {'; '.join(report['fatal'])}; "
                f"rejected rows in {staged['quarantine_key']}"
            )
        )
    return {
        "source": staged["source"],
        "slug": staged["slug"],
        "store": staged["store"],
        "namespace": staged["namespace"],
        "start": staged["start"],
        "end": staged["end"],
        "staging_key": staged["staging_key"],
        "quarantine_key": staged["quarantine_key"],
        "sha256": staged["sha256"],
        "report": report,
        "checkpoint": checkpoint,
    }


def publish(audited: ValidateCuratedPayload, params: Mapping[str, Any]) -> PublishPayload:
    """Task ``publish``: copy the audited candidate from ``staging/`` to ``curated/``.

    Args:
        audited: the payload :func:`validate_curated` returned.
        params: the DAG run's params.

    Returns:
        The base fields, the published key and digest, and the counts of the transform report.
    """
    from etl.steps.publish import publish as publish_partition

    _name_map_index(audited["slug"])
    store = open_pipeline_store(params)
    published = publish_partition(store, _partition(audited), audited["sha256"])
    payload: PublishPayload = {
        "source": audited["source"],
        "slug": audited["slug"],
        "store": audited["store"],
        "namespace": audited["namespace"],
        "start": audited["start"],
        "end": audited["end"],
        "curated_key": published.curated_key,
        "sha256": published.sha256,
        "size": published.size,
        "replaced": published.replaced,
        "unchanged": published.unchanged,
        "staging_key": audited["staging_key"],
        "quarantine_key": audited["quarantine_key"],
        "report": audited["report"],
    }
    _announce(payload)
    return payload


def _announce(published: PublishPayload) -> None:
    """Emit the partition's asset event (see :mod:`etl.adapters.airflow.assets`), if in a task."""
    from etl.adapters.airflow.assets import emit_published

    context = _context()
    if context is not None and "outlet_events" in context:
        emit_published(context["outlet_events"], published)


def summarize_published(
    triggering_asset_events: Mapping[Any, Any], params: Mapping[str, Any]
) -> list[str]:
    """Task ``summarize`` of the example consumer DAG: one summary per announced partition.

    Args:
        triggering_asset_events: the run context's ``triggering_asset_events``.
        params: the consumer run's params (``aws_conn_id`` for an S3 store).

    Returns:
        The summary keys written (see :func:`etl.adapters.airflow.assets.write_summary`).
    """
    from etl.adapters.airflow.assets import curated_events, write_summary

    written = []
    stores: dict[str, Store] = {}  # a backfill's events all name the same store: opened once
    for event in curated_events(triggering_asset_events):
        url = event["store"]
        if url not in stores:
            stores[url] = open_pipeline_store({**params, "store": url})
        key = write_summary(stores[url], event)
        if key is not None:
            written.append(key)
    return written


def fail_run(params: Mapping[str, Any]) -> None:
    """Task ``all_sources_published``: fail, naming the per-source tasks that did not succeed.

    Args:
        params: the DAG run's params (to say where the Data Docs are).

    Raises:
        AirflowFailException: always; the task only runs when an upstream task failed.
    """
    failed = _failed_tasks()
    detail = f": {', '.join(failed)}" if failed else ""
    raise _not_retried(
        PipelineError(
            f"not every source was published{detail}; see the red tasks' logs and the Data "
            f"Docs at {_docs_index(params)}"
        )
    )


def _docs_index(params: Mapping[str, Any]) -> str:
    """The Data Docs index as a user opens it; the store key when the store is not known."""
    from etl.storage.keys import object_location

    index = f"{DOCS_PREFIX}index.html"
    try:
        return object_location(store_url(params), index)
    except Exception:  # noqa: BLE001 - the failure message must not fail on a courtesy
        return index


def _failed_tasks() -> list[str]:
    context = _context()
    if context is None:
        return []
    ti = context["ti"]
    try:
        states = ti.get_task_states(
            dag_id=ti.dag_id, task_group_id="per_source", run_ids=[ti.run_id]
        )
    except Exception:  # noqa: BLE001 - the message is a courtesy; the failure stands anyway
        return []
    by_task = states.get(ti.run_id, {})
    return sorted(k for k, v in by_task.items() if v == "failed")
