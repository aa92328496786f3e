"""The shapes of what crosses a task boundary: one ``TypedDict`` per DAG task's return value.

The Airflow task functions (:mod:`etl.adapters.airflow.tasks`) build these, field by field, and
hand them on through XCom as plain JSON; the lineage builders (:mod:`etl.lineage.builders`) read
them. Both sides import the same types, so renaming or dropping a field is a type error in both
places, not lineage that silently goes missing. The keys are those the DAG has always pushed to
XCom: existing runs and the Airflow UI read the same JSON.

Every per-source payload begins with the fields of :class:`PerSourcePayload`, so any task can
find its way from the one before it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from collections.abc import Mapping


class PlannedSource(TypedDict):
    """One item of ``plan_sources``: a source to run through the per-source tasks.

    Attributes:
        kind: ``account`` or ``query``.
        value: the account name or the query text.
        slug: the source's key-safe name (``account-nasa``).
    """

    kind: str
    value: str
    slug: str


class SourceRef(TypedDict):
    """A source as the per-source payloads name it.

    Attributes:
        kind: ``account`` or ``query``.
        value: the account name or the query text.
    """

    kind: str
    value: str


class PerSourcePayload(TypedDict):
    """The fields every per-source payload carries.

    Attributes:
        source: the source.
        slug: the source's key-safe name.
        store: the store's URL (``s3://bucket/prefix`` or a directory), without credentials.
        namespace: the store's lineage namespace (``s3://bucket`` or ``file``).
        start: the data interval's start, ISO 8601 UTC.
        end: the data interval's end, ISO 8601 UTC.
    """

    source: SourceRef
    slug: str
    store: str
    namespace: str
    start: str
    end: str


class PricesPayload(TypedDict):
    """The prices a cost was computed with, in US dollars (``etl.pricing.Prices``)."""

    post_read_usd: float
    user_read_usd: float
    counts_request_usd: float


class CostPayload(TypedDict):
    """What one source's extraction read and what it costs (``etl.steps.extract.cost``).

    The same fields are in the window's manifest (``cost``), the extract task's XCom and the
    ``tweetpipe_cost`` lineage facet.

    Attributes:
        prices: the prices used.
        posts_read: posts in the pages fetched (resumed pages excluded: an earlier call read them).
        posts_billable: those X bills: not read before on the same UTC day.
        posts_deduplicated: those read before on the same UTC day (not billed again).
        user_reads: user lookups that returned a user.
        user_reads_billable: those of a user not read before on the same UTC day.
        user_reads_deduplicated: those of a user read before on the same UTC day.
        user_reads_cached: lookups not sent at all (the id was cached in ``state/users/``).
        counts_requests: requests to the counts endpoints.
        estimated_cost_micro_usd: the cost in micro-dollars (exact).
        estimated_cost_usd: the same in dollars.
    """

    prices: PricesPayload
    posts_read: int
    posts_billable: int
    posts_deduplicated: int
    user_reads: int
    user_reads_billable: int
    user_reads_deduplicated: int
    user_reads_cached: int
    counts_requests: int
    estimated_cost_micro_usd: int
    estimated_cost_usd: float


COST_COUNT_FIELDS = (
    "posts_read",
    "posts_billable",
    "posts_deduplicated",
    "user_reads",
    "user_reads_billable",
    "user_reads_deduplicated",
    "user_reads_cached",
    "counts_requests",
)
"""The read counts of :class:`CostPayload`, in order (manifest, XCom, lineage facet)."""


class ExtractPayload(PerSourcePayload):
    """What task ``extract`` returns: ``etl.steps.extract.SourceResult`` with the base fields.

    Attributes:
        status: ``landed`` or ``skipped`` (the window was complete already).
        window: the ``window=`` label in the keys.
        page_keys: every landed page of the window, in order.
        manifest_key: the window's manifest.
        pages: number of pages.
        tweets: posts in those pages.
        api_errors: partial errors in those pages.
        requests: HTTP requests sent.
        user_lookups: user-lookup requests among them.
        retries: tries repeated.
        rate_limit_waits: waits for a rate-limit reset.
        wait_seconds: seconds spent waiting.
        resumed_pages: pages an earlier, unfinished call had landed.
        rejected_keys: broken bodies kept under ``_rejected/``.
        newest_id: newest post id in the window, or None.
        watermark: the source's watermark after the call.
        cost: what the call read and what it costs.
    """

    status: str
    window: str
    page_keys: list[str]
    manifest_key: str
    pages: int
    tweets: int
    api_errors: int
    requests: int
    user_lookups: int
    retries: int
    rate_limit_waits: int
    wait_seconds: float
    resumed_pages: int
    rejected_keys: list[str]
    newest_id: str | None
    watermark: str | None
    cost: CostPayload


class CheckpointPayload(TypedDict):
    """A checkpoint's summary (``etl.steps.quality.CheckpointSummary``), as XCom carries it.

    Attributes:
        suite: the suite name.
        success: no expectation of critical severity failed.
        evaluated: expectations run.
        failed: the failed expectations.
        results: every expectation run (``expectation_type``, ``column``, ``success``,
            ``observed_value`` or ``unexpected_count``, ``missing_count``, ``rule``,
            ``severity``), for lineage.
        docs_page: the validation page, relative to the Data Docs site root.
        run_name: the GX run name.
        rows: rows in the validated batch.
        skipped: expectations not run, with the reason.
        parameters: the suite parameter values used.
    """

    suite: str
    success: bool
    evaluated: int
    failed: list[dict[str, Any]]
    results: list[dict[str, Any]]
    docs_page: str | None
    run_name: str
    rows: int
    skipped: list[dict[str, Any]]
    parameters: dict[str, Any]


class TransformReportPayload(TypedDict):
    """The transform report (``etl.steps.transform.TransformReport.to_dict()``).

    Attributes:
        tweets_in: posts read.
        curated: posts written to the CSV.
        quarantined: posts rejected by the gate.
        duplicates: posts whose id was already seen.
        api_errors: Problem objects in the responses' ``errors`` arrays.
        pages: response documents read.
        pages_quarantined: documents quarantined whole.
        check_failures: failures per ``column:check``.
        fatal: the failed fatal checks; empty when the gate passed.
        contract: name and version of the contract the gate was built from
            (:func:`contract_label`).
        passed: whether the gate passed.
    """

    tweets_in: int
    curated: int
    quarantined: int
    duplicates: int
    api_errors: int
    pages: int
    pages_quarantined: int
    check_failures: dict[str, int]
    fatal: list[str]
    contract: str
    passed: bool


class ValidateRawPayload(PerSourcePayload):
    """What task ``validate_raw`` returns.

    Attributes:
        page_keys: the validated pages.
        manifest_key: their window's manifest.
        tweets: posts in those pages.
        checkpoint: the raw checkpoint's summary.
    """

    page_keys: list[str]
    manifest_key: str
    tweets: int
    checkpoint: CheckpointPayload


class TransformPayload(PerSourcePayload):
    """What task ``transform`` returns: the staged candidate and the transform report.

    Attributes:
        staging_key: the candidate CSV in ``staging/``.
        quarantine_key: the rejected rows in ``quarantine/``.
        sha256: the candidate's digest (publish refuses other bytes).
        size: the candidate's length in bytes.
        quarantine_size: the rejected rows' length in bytes.
        report: the transform report.
    """

    staging_key: str
    quarantine_key: str
    sha256: str
    size: int
    quarantine_size: int
    report: TransformReportPayload


class ValidateCuratedPayload(PerSourcePayload):
    """What task ``validate_curated`` returns: the audited candidate.

    Attributes:
        staging_key: the audited candidate.
        quarantine_key: the rejected rows.
        sha256: the audited candidate's digest.
        report: the transform report.
        checkpoint: the curated checkpoint's summary.
    """

    staging_key: str
    quarantine_key: str
    sha256: str
    report: TransformReportPayload
    checkpoint: CheckpointPayload


class PublishPayload(PerSourcePayload):
    """What task ``publish`` returns.

    Attributes:
        curated_key: the published CSV.
        sha256: its digest.
        size: its length in bytes.
        replaced: the partition held a previous version.
        unchanged: that previous version had the same bytes.
        staging_key: the candidate it was copied from.
        quarantine_key: the rejected rows.
        report: the transform report.
    """

    curated_key: str
    sha256: str
    size: int
    replaced: bool
    unchanged: bool
    staging_key: str
    quarantine_key: str
    report: TransformReportPayload


class BuildDocsPayload(TypedDict):
    """What task ``build_docs`` returns.

    Attributes:
        store: the store's URL.
        index_key: the Data Docs site's index page.
        files: how many files were published.
    """

    store: str
    index_key: str
    files: int


class RetentionDeletion(TypedDict):
    """One dataset retention deleted (``etl.steps.retain.Deletion``).

    Attributes:
        area: ``raw``, ``staging``, ``docs_pages`` or ``docs_results``.
        name: the raw window prefix, or the staging / docs key.
        objects: objects deleted.
        reason: ``expired``, ``published`` or ``unpublished``.
    """

    area: str
    name: str
    objects: int
    reason: str


class RetentionPayload(TypedDict):
    """What task ``apply_retention`` returns (``etl.steps.retain.RetentionReport.to_dict()``).

    Attributes:
        store: the store's URL.
        namespace: the store's lineage namespace.
        now: the time ages were measured against, ISO 8601.
        dry_run: nothing was deleted.
        objects: objects deleted.
        bytes: bytes deleted.
        by_area: objects deleted per area.
        datasets: datasets deleted.
        deleted: the first datasets deleted (at most 200).
        protected: the first expired raw windows kept because a curated partition derives
            from them.
        protected_count: how many such windows.
        scanned: objects listed.
    """

    store: str
    namespace: str
    now: str
    dry_run: bool
    objects: int
    bytes: int
    by_area: dict[str, int]
    datasets: int
    deleted: list[RetentionDeletion]
    protected: list[str]
    protected_count: int
    scanned: int


def contract_label(name: str, version: str) -> str:
    """A transform report's ``contract``: the name and version, e.g. ``tweets_curated 1.2.0``."""
    return f"{name} {version}"


