"""``tweetpipe contracts diff``: what a contract change means for consumers.

Every difference between two versions of a contract is listed and classified. The rules, in one
sentence each (README "Changing a contract" has the table):

- **The type is the consumer's code, so any change to it is breaking, in either direction.** The
  type is: ``logicalType``, ``physicalType``, ``format``/timezone options, nullability
  (``required``), the closed value set (``validValues``), the array item type, the column's name
  and ``physicalName``. Widening int to string breaks every consumer that parses ints; an optional
  column that was required hands empty values to code that never checked for them; a new enum
  value falls through a consumer's exhaustive match.
- **Checks may loosen, never tighten.** Ranges, lengths, item counts, ``multipleOf``, ``pattern``,
  uniqueness and quality rules judge values; tightening one can reject data that passed before
  (stored partitions, the producer, the gate), loosening one cannot. A changed pattern counts as
  tighter, because whether one regular expression accepts everything another does is not
  decidable in general; a removed pattern is looser.
- **Columns:** removed or renamed is breaking; added is breaking when required (producers and old
  partitions lack it), not when optional. Moving a column is not: consumers read CSV by header.
- **Contracts and datasets:** a removed contract or schema object is breaking (unless the old
  contract's ``status`` was ``retired``); an added one is not. ``id``, ``name`` and ``servers``
  changes are breaking (consumers and lineage find the data by them); status ``retired`` is
  breaking. Descriptions, owners and other metadata are not.

The gate: a breaking change needs a major version bump (``1.4.2`` -> ``2.0.0``); without one the
command exits 1.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from etl.contracts.model import CONTRACTS_DIR, QUALITY_OPERATORS
from etl.contracts.tree import allowed_values
from etl.errors import DiffInputError
from etl.tools.contract_lint import CONTRACT_GLOB, SEMVER
from etl.tools.git import git_output

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

FORMATS = ("text", "json", "markdown")
DOCS_URL_ENV = "TWEETPIPE_CONTRACT_DOCS_URL"
# A docs URL goes into markdown links as it is: only characters that cannot end the link or
# start markup, bounded.
_DOCS_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%/+,;=:@!$&-]*)?")
_DOCS_URL_MAX = 2000
# The markdown report is a pull-request comment, which the host caps at 65,536 characters:
# bounded tables with bounded cells stay well below.
MARKDOWN_MAX_ROWS = 100
_MD_MAX_CELL = 240
_MD_MAX_CODE = 160

# Contract keys consumers and lineage find the data by; any other top-level key is metadata.
_CONTRACT_BREAKING_KEYS = {"id": "the contract id", "name": "the dataset name"}
_OBJECT_TYPE_KEYS = ("logicalType", "physicalType", "physicalName")
_PROPERTY_TYPE_KEYS = ("logicalType", "physicalType", "physicalName")
_HANDLED_PROPERTY_KEYS = {
    "name",
    "logicalType",
    "physicalType",
    "physicalName",
    "required",
    "unique",
    "primaryKey",
    "logicalTypeOptions",
    "quality",
    "properties",
    "items",
}
# Rule keys that change what a quality rule checks (the threshold is compared on its own).
_RULE_CHECK_KEYS = {"type", "metric", "unit", "arguments", "query", "engine", "implementation"}
_TYPE_OPTIONS = ("format", "timezone", "defaultTimezone")
_BOUND_OPTIONS = {
    "value": ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"),
    "length": ("minLength", None, "maxLength", None),
    "item count": ("minItems", None, "maxItems", None),
    "property count": ("minProperties", None, "maxProperties", None),
}


@dataclass(frozen=True)
class Change:
    """One difference between two versions of a contract.

    Attributes:
        where: what changed: ``contract``, a dataset ``tweets`` or a column ``tweets.author_id``.
        kind: a stable code (``column-removed``, ``type-changed``, ``check-tightened``...).
        breaking: whether consumers or producers of the old contract can break.
        message: what changed and why it is (not) breaking.
        old: the old value (None when added).
        new: the new value (None when removed).
    """

    where: str
    kind: str
    breaking: bool
    message: str
    old: Any = None
    new: Any = None


@dataclass(frozen=True)
class ContractDiff:
    """The changes of one contract file.

    Attributes:
        contract: the contract's path (or name) as reported.
        old_source: where the old version came from (a file, ``REF:path``), None when added.
        new_source: where the new version came from, None when removed.
        old_version: the old ``version`` field.
        new_version: the new ``version`` field.
        changes: every change, in document order.
        removal_allowed: the contract was removed after its status became ``retired``.
    """

    contract: str
    old_source: str | None
    new_source: str | None
    old_version: str | None
    new_version: str | None
    changes: tuple[Change, ...]
    removal_allowed: bool = False

    @property
    def breaking(self) -> bool:
        """Whether any change is breaking."""
        return any(c.breaking for c in self.changes)

    @property
    def major_bumped(self) -> bool:
        """Whether the major version went up (both versions semantic)."""
        old, new = _major(self.old_version), _major(self.new_version)
        return old is not None and new is not None and new > old

    @property
    def ok(self) -> bool:
        """Whether the change may merge: no breaking change, or one with a major bump."""
        return not self.breaking or self.major_bumped or self.removal_allowed

    @property
    def required_bump(self) -> str | None:
        """``major`` for breaking changes, ``minor`` for others, None when nothing changed."""
        if not self.changes:
            return None
        return "major" if self.breaking else "minor"

    def verdict(self) -> str:
        """One sentence on whether the version bump fits the changes."""
        if not self.changes:
            return "no changes"
        if not self.breaking:
            return f"{len(self.changes)} non-breaking change(s); a minor version bump is enough"
        if self.removal_allowed:
            return "removed after it was retired"
        count = sum(c.breaking for c in self.changes)
        if self.major_bumped:
            return f"{count} breaking change(s) with a major version bump"
        if self.new_version is None:
            return f"{count} breaking change(s): removed while its status is not retired"
        wanted = _next_major(self.old_version)
        return (
            f"{count} breaking change(s) need a major version bump "
            f"({self.old_version} -> {wanted}); the version is {self.new_version}"
        )


@dataclass(frozen=True)
class DiffReport:
    """Every compared contract.

    Attributes:
        contracts: one diff per contract file, in path order.
        base: the git revision compared against (``--base``), if any.
    """

    contracts: tuple[ContractDiff, ...]
    base: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every contract change may merge."""
        return all(c.ok for c in self.contracts)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "ok": self.ok,
            "base": self.base,
            "contracts": [
                {
                    "contract": c.contract,
                    "old_source": c.old_source,
                    "new_source": c.new_source,
                    "old_version": c.old_version,
                    "new_version": c.new_version,
                    "breaking": c.breaking,
                    "major_bumped": c.major_bumped,
                    "required_bump": c.required_bump,
                    "ok": c.ok,
                    "verdict": c.verdict(),
                    "changes": [asdict(change) for change in c.changes],
                }
                for c in self.contracts
            ],
        }


