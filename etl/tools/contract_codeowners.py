"""``tweetpipe contracts codeowners``: each contract is reviewed by the owners its ``team`` names.

A delimited section of the repository's ``CODEOWNERS`` file assigns every contract file, and its
Great Expectations suite (``expectations/<contract name>.json``, when there is one), to the owners
listed in the contract's ODCS ``team``. The repository host then asks those owners to review any
pull request that touches them. Everything outside the section is left exactly as it was.

How a team member becomes a code owner (CODEOWNERS accepts ``@user``, ``@org/team`` and e-mail
addresses):

1. a ``customProperties`` entry ``codeowner`` on the member is used as given: one handle or a
   list of handles (an empty list keeps the member out of the review);
2. otherwise the member's ``username``, when it is a GitHub user (``jane``), a team
   (``acme/data-eng``), either with a leading ``@``, or an e-mail address;
3. a ``codeowner`` entry on the ``team`` itself adds owners for the whole team (e.g. the GitHub
   team that stands for it);
4. members with a ``dateOut`` have left the team and are skipped.

A member whose username is none of these and who has no ``codeowner`` is an error, as is a
contract whose team yields no owner: a contract nobody reviews is what this command prevents.

The section sits in the first of ``.github/CODEOWNERS``, ``CODEOWNERS``, ``docs/CODEOWNERS`` that
exists (the order the host reads them in), else in a new ``.github/CODEOWNERS``. The host applies
the *last* rule that matches a path, so the section should stay at the end of the file; rules after
it are reported.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from etl.errors import CodeownersInputError, CodeownersUsageError
from etl.tools.contract_lint import CONTRACT_GLOB

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

SECTION_BEGIN = "# BEGIN tweetpipe contracts codeowners"
SECTION_END = "# END tweetpipe contracts codeowners"
SECTION_NOTE = (
    "# Written by `tweetpipe contracts codeowners` from each contract's `team`: edit the contracts,\n"
    "# not these lines. `tweetpipe contracts codeowners --check` fails when they are out of date."
)
OWNER_PROPERTY = "codeowner"
# Where the host looks for the file, in its order of precedence.
CODEOWNERS_LOCATIONS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")
# The host ignores a CODEOWNERS file over 3 MB.
MAX_CODEOWNERS_BYTES = 3 * 1024 * 1024
MAX_CONTRACT_BYTES = 4 * 1024 * 1024

_GITHUB_USER = r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}"
_HANDLE = re.compile(
    rf"@?(?P<user>{_GITHUB_USER})(?:/(?P<team>[A-Za-z0-9][A-Za-z0-9_.-]{{0,99}}))?"
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
# A path written into CODEOWNERS: plain names only, so no pattern character, space or comment
# sign changes what the rule matches.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


@dataclass(frozen=True)
class OwnedPath:
    """One CODEOWNERS rule of the section.

    Attributes:
        path: the file, relative to the repository root (``contracts/x.odcs.yaml``).
        owners: the owners, in the order the contract names them.
        contract: the contract file the owners come from.
    """

    path: str
    owners: tuple[str, ...]
    contract: str

    def rule(self) -> str:
        """The CODEOWNERS line: the path anchored at the root, then the owners."""
        return " ".join([f"/{self.path}", *self.owners])


@dataclass(frozen=True)
class Staleness:
    """Why the section in the file differs from the one the contracts give.

    Attributes:
        kind: ``file-missing``, ``section-missing``, ``rule-missing``, ``rule-extra``,
            ``owners-differ`` or ``layout-differs``.
        path: the rule's path, when one rule is the reason.
        have: the owners in the file.
        want: the owners the contract names.
    """

    kind: str
    path: str | None = None
    have: tuple[str, ...] = ()
    want: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for a person, to follow ``<file> is out of date:``."""
        if self.kind == "file-missing":
            return "the file does not exist"
        if self.kind == "section-missing":
            return "the file has no tweetpipe section"
        if self.kind == "rule-missing":
            return f"no rule for /{self.path} (owners {' '.join(self.want)})"
        if self.kind == "rule-extra":
            return f"a rule for /{self.path}, which is no contract or suite any more"
        if self.kind == "owners-differ":
            return (
                f"/{self.path} is owned by {' '.join(self.have) or 'nobody'} in the file, "
                f"by {' '.join(self.want)} in the contract's team"
            )
        return "the section's lines differ from the generated ones (order or comments)"


@dataclass(frozen=True)
class CodeownersFile:
    """A CODEOWNERS file split around the section.

    Attributes:
        path: where it is (it may not exist yet).
        before: the text before the section (or the whole file when it has none).
        section: the section's lines, markers included; None when there is none.
        after: the text after the section.
        exists: whether the file exists.
    """

    path: Path
    before: str
    section: tuple[str, ...] | None
    after: str
    exists: bool


