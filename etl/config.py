"""Pipeline configuration: which sources to extract, over which window, from which API.

A source is an account (by username, its timeline) or a recent-search query. ``pipeline.yaml``
lists them; the CLI can add more with ``--account``/``--query``. A window is either bounded
(``start``/``end``, what Airflow's data interval passes) or incremental (neither: continue from the
stored watermark). Nothing here holds a secret: the bearer token is resolved by the CLI or the DAG.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import jsonschema
import yaml

from etl.errors import ConfigError, ConfigProblem, StoreError
from etl.pricing import (
    BUDGET_SCHEMA,
    MAX_BUDGET_USD,
    MAX_PRICE_USD,
    PRICES_SCHEMA,
    Budget,
    Prices,
    usd_problem,
)

SourceKind = Literal["account", "query"]

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024  # a real page of 100 posts is well under 2 MiB
MIN_MAX_BODY_BYTES = 1024
MAX_MAX_BODY_BYTES = 1024 * 1024 * 1024
STORE_ENV = "TWEETPIPE_STORE"
"""The environment variable naming the store when no flag or DAG param does."""
MAX_CONFIG_BYTES = 1 << 20
"""A pipeline config larger than this is refused unread (a DAG param may name any file)."""

_USERNAME = re.compile(r"[A-Za-z0-9_]{1,15}")
_MAX_QUERY_LENGTH = 512  # recent search accepts queries of up to 512 characters
_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")
# A key shown in an error message: a config's keys are plain names; anything else may be content
# that does not belong in a log, so it is not repeated.
_WHOLE_NUMBER = re.compile(r"[0-9]{1,10}")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,39}")

_STRINGS: dict[str, Any] = {"type": ["array", "null"], "items": {"type": "string"}}
MAX_RETENTION_DAYS = 36_500
MAX_RETENTION_HOURS = 8_760
_DAYS: dict[str, Any] = {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_RETENTION_DAYS}
CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "tweetpipe pipeline.yaml",
    "type": ["object", "null"],
    "additionalProperties": False,
    "properties": {
        "store": {"type": ["string", "null"], "maxLength": 1024},
        "api": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "base_url": {"type": ["string", "null"], "maxLength": 1024},
                "max_body_bytes": {
                    "type": ["integer", "null"],
                    "minimum": MIN_MAX_BODY_BYTES,
                    "maximum": MAX_MAX_BODY_BYTES,
                },
            },
        },
        "sources": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {"accounts": _STRINGS, "queries": _STRINGS},
        },
        "prices": PRICES_SCHEMA,
        "budget": BUDGET_SCHEMA,
        "retention": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "raw_days": _DAYS,
                "staging_days": _DAYS,
                "grace_hours": {**_DAYS, "maximum": MAX_RETENTION_HOURS},
                "docs_pages_days": _DAYS,
                "docs_results_days": _DAYS,
            },
        },
    },
}
"""The shape of ``pipeline.yaml``; values are checked further by :func:`source_problem` and the
store and URL checks."""
_VALIDATOR = jsonschema.Draft202012Validator(CONFIG_SCHEMA)
_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
}
_SCHEMA_PROBLEMS = {"maxLength": "is too long"}


def source_problem(kind: str, value: str) -> str | None:
    """Why ``value`` is not a usable source of ``kind``, without quoting it; None when it is.

    Args:
        kind: ``"account"`` or ``"query"``.
        value: the username or the query text.

    Returns:
        The problem, or None.
    """
    if kind == "account":
        if not _USERNAME.fullmatch(value):
            return "is not a valid X username (1-15 letters, digits or underscores, without '@')"
    elif kind == "query":
        if not value.strip() or len(value) > _MAX_QUERY_LENGTH:
            return f"must be a non-empty query of at most {_MAX_QUERY_LENGTH} characters"
    else:
        return "is neither 'account' nor 'query'"
    return None


@dataclass(frozen=True)
class Source:
    """One thing to extract: an account's timeline or a recent-search query.

    Attributes:
        kind: ``"account"`` (value is a username, without ``@``) or ``"query"`` (a search query).
        value: the username or the query text, exactly as configured.
    """

    kind: SourceKind
    value: str

    def __post_init__(self) -> None:
        problem = source_problem(self.kind, self.value)
        if problem is not None:
            # The value is the user's own (a flag, a DAG param): quoting it helps them find it.
            # Values from a file are checked before they get here, and never quoted.
            raise ConfigError(f"{self.kind} {self.value!r} {problem}")

    @property
    def slug(self) -> str:
        """Stable, key-safe name used in object keys (``account-<username>``, ``query-...``).

        Usernames are case-insensitive on X, so the slug is lower case. A query slug keeps a
        readable prefix and adds a hash of the exact text, so two queries never share keys.
        """
        if self.kind == "account":
            return f"account-{self.value.lower()}"
        readable = _SLUG_UNSAFE.sub("-", self.value.lower()).strip("-")[:40].strip("-")
        digest = hashlib.sha256(self.value.encode()).hexdigest()[:10]
        return f"query-{readable}-{digest}" if readable else f"query-{digest}"

    @property
    def spec(self) -> str:
        """The source as the command line and the DAG's params spell it (``account:NAME``,
        ``query:TEXT``); :func:`parse_source` reads it back."""
        return f"{self.kind}:{self.value}"

    def __str__(self) -> str:
        return f"@{self.value}" if self.kind == "account" else f"query {self.value!r}"


def parse_source(text: str) -> Source:
    """A source from its spelling: ``account:NAME``, ``@NAME`` or ``query:TEXT``.

    Args:
        text: the spelling (a DAG param, a ``--source`` flag).

    Returns:
        The source.

    Raises:
        ConfigError: neither spelling, or an invalid username or query (the message names it).
    """
    kind, sep, value = text.partition(":")
    if sep and kind.strip() in ("account", "query"):
        return Source(kind.strip(), value.strip())  # type: ignore[arg-type]
    if text.startswith("@"):
        return Source("account", text[1:].strip())
    raise ConfigError(f"source {text!r} is neither 'account:NAME', '@NAME' nor 'query:TEXT'")


@dataclass(frozen=True)
class Window:
    """The time range to extract.

    Both bounds set: a bounded window ``[start, end)`` (Airflow's data interval); its keys are
    deterministic, so a rerun finds what the first run landed. Neither set: incremental, from the
    source's stored watermark (``since_id``) up to now.

    Attributes:
        start: inclusive lower bound, timezone-aware, or None.
        end: exclusive upper bound, timezone-aware, or None.
    """

    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ConfigError("a window needs both start and end, or neither (incremental)")
        for name, value in (("start", self.start), ("end", self.end)):
            if value is not None and value.utcoffset() is None:
                raise ConfigError(f"window {name} {value.isoformat()} has no timezone")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ConfigError(
                f"window start {self.start.isoformat()} is not before end {self.end.isoformat()}"
            )

    @property
    def bounded(self) -> bool:
        """Whether the window has explicit bounds (else it is incremental)."""
        return self.start is not None


@dataclass(frozen=True)
class RetentionPolicy:
    """How long the store keeps what it may forget (``retention:`` in ``pipeline.yaml``).

    None keeps forever. ``curated/`` and ``quarantine/`` are never expired, and nothing a curated
    partition derives from (its raw window) is deleted while the partition exists.

    Attributes:
        raw_days: ``raw/`` windows (pages, manifest, rejected bodies) whose interval ended (or,
            for an incremental window, which was opened) more than this many days ago.
        staging_days: ``staging/`` candidates never published (the audit rejected them, or the
            run stopped), this many days after they were written.
        grace_hours: nothing in ``raw/`` or ``staging/`` written less than this long ago is
            deleted, whatever its interval: a run (a backfill of an old interval, say) may be
            using it right now. A published candidate goes once it is this old.
        docs_pages_days: Data Docs validation pages (``docs/validations/``) older than this.
        docs_results_days: the validation results (``docs/results/``) the pages are built
            from; at least ``docs_pages_days``, since pages are rebuilt from them.
    """

    raw_days: int | None = None
    staging_days: int | None = 7
    grace_hours: int = 1
    docs_pages_days: int | None = None
    docs_results_days: int | None = None

    def __post_init__(self) -> None:
        problem = retention_problem(self.docs_pages_days, self.docs_results_days)
        if problem:
            raise ConfigError(f"retention: {problem}")

    def pages_before(self, now: datetime) -> datetime | None:
        """When the oldest validation that keeps its Data Docs page ran, by ``docs_pages_days``.

        Args:
            now: the time ages are measured against.

        Returns:
            ``now`` less ``docs_pages_days``; None when pages are kept forever.
        """
        return None if self.docs_pages_days is None else now - timedelta(days=self.docs_pages_days)


def retention_problem(pages_days: int | None, results_days: int | None) -> str | None:
    """Why a docs retention pair cannot work, or None: results must outlive their pages.

    Args:
        pages_days: ``docs_pages_days`` (None: forever).
        results_days: ``docs_results_days`` (None: forever).

    Returns:
        The problem, naming both keys.
    """
    if results_days is None:
        return None
    if pages_days is None or results_days < pages_days:
        return (
            "docs_results_days must be at least docs_pages_days (pages are built from the "
            "results), and needs docs_pages_days set"
        )
    return None


@dataclass(frozen=True)
class PipelineConfig:
    """What ``pipeline.yaml`` says.

    Attributes:
        sources: accounts then queries, in file order.
        store_url: ``s3://bucket/prefix`` or a directory, or None when the file names none.
        api_base_url: X API base URL (e.g. the emulator), or None for the real API.
        max_body_bytes: the largest API response body accepted (``api.max_body_bytes``), or None
            for the default.
        prices: what reads cost (``prices:``; X's published rates by default).
        budget: spending caps (``budget:``; none by default).
        retention: what the retention task deletes (``retention:``).
    """

    sources: tuple[Source, ...]
    store_url: str | None = None
    api_base_url: str | None = None
    max_body_bytes: int | None = None
    prices: Prices = Prices()
    budget: Budget = Budget()
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)


def parse_max_body_bytes(value: object, name: str) -> int:
    """Validate a response body limit: a whole number of bytes, 1 KiB to 1 GiB.

    Args:
        value: an int (from YAML) or ASCII digits (from a flag or the environment).
        name: where the value comes from, for the error message (e.g. ``--max-body-bytes``).

    Returns:
        The limit in bytes.

    Raises:
        ConfigError: the value is not a whole number of bytes in range; the message names it.
    """
    number = value
    if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
        number = int(value.strip())
    if isinstance(number, int) and not isinstance(number, bool):
        if MIN_MAX_BODY_BYTES <= number <= MAX_MAX_BODY_BYTES:
            return number
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    raise ConfigError(
        f"{name} {shown} is not a whole number of bytes from {MIN_MAX_BODY_BYTES} to "
        f"{MAX_MAX_BODY_BYTES} (default {DEFAULT_MAX_BODY_BYTES}, 8 MiB)"
    )


def parse_time(text: str, name: str = "time") -> datetime:
    """Parse an ISO 8601 time; a time without an offset is taken as UTC.

    Args:
        text: e.g. ``2024-05-01T00:00:00Z`` or ``2024-05-01``.
        name: what the value is, for the error message (e.g. ``--start``).

    Returns:
        A timezone-aware datetime.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{name} {text!r} is not an ISO 8601 time") from None
    return value.replace(tzinfo=UTC) if value.utcoffset() is None else value


def load_config(config_path: Path | str) -> PipelineConfig:
    """Read ``pipeline.yaml`` and check it against :data:`CONFIG_SCHEMA`.

    Errors name the file, the line and the key path (``sources.accounts[2]``), never a value:
    the file may be any file a DAG param names, so nothing of its content beyond key names is
    repeated. Unknown keys are errors, with the closest valid key suggested.

    Args:
        config_path: the YAML file, shaped like::

            store: s3://bucket/prefix      # optional
            api:
              base_url: http://127.0.0.1:8089   # optional; X_API_BASE_URL overrides
              max_body_bytes: 8388608           # optional; X_API_MAX_BODY_BYTES overrides
            prices: {post_read_usd: 0.005}      # optional; X's published rates by default
            budget: {per_run_usd: 5, per_month_usd: 100}   # optional caps
            sources:
              accounts: [nasa, esa]
              queries: ["#dataengineering -is:retweet"]

    Returns:
        The parsed configuration.

    Raises:
        ConfigError: the file cannot be read or breaks the schema; ``problems`` lists every
            problem found, the message names the first.
    """
    path = Path(config_path)
    text = _read_config_text(path)
    doc, lines = _compose(text, path)
    problems = sorted(
        _schema_problems(doc, lines, path) or _value_problems(doc, lines, path),
        key=lambda p: (p.line or 0, p.key),
    )
    if problems:
        raise ConfigError.from_problems(problems)
    sources_doc = doc.get("sources") or {}
    sources = [Source("account", v) for v in sources_doc.get("accounts") or []]
    sources += [Source("query", v) for v in sources_doc.get("queries") or []]
    return PipelineConfig(
        sources=tuple(dedupe_sources(sources)),
        store_url=doc.get("store"),
        api_base_url=(doc.get("api") or {}).get("base_url"),
        max_body_bytes=(doc.get("api") or {}).get("max_body_bytes"),
        prices=Prices.from_mapping(doc.get("prices")),
        budget=Budget.from_mapping(doc.get("budget")),
        retention=_retention(doc.get("retention") or {}),
    )


def _retention(doc: dict[str, Any]) -> RetentionPolicy:
    default = RetentionPolicy()
    values = {f.name: doc.get(f.name, getattr(default, f.name)) for f in fields(RetentionPolicy)}
    if values["grace_hours"] is None:  # the grace cannot be "forever": default it
        values["grace_hours"] = default.grace_hours
    return RetentionPolicy(**values)


def _read_config_text(path: Path) -> str:
    """The file's text: a regular file, at most :data:`MAX_CONFIG_BYTES`, UTF-8."""
    try:
        # Non-blocking, so a FIFO named as the config cannot hang the reader; fstat then tells.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ConfigError.at(path, None, "", "not a regular file")
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError.at(
            path, None, "", f"cannot be read ({exc.strerror or type(exc).__name__})"
        ) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError.at(path, None, "", f"larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError.at(path, line, "", "not UTF-8 text") from None


# PyYAML's messages quote the offending text; only its class and position are reported.
_YAML_PROBLEMS = {
    "ScannerError": "a token cannot be read",
    "ParserError": "the structure is broken",
    "ComposerError": "an alias or document cannot be composed",
    "ConstructorError": "a value cannot be constructed",
    "ReaderError": "a character YAML does not allow",
}


def _compose(text: str, path: Path) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    """The document as plain values, and the line of every key path in it."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = _YAML_PROBLEMS.get(type(exc).__name__, "a syntax error")
        raise ConfigError.at(path, line, "", f"not valid YAML ({problem})", column) from None
    except yaml.YAMLError as exc:
        problem = _YAML_PROBLEMS.get(type(exc).__name__, "a syntax error")
        raise ConfigError.at(path, None, "", f"not valid YAML ({problem})") from None
    lines: dict[tuple[str | int, ...], int] = {}
    if node is None:  # an empty file: no sources, no store
        return {}, lines
    return _Composer(path, lines).value(node, ()), lines


class _Composer:
    """Plain values from YAML nodes, recording each key's line; anchors and aliases refused."""

    def __init__(self, path: Path, lines: dict[tuple[str | int, ...], int]) -> None:
        self.path = path
        self.lines = lines
        self.seen: set[int] = set()
        self.constructor = yaml.SafeLoader("")

    def value(self, node: yaml.Node, at: tuple[str | int, ...]) -> Any:
        self.lines.setdefault(at, node.start_mark.line + 1)
        if id(node) in self.seen:
            raise self._error(node, at, "anchors and aliases are not supported")
        self.seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, at)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, (*at, i)) for i, item in enumerate(node.value)]
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise self._error(node, at, "a value that cannot be constructed") from None

    def _mapping(self, node: yaml.MappingNode, at: tuple[str | int, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str) or key_node.tag != "tag:yaml.org,2002:str":
                raise self._error(key_node, at, "a key that is not a plain string")
            if key in out:
                raise self._error(key_node, (*at, key), "given twice")
            self.lines[(*at, key)] = key_node.start_mark.line + 1
            out[key] = self.value(value_node, (*at, key))
        return out

    def _error(self, node: yaml.Node, at: tuple[str | int, ...], problem: str) -> ConfigError:
        return ConfigError.at(self.path, node.start_mark.line + 1, key_path(at), problem)


def key_path(at: tuple[str | int, ...]) -> str:
    """``("sources", "accounts", 2)`` as ``sources.accounts[2]``.

    Args:
        at: keys and list indexes from the document's root.

    Returns:
        The dotted path; a key that is not a plain name is shown as ``?``.
    """
    out = ""
    for part in at:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            shown = part if _PLAIN_KEY.fullmatch(part) else "?"
            out += f".{shown}" if out else shown
    return out


def _line(lines: dict[tuple[str | int, ...], int], at: tuple[str | int, ...]) -> int | None:
    while at not in lines and at:
        at = at[:-1]
    return lines.get(at)


def _schema_problems(
    doc: Any, lines: dict[tuple[str | int, ...], int], path: Path
) -> list[ConfigProblem]:
    problems = []
    for error in _VALIDATOR.iter_errors(doc):
        at = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            known = sorted(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - set(known)):
                problems.append(_unknown_key(path, lines, (*at, key), known))
            continue
        problem = _SCHEMA_PROBLEMS.get(str(error.validator), "does not fit the schema")
        if error.validator == "type":
            problem = f"must be {_type_words(error.validator_value)}"
        elif error.validator == "maxLength":
            problem = f"must be at most {error.validator_value} characters"
        elif error.validator in ("minimum", "maximum") and at[:1] == ("retention",):
            maximum = error.schema.get("maximum")
            problem = f"must be a whole number from 0 to {maximum} (or empty: keep forever)"
        elif error.validator in ("minimum", "maximum"):
            problem = (
                f"must be a whole number of bytes from {MIN_MAX_BODY_BYTES} to {MAX_MAX_BODY_BYTES}"
            )
        problems.append(ConfigProblem(str(path), _line(lines, at), key_path(at), problem))
    return problems


def _unknown_key(
    path: Path, lines: dict[tuple[str | int, ...], int], at: tuple[str | int, ...], known: list[str]
) -> ConfigProblem:
    name = str(at[-1])
    shown = name if _PLAIN_KEY.fullmatch(name) else None
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6) if shown else []
    if close:
        return ConfigProblem(
            str(path), _line(lines, at), key_path(at), f"unknown key (did you mean {close[0]!r}?)"
        )
    valid = ", ".join(known)
    if shown:
        return ConfigProblem(
            str(path), _line(lines, at), key_path(at), f"unknown key (valid keys: {valid})"
        )
    where = key_path(at[:-1])
    problem = f"unknown key, not a plain name (valid keys: {valid})"
    return ConfigProblem(str(path), _line(lines, at), where, problem)


