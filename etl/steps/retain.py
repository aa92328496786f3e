"""Retention: delete what the store may forget, under :class:`etl.config.RetentionPolicy`.

What may go, and when:

* ``raw/`` windows (pages, manifest and rejected bodies together) whose interval ended, or which
  were opened (incremental), more than ``raw_days`` ago. Default: kept forever.
* ``staging/`` candidates: once ``curated/`` holds the same bytes (published), or, never
  published (rejected by the audit, or the run stopped), ``staging_days`` after they were written.

Nothing in ``raw/`` or ``staging/`` written less than ``grace_hours`` ago is deleted, whatever its
interval says: a run (a backfill of an old interval, say) may be working on it right now.
* Data Docs validation pages older than ``docs_pages_days``; their results (the evidence the
  pages are built from, kept at least as long) after ``docs_results_days``. Before any goes, the
  caller's ``docs_index`` hook (the docs step's ``mark_expired``, wired by the adapters: a step
  imports no other step) is handed a :class:`etl.storage.keys.DocsExpiry` naming the months
  concerned, and rewrites their index so no row links a page (or result) about to be deleted.
  A run that expires no page and no result calls no hook.

What never goes: ``curated/``, ``quarantine/``, ``state/``, the docs index, and anything a curated
partition derives from while that partition exists. A partition's lineage names the raw window of
its source and interval (the transform's input; :func:`etl.lineage.datasets.raw_prefix`), so a
raw window with a published partition of the same source and interval is kept whatever its age,
as is the incremental window a source has open (``state/windows/``). The staging candidate a
partition was published from is deleted only when ``curated/`` holds it byte for byte.

Listing is streamed (S3 ``ListObjectsV2`` pages of 1,000 keys, a local directory one folder at a
time) and deletions go out in batches of :data:`etl.storage.store.DELETE_BATCH`, so the step's
memory does not grow with the store. Ages come from the keys (interval, GX run time) where the
keys carry them, so a rewrite of an object does not make it young again; only staging candidates
are aged by their write time.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from etl.storage.keys import (
    CURATED_PREFIX,
    DOCS_PREFIX,
    RAW_PREFIX,
    RESULTS_DIR,
    STAGING_PREFIX,
    VALIDATIONS_DIR,
    DocsExpiry,
    docs_month,
    docs_validation_time,
    is_incremental_label,
    open_window_key,
    partition_for,
    window_bounds,
    window_of,
    window_time,
)
from etl.storage.store import DELETE_BATCH, read_json

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from etl.config import RetentionPolicy
    from etl.payloads import RetentionPayload
    from etl.storage.store import Store, StoredObject

Area = Literal["raw", "staging", "docs_pages", "docs_results"]
"""The parts of the store retention looks after."""

AREAS: tuple[Area, ...] = ("raw", "staging", "docs_pages", "docs_results")

DocsIndex = Callable[[DocsExpiry], Sequence[str]]
"""Rewrites the Data Docs index for what retention is about to delete; returns the keys written."""


@dataclass(frozen=True)
class Deletion:
    """One dataset retention deleted (or, in a dry run, would delete).

    Attributes:
        area: which rule.
        name: the dataset: a raw window prefix, a staging key, a docs page or result key.
        objects: objects deleted.
        size: bytes deleted.
        reason: why, as data (``expired``, ``published``, ``unpublished``).
    """

    area: Area
    name: str
    objects: int
    size: int
    reason: str


@dataclass
class RetentionReport:
    """What one retention run did.

    Attributes:
        now: the time ages were measured against.
        dry_run: nothing was deleted; the report says what would have been.
        deletions: the datasets deleted, in the order they were found.
        protected: raw windows past their age kept because a curated partition derives from
            them (or their source's incremental window is open).
        unreadable: objects of no shape retention knows (never deleted).
        scanned: objects listed.
        index_written: the Data Docs index files rewritten so no row links a deleted page.
    """

    now: datetime
    dry_run: bool = False
    deletions: list[Deletion] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)
    unreadable: int = 0
    scanned: int = 0
    index_written: list[str] = field(default_factory=list)

    @property
    def objects(self) -> int:
        """Objects deleted."""
        return sum(d.objects for d in self.deletions)

    @property
    def size(self) -> int:
        """Bytes deleted."""
        return sum(d.size for d in self.deletions)

    def by_area(self) -> dict[str, int]:
        """Objects deleted per area (every area named, zero included)."""
        counts: dict[str, int] = dict.fromkeys(AREAS, 0)
        for d in self.deletions:
            counts[d.area] += d.objects
        return counts

    def summary(self) -> str:
        """One line for logs and the command line."""
        verb = "would delete" if self.dry_run else "deleted"
        areas = ", ".join(f"{a} {n}" for a, n in self.by_area().items())
        index = (
            f"; rewrote {len(self.index_written)} Data Docs index files"
            if self.index_written
            else ""
        )
        return (
            f"retention {verb} {self.objects} objects ({self.size} bytes; {areas}) in "
            f"{len(self.deletions)} datasets; kept {len(self.protected)} expired raw windows "
            f"a curated partition derives from; {self.scanned} objects listed{index}"
        )

    def to_payload(self, store: Store, limit: int = 200) -> RetentionPayload:
        """The report as the task hands it on, listing at most ``limit`` datasets (XCom stays
        small; the counts are complete).

        Args:
            store: the store retention ran on.
            limit: the most deletions and protected windows named.

        Returns:
            Counts, and the first deletions and protected windows.
        """
        return {
            "store": store.url,
            "namespace": store.namespace,
            "now": self.now.isoformat(),
            "dry_run": self.dry_run,
            "objects": self.objects,
            "bytes": self.size,
            "by_area": self.by_area(),
            "datasets": len(self.deletions),
            "deleted": [
                {"area": d.area, "name": d.name, "objects": d.objects, "reason": d.reason}
                for d in self.deletions[:limit]
            ],
            "protected": self.protected[:limit],
            "protected_count": len(self.protected),
            "scanned": self.scanned,
        }


class _Deleter:
    """Collects keys and deletes them in batches; in a dry run only counts."""

    def __init__(self, store: Store, report: RetentionReport) -> None:
        self.store = store
        self.report = report
        self.pending: list[str] = []

    def delete(self, deletion: Deletion, keys: Iterable[str]) -> None:
        self.report.deletions.append(deletion)
        if self.report.dry_run:
            return
        self.pending.extend(keys)
        if len(self.pending) >= DELETE_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.store.delete_many(self.pending)  # in requests of DELETE_BATCH keys at most
            self.pending = []


def apply_retention(
    store: Store,
    policy: RetentionPolicy,
    *,
    docs_index: DocsIndex | None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> RetentionReport:
    """Delete what ``policy`` lets go, never what a curated partition derives from.

    Args:
        store: the object store.
        policy: how long each area is kept.
        docs_index: called before any Data Docs page or result is deleted, with the months and
            cutoffs concerned, to rewrite the site's index (the adapters pass
            :func:`etl.steps.quality.docs_site.mark_expired`); None only for a store without a
            Data Docs site (rows of its index would link deleted pages). Required, so no caller
            forgets it.
        now: the time ages are measured against (default: the current time).
        dry_run: only report what would be deleted.

    Returns:
        What was (or would be) deleted and what was kept on purpose.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    report = RetentionReport(now=moment, dry_run=dry_run)
    deleter = _Deleter(store, report)
    grace = timedelta(hours=policy.grace_hours)
    if policy.raw_days is not None:
        cutoff = moment - timedelta(days=policy.raw_days)
        _expire_raw(store, cutoff, moment - grace, report, deleter)
    unpublished = None if policy.staging_days is None else timedelta(days=policy.staging_days)
    _expire_staging(store, moment, grace, unpublished, report, deleter)
    _expire_all_docs(store, policy, moment, report, deleter, docs_index)
    deleter.flush()
    return report