# --- owners from a contract ----------------------------------------------------------------------
def contract_owners(doc: dict[str, Any], source: str) -> tuple[str, ...]:
    """The code owners a contract's ``team`` names (see the module docstring for the rules).

    Args:
        doc: the parsed contract.
        source: the contract's name in messages.

    Returns:
        The owners, in order, each once.

    Raises:
        CodeownersInputError: a member cannot be mapped, or no owner is named.
    """
    team = doc.get("team")
    if team is not None and not isinstance(team, dict | list):
        raise CodeownersInputError(f"{source}: team is neither a mapping nor a list of members")
    # ODCS v3.0 wrote the team as a bare list of members; v3.1 keeps accepting it.
    members: Any = team if isinstance(team, list) else (team or {}).get("members")
    owners: list[str] = []
    if isinstance(team, dict):
        owners += _owner_property(team.get("customProperties"), f"{source}: team") or []
    for index, member in enumerate(members if isinstance(members, list) else []):
        owners += _member_owners(member, f"{source}: team member #{index + 1}")
    unique = tuple(dict.fromkeys(owners))
    if not unique:
        raise CodeownersInputError(
            f"{source}: its team names no code owner; add team.members with a username that is "
            f"a GitHub handle or e-mail, or a customProperties entry {OWNER_PROPERTY!r}"
        )
    return unique


def _member_owners(member: Any, where: str) -> list[str]:
    if not isinstance(member, dict):
        raise CodeownersInputError(f"{where}: not a mapping")
    if member.get("dateOut"):
        return []
    username = member.get("username")
    where = f"{where} ({username!r})" if isinstance(username, str) else where
    given = _owner_property(member.get("customProperties"), where)
    if given is not None:
        return given
    handle = normalize_owner(username)
    if handle is None:
        raise CodeownersInputError(
            f"{where}: the username is not a GitHub handle or e-mail; add a customProperties "
            f"entry {OWNER_PROPERTY!r} with the member's handle"
        )
    return [handle]


def _owner_property(properties: Any, where: str) -> list[str] | None:
    """The owners of a ``codeowner`` custom property, None when there is no such property."""
    entries = [
        p
        for p in (properties if isinstance(properties, list) else [])
        if isinstance(p, dict) and p.get("property") == OWNER_PROPERTY
    ]
    if not entries:
        return None
    owners: list[str] = []
    for entry in entries:
        value = entry.get("value")
        values = value if isinstance(value, list) else [value]
        for item in values:
            handle = normalize_owner(item)
            if handle is None:
                raise CodeownersInputError(
                    f"{where}: {OWNER_PROPERTY} {item!r} is not a GitHub handle "
                    "(@user, @org/team) or e-mail address"
                )
            owners.append(handle)
    return owners


def normalize_owner(value: Any) -> str | None:
    """A CODEOWNERS owner from a handle or e-mail address, None when it is neither.

    Args:
        value: ``jane``, ``@jane``, ``acme/data-eng``, ``@acme/data-eng`` or ``jane@example.com``.

    Returns:
        ``@jane``, ``@acme/data-eng``, ``jane@example.com``; None for anything else.
    """
    if not isinstance(value, str) or not value.isascii():
        return None
    if _EMAIL.fullmatch(value):
        return value
    match = _HANDLE.fullmatch(value)
    if match is None:
        return None
    return "@" + value.removeprefix("@")


# --- the section ---------------------------------------------------------------------------------
def owned_paths(root: Path, contracts_dir: Path | None = None) -> list[OwnedPath]:
    """Every rule of the section: each contract, then its suite when it exists.

    Args:
        root: the repository root; rules are written relative to it.
        contracts_dir: the contracts (default: ``ROOT/contracts``); suites are looked for in the
            ``expectations`` folder beside it.

    Returns:
        The rules, contracts in file-name order.

    Raises:
        CodeownersUsageError: the contracts folder is missing or not inside the root.
        CodeownersInputError: a contract cannot be read or names no usable owner.
    """
    root = root.resolve()
    directory = (contracts_dir or root / "contracts").resolve()
    if not directory.is_dir():
        raise CodeownersUsageError(f"{directory}: no such contracts directory")
    if not directory.is_relative_to(root):
        raise CodeownersUsageError(f"{directory} is not inside the repository root {root}")
    suites = directory.parent / "expectations"
    rules: list[OwnedPath] = []
    for path in sorted(directory.glob(CONTRACT_GLOB)):
        rel = _safe_relative(path, root)
        doc = _read_contract(path, rel)
        owners = contract_owners(doc, rel)
        rules.append(OwnedPath(rel, owners, rel))
        name = doc.get("name")
        if isinstance(name, str) and _SAFE_NAME.fullmatch(name):
            suite = suites / f"{name}.json"
            if suite.is_file():
                rules.append(OwnedPath(_safe_relative(suite, root), owners, rel))
    return rules


def _safe_relative(path: Path, root: Path) -> str:
    rel = path.resolve().relative_to(root)
    if not all(_SAFE_NAME.fullmatch(part) for part in rel.parts):
        raise CodeownersInputError(
            f"{rel.as_posix()}: only letters, digits, '.', '_' and '-' can be written to "
            "CODEOWNERS without changing what the rule matches; rename the file"
        )
    return rel.as_posix()