def _type_words(value: Any) -> str:
    names = [value] if isinstance(value, str) else list(value)
    words = [_TYPE_WORDS.get(n, n) for n in names if n != "null"]
    return " or ".join(words) + (" (or empty)" if "null" in names else "")


def _value_problems(
    doc: dict[str, Any], lines: dict[tuple[str | int, ...], int], path: Path
) -> list[ConfigProblem]:
    """What the schema cannot say: usernames, queries and URLs, checked as the code does."""
    problems = []
    sources_doc = doc.get("sources") or {}
    for key, kind in (("accounts", "account"), ("queries", "query")):
        for i, value in enumerate(sources_doc.get(key) or []):
            problem = source_problem(kind, value)
            if problem:
                at = ("sources", key, i)
                problems.append(ConfigProblem(str(path), _line(lines, at), key_path(at), problem))
    if (store := doc.get("store")) is not None:
        try:
            parse_store_url(store)
        except StoreError as exc:
            problems.append(ConfigProblem(str(path), _line(lines, ("store",)), "store", str(exc)))
    base_url = (doc.get("api") or {}).get("base_url")
    if base_url is not None and (problem := api_base_url_problem(base_url)):
        url_at: tuple[str | int, ...] = ("api", "base_url")
        problems.append(ConfigProblem(str(path), _line(lines, url_at), key_path(url_at), problem))
    return problems + _policy_problems(doc, lines, path)