# --- raw/ -----------------------------------------------------------------------------------------
def _windows(
    objects: Iterator[StoredObject], report: RetentionReport
) -> Iterator[tuple[tuple[str, str, str] | None, list[StoredObject]]]:
    """The listing grouped by raw window, one window in memory at a time."""

    def counted(obj: StoredObject) -> tuple[str, str, str] | None:
        report.scanned += 1
        return window_of(obj.key)

    for window, group in itertools.groupby(objects, key=counted):
        yield window, list(group)


def _expire_raw(
    store: Store,
    cutoff: datetime,
    written_before: datetime,
    report: RetentionReport,
    deleter: _Deleter,
) -> None:
    open_labels: dict[str, str | None] = {}
    for window, objects in _windows(store.scan(f"{RAW_PREFIX}/"), report):
        if window is None:
            report.unreadable += len(objects)
            continue
        prefix, slug, label = window
        ended = window_time(label)
        if ended is None:
            report.unreadable += len(objects)
            continue
        if ended >= cutoff or max(o.modified for o in objects) > written_before:
            continue
        if _derived_from(store, slug, label) or label == _open_label(store, slug, open_labels):
            report.protected.append(prefix)
            continue
        size = sum(o.size for o in objects)
        deleter.delete(
            Deletion("raw", prefix, len(objects), size, "expired"), (o.key for o in objects)
        )