def _read_contract(path: Path, rel: str) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_CONTRACT_BYTES:
            raise CodeownersInputError(f"{rel}: larger than {MAX_CONTRACT_BYTES} bytes")
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CodeownersInputError(f"{rel}: cannot read contract: {exc}") from exc
    if not isinstance(doc, dict):
        raise CodeownersInputError(f"{rel}: a contract is a YAML mapping")
    return doc


def render_section(rules: Sequence[OwnedPath]) -> tuple[str, ...]:
    """The section's lines, markers included.

    Args:
        rules: from :func:`owned_paths`.

    Returns:
        The lines, without line ends.
    """
    return (SECTION_BEGIN, *SECTION_NOTE.splitlines(), *(r.rule() for r in rules), SECTION_END)


def find_codeowners(root: Path) -> Path:
    """The CODEOWNERS file the host reads: the first that exists, else ``.github/CODEOWNERS``.

    Args:
        root: the repository root.

    Returns:
        The path (it may not exist).
    """
    for location in CODEOWNERS_LOCATIONS:
        if (root / location).is_file():
            return root / location
    return root / CODEOWNERS_LOCATIONS[0]


def read_codeowners(path: Path) -> CodeownersFile:
    """Read a CODEOWNERS file and find the section.

    Args:
        path: the file; a missing one reads as empty.

    Returns:
        The file split around the section.

    Raises:
        CodeownersUsageError: the file is unreadable, too large, or its markers are unbalanced.
    """
    if path.exists() and not path.is_file():
        raise CodeownersUsageError(f"{path}: not a file")
    if not path.exists():
        return CodeownersFile(path, "", None, "", exists=False)
    try:
        if path.stat().st_size > MAX_CODEOWNERS_BYTES:
            raise CodeownersUsageError(
                f"{path}: larger than {MAX_CODEOWNERS_BYTES} bytes, which the host ignores"
            )
        # bytes, not read_text: universal newlines would turn the rest of a CRLF file into LF
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CodeownersUsageError(f"{path}: cannot read: {exc}") from exc
    lines = text.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == SECTION_BEGIN]
    ends = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == SECTION_END]
    if not begins and not ends:
        return CodeownersFile(path, text, None, "", exists=True)
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise CodeownersUsageError(
            f"{path}: expected one {SECTION_BEGIN!r} line and one {SECTION_END!r} line after it, "
            f"found {len(begins)} and {len(ends)}; fix the file by hand"
        )
    start, end = begins[0], ends[0]
    section = tuple(line.rstrip("\r\n") for line in lines[start : end + 1])
    return CodeownersFile(
        path, "".join(lines[:start]), section, "".join(lines[end + 1 :]), exists=True
    )


def staleness(current: CodeownersFile, wanted: Sequence[OwnedPath]) -> Staleness | None:
    """Why the file's section differs from the wanted rules, None when it is up to date.

    Args:
        current: the file as read.
        wanted: the rules the contracts give.

    Returns:
        The first reason, or None.
    """
    if not current.exists:
        return Staleness("file-missing")
    if current.section is None:
        return Staleness("section-missing")
    if current.section == render_section(wanted):
        return None
    have = dict(_parse_rules(current.section))
    want = {r.path: r.owners for r in wanted}
    for path, owners in want.items():
        if path not in have:
            return Staleness("rule-missing", path, want=owners)
        if have[path] != owners:
            return Staleness("owners-differ", path, have[path], owners)
    for path, owners in have.items():
        if path not in want:
            return Staleness("rule-extra", path, have=owners)
    return Staleness("layout-differs")


def _parse_rules(lines: Iterable[str]) -> Iterator[tuple[str, tuple[str, ...]]]:
    for line in lines:
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            yield fields[0].removeprefix("/"), tuple(fields[1:])


def updated_text(current: CodeownersFile, wanted: Sequence[OwnedPath]) -> str:
    """The file's text with the section replaced (or appended when it has none).

    Args:
        current: the file as read.
        wanted: the rules the contracts give.

    Returns:
        The new text; outside the section it is byte for byte the old one.
    """
    section = "\n".join(render_section(wanted)) + "\n"
    if current.section is not None:
        return current.before + section + current.after
    before = current.before
    if before and not before.endswith("\n"):
        before += "\n"
    return before + ("\n" if before else "") + section


def rules_after_section(current: CodeownersFile) -> int:
    """How many rules follow the section (the host's last matching rule wins over the section).

    Args:
        current: the file as read.

    Returns:
        The number of non-comment, non-blank lines after the section.
    """
    return sum(1 for _ in _parse_rules(current.after.splitlines()))


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- command line --------------------------------------------------------------------------------
def check_codeowners(root: Path, file: Path | None = None) -> tuple[Path, Staleness | None]:
    """Compare the CODEOWNERS section with the contracts' teams.

    Args:
        root: the repository root.
        file: the CODEOWNERS file (default: :func:`find_codeowners`).

    Returns:
        The file looked at, and why it is out of date (None when it is not).

    Raises:
        CodeownersUsageError: see :func:`owned_paths` and :func:`read_codeowners`.
        CodeownersInputError: see :func:`owned_paths`.
    """
    path = file if file is not None else find_codeowners(root)
    return path, staleness(read_codeowners(path), owned_paths(root))