def _policy_problems(
    doc: dict[str, Any], lines: dict[tuple[str | int, ...], int], path: Path
) -> list[ConfigProblem]:
    """What the schema cannot say about ``retention:``, ``prices:`` and ``budget:``."""
    problems = []
    retention = doc.get("retention") or {}
    if problem := retention_problem(
        retention.get("docs_pages_days"), retention.get("docs_results_days")
    ):
        at_docs: tuple[str | int, ...] = ("retention", "docs_results_days")
        problems.append(ConfigProblem(str(path), _line(lines, at_docs), key_path(at_docs), problem))
    for section, maximum in (("prices", MAX_PRICE_USD), ("budget", MAX_BUDGET_USD)):
        for key, amount in (doc.get(section) or {}).items():
            if amount is not None and (problem := usd_problem(amount, maximum)):
                where: tuple[str | int, ...] = (section, key)
                line = _line(lines, where)
                problems.append(ConfigProblem(str(path), line, key_path(where), problem))
    return problems


def api_base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an X API base URL, without quoting it; None when it can.

    Args:
        url: e.g. ``https://api.twitter.com`` or the emulator's ``http://127.0.0.1:8089``.

    Returns:
        The problem, or None.
    """
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL with a host"
    if "@" in parts.netloc:
        return "must not carry credentials (user:password@host)"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    return None


def load_sources(config_path: Path | str) -> list[Source]:
    """The sources listed in ``pipeline.yaml``.

    Args:
        config_path: the YAML file (see :func:`load_config`).

    Returns:
        Accounts then queries, without duplicates.
    """
    return list(load_config(config_path).sources)


def dedupe_sources(sources: list[Source]) -> list[Source]:
    """Drop repeated sources (same slug), keeping the first.

    Args:
        sources: sources in the order given.

    Returns:
        The sources, each slug once.
    """
    seen: set[str] = set()
    unique = []
    for source in sources:
        if source.slug not in seen:
            seen.add(source.slug)
            unique.append(source)
    return unique


# --- store URLs --------------------------------------------------------------------------------
# S3 bucket naming rules (general purpose buckets): 3-63 lower-case letters, digits, dots and
# hyphens, starting and ending with a letter or digit.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]*")


@dataclass(frozen=True)
class StoreLocation:
    """Where a store URL points, checked for shape (nothing is opened).

    Attributes:
        kind: ``"s3"`` or ``"local"``.
        bucket: the S3 bucket (empty for a local store).
        prefix: the key prefix in the bucket, without surrounding slashes.
        path: the local directory (None for S3).
    """

    kind: Literal["s3", "local"]
    bucket: str = ""
    prefix: str = ""
    path: Path | None = None


def parse_store_url(url: str) -> StoreLocation:
    """Check a store URL's shape and say where it points.

    A URL that carries credentials (``s3://KEY:SECRET@bucket``) is refused without quoting any of
    it: S3 credentials come from the AWS credential chain or an Airflow connection, never from the
    URL, and the URL shows up in logs, summaries and lineage.

    Args:
        url: ``s3://bucket[/prefix]``, ``file:///some/dir`` or a directory path.

    Returns:
        The location.

    Raises:
        StoreError: the URL is empty, has credentials, an unknown scheme, a bad bucket name, or
            control characters.
    """
    text = url.strip()
    if not text:
        raise StoreError("the store is empty: give s3://bucket/prefix or a directory")
    if not _PRINTABLE.fullmatch(text):
        raise StoreError("the store contains control characters: give s3://bucket/prefix or a path")
    scheme = _SCHEME.match(text)
    if scheme is None:
        return StoreLocation("local", path=Path(text))
    authority = text[scheme.end() :].partition("/")[0]
    if "@" in authority:
        raise StoreError(
            "the store URL carries credentials (user:password@): remove them; S3 credentials come "
            "from the AWS credential chain (AWS_* variables, a profile, a role) or the Airflow "
            "connection named by aws_conn_id"
        )
    kind = scheme.group(1).lower()
    if kind == "file":
        if authority not in ("", "localhost"):
            raise StoreError("a file:// store URL names no host: write file:///some/dir")
        return StoreLocation("local", path=Path(urlsplit(text).path))
    if kind != "s3":
        raise StoreError(
            f"store URL scheme {kind}:// is not supported: give s3://bucket/prefix or a directory"
        )
    return _s3_location(text, authority, text[scheme.end() + len(authority) :])


def _s3_location(text: str, authority: str, path: str) -> StoreLocation:
    if "?" in text or "#" in text:
        raise StoreError("an s3:// store URL takes no query or fragment: give s3://bucket/prefix")
    if not authority:
        raise StoreError("the store URL names no bucket: give s3://bucket/prefix")
    if not _BUCKET.fullmatch(authority):
        raise StoreError(
            "the store URL's bucket name is not valid: S3 bucket names are 3-63 lower-case "
            "letters, digits, dots and hyphens"
        )
    prefix = path.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise StoreError(f"store s3://{authority}: the key prefix has an empty, '.' or '..' part")
    return StoreLocation("s3", bucket=authority, prefix=prefix)