def _derived_from(store: Store, slug: str, label: str) -> bool:
    """Whether a curated partition of this source and interval exists (it derives from here)."""
    bounds = window_bounds(label)
    if bounds is None:
        return False
    try:
        partition = partition_for(slug, *bounds)
    except ValueError:
        return False
    return store.exists(partition.curated_key)


def _open_label(store: Store, slug: str, cache: dict[str, str | None]) -> str | None:
    """The incremental window ``state/windows/<slug>.json`` says is open, if any."""
    if slug not in cache:
        label = None
        try:
            doc = read_json(store, open_window_key(slug))
        except ValueError:
            doc = None  # unreadable: it names no window
        if doc is not None:
            found, since = doc.get("label"), doc.get("since_id")
            # Compared with labels only; never used to build a key.
            if isinstance(since, str | None) and is_incremental_label(found, since):
                label = found
        cache[slug] = label
    return cache[slug]


# --- staging/ -------------------------------------------------------------------------------------
def _expire_staging(
    store: Store,
    now: datetime,
    grace: timedelta,
    unpublished: timedelta | None,
    report: RetentionReport,
    deleter: _Deleter,
) -> None:
    for obj in store.scan(f"{STAGING_PREFIX}/"):
        report.scanned += 1
        age = now - obj.modified
        if age < grace:
            continue  # a run may be auditing it right now
        curated = f"{CURATED_PREFIX}/{obj.key[len(STAGING_PREFIX) + 1 :]}"
        if store.exists(curated) and store.get(curated) == store.get(obj.key):
            reason = "published"
        elif unpublished is not None and age >= unpublished:
            reason = "unpublished"
        else:
            continue
        deleter.delete(Deletion("staging", obj.key, 1, obj.size, reason), (obj.key,))


# --- docs/ ----------------------------------------------------------------------------------------
def _expire_all_docs(
    store: Store,
    policy: RetentionPolicy,
    moment: datetime,
    report: RetentionReport,
    deleter: _Deleter,
    docs_index: DocsIndex | None,
) -> None:
    """Pages, then results: the index is told first, then they are deleted."""
    pages_before = policy.pages_before(moment)
    results_before: datetime | None = None
    found: list[Deletion] = []
    months: set[str] = set()
    if pages_before is not None:
        _expire_docs(store, VALIDATIONS_DIR, pages_before, report, found, months)
    if policy.docs_results_days is not None:
        results_before = moment - timedelta(days=policy.docs_results_days)
        _expire_docs(store, RESULTS_DIR, results_before, report, found, months)
    if found and not report.dry_run and docs_index is not None:
        # Before the deletions: a row says "expired" a moment early, never links a missing page.
        # Should it fail, the run stops here: no page goes that a row still links.
        expiry = DocsExpiry(frozenset(months), pages_before, results_before)
        report.index_written += docs_index(expiry)
    # The report holds one Deletion per key anyway: keeping them until the index is rewritten
    # costs no more memory than the report does.
    for deletion in found:
        deleter.delete(deletion, (deletion.name,))


def _expire_docs(
    store: Store,
    folder: str,
    cutoff: datetime,
    report: RetentionReport,
    found: list[Deletion],
    months: set[str],
) -> None:
    area: Area = "docs_pages" if folder == VALIDATIONS_DIR else "docs_results"
    for obj in store.scan(f"{DOCS_PREFIX}{folder}/"):
        report.scanned += 1
        ran = docs_validation_time(obj.key, folder)
        if ran is None:
            report.unreadable += 1
            continue
        if ran < cutoff:
            found.append(Deletion(area, obj.key, 1, obj.size, "expired"))
            months.add(docs_month(ran))
