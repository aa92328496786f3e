"""Build and publish the Data Docs site incrementally: a run costs the same on day 365 as on day 1.

:func:`build_docs` compares the validation results in the store
(``docs/results/<suite>/<run>/<time>/<batch>.json``, the evidence, written by the gates) with the
pages already published (``docs/validations/…``, listed, never downloaded), downloads only the
results without a page, renders each with GX's own renderer one at a time, adds them to the
month-split index (:mod:`etl.steps.quality.docs_index`), and uploads only what it wrote: the new
pages, the run's index fragment, the touched part of its month, ``index/months.json`` and
``index.html``. The site's shared files (the page assets of
:mod:`etl.steps.quality.docs_assets`, GX's static files, the suites' pages, the contract pages the
caller passes) are uploaded only when their digest differs from what ``index/site.json`` records
as published; only then is an asset read again or a suite page rendered. ``full=True`` renders
every result again and rebuilds the index from them (after a change of the page layout, or to
repair a site).

Retention deletes old pages (``retention.docs_pages_days``) and, later, their results: before it
does, :func:`mark_expired` records that in the expired months' ``expired.json`` and renders those
months again, so their rows stay (status and counts are still true) but say the page expired and
link the result JSON while it is kept. A build renders a month with the marker its listing of
the month shows: no request more when there is none.

Pages explain themselves (:mod:`etl.steps.quality.docs_page`): the data asset is named by source
and interval with links to the curated partition and its quarantine, and every check links to the
contract rule it was derived from, saying what it found in the rule's own terms.
"""

from __future__ import annotations

import functools
import hashlib
import json
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from etl.contracts.suites import CRITICAL, EXPECTATIONS_DIR, import_gx, suite_kwargs
from etl.steps.quality.docs import suite_files
from etl.steps.quality.docs_assets import (
    LOCK_FILE,
    AssetLock,
    load_lock,
    require_assets,
    rewrite_links,
)
from etl.steps.quality.docs_index import (
    INDEX_DIR,
    MONTHS_FILE,
    Expired,
    IndexState,
    expired_path,
    fragment_path,
    fragments_dir,
    is_entry,
    month_dir,
    month_of,
    render_months,
)
from etl.steps.quality.docs_page import PageContext, explain_page
from etl.storage.keys import (
    DOCS_PREFIX,
    RESULTS_DIR,
    VALIDATIONS_DIR,
    docs_results_prefix,
    docs_validation_time,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from pathlib import Path

    from etl.storage.keys import DocsExpiry
    from etl.storage.store import Store

SITE_FILE = f"{INDEX_DIR}/site.json"
"""The published shared files and their SHA-256, so a build uploads only those that changed."""
_FRAGMENT = re.compile(rf"{INDEX_DIR}/([0-9]{{4}}-[0-9]{{2}})/runs/[^/]+\.json")
# What reading or rendering a result that is not a GX validation result raises; GX's schema
# raises marshmallow's errors, added where the renderer is imported.
_UNREADABLE: tuple[type[Exception], ...] = (ValueError, LookupError, TypeError, AttributeError)
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}


@dataclass
class DocsBuild:
    """What one docs build did.

    Attributes:
        index_key: the site's ``index.html`` key.
        rendered: validation pages rendered (the results that had none, or all with ``full``).
        results: validation results found in the store.
        written: the keys uploaded, in upload order.
        bytes_written: their total size.
        unreadable: results that could not be rendered, with the reason (key -> reason); they
            stay without a page, so the next build tries them again.
    """

    index_key: str
    rendered: int = 0
    results: int = 0
    written: list[str] = field(default_factory=list)
    bytes_written: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)


def page_for(result_path: str) -> str:
    """The validation page of a result (``results/a/b/c/d.json`` -> ``validations/a/b/c/d.html``)."""
    return VALIDATIONS_DIR + result_path.removeprefix(RESULTS_DIR).removesuffix(".json") + ".html"


def _to_root(site_path: str) -> str:
    return "../" * site_path.count("/")


class _Publisher:
    """Writes files into the local build directory and uploads them, counting bytes."""

    def __init__(self, store: Store, site_dir: Path, prefix: str, build: DocsBuild) -> None:
        self.store, self.site_dir, self.prefix, self.build = store, site_dir, prefix, build

    def write(self, site_path: str, data: bytes) -> None:
        target = self.site_dir / site_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def upload(self, site_path: str) -> None:
        path = self.site_dir / site_path
        ctype = _CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
        key = self.prefix + site_path
        self.store.put_file(key, path, content_type=ctype or "application/octet-stream")
        self.build.written.append(key)
        self.build.bytes_written += path.stat().st_size