def split_contract_label(label: str) -> tuple[str, str]:
    """The name and version of a :func:`contract_label` (names hold no space, versions neither)."""
    name, _, version = label.rpartition(" ")
    return name, version


def partition_label(slug: str, start: str, end: str) -> str:
    """How a summary names one source's interval, e.g. ``source=account-nasa interval a..b``."""
    return f"source={slug} interval {start}..{end}"


def nothing_curated(counts: Mapping[str, Any], where: str = "") -> str | None:
    """The line a summary shows when a run curated no post, saying why; None when it curated any.

    An empty CSV is a legitimate outcome (a quiet account, a window without posts) but must never
    pass unremarked: a run on a date the API has nothing for otherwise "succeeds" silently.

    Args:
        counts: a :class:`TransformReportPayload` (``TransformReport.to_dict()``).
        where: what the run covered, e.g. a :func:`partition_label`.

    Returns:
        E.g. ``0 posts curated for source=… interval …: the API returned none``.
    """
    if int(counts.get("curated", 0) or 0) > 0:
        return None
    tweets = int(counts.get("tweets_in", 0) or 0)
    pages = int(counts.get("pages", 0) or 0)
    if tweets == 0:
        why = "the API returned none" if pages else "no response pages were read"
    else:
        why = (
            f"all {tweets} posts read were quarantined ({counts.get('quarantined', 0)}) "
            f"or duplicates ({counts.get('duplicates', 0)})"
        )
    return f"0 posts curated{' for ' + where if where else ''}: {why}"