# --- entry points --------------------------------------------------------------------------------
def diff_documents(
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    contract: str,
    old_source: str | None = None,
    new_source: str | None = None,
) -> ContractDiff:
    """Compare two parsed versions of one contract.

    Args:
        old: the old document, None when the contract is new.
        new: the new document, None when the contract was removed.
        contract: the name to report it under.
        old_source: where the old version came from.
        new_source: where the new version came from.

    Returns:
        The classified changes.
    """
    changes: list[Change] = []
    if old is None and new is not None:
        changes.append(Change("contract", "contract-added", False, "new contract", new=contract))
    elif new is None and old is not None:
        status = old.get("status")
        changes.append(
            Change(
                "contract",
                "contract-removed",
                True,
                f"contract removed (its status was {status!r}); consumers lose the dataset",
                old=contract,
            )
        )
    elif old is not None and new is not None:
        changes.extend(_contract_changes(old, new))
    return ContractDiff(
        contract=contract,
        old_source=old_source,
        new_source=new_source,
        old_version=_version(old),
        new_version=_version(new),
        changes=tuple(changes),
        removal_allowed=new is None and old is not None and old.get("status") == "retired",
    )


def diff_files(old: Path, new: Path) -> DiffReport:
    """Compare two contract files.

    Args:
        old: the old version.
        new: the new version.

    Returns:
        A report with one contract.

    Raises:
        DiffInputError: a file is missing or not a YAML mapping.
    """
    old_doc = _parse(_read(old), str(old))
    new_doc = _parse(_read(new), str(new))
    return DiffReport((diff_documents(old_doc, new_doc, str(new), str(old), str(new)),))