def _read_text(store: Store, key: str) -> str | None:
    if not store.exists(key):
        return None
    return store.get(key).decode("utf-8")


@functools.cache
def _views() -> tuple[Any, Any, Any]:
    # One renderer and one Jinja view for every page of a process: a new view compiles every
    # template again, which costs more than rendering a page.
    from great_expectations.render.renderer.page_renderer import (
        ExpectationSuitePageRenderer,
        ValidationResultsPageRenderer,
    )
    from great_expectations.render.view.view import DefaultJinjaPageView

    return ValidationResultsPageRenderer(), ExpectationSuitePageRenderer(), DefaultJinjaPageView()


def _render_validation(
    doc: dict[str, Any], site_path: str, lock: AssetLock, ctx: PageContext
) -> str:
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResultSchema,
    )

    renderer, _, view = _views()
    result = ExpectationSuiteValidationResultSchema().load(doc)
    content = renderer.render(result)
    page = view.render(content, data_context_id=None, show_how_to_buttons=False)
    page = rewrite_links(str(page), _to_root(site_path), lock)
    return explain_page(page, doc, site_path, ctx)


def index_entry(doc: dict[str, Any], result_path: str, ctx: PageContext) -> dict[str, Any]:
    """The index's record of one validation result.

    Args:
        doc: the GX validation result (parsed JSON).
        result_path: its site path (``results/<suite>/<run>/<time>/<batch>.json``).
        ctx: the page context (for the source and interval).

    Returns:
        ``result``, ``page``, ``suite``, ``source``, ``interval``, ``run``, ``time`` (ISO, UTC),
        ``status``, ``evaluated``, ``unsuccessful``.

    Raises:
        ValueError: the document is not a GX validation result (the message names the file).
    """
    try:
        run_id = doc["meta"]["run_id"]
        moment = datetime.fromisoformat(run_id["run_time"])
        # GX writes aware times; a naive one can only be UTC (GX takes run times from utcnow).
        when = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        stats = doc.get("statistics") or {}
        failed = [r for r in doc.get("results") or [] if r.get("success") is not True]
        critical = sum(
            (r.get("expectation_config") or {}).get("severity", CRITICAL) == CRITICAL
            for r in failed
        )
        success = doc["success"] is True
    except (ValueError, LookupError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"validation result {result_path}: not a GX validation result ({exc})"
        ) from exc
    asset = ctx.asset_of(doc, result_path)
    status = "passed" if success else ("warning" if failed and not critical else "failed")
    return {
        "result": result_path,
        "page": page_for(result_path),
        "suite": str(doc.get("suite_name") or result_path.split("/")[1]),
        "source": asset.source,
        "interval": asset.interval,
        "run": str(run_id.get("run_name") or ""),
        "time": when.isoformat(),
        "status": status,
        "evaluated": int(stats.get("evaluated_expectations") or 0),
        "unsuccessful": int(stats.get("unsuccessful_expectations") or len(failed)),
    }


def _shared_files(
    publisher: _Publisher,
    lock: AssetLock,
    assets: Path,
    expectations_dir: Path,
    extra_files: Mapping[str, Path],
    published: Mapping[str, str],
) -> dict[str, str]:
    """Every shared file's site path and SHA-256; writes locally those whose digest differs from
    the ``published`` one (only those are read, or, for a suite page, rendered)."""
    gx = import_gx()
    digests: dict[str, str] = {}
    contents: dict[str, Callable[[], bytes]] = {}
    for asset in lock.assets:
        # require_assets has just checked each asset's bytes against its pin: the pin is their
        # digest, so an unchanged asset is not read again.
        digests[asset.site_path] = asset.sha256
        contents[asset.site_path] = (assets / asset.site_path).read_bytes
    static = _gx_static_dir()
    for path in sorted(p for p in static.rglob("*") if p.is_file() and not p.name.startswith(".")):
        site_path = "static/" + path.relative_to(static).as_posix()
        digests[site_path] = hashlib.sha256(path.read_bytes()).hexdigest()
        contents[site_path] = path.read_bytes
    lock_text = LOCK_FILE.read_bytes()
    for doc in suite_files(expectations_dir):
        site_path = f"expectations/{doc['name']}.html"
        # A suite page's rendering holds fresh ids every time: its digest is taken of what
        # decides it (the suite, the GX version and the lock), and it is rendered only when that
        # differs from the published one. Building the suite stamps GX's version into the file's
        # meta, which the published digests include: so the suite is built (cheap) first.
        suite = gx.ExpectationSuite(**suite_kwargs(doc))
        source = json.dumps([doc, gx.__version__], sort_keys=True).encode() + lock_text
        digests[site_path] = hashlib.sha256(source).hexdigest()
        contents[site_path] = functools.partial(_render_suite, suite, site_path, lock)
    for site_path, path in sorted(extra_files.items()):
        digests[site_path] = hashlib.sha256(path.read_bytes()).hexdigest()
        contents[site_path] = path.read_bytes
    for site_path, digest in digests.items():
        if published.get(site_path) != digest:
            publisher.write(site_path, contents[site_path]())
    return digests


