"""``tweetpipe contracts diff``: compare versions of contracts, and whether their versions fit.

The classification of each difference is :mod:`etl.tools.contract_changes` (the rules are in
its docstring and in README "Changing a contract"); the reports are
:mod:`etl.tools.contract_diff_report`.

The gate: a breaking change needs a major version bump (``1.4.2`` -> ``2.0.0``); without one the
command exits 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from etl.contracts.model import CONTRACTS_DIR
from etl.errors import DiffInputError
from etl.tools.contract_changes import Change, contract_changes
from etl.tools.contract_lint import CONTRACT_GLOB, SEMVER
from etl.tools.git import git_output


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
        wanted = next_major(self.old_version)
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
        changes.extend(contract_changes(old, new))
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


def next_major(version: str | None) -> str:
    """The first version of the next major release.

    Args:
        version: a semantic version, or anything else.

    Returns:
        ``<major + 1>.0.0``, or ``a semantic version`` when ``version`` is none.
    """
    major = _major(version)
    return f"{major + 1}.0.0" if major is not None else "a semantic version"