def diff_against_ref(ref: str, directory: Path = CONTRACTS_DIR) -> DiffReport:
    """Compare the contracts in a working-tree directory with the same paths at a git revision.

    A contract that exists on one side only is itself a change (added, or removed).

    Args:
        ref: a git revision (``HEAD~1``, ``main``, a commit id).
        directory: the contracts directory inside a git working tree.

    Returns:
        A report with one entry per contract file on either side, in path order.

    Raises:
        DiffInputError: not a git working tree, unknown revision, or an unreadable contract.
    """
    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise DiffInputError(f"{directory}: no such contracts directory")
    top = Path(_git(directory, "rev-parse", "--show-toplevel").strip())
    rel_dir = directory.relative_to(top.resolve()).as_posix()
    if git_output(top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}") is None:
        raise DiffInputError(f"{ref!r} is not a git revision in {top}")
    prefix = "" if rel_dir == "." else f"{rel_dir}/"
    listed = _git(top, "ls-tree", "--name-only", ref, "--", prefix or ".").splitlines()
    old_paths = {p for p in listed if Path(p).match(CONTRACT_GLOB)}
    new_paths = {f"{prefix}{p.name}" for p in directory.glob(CONTRACT_GLOB)}
    diffs = []
    for rel in sorted(old_paths | new_paths):
        old_doc = (
            _parse(_git(top, "show", f"{ref}:{rel}"), f"{ref}:{rel}") if rel in old_paths else None
        )
        new_doc = _parse(_read(top / rel), rel) if rel in new_paths else None
        diffs.append(
            diff_documents(
                old_doc,
                new_doc,
                rel,
                f"{ref}:{rel}" if old_doc is not None else None,
                rel if new_doc is not None else None,
            )
        )
    return DiffReport(tuple(diffs), base=ref)


def render(
    report: DiffReport,
    fmt: str = "text",
    docs_url: str | None = None,
    max_rows: int = MARKDOWN_MAX_ROWS,
) -> str:
    """Write a report for people (``text``), CI comments (``markdown``) or tools (``json``).

    The markdown report opens with a one-line verdict, then a table of contracts, then the
    breaking changes, then the non-breaking ones folded in a ``<details>`` block.

    Args:
        report: the report.
        fmt: one of ``text``, ``json``, ``markdown``.
        docs_url: where ``tweetpipe contracts docs`` is published (checked with
            :func:`docs_url_setting`); the markdown report links each contract's page.
        max_rows: the most rows of each markdown table (the rest are counted).

    Returns:
        The rendered report, ending with a newline.

    Raises:
        ValueError: an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2, sort_keys=True, default=str) + "\n"
    if fmt == "markdown":
        return _markdown(report, docs_url, max_rows)
    return _text(report)


def docs_url_setting(given: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The contract docs URL from a flag, else ``$TWEETPIPE_CONTRACT_DOCS_URL``, checked.

    Args:
        given: the ``--docs-url`` value, if any.
        environ: the environment (default: the process's).

    Returns:
        The URL without a trailing slash, or None when neither is set (or both are empty).

    Raises:
        DiffInputError: the URL is not a plain http(s) URL.
    """
    env = os.environ if environ is None else environ
    source, value = ("--docs-url", given) if given else (DOCS_URL_ENV, env.get(DOCS_URL_ENV, ""))
    if not value:
        return None
    if len(value) > _DOCS_URL_MAX or not _DOCS_URL.fullmatch(value):
        raise DiffInputError(
            f"{source}: {value[:80]!r} is not a plain http(s) URL (letters, digits and "
            f"._~%/+,;=:@!$&- only, at most {_DOCS_URL_MAX} characters)"
        )
    return value.rstrip("/")


# --- reading -------------------------------------------------------------------------------------
def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DiffInputError(f"{path}: cannot read contract: {exc}") from exc


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DiffInputError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise DiffInputError(f"{source}: a contract is a YAML mapping")
    return doc


def _git(cwd: Path, *args: str) -> str:
    out = git_output(cwd, *args)
    if out is None:
        raise DiffInputError(f"git {' '.join(args)} failed in {cwd} (is it a git working tree?)")
    return out


def _version(doc: dict[str, Any] | None) -> str | None:
    if doc is None or doc.get("version") is None:
        return None
    return str(doc["version"])


def _major(version: str | None) -> int | None:
    match = SEMVER.fullmatch(version or "")
    return int(match.group(1)) if match else None


def _next_major(version: str | None) -> str:
    major = _major(version)
    return f"{major + 1}.0.0" if major is not None else "a semantic version"