def _render_suite(suite: Any, site_path: str, lock: AssetLock) -> bytes:
    _, suite_renderer, view = _views()
    content = suite_renderer.render(suite)
    page = view.render(content, data_context_id=None, show_how_to_buttons=False)
    return rewrite_links(str(page), _to_root(site_path), lock).encode("utf-8")


def _gx_static_dir() -> Path:
    from pathlib import Path

    import great_expectations.render.view as view

    return Path(view.__file__).resolve().parent / "static"


def build_docs(
    store: Store,
    work_dir: Path,
    *,
    prefix: str = DOCS_PREFIX,
    full: bool = False,
    expectations_dir: Path = EXPECTATIONS_DIR,
    extra_files: Mapping[str, Path] | None = None,
    assets: Path | None = None,
    runs: Sequence[str] | None = None,
    pages_since: datetime | None = None,
) -> DocsBuild:
    """Build what is missing or changed in the published Data Docs site, and publish it.

    Args:
        store: the object store (``<prefix>results/`` holds the validation results).
        work_dir: an empty local directory to work in.
        prefix: the site's key prefix (``docs/``).
        full: render every result again and rebuild the index from all of them.
        expectations_dir: the suites whose pages the site shows.
        extra_files: more site files (site path -> local file), e.g. the contract pages under
            ``contracts/``; uploaded when they changed.
        assets: the page assets directory (default:
            :func:`~etl.steps.quality.docs_assets.assets_dir`).
        runs: only look at results whose run name starts with one of these (the DAG passes its
            run's :func:`etl.steps.quality.run_prefix`), listing ``results/<suite>/<run>…`` for
            each suite instead of the whole history; None: every result in the store.
        pages_since: results of validations that ran before this get no page (the retention
            rule ``docs_pages_days`` expired their pages; the results stay as evidence); None:
            every result has a page.

    Returns:
        What the build did (pages rendered, keys and bytes written).

    Raises:
        DocsAssetsError: the page assets are missing (``tweetpipe docs assets fetch``).
        ValueError: a result file is not a GX validation result (named).
    """
    lock = load_lock()
    assets = require_assets(assets, lock)
    build = DocsBuild(index_key=f"{prefix}index.html")
    publisher = _Publisher(store, work_dir / "site", prefix, build)
    scopes = [""]
    if runs is not None and not full:
        suites = [doc["name"] for doc in suite_files(expectations_dir)]
        scopes = [f"{suite}/{run}" for suite in suites for run in runs]
    entries, rendered = _render_new(store, work_dir, prefix, full, lock, build, scopes, pages_since)

    published = {} if full else _published_digests(store, prefix)
    digests = _shared_files(publisher, lock, assets, expectations_dir, extra_files or {}, published)
    changed = sorted(p for p, d in digests.items() if published.get(p) != d)
    for site_path in changed:
        publisher.upload(site_path)

    index_files: list[str] = []
    if entries or full or not store.exists(build.index_key):
        index_files = _update_index(store, prefix, full, entries, publisher)
    # The fragments went first (in _update_index), then the pages, then what is derived from both:
    # a build stopped anywhere leaves results without a page, which the next build renders and
    # indexes again (an entry is kept once per result).
    for site_path in rendered:
        publisher.upload(site_path)
    for site_path in index_files:
        if site_path not in (MONTHS_FILE, "index.html"):
            publisher.upload(site_path)
    if changed:
        manifest = json.dumps({**published, **digests}, sort_keys=True, indent=0) + "\n"
        publisher.write(SITE_FILE, manifest.encode("utf-8"))
        publisher.upload(SITE_FILE)
    for site_path in (MONTHS_FILE, "index.html"):
        if site_path in index_files:
            publisher.upload(site_path)
    return build


