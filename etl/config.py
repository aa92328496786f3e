"""Pipeline configuration: which sources to extract, over which window, from which API.

A source is an account (by username, its timeline) or a recent-search query. ``pipeline.yaml``
lists them; the CLI can add more with ``--account``/``--query``. A window is either bounded
(``start``/``end``, what Airflow's data interval passes) or incremental (neither: continue from the
stored watermark). Nothing here holds a secret: the bearer token is resolved by the CLI or the DAG.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

SourceKind = Literal["account", "query"]

_USERNAME = re.compile(r"[A-Za-z0-9_]{1,15}")  # matched in full: "$" takes a trailing "\n"
_MAX_QUERY_LENGTH = 512  # recent search accepts queries of up to 512 characters
_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")
_WHOLE_NUMBER = re.compile(r"[0-9]{1,10}")

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024  # a real page of 100 posts is well under 2 MiB
MIN_MAX_BODY_BYTES = 1024
MAX_MAX_BODY_BYTES = 1024 * 1024 * 1024


class ConfigError(ValueError):
    """A pipeline configuration (file, source or window) is not usable; the message names it."""


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
        if self.kind == "account":
            if _USERNAME.fullmatch(self.value) is None:
                raise ConfigError(
                    f"account {self.value!r} is not a valid X username "
                    "(1-15 letters, digits or underscores, without '@')"
                )
        elif self.kind == "query":
            if not self.value.strip() or len(self.value) > _MAX_QUERY_LENGTH:
                raise ConfigError(
                    f"query {self.value!r} must be non-empty and at most "
                    f"{_MAX_QUERY_LENGTH} characters"
                )
        else:
            raise ConfigError(f"source kind {self.kind!r} is neither 'account' nor 'query'")

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
class PipelineConfig:
    """What ``pipeline.yaml`` says.

    Attributes:
        sources: accounts then queries, in file order.
        store_url: ``s3://bucket/prefix`` or a directory, or None when the file names none.
        api_base_url: X API base URL (e.g. the emulator), or None for the real API.
        max_body_bytes: the largest API response body accepted (``api.max_body_bytes``), or None
            for the default.
    """

    sources: tuple[Source, ...]
    store_url: str | None = None
    api_base_url: str | None = None
    max_body_bytes: int | None = None


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


def _string_list(doc: dict[str, Any], key: str, path: Path) -> list[str]:
    value = doc.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: sources.{key} must be a list of strings")
    return value


def _optional_str(doc: dict[str, Any], key: str, path: Path) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{path}: {key} must be a string")
    return value


def load_config(config_path: Path | str) -> PipelineConfig:
    """Read ``pipeline.yaml``.

    Args:
        config_path: the YAML file, shaped like::

            store: s3://bucket/prefix      # optional
            api:
              base_url: http://127.0.0.1:8089   # optional; X_API_BASE_URL overrides
              max_body_bytes: 8388608           # optional; X_API_MAX_BODY_BYTES overrides
            sources:
              accounts: [nasa, esa]
              queries: ["#dataengineering -is:retweet"]

    Returns:
        The parsed configuration.
    """
    path = Path(config_path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"pipeline config {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"pipeline config {path} must be a YAML mapping")
    sources_doc = doc.get("sources") or {}
    if not isinstance(sources_doc, dict):
        raise ConfigError(f"{path}: sources must be a mapping with accounts and queries")
    api_doc = doc.get("api") or {}
    if not isinstance(api_doc, dict):
        raise ConfigError(f"{path}: api must be a mapping")
    try:
        sources = [Source("account", v) for v in _string_list(sources_doc, "accounts", path)]
        sources += [Source("query", v) for v in _string_list(sources_doc, "queries", path)]
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    max_body = api_doc.get("max_body_bytes")
    if max_body is not None:
        max_body = parse_max_body_bytes(max_body, f"{path}: api.max_body_bytes")
    return PipelineConfig(
        sources=tuple(dedupe_sources(sources)),
        store_url=_optional_str(doc, "store", path),
        api_base_url=_optional_str(api_doc, "base_url", path),
        max_body_bytes=max_body,
    )


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