# --- contract and schema objects -----------------------------------------------------------------
def _contract_changes(old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    for key in _keys(old, new, skip={"schema", "version"}):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        yield _contract_key_change(key, before, after)
    yield from _objects_changes(old.get("schema"), new.get("schema"))


def _contract_key_change(key: str, before: Any, after: Any) -> Change:
    if key in _CONTRACT_BREAKING_KEYS:
        what = _CONTRACT_BREAKING_KEYS[key]
        message = f"{key} {before!r} -> {after!r}: consumers and lineage find {what} by it"
        return Change("contract", f"{key}-changed", True, message, before, after)
    if key == "servers" and before is not None:
        message = "servers changed: consumers read the data where the old servers said"
        return Change("contract", "servers-changed", True, message, before, after)
    if key == "status":
        retired = after == "retired"
        why = "the dataset is no longer produced" if retired else "an announcement"
        return Change(
            "contract",
            "status-changed",
            retired,
            f"status {before!r} -> {after!r}: {why}",
            before,
            after,
        )
    return Change("contract", f"{key}-changed", False, f"{key} changed (metadata)", before, after)


def _objects_changes(old: Any, new: Any) -> Iterator[Change]:
    before, after = _by_name(old), _by_name(new)
    for name in _ordered_union(before, after):
        if name not in after:
            yield Change(name, "dataset-removed", True, "schema object removed", old=name)
        elif name not in before:
            yield Change(name, "dataset-added", False, "schema object added", new=name)
        else:
            yield from _object_changes(name, before[name], after[name])


def _object_changes(name: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    for key in _keys(old, new, skip={"name", "properties", "quality"}):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if key in _OBJECT_TYPE_KEYS:
            message = f"{key} {before!r} -> {after!r}: consumers read the dataset as the old one"
            yield Change(name, f"{key}-changed", True, message, before, after)
        else:
            yield Change(name, f"{key}-changed", False, f"{key} changed (metadata)", before, after)
    yield from _rules_changes(name, old.get("quality"), new.get("quality"))
    yield from _columns_changes(name, "", old.get("properties"), new.get("properties"))


# --- columns -------------------------------------------------------------------------------------
def _columns_changes(dataset: str, prefix: str, old: Any, new: Any) -> Iterator[Change]:
    before, after = _by_name(old), _by_name(new)
    removed = [n for n in before if n not in after]
    added = [n for n in after if n not in before]
    renamed = _renames(before, after, removed, added)
    for old_name, new_name in renamed.items():
        where = f"{dataset}.{prefix}{old_name}"
        message = (
            f"column renamed to {prefix}{new_name} (same definition): consumers reading "
            f"{old_name} break"
        )
        yield Change(where, "column-renamed", True, message, old_name, new_name)
    for name in removed:
        if name not in renamed:
            where = f"{dataset}.{prefix}{name}"
            yield Change(where, "column-removed", True, "column removed", old=name)
    for name in added:
        if name not in renamed.values():
            yield _column_added(f"{dataset}.{prefix}{name}", after[name])
    for name in (n for n in before if n in after):
        yield from _property_changes(dataset, f"{prefix}{name}", before[name], after[name])
    yield from _order_change(dataset, prefix, before, after)


def _column_added(where: str, prop: dict[str, Any]) -> Change:
    if prop.get("required") is True:
        message = "required column added: producers and stored partitions do not have it"
        return Change(where, "required-column-added", True, message, new=prop.get("name"))
    return Change(
        where, "optional-column-added", False, "optional column added", new=prop.get("name")
    )


def _renames(
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    removed: list[str],
    added: list[str],
) -> dict[str, str]:
    """Removed and added columns with the same definition apart from name and description."""
    pairs: dict[str, str] = {}
    for old_name in removed:
        shape = _shape(before[old_name])
        match = next(
            (n for n in added if n not in pairs.values() and _shape(after[n]) == shape), None
        )
        if match is not None:
            pairs[old_name] = match
    return pairs


def _shape(prop: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in prop.items() if k in _HANDLED_PROPERTY_KEYS - {"name"}}


def _order_change(
    dataset: str, prefix: str, before: dict[str, Any], after: dict[str, Any]
) -> Iterator[Change]:
    old_order = [n for n in before if n in after]
    new_order = [n for n in after if n in before]
    if old_order != new_order:
        where = f"{dataset}.{prefix}".rstrip(".")
        message = "column order changed (consumers read CSV by header, not by position)"
        yield Change(where, "column-order-changed", False, message, old_order, new_order)


def _property_changes(
    dataset: str, name: str, old: dict[str, Any], new: dict[str, Any]
) -> Iterator[Change]:
    where = f"{dataset}.{name}"
    yield from _type_changes(where, old, new)
    yield from _flag_changes(where, old, new)
    yield from _options_changes(where, old.get("logicalTypeOptions"), new.get("logicalTypeOptions"))
    yield from _enum_changes(where, allowed_values(old), allowed_values(new))
    yield from _rules_changes(where, old.get("quality"), new.get("quality"))
    yield from _metadata_changes(where, old, new)
    yield from _columns_changes(dataset, f"{name}.", old.get("properties"), new.get("properties"))
    yield from _items_changes(dataset, name, old.get("items"), new.get("items"))


def _type_changes(where: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    for key in _PROPERTY_TYPE_KEYS:
        before, after = old.get(key), new.get(key)
        if before != after:
            message = (
                f"{key} {before!r} -> {after!r}: every type change is breaking (consumers parsing "
                f"{before!r} fail on the new values; old values may not fit the new type)"
            )
            yield Change(where, f"{key}-changed", True, message, before, after)


def _flag_changes(where: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    was, now = bool(old.get("required")), bool(new.get("required"))
    if not was and now:
        message = "optional -> required: stored rows with empty values no longer conform"
        yield Change(where, "required-added", True, message, was, now)
    elif was and not now:
        message = (
            "required -> optional: consumers get empty values where the contract promised none"
        )
        yield Change(where, "required-removed", True, message, was, now)
    for key in ("unique", "primaryKey"):
        was, now = bool(old.get(key)), bool(new.get(key))
        if not was and now:
            message = f"{key} added: stored data with repeated values no longer conforms"
            yield Change(where, f"{key}-added", True, message, was, now)
        elif was and not now:
            message = f"{key} removed (check loosened; consumers may now see repeated values)"
            yield Change(where, f"{key}-removed", False, message, was, now)


def _metadata_changes(where: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    for key in _keys(old, new, skip=_HANDLED_PROPERTY_KEYS):
        before, after = old.get(key), new.get(key)
        if before != after:
            yield Change(where, f"{key}-changed", False, f"{key} changed (metadata)", before, after)


def _items_changes(dataset: str, name: str, old: Any, new: Any) -> Iterator[Change]:
    if old is None and new is None:
        return
    if not isinstance(old, dict) or not isinstance(new, dict):
        message = "array items added or removed: the item type changed"
        yield Change(f"{dataset}.{name}[]", "items-changed", True, message, old, new)
        return
    yield from _property_changes(dataset, f"{name}[]", old, new)


def _enum_changes(where: str, old: list[Any] | None, new: list[Any] | None) -> Iterator[Change]:
    if old == new or (
        old is not None and new is not None and set(map(repr, old)) == set(map(repr, new))
    ):
        return
    if old is None:
        message = f"value set added {new}: stored values outside it no longer conform"
        yield Change(where, "enum-added", True, message, old, new)
        return
    if new is None:
        message = "value set removed: consumers matching every value meet values they never saw"
        yield Change(where, "enum-removed", True, message, old, new)
        return
    gone = [v for v in old if v not in new]
    extra = [v for v in new if v not in old]
    if gone:
        message = f"values {gone} no longer allowed: stored data with them no longer conforms"
        yield Change(where, "enum-values-removed", True, message, old, new)
    if extra:
        message = f"values {extra} added: consumers matching every value meet one they never saw"
        yield Change(where, "enum-values-added", True, message, old, new)


# --- checks: logicalTypeOptions ------------------------------------------------------------------
def _options_changes(where: str, old: Any, new: Any) -> Iterator[Change]:
    before = old if isinstance(old, dict) else {}
    after = new if isinstance(new, dict) else {}
    for key in _TYPE_OPTIONS:
        if before.get(key) != after.get(key):
            message = (
                f"{key} {before.get(key)!r} -> {after.get(key)!r}: consumers parse values with it"
            )
            yield Change(where, f"{key}-changed", True, message, before.get(key), after.get(key))
    yield from _pattern_change(where, before.get("pattern"), after.get("pattern"))
    for label, keys in _BOUND_OPTIONS.items():
        yield from _bounds_change(where, label, keys, before, after)
    yield from _multiple_of_change(where, before.get("multipleOf"), after.get("multipleOf"))
    yield from _set_option_change(where, "required", before.get("required"), after.get("required"))
    if before.get("uniqueItems") != after.get("uniqueItems"):
        tighter = bool(after.get("uniqueItems"))
        yield _check_change(
            where, "uniqueItems", tighter, before.get("uniqueItems"), after.get("uniqueItems")
        )
    known = {*_TYPE_OPTIONS, "pattern", "multipleOf", "required", "uniqueItems"}
    known.update(k for keys in _BOUND_OPTIONS.values() for k in keys if k)
    for key in _keys(before, after, skip=known):
        if before.get(key) != after.get(key):
            message = (
                f"{key} {before.get(key)!r} -> {after.get(key)!r}: unknown option, assumed tighter"
            )
            yield Change(where, f"{key}-changed", True, message, before.get(key), after.get(key))


def _check_change(where: str, what: str, tighter: bool | None, old: Any, new: Any) -> Change:
    if tighter is None:
        why = "cannot tell whether it is looser, so it counts as tighter"
        return Change(where, "check-changed", True, f"{what} {old!r} -> {new!r}: {why}", old, new)
    if tighter:
        why = "tighter: data that passed before may be rejected"
        return Change(where, "check-tightened", True, f"{what} {old!r} -> {new!r}: {why}", old, new)
    return Change(where, "check-loosened", False, f"{what} {old!r} -> {new!r}: looser", old, new)


def _pattern_change(where: str, old: Any, new: Any) -> Iterator[Change]:
    if old == new:
        return
    if new is None:
        yield _check_change(where, "pattern", False, old, new)
    elif old is None:
        yield _check_change(where, "pattern", True, old, new)
    else:
        yield _check_change(where, "pattern", None, old, new)


def _set_option_change(where: str, key: str, old: Any, new: Any) -> Iterator[Change]:
    before, after = set(old or ()), set(new or ())
    if before == after:
        return
    tighter = None if (before - after and after - before) else bool(after - before)
    yield _check_change(where, key, tighter, sorted(before), sorted(after))


def _multiple_of_change(where: str, old: Any, new: Any) -> Iterator[Change]:
    if old == new:
        return
    if old is None or new is None:
        yield _check_change(where, "multipleOf", new is not None, old, new)
        return
    tighter = None
    if _is_multiple(new, old):
        tighter = True
    elif _is_multiple(old, new):
        tighter = False
    yield _check_change(where, "multipleOf", tighter, old, new)


def _is_multiple(value: Any, base: Any) -> bool:
    try:
        ratio = float(value) / float(base)
    except (TypeError, ValueError, ZeroDivisionError):
        return False
    return math.isclose(ratio, round(ratio))


# --- checks: intervals (value bounds, lengths, quality thresholds) -------------------------------
class _Shown(dict[str, Any]):
    """Options or thresholds that print as ``maxLength 100, minLength 1`` (or ``none``)."""

    def __repr__(self) -> str:
        return ", ".join(f"{k} {v!r}" for k, v in self.items()) or "none"


@dataclass(frozen=True)
class _Interval:
    """Accepted values ``lo..hi``; None is unbounded; ``negated`` means everything outside."""

    lo: Any = None
    lo_open: bool = False
    hi: Any = None
    hi_open: bool = False
    negated: bool = False


def _bounds_change(
    where: str,
    label: str,
    keys: tuple[str | None, ...],
    old: dict[str, Any],
    new: dict[str, Any],
) -> Iterator[Change]:
    present = [k for k in keys if k]
    before = {k: old[k] for k in present if k in old}
    after = {k: new[k] for k in present if k in new}
    if before == after:
        return
    tighter = _tighter(_option_interval(before, keys), _option_interval(after, keys))
    yield _check_change(where, f"{label} bounds", tighter, _Shown(before), _Shown(after))


def _option_interval(options: dict[str, Any], keys: tuple[str | None, ...]) -> _Interval | None:
    low_key, low_excl, high_key, high_excl = keys
    lows = [(options[k], k == low_excl) for k in (low_key, low_excl) if k and k in options]
    highs = [(options[k], k == high_excl) for k in (high_key, high_excl) if k and k in options]
    try:
        lo = max(((_comparable(v), o) for v, o in lows), default=(None, False))
        hi = min(((_comparable(v), not o) for v, o in highs), default=(None, True))
    except TypeError:
        return None
    return _Interval(lo[0], lo[1], hi[0], not hi[1])


def _comparable(value: Any) -> float | datetime | date:
    """A bound as something ordered; raises TypeError when it has no meaningful order."""
    if isinstance(value, bool):
        raise TypeError("a boolean bound")
    if isinstance(value, int | float | datetime | date):
        return value
    if isinstance(value, str):
        for parse in (datetime.fromisoformat, date.fromisoformat):
            try:
                return parse(value)
            except ValueError:
                continue
    raise TypeError(f"bound {value!r} has no order")


def _tighter(old: _Interval | None, new: _Interval | None) -> bool | None:
    """True when new accepts a subset of old, False when a superset, None when neither or unknown."""
    if old is None or new is None or old.negated != new.negated:
        return None
    if old.negated:
        old, new = new, old  # the complement of a wider range accepts less
    try:
        if _within(new, old):
            return True
        if _within(old, new):
            return False
    except TypeError:
        return None
    return None


def _within(inner: _Interval, outer: _Interval) -> bool:
    low_ok = outer.lo is None or (
        inner.lo is not None
        and (inner.lo > outer.lo or (inner.lo == outer.lo and (inner.lo_open or not outer.lo_open)))
    )
    high_ok = outer.hi is None or (
        inner.hi is not None
        and (inner.hi < outer.hi or (inner.hi == outer.hi and (inner.hi_open or not outer.hi_open)))
    )
    return low_ok and high_ok


# --- checks: quality rules -----------------------------------------------------------------------
def _rules_changes(where: str, old: Any, new: Any) -> Iterator[Change]:
    before, after = _rules_by_name(old), _rules_by_name(new)
    for name in _ordered_union(before, after):
        if name not in after:
            message = f"quality rule {name!r} removed (check loosened)"
            yield Change(where, "rule-removed", False, message, before[name], None)
        elif name not in before:
            yield _rule_added(where, name, after[name])
        else:
            yield from _rule_changes(where, name, before[name], after[name])


def _rule_added(where: str, name: str, rule: dict[str, Any]) -> Change:
    if _enforced(rule):
        message = f"quality rule {name!r} added: data that passed before may now fail it"
        return Change(where, "rule-added", True, message, None, rule)
    message = f"quality rule {name!r} added (does not fail a run: severity or type text)"
    return Change(where, "rule-added", False, message, None, rule)


def _rule_changes(
    where: str, name: str, old: dict[str, Any], new: dict[str, Any]
) -> Iterator[Change]:
    what = f"quality rule {name!r}"
    for key in sorted(_RULE_CHECK_KEYS):
        if old.get(key) != new.get(key):
            yield _check_change(where, f"{what} {key}", None, old.get(key), new.get(key))
    old_interval, new_interval = _rule_interval(old), _rule_interval(new)
    if old_interval != new_interval:
        yield _check_change(
            where,
            f"{what} threshold",
            _tighter(old_interval, new_interval),
            _threshold(old),
            _threshold(new),
        )
    if _enforced(old) != _enforced(new):
        yield _check_change(
            where, f"{what} severity", _enforced(new), old.get("severity"), new.get("severity")
        )
    # a severity change that keeps the rule (not) failing runs is bookkeeping
    handled = _RULE_CHECK_KEYS | {"name", *QUALITY_OPERATORS}
    if _enforced(old) != _enforced(new):
        handled.add("severity")
    for key in _keys(old, new, skip=handled):
        if old.get(key) != new.get(key):
            yield Change(
                where,
                "rule-metadata-changed",
                False,
                f"{what}: {key} changed (metadata)",
                old.get(key),
                new.get(key),
            )


def _rules_by_name(rules: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if isinstance(rule, dict):
            name = str(rule.get("name") or f"{rule.get('metric', 'rule')}#{index}")
            out[name] = _without_valid_values(rule)
    return out


def _without_valid_values(rule: dict[str, Any]) -> dict[str, Any]:
    """The rule without its value set: the value set is compared as the column's type."""
    arguments = rule.get("arguments")
    if not isinstance(arguments, dict) or "validValues" not in arguments:
        return rule
    rest = {k: v for k, v in arguments.items() if k != "validValues"}
    return {**rule, "arguments": rest or None}


def _enforced(rule: dict[str, Any]) -> bool:
    return bool(rule.get("type", "library") != "text" and rule.get("severity", "error") == "error")


def _threshold(rule: dict[str, Any]) -> _Shown:
    return _Shown({k: rule[k] for k in QUALITY_OPERATORS if k in rule})


def _rule_interval(rule: dict[str, Any]) -> _Interval | None:
    ops = _threshold(rule)
    if len(ops) != 1:
        return None
    ((op, value),) = ops.items()
    try:
        if op in ("mustBeBetween", "mustNotBeBetween"):
            lo, hi = (_comparable(v) for v in value)
            return _Interval(lo, False, hi, False, negated=op == "mustNotBeBetween")
        bound = _comparable(value)
    except (TypeError, ValueError):
        return None
    return {
        "mustBe": _Interval(bound, False, bound, False),
        "mustNotBe": _Interval(bound, False, bound, False, negated=True),
        "mustBeGreaterThan": _Interval(lo=bound, lo_open=True),
        "mustBeGreaterOrEqualTo": _Interval(lo=bound),
        "mustBeLessThan": _Interval(hi=bound, hi_open=True),
        "mustBeLessOrEqualTo": _Interval(hi=bound),
    }[op]


# --- helpers -------------------------------------------------------------------------------------
def _by_name(items: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict):
            out[str(item.get("name", f"#{index}"))] = item
    return out


def _ordered_union(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [*before, *(k for k in after if k not in before)]


def _keys(old: dict[str, Any], new: dict[str, Any], skip: Iterable[str] = ()) -> list[str]:
    skipped = set(skip)
    return [k for k in _ordered_union(old, new) if k not in skipped]


# --- rendering -----------------------------------------------------------------------------------
def _label(change: Change) -> str:
    return "BREAKING" if change.breaking else "non-breaking"


def _versions(diff: ContractDiff) -> str:
    return f"{diff.old_version or '(none)'} -> {diff.new_version or '(none)'}"


def _text(report: DiffReport) -> str:
    lines: list[str] = []
    for diff in report.contracts:
        lines.append(f"{diff.contract}  {_versions(diff)}")
        width = max((len(c.where) for c in diff.changes), default=0)
        for change in diff.changes:
            lines.append(f"  {_label(change):<12}  {change.where:<{width}}  {change.message}")
        status = "ok" if diff.ok else "FAIL"
        lines.append(f"  => {status}: {diff.verdict()}")
    if not report.contracts:
        lines.append("no contracts to compare")
    lines.append(
        "contracts diff: "
        + ("ok" if report.ok else "FAIL (breaking change without a major version bump)")
    )
    return "\n".join(lines) + "\n"


def markdown_code(text: str) -> str:
    """Text for a code span in a markdown table cell: nothing in it can end the cell or the span.

    Args:
        text: the text (a path, a column, a revision).

    Returns:
        The text to put between single backticks, on one line, cut at 160 characters.
    """
    if len(text) > _MD_MAX_CODE:
        text = text[: _MD_MAX_CODE - 1] + "\u2026"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def markdown_text(text: str, limit: int = _MD_MAX_CELL) -> str:
    """Prose for a markdown table cell, shown as text: no HTML, link, mention or cell break.

    The values come from the pull request under review, so nothing in them may open or close an
    HTML block (``</details>``), ping someone (``@user``) or make a link.

    Args:
        text: the prose.
        limit: the longest text kept (longer ones are cut with an ellipsis).

    Returns:
        The escaped text, on one line.
    """
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    text = html.escape(text.replace("\n", " "), quote=False)
    text = re.sub(r"([\\`*_\[\]|])", r"\\\1", text)
    # a word joiner after @ keeps the text readable but is no mention
    return text.replace("@", "@\u2060")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _md_verdict(report: DiffReport) -> str:
    base = f" against `{markdown_code(report.base)}`" if report.base else ""
    breaking = [c for d in report.contracts for c in d.changes if c.breaking]
    others = sum(not c.breaking for d in report.contracts for c in d.changes)
    if report.ok:
        if not breaking and not others:
            why = "no contract changed"
        else:
            parts = [f"{_plural(len(breaking), 'breaking change')} with a major version bump"]
            parts = parts if breaking else []
            parts += [f"{_plural(others, 'non-breaking change')}"] if others else []
            why = ", ".join(parts)
        return f"### Contract changes{base}: passes ({why})"
    failing = [d for d in report.contracts if not d.ok]
    wanted = "; ".join(
        f"`{markdown_code(d.contract)}` needs version {markdown_text(_next_major(d.old_version))}, "
        f"is {markdown_text(d.new_version)}"
        if d.new_version
        else f"`{markdown_code(d.contract)}` removed while its status is not retired"
        for d in failing
    )
    count = sum(c.breaking for d in failing for c in d.changes)
    return (
        f"### Contract changes{base}: fails ({_plural(count, 'breaking change')} without a major "
        f"version bump: {wanted})"
    )


def _md_contract(diff: ContractDiff, docs_url: str | None) -> str:
    name = f"`{markdown_code(diff.contract)}`"
    if docs_url is None or diff.new_source is None:
        return name
    from etl.tools.contract_docs import page_name

    return f"[{name}]({docs_url}/{page_name(diff.contract)})"


def _md_changes(
    title: list[str], changes: list[tuple[ContractDiff, Change]], max_rows: int
) -> list[str]:
    lines = [*title, "", "| contract | where | change |", "|---|---|---|"]
    for diff, change in changes[:max_rows]:
        lines.append(
            f"| `{markdown_code(diff.contract)}` | `{markdown_code(change.where)}` "
            f"| {markdown_text(change.message)} |"
        )
    if len(changes) > max_rows:
        rest = len(changes) - max_rows
        lines += [
            "",
            f"... and {rest} more: run `tweetpipe contracts diff --base` to see them all.",
        ]
    return lines


def _markdown(report: DiffReport, docs_url: str | None, max_rows: int) -> str:
    lines = [_md_verdict(report), ""]
    lines += ["| contract | version | breaking | verdict |", "|---|---|---|---|"]
    for diff in report.contracts[:max_rows]:
        mark = "ok" if diff.ok else "**FAIL**"
        breaking = sum(c.breaking for c in diff.changes)
        lines.append(
            f"| {_md_contract(diff, docs_url)} | {markdown_text(_versions(diff))} | {breaking} "
            f"| {mark}: {markdown_text(diff.verdict())} |"
        )
    if len(report.contracts) > max_rows:
        lines += ["", f"... and {len(report.contracts) - max_rows} more contract(s)."]
    changes = [(d, c) for d in report.contracts for c in d.changes]
    breaking_changes = [(d, c) for d, c in changes if c.breaking]
    other_changes = [(d, c) for d, c in changes if not c.breaking]
    if breaking_changes:
        title = [f"#### {_plural(len(breaking_changes), 'breaking change')}"]
        lines += ["", *_md_changes(title, breaking_changes, max_rows)]
    if other_changes:
        # GitHub renders markdown inside <details> only after a blank line
        summary = (
            f"<details><summary>{_plural(len(other_changes), 'non-breaking change')}</summary>"
        )
        lines += ["", *_md_changes([summary], other_changes, max_rows), "", "</details>"]
    if docs_url is not None:
        lines += ["", f"Contract docs: {docs_url}/index.html"]
    return "\n".join(lines) + "\n"
