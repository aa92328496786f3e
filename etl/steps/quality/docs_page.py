"""What a validation page adds to GX's: the data asset by name, and each check's contract rule.

GX's page says "Data asset: None" (a dataframe batch has no name) and shows a breached threshold as
``observed 1``. :func:`explain_page` names the asset (source and data interval, linking to the
curated partition and its quarantine) and inserts a "What was checked" table above GX's details:
every check, failed first, with the contract rule it comes from (a link to the rule on the contract
page, ``contracts/<contract>.html#rule-<name>`` or ``#column-<name>``; hand-written checks link to
the suite page) and what it found in the rule's terms (:func:`etl.steps.quality.explain.explain_check`).

Links to store objects are relative paths from the page to the store's root (the site lives under
``docs/`` of the store): they open from a local store's directory, and from S3 when the bucket (or
its prefix) is served or synced as a whole. The text beside each link is the object's full
address (``s3://bucket/prefix/curated/…`` or the local path), to copy into ``aws s3 cp``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from etl.contracts.model import CONTRACTS_DIR, ContractSpec, load_contract
from etl.contracts.tree import iter_properties, schema_objects
from etl.errors import ContractError
from etl.steps.quality.explain import entry_from_result, explain_check, rule_names
from etl.storage.keys import partition_for

if TYPE_CHECKING:
    from etl.storage.store import Store

META_KEY = "tweetpipe"
"""The key of the gates' own record in a GX result's ``meta``: source, interval, parameters."""
_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
_INTERVAL = re.compile(r"([0-9]{8}T[0-9]{6}Z)_([0-9]{8}T[0-9]{6}Z)")
_RUN_SOURCE = re.compile(r".*__(?:source=)?([a-z0-9][a-z0-9._-]{0,99})")
_CONTRACT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_DATA_ASSET_NONE = "Data asset: None"
_SECTION_ID = "tweetpipe-checks"


@dataclass(frozen=True)
class DataAsset:
    """The data a validation checked.

    Attributes:
        source: the source's slug, or None when the result does not say.
        interval: the data interval as in keys (``<start>_<end>``), or None.
        curated_key: the curated partition's key, when source and interval are known.
        quarantine_key: the partition's quarantine key, likewise.
    """

    source: str | None
    interval: str | None
    curated_key: str | None = None
    quarantine_key: str | None = None


@dataclass
class PageContext:
    """What every page of one build shares: the store's address and the parsed contracts.

    Attributes:
        store_url: the store's URL (``s3://bucket/prefix`` or a directory).
        prefix: the site's key prefix (``docs/``).
        contracts: contracts read so far, by name.
    """

    store_url: str
    prefix: str = "docs/"
    contracts: dict[str, ContractSpec | None] = field(default_factory=dict)

    @classmethod
    def for_store(cls, store: Store, prefix: str = "docs/") -> PageContext:
        """The context for pages published into ``store`` under ``prefix``."""
        return cls(store_url=str(store.url), prefix=prefix)

    def contract(self, name: str) -> ContractSpec | None:
        """The contract called ``name`` (``contracts/<name>.odcs.yaml``), or None."""
        if name not in self.contracts:
            spec = None
            if _CONTRACT_NAME.fullmatch(name):
                path = CONTRACTS_DIR / f"{name}.odcs.yaml"
                try:
                    spec = load_contract(path) if path.is_file() else None
                except (ContractError, OSError, ValueError):
                    spec = None
            self.contracts[name] = spec
        return self.contracts[name]

    def address(self, key: str) -> str:
        """The full address of a store object, for people (``s3://bucket/prefix/key``)."""
        base = self.store_url.rstrip("/")
        return f"{base}/{key}"

    def asset_of(self, doc: dict[str, Any], result_path: str) -> DataAsset:
        """The data asset of a validation result: from the gate's record, else the run name.

        Args:
            doc: the GX validation result.
            result_path: its site path (unused but for the run folder when the meta is bare).

        Returns:
            The asset; source and interval are None where the result does not tell them.
        """
        meta: dict[str, Any] = doc["meta"] if isinstance(doc.get("meta"), dict) else {}
        own: dict[str, Any] = meta[META_KEY] if isinstance(meta.get(META_KEY), dict) else {}
        source = own.get("source") if isinstance(own.get("source"), str) else None
        interval = own.get("interval") if isinstance(own.get("interval"), str) else None
        if source is None:
            run = ((meta.get("run_id") or {}).get("run_name")) or result_path.split("/")[2:3]
            found = _RUN_SOURCE.fullmatch(str(run)) if isinstance(run, str) else None
            source = found.group(1) if found else None
        if source is not None and not _SLUG.fullmatch(source):
            source = None
        parsed = _INTERVAL.fullmatch(interval) if interval else None
        if source is None or parsed is None:
            return DataAsset(source, interval if parsed else None)
        stamps = [
            datetime.strptime(s, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) for s in parsed.groups()
        ]
        try:
            partition = partition_for(source, stamps[0], stamps[1])
        except ValueError:
            return DataAsset(source, None)
        return DataAsset(source, interval, partition.curated_key, partition.quarantine_key)


def _e(value: Any) -> str:
    return html.escape(str(value))


def _store_link(ctx: PageContext, key: str, to_root: str) -> str:
    # From the page up to the site's root, then up out of the site's prefix to the store's root.
    up = (
        to_root
        + "../" * ctx.prefix.strip("/").count("/")
        + ("../" if ctx.prefix.strip("/") else "")
    )
    return f'<a href="{_e(up + key)}"><code>{_e(ctx.address(key))}</code></a>'


def _asset_html(asset: DataAsset, ctx: PageContext, to_root: str) -> str:
    name = f"source {asset.source or 'unknown'}, interval {asset.interval or 'unknown'}"
    parts = [f"<strong>{_e(name)}</strong>"]
    if asset.curated_key and asset.quarantine_key:
        parts.append(f"curated partition {_store_link(ctx, asset.curated_key, to_root)}")
        parts.append(f"quarantine {_store_link(ctx, asset.quarantine_key, to_root)}")
    return "; ".join(parts)


def contract_anchors(spec: ContractSpec) -> set[str]:
    """The anchors of a contract's page (``tweetpipe contracts docs``) a check can link to.

    Args:
        spec: the contract.

    Returns:
        ``column-<name>`` for every column (nested ones by dotted name) and ``rule-<name>`` for
        every quality rule, of the dataset or of a column.
    """
    anchors = set()
    for ref in iter_properties(spec.raw):
        if not ref.is_item:
            anchors.add(f"column-{ref.name}")
            rules = ref.prop.get("quality") or []
            anchors |= {f"rule-{r.get('name')}" for r in rules if isinstance(r, dict)}
    for _, obj in schema_objects(spec.raw):
        rules = obj.get("quality") or []
        anchors |= {f"rule-{r.get('name')}" for r in rules if isinstance(r, dict)}
    return anchors


def rule_anchor(name: str, anchors: set[str]) -> str | None:
    """Where on the contract page a check's rule is: the rule, else its column, else None.

    Args:
        name: the rule as an expectation's meta names it (``quarantined_share``,
            ``tweet_id.pattern``, ``data[].id``).
        anchors: :func:`contract_anchors` of the contract.

    Returns:
        The anchor (without ``#``), or None when the page has none for it (the page's top then).
    """
    column = name.rpartition(".")[0]
    for anchor in (f"rule-{name}", f"column-{name}", f"column-{column}" if column else ""):
        if anchor in anchors:
            return anchor
    return None


def _rule_link(
    entry: dict[str, Any],
    config_meta: dict[str, Any],
    suite: str,
    to_root: str,
    spec: ContractSpec | None,
) -> str:
    contract = config_meta.get("contract")
    if (
        entry.get("source") == "contract"
        and isinstance(contract, str)
        and _CONTRACT_NAME.fullmatch(contract)
    ):
        anchors = contract_anchors(spec) if spec is not None else set()
        links = []
        for name in rule_names(entry):
            anchor = rule_anchor(name, anchors)
            target = f"{to_root}contracts/{contract}.html" + (f"#{anchor}" if anchor else "")
            links.append(f'<a href="{_e(target)}">{_e(name)}</a>')
        return f"contract {_e(contract)}: " + ", ".join(links) if links else _e(contract)
    label = entry.get("rule") or "hand-written"
    return f'<a href="{_e(to_root)}expectations/{_e(suite)}.html">{_e(label)}</a> (hand-written, suite {_e(suite)})'


def _checks_table(doc: dict[str, Any], asset_html: str, ctx: PageContext, to_root: str) -> str:
    own = (doc.get("meta") or {}).get(META_KEY) or {}
    parameters = own.get("parameters") if isinstance(own.get("parameters"), dict) else {}
    suite = str(doc.get("suite_name") or "")
    rows = []
    items = [r for r in doc.get("results") or [] if isinstance(r, dict)]
    # Failed first, then in the suite's order.
    for item in sorted(items, key=lambda r: r.get("success") is True):
        entry = entry_from_result(item)
        meta = (item.get("expectation_config") or {}).get("meta") or {}
        contract = ctx.contract(str(meta.get("contract"))) if meta.get("contract") else None
        ok = entry["success"]
        status = "passed" if ok else ("warning" if entry["severity"] != "critical" else "failed")
        text = {"passed": "\u2713 passed", "failed": "\u2717 failed", "warning": "\u26a0 warning"}[
            status
        ]
        rows.append(
            f'<tr class="{status}"><td class="status">{text}</td>'
            f"<td><code>{_e(entry['expectation_type'])}</code>"
            f"{' on <code>' + _e(entry['column']) + '</code>' if entry.get('column') else ''}</td>"
            f"<td>{_rule_link(entry, meta, suite, to_root, contract)}</td>"
            f"<td>{_e(explain_check(entry, parameters, contract))}</td></tr>"
        )
    failed = sum(1 for r in items if r.get("success") is not True)
    return (
        f'<section id="{_SECTION_ID}" class="card m-3 p-3">\n'
        f"<style>#{_SECTION_ID} tr.failed td {{ background: #fde7e9; }}"
        f" #{_SECTION_ID} tr.warning td {{ background: #fff6d6; }}"
        f" #{_SECTION_ID} td, #{_SECTION_ID} th {{ padding: .2rem .5rem; vertical-align: top; }}</style>\n"
        f"<h3>What was checked</h3>\n<p>Data asset: {asset_html}</p>\n"
        f"<p>{failed} of {len(items)} checks failed. Each row links to the contract rule the check "
        f"was derived from.</p>\n"
        f'<table class="table table-sm"><thead><tr><th>Status</th><th>Check</th><th>Rule</th>'
        f"<th>Found</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>\n</section>\n"
    )


_MAIN_COLUMN = re.compile(r'<div class="col-md-10 col-lg-10 col-xs-12[^"]*">', re.I)


def explain_page(page: str, doc: dict[str, Any], site_path: str, ctx: PageContext) -> str:
    """Name the data asset on a GX validation page and add the checks with their contract rules.

    Args:
        page: the page GX rendered.
        doc: the GX validation result it was rendered from.
        site_path: the page's path in the site (``validations/…``).
        ctx: the build's context.

    Returns:
        The page, with "Data asset: None" replaced and the "What was checked" section inserted at
        the top of the main column (at the top of the body if GX's layout is not found).
    """
    to_root = "../" * site_path.count("/")
    asset = ctx.asset_of(doc, site_path)
    asset_html = _asset_html(asset, ctx, to_root)
    page = page.replace(_DATA_ASSET_NONE, f"Data asset: {asset_html}")
    section = _checks_table(doc, asset_html, ctx, to_root)
    anchor = _MAIN_COLUMN.search(page)
    if anchor is None:
        anchor = re.search(r"<body\b[^>]*>", page, re.I)
    at = anchor.end() if anchor else 0
    return page[:at] + section + page[at:]