def _render_new(
    store: Store,
    work_dir: Path,
    prefix: str,
    full: bool,
    lock: AssetLock,
    build: DocsBuild,
    scopes: Sequence[str],
    pages_since: datetime | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Render the results without a published page (all with ``full``), one at a time."""
    listed = (store.list(docs_results_prefix(prefix) + scope) for scope in scopes)
    results = sorted({k[len(prefix) :] for keys in listed for k in keys if k.endswith(".json")})
    if pages_since is not None:
        results = [r for r in results if _ran_since(prefix + r, prefix, pages_since)]
    build.results = len(results)
    pages: set[str] = set()
    if not full:
        # Listed, never downloaded: a page exists or it does not.
        for scope in scopes:
            found = store.list(f"{prefix}{VALIDATIONS_DIR}/{scope}")
            pages |= {k[len(prefix) :] for k in found}
    from marshmallow.exceptions import MarshmallowError

    unreadable: tuple[type[Exception], ...] = (*_UNREADABLE, MarshmallowError)
    ctx = PageContext.for_store(store, prefix)
    entries, rendered = [], []
    site_dir = work_dir / "site"
    for result_path in (r for r in results if page_for(r) not in pages):
        try:
            entry, html = _render_one(store, prefix, result_path, lock, ctx)
        except unreadable as exc:
            # One damaged or foreign file must not keep every later run's pages from being built.
            build.unreadable[prefix + result_path] = _reason(exc)
            continue
        entries.append(entry)
        page = page_for(result_path)
        target = site_dir / page
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
        rendered.append(page)
    build.rendered = len(rendered)
    return entries, rendered


def _ran_since(key: str, prefix: str, since: datetime) -> bool:
    """Whether the validation behind result ``key`` ran at or after ``since`` (unknown: yes)."""
    ran = docs_validation_time(key, RESULTS_DIR, prefix)
    return ran is None or ran >= since


def _render_one(
    store: Store, prefix: str, result_path: str, lock: AssetLock, ctx: PageContext
) -> tuple[dict[str, Any], str]:
    # One result at a time in memory, whatever the history. Not UTF-8 (UnicodeDecodeError) or
    # not JSON is a ValueError: the result counts as unreadable.
    doc = json.loads(store.get(prefix + result_path).decode("utf-8"))
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    entry = index_entry(doc, result_path, ctx)
    return entry, _render_validation(doc, page_for(result_path), lock, ctx)


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def _update_index(
    store: Store, prefix: str, full: bool, entries: list[dict[str, Any]], publisher: _Publisher
) -> list[str]:
    """Save the entries as fragments of their months, render those months; return what was
    rendered (the fragments are uploaded here, before anything derived from them)."""
    # A full build renders every month that has fragments, not only those of the results it
    # rendered: a month whose pages (or results) retention deleted has none of those.
    state, touched = (
        (IndexState(), _all_months(store, prefix)) if full else _load_state(store, prefix)
    )
    by_month: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_month.setdefault(month_of(entry), []).append(entry)
    for month, found in sorted(by_month.items()):
        site_path = fragment_path(month, found)
        text = json.dumps(found, sort_keys=True, indent=0) + "\n"
        publisher.write(site_path, text.encode("utf-8"))
        publisher.upload(site_path)
    touched |= set(by_month)
    if by_month:
        # The month before the newest one is refreshed too: a build racing another at the end
        # of a month may have rendered it without the other's fragment.
        newest = max(by_month)
        year, number = int(newest[:4]), int(newest[5:7])
        previous = f"{year - (number == 1):04d}-{(number - 2) % 12 + 1:02d}"
        if previous in state.months:
            touched.add(previous)
    months, expired = _read_months(store, prefix, touched)
    expired.update(_latest_markers(store, prefix, state, set(months)))
    written: list[str] = []

    def write(site_path: str, text: str) -> None:
        publisher.write(site_path, text.encode("utf-8"))
        written.append(site_path)

    render_months(state, months, write, expired)
    return written


def _load_state(store: Store, prefix: str) -> tuple[IndexState, set[str]]:
    """``months.json`` and no month to render again; damaged, an empty state and every month."""
    text = _read_text(store, prefix + MONTHS_FILE)
    try:
        return (IndexState.from_json(text) if text else IndexState()), set()
    except ValueError:
        # Derived data, so it is rendered again from every month's fragments.
        return IndexState(), _all_months(store, prefix)


def _read_months(
    store: Store, prefix: str, months: Iterable[str]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Expired]]:
    """Every entry of each month, and what retention deleted of it (months that lost nothing
    are not in the second mapping)."""
    entries: dict[str, list[dict[str, Any]]] = {}
    expired: dict[str, Expired] = {}
    for month in sorted(months):
        entries[month], marked = _month_entries(store, prefix, month)
        if marked:
            # Unreadable: every row loses its links rather than one pointing to a deleted page.
            gone = _read_expired(store, prefix, month)
            expired[month] = Expired.everything() if gone is None else gone
    return entries, expired


def _latest_markers(
    store: Store, prefix: str, state: IndexState, rendered: set[str]
) -> dict[str, Expired]:
    """What retention deleted of the months of index.html's latest runs not rendered now.

    Only a sparse site has any (daily runs' latest 20 fall in the two months a build renders):
    one HEAD each. Read rather than taken from ``months.json``, which a retention run racing
    this build may have rewritten after this build read it.
    """
    found: dict[str, Expired] = {}
    for month in sorted({month_of(e) for e in state.latest} & set(state.months) - rendered):
        gone = _marker(store, prefix, month)
        if gone is not None:
            found[month] = gone
    return found


def _marker(store: Store, prefix: str, month: str) -> Expired | None:
    """A month's ``expired.json``, not listed: None when there is none."""
    if not store.exists(prefix + expired_path(month)):
        return None
    gone = _read_expired(store, prefix, month)
    return Expired.everything() if gone is None else gone


def _read_expired(store: Store, prefix: str, month: str) -> Expired | None:
    """A month's ``expired.json`` (listed, so it exists); None when it cannot be read."""
    try:
        return Expired.from_dict(json.loads(store.get(prefix + expired_path(month))))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


def _month_entries(store: Store, prefix: str, month: str) -> tuple[list[dict[str, Any]], bool]:
    """The entries of a month's fragments, and whether its ``expired.json`` exists (one listing
    of the month's folder tells both)."""
    keys = store.list(prefix + month_dir(month))
    fragments = prefix + fragments_dir(month)
    entries: list[dict[str, Any]] = []
    for key in keys:
        if not (key.startswith(fragments) and key.endswith(".json")):
            continue
        try:
            found = json.loads(store.get(key).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue  # not ours or damaged: the results it listed are still in the store
        if isinstance(found, list):
            entries += [e for e in found if isinstance(e, dict) and is_entry(e)]
    return entries, prefix + expired_path(month) in keys


def mark_expired(store: Store, expiry: DocsExpiry, *, prefix: str = DOCS_PREFIX) -> list[str]:
    """Make the index say what retention is about to delete, before it does.

    For each month of ``expiry``: its ``index/<month>/expired.json`` takes the later of the times
    it held and those given (what was deleted stays deleted), and the month is rendered again from
    its fragments: its rows stay, those whose page goes say so and link the result JSON while it
    is kept (a part is uploaded only when one of its rows changed). ``index/months.json`` and
    ``index.html`` are rewritten (the latest runs may be among the expired). Costs one listing and
    the fragments of each expired month; nothing when ``expiry`` names no month.

    Args:
        store: the object store.
        expiry: the months retention deletes pages or results of, and its cutoffs.
        prefix: the site's key prefix.

    Returns:
        The keys written, in order.
    """
    written: list[str] = []
    if not expiry.months:
        return written

    def write(site_path: str, text: str) -> None:
        key = prefix + site_path
        ctype = _CONTENT_TYPES[site_path[site_path.rindex(".") :]]
        store.put(key, text.encode("utf-8"), ctype)
        written.append(key)

    state, touched = _load_state(store, prefix)
    given = Expired(expiry.pages_before, expiry.results_before)
    months, expired = _read_months(store, prefix, expiry.months | touched)
    for month in sorted(expiry.months):
        if not months[month] and month not in state.months:
            # Pages no index lists (a store without the month-split index): nothing to say.
            del months[month]
            continue
        # An unreadable marker is replaced by what this run deletes.
        before = expired.get(month)
        known = None if before == Expired.everything() else before
        expired[month] = given.merged(known)
        if expired[month] != known:
            write(expired_path(month), expired[month].to_json())
    if months:
        render_months(state, months, write, expired)
    return written


def _all_months(store: Store, prefix: str) -> set[str]:
    keys = store.list(f"{prefix}{INDEX_DIR}/")
    found = (_FRAGMENT.fullmatch(k[len(prefix) :]) for k in keys)
    return {m.group(1) for m in found if m}


def _published_digests(store: Store, prefix: str) -> dict[str, str]:
    text = _read_text(store, prefix + SITE_FILE)
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        return {}  # unreadable: everything is uploaded again, which repairs it
    return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}
