"""Extraction: posts from the X API v2 through tweepy, landed byte-for-byte in ``raw/``.

One call of :func:`extract_source` handles one source (an account's timeline or a recent-search
query) over one window: it resolves the account (user lookups are cached in ``state/users/``),
pages to the end with ``max_results=100`` (the fewest requests the API allows), lands every body
unchanged the moment it arrives, writes the run's manifest last and then advances the source's
watermark. Rate limits are honoured from the response headers (wait until ``x-rate-limit-reset``
when the quota is spent or on a 429); server errors, network errors and broken bodies are retried
with bounded exponential backoff and jitter. Clock and sleep are parameters, so tests never sleep.

A 200 whose body is not a usable page (cut short in transit, nested past the parser's stack, not
a JSON object, ``data``/``meta`` of the wrong type, a ``next_token`` that is no token) is a
transport fault, not a page: its bytes are kept under the window's ``_rejected/``
(content-addressed) and listed in the manifest, whatever the parser raised, and the request is
retried. Only usable pages land, so every page can be parsed and nothing received is lost.

Bodies are read as a stream and decoded in bounded steps: one larger than ``max_body_bytes``
(8 MiB by default; a real page is well under 2 MiB), on the wire or decoded, is refused as soon as
that is known, so a decompression bomb costs no more memory than the limit. The bytes read so far
are kept, and the refusal's evidence (status, declared length and encoding, bytes read, the limit)
goes into the manifest. A ``next_token`` that was already requested (pagination that loops) fails
the source at once. A window with pages but no manifest (an earlier call failed midway)
resumes after its last landed page instead of fetching it again; for an incremental window that
holds across runs too (:func:`etl.steps.extract.land.incremental_window` records the open window).

The watermark only advances to ids that are valid by the API's schema and plausible by their
Snowflake time (:func:`etl.ids.watermark_problem`): a post with any other id is landed like every
post, it just does not count. A stored watermark that is unusable, or that the API refuses as
``since_id``, fails the source with the ``tweetpipe state reset`` command that clears it.

The bearer token is a parameter of :func:`make_client` and lives only inside the tweepy client: it
is redacted from tweepy's debug log, and no message, manifest or landed object carries it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shlex
import time
import traceback
import zlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

import requests
import tweepy
from urllib3.response import ContentDecoder, DeflateDecoder, GzipDecoder

from etl.config import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_MAX_BODY_BYTES,
    MIN_MAX_BODY_BYTES,
    PipelineConfig,
    Source,
    Window,
    load_sources,
    parse_max_body_bytes,
)
from etl.errors import SourceFailed, WatermarkError
from etl.ids import parse_id, watermark_problem
from etl.steps.extract.land import (
    advance_watermark,
    incremental_window,
    land_page,
    land_rejected,
    landed_pages,
    read_json,
    read_watermark,
    write_manifest,
)
from etl.storage.keys import (
    manifest_key,
    page_key,
    rejected_key,
    user_key,
    watermark_key,
    window_label,
    window_prefix,
)
from etl.storage.store import sha256_hex

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from etl.storage.store import Store

__all__ = [
    "DEFAULT_API_BASE_URL",
    "DEFAULT_MAX_BODY_BYTES",
    "ExtractReport",
    "RetryPolicy",
    "Source",
    "SourceFailed",
    "SourceResult",
    "Window",
    "XClient",
    "extract_source",
    "extract_sources",
    "load_sources",
    "make_client",
    "resolve_max_body_bytes",
]

log = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.twitter.com"
_TWEEPY_HOST = "https://api.twitter.com"  # hard-coded in tweepy.Client.request
MAX_RESULTS = 100
# What the curated contract needs; everything else the API sends is kept in raw/ anyway.
TWEET_FIELDS = (
    "created_at",
    "author_id",
    "conversation_id",
    "in_reply_to_user_id",
    "referenced_tweets",
    "public_metrics",
    "entities",
    "lang",
    "possibly_sensitive",
    "edit_history_tweet_ids",
    "edit_controls",
    "note_tweet",
    "withheld",
)
EXPANSIONS = ("author_id",)
USER_FIELDS = ("username", "name")

ENDPOINT_USER_LOOKUP = "users_by_username"
ENDPOINT_TIMELINE = "users_tweets"
ENDPOINT_SEARCH = "tweets_search_recent"

_REDACTED = "[REDACTED]"
_BEARER = re.compile(r"(Bearer\s+)[^\s'\",}]+", re.IGNORECASE)

_READ_CHUNK = 64 * 1024  # wire bytes read a step; the limit is checked after each
# What a pagination token may be: the API's are base32/base36/decimal; this admits URL-safe
# base64 too, and nothing that could break a log line, a manifest or a query string.
_NEXT_TOKEN = re.compile(r"[A-Za-z0-9_.~+/=-]{1,512}")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")
_HEADER_TOKEN = re.compile(r"[A-Za-z0-9_.,; -]{1,64}")
_DECODERS: dict[str, type[ContentDecoder]] = {
    "gzip": GzipDecoder,
    "x-gzip": GzipDecoder,
    "deflate": DeflateDecoder,
}
_MAX_REASON = 1000  # an exception's text can be as long as a hostile body; messages stay readable


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before a source fails.

    Attributes:
        max_attempts: tries per request for server errors, network errors and broken bodies.
        base_delay: backoff before the second try, in seconds; doubles each try.
        max_delay: backoff cap, in seconds.
        reset_margin: seconds added after ``x-rate-limit-reset``, for clock skew and rounding.
        max_rate_limit_waits: consecutive 429s tolerated for one request.
        max_wait: longest rate-limit wait accepted, in seconds (the X API windows are 15 min).
        max_pages: pagination guard per source and window.
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    reset_margin: float = 1.0
    max_rate_limit_waits: int = 3
    max_wait: float = 16 * 60.0
    max_pages: int = 10_000

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay before try ``attempt + 1``: exponential, capped, half of it jittered.

        Args:
            attempt: tries made so far (1 after the first failure).
            rng: source of jitter.

        Returns:
            Seconds to sleep, in ``[d/2, d]`` where ``d = min(max_delay, base_delay * 2**(n-1))``.
        """
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


DEFAULT_POLICY = RetryPolicy()


@dataclass
class _Stats:
    requests: int = 0
    user_lookups: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    wait_seconds: float = 0.0


@dataclass
class _Run:
    """Per-call context: injected time, policy, counters."""

    clock: Callable[[], float]
    sleep: Callable[[float], None]
    policy: RetryPolicy
    rng: random.Random
    stats: _Stats = field(default_factory=_Stats)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def wait(self, seconds: float, why: str) -> None:
        self.stats.wait_seconds += seconds
        log.info("waiting %.2f s: %s", seconds, why)
        self.sleep(seconds)


_HEADER_NUMBER = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class _RateLimit:
    limit: int | None
    remaining: int | None
    reset: int | None

    @classmethod
    def from_headers(cls, headers: Any) -> _RateLimit:
        def number(name: str) -> int | None:
            value = headers.get(name)
            if not isinstance(value, str) or not _HEADER_NUMBER.fullmatch(value):
                return (
                    None  # int() would take "٣", "1_000" or " 7 "; a hostile header counts as none
                )
            return int(value)

        return cls(
            number("x-rate-limit-limit"),
            number("x-rate-limit-remaining"),
            number("x-rate-limit-reset"),
        )

    def as_dict(self) -> dict[str, int | None]:
        return {"limit": self.limit, "remaining": self.remaining, "reset": self.reset}


@dataclass(frozen=True)
class _Fetched:
    body: bytes
    doc: dict[str, Any]
    status: int
    rate_limit: _RateLimit
    fetched_at: str
    attempts: int
    rejected: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class _Retry:
    """A failed try worth repeating (server error, network error, broken or refused body)."""

    reason: str
    body: bytes | None = None
    refusal: dict[str, Any] | None = None


class _BodyRefused(Exception):
    """A response body over the size limit (or not decodable), refused while it streams in.

    Attributes:
        reason: for messages.
        refusal: the evidence for the manifest (status, declared length and encoding, bytes read).
        kept: the bytes read from the wire before the refusal, as received (still encoded).
    """

    def __init__(self, reason: str, refusal: dict[str, Any], kept: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refusal = refusal
        self.kept = kept


@dataclass(frozen=True)
class _RateLimited:
    reset: int | None


@dataclass(frozen=True)
class _Refused:
    """An answer retrying cannot fix (a 4xx other than 429), as data.

    Attributes:
        status: the HTTP status.
        reason: status and the Problem's title/detail, redacted.
        parameters: the request parameters the API's errors name (e.g. ``since_id``).
    """

    status: int
    reason: str
    parameters: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return self.reason


def _redact(text: str, secret: str) -> str:
    if secret:
        text = text.replace(secret, _REDACTED)
    return _BEARER.sub(rf"\g<1>{_REDACTED}", text)


class _RedactBearer(logging.Filter):
    """tweepy logs request headers (the Authorization header) at DEBUG level: redact them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "bearer" in message.lower():
            record.msg = _redact(message, "")
            record.args = None
        return True


def _install_log_redaction() -> None:
    tweepy_log = logging.getLogger("tweepy.client")
    if not any(isinstance(f, _RedactBearer) for f in tweepy_log.filters):
        tweepy_log.addFilter(_RedactBearer())


class _ReadResponse(requests.Response):
    """A response whose body is already read (within the limit) and whose ``json()`` only fails
    with ``requests.JSONDecodeError``: tweepy parses error bodies with it and catches nothing else,
    so a body nested past the parser's stack would otherwise escape as a ``RecursionError``."""

    @classmethod
    def of(cls, response: requests.Response, body: bytes) -> _ReadResponse:
        read = cls()
        read.__dict__.update(response.__dict__)
        read._content = body  # requests' own slot for a body read in full
        return read

    def json(self, **kwargs: Any) -> Any:
        try:
            return super().json(**kwargs)
        except requests.JSONDecodeError:
            raise
        except Exception as exc:  # RecursionError, MemoryError's cousins: whatever json raised
            raise requests.JSONDecodeError(exc.__class__.__name__, "", 0) from None


class _ApiSession(requests.Session):
    """Sends tweepy's requests to the configured base URL, with a timeout on every request, and
    reads every body as a stream within ``max_body_bytes`` (wire and decoded).

    Attributes:
        sent: requests attempted through this session, whatever came of them.
        last_body: the body of the latest response read in full (None before one is), so that what
            tweepy cannot digest is still kept.
    """

    def __init__(self, base_url: str, timeout: tuple[float, float], max_body_bytes: int) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.sent = 0
        self.last_body: bytes | None = None
        # Only what _BodyReader decodes in bounded steps (requests would add br and zstd when
        # their packages happen to be installed).
        self.headers["Accept-Encoding"] = "gzip, deflate"

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        if isinstance(url, str) and url.startswith(_TWEEPY_HOST):
            url = self.base_url + url[len(_TWEEPY_HOST) :]
        kwargs.setdefault("timeout", self.timeout)
        kwargs["stream"] = True  # the body is read below, within the limit
        self.last_body = None
        self.sent += 1
        response = super().request(method, url, *args, **kwargs)
        try:
            body = _BodyReader(response, self.max_body_bytes).read()
        finally:
            response.close()  # unread bytes (a refused body) close the connection, unread
        self.last_body = body
        return _ReadResponse.of(response, body)


def _header_number(headers: Any, name: str) -> int | None:
    value = str(headers.get(name) or "").strip()
    return int(value) if _CONTENT_LENGTH.fullmatch(value) else None


def _header_token(headers: Any, name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    value = str(value).strip().lower()
    return value if _HEADER_TOKEN.fullmatch(value) else "(not a header token)"


def _inflate(decoder: ContentDecoder | None, data: bytes, room: int) -> bytes:
    """``data`` decoded, stopping as soon as more than ``room`` bytes came out."""
    if decoder is None:
        return data
    out = decoder.decompress(data, max_length=room + 1)
    while decoder.has_unconsumed_tail and len(out) <= room:
        more = decoder.decompress(b"", max_length=room + 1 - len(out))
        if not more:
            break  # header or trailer bytes: they go with the next data
        out += more
    return out


class _BodyReader:
    """Reads one response body from the wire within ``limit`` bytes, wire and decoded.

    The wire bytes come from urllib3 undecoded (``decode_content=False``), so they are counted
    exactly (chunked or not) and kept as received; gzip and deflate are decoded with urllib3's own
    decoders, at most ``limit + 1`` bytes a step, so a bomb never inflates far past the limit.
    Any other ``Content-Encoding`` (the session asks for gzip or deflate only) passes through
    undecoded, as urllib3 does, and the body then fails as not JSON.
    """

    def __init__(self, response: requests.Response, limit: int) -> None:
        self.response = response
        self.limit = limit
        self.declared = _header_number(response.headers, "content-length")
        self.encoding = _header_token(response.headers, "content-encoding")
        decoder = _DECODERS.get(self.encoding or "")
        self.decoder = decoder() if decoder is not None else None
        self.wire: list[bytes] = []
        self.wire_size = 0
        self.decoded: list[bytes] = []
        self.decoded_size = 0

    def read(self) -> bytes:
        """The decoded body; :class:`_BodyRefused` as soon as it is over the limit."""
        if self.declared is not None and self.declared > self.limit:
            raise self.refuse("declared length")
        if self.response.raw is None:  # an in-process transport adapter: the body is in memory
            self.received(self.response.content)
            self.decoded_part(self.response.content)
            return self.response.content
        try:
            for data in self.response.raw.stream(_READ_CHUNK, decode_content=False):
                self.received(data)
                self.decoded_part(_inflate(self.decoder, data, self.limit - self.decoded_size))
            if self.decoder is not None:
                tail = _inflate(self.decoder, b"", self.limit - self.decoded_size)
                self.decoded_part(tail + self.decoder.flush())
        except zlib.error as exc:
            raise self.refuse(f"content not valid {self.encoding} ({exc})") from None
        return b"".join(self.decoded)

    def received(self, wire: bytes) -> None:
        self.wire.append(wire)
        self.wire_size += len(wire)
        if self.wire_size > self.limit:
            raise self.refuse("wire bytes")

    def decoded_part(self, decoded: bytes) -> None:
        self.decoded.append(decoded)
        self.decoded_size += len(decoded)
        if self.decoded_size > self.limit:
            raise self.refuse("decoded bytes")

    def refuse(self, cause: str) -> _BodyRefused:
        evidence = {
            "cause": cause,
            "max_body_bytes": self.limit,
            "status": self.response.status_code,
            "content_length": self.declared,
            "content_encoding": self.encoding,
            "wire_bytes_read": self.wire_size,
            "decoded_bytes_read": self.decoded_size,
            "kept": "the wire bytes read, as received",
        }
        what = "over the limit" if cause.endswith(("length", "bytes")) else "refused"
        reason = (
            f"body refused: {cause} {what} of {self.limit} bytes (HTTP "
            f"{self.response.status_code}, content-length {self.declared}, content-encoding "
            f"{self.encoding}; {self.wire_size} wire bytes read, {self.decoded_size} decoded)"
        )
        return _BodyRefused(reason, evidence, b"".join(self.wire))


def _problem_text(response: requests.Response) -> str:
    """HTTP status plus the Problem's title/detail (or the first API error), for messages."""
    text = f"HTTP {response.status_code}"
    try:
        doc = json.loads(response.content)
    except Exception:  # whatever a hostile body makes the parser raise (RecursionError, ...)
        return text
    if not isinstance(doc, dict):
        return text
    errors = doc.get("errors")
    problem = errors[0] if isinstance(errors, list) and errors else doc
    if isinstance(problem, dict):
        parts = [str(problem[k]) for k in ("title", "detail", "message") if problem.get(k)]
        if parts:
            text += ": " + " - ".join(parts)
    return text


_PARAMETER = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_MAX_ERRORS_READ = 100


def _named_parameters(response: requests.Response) -> frozenset[str]:
    """The request parameters an error answer's ``errors[].parameters`` names."""
    try:
        doc = json.loads(response.content)
    except Exception:  # noqa: BLE001 - any parser failure (deep nesting too) means: none named
        return frozenset()
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return frozenset()
    named: set[str] = set()
    for error in errors[:_MAX_ERRORS_READ]:
        parameters = error.get("parameters") if isinstance(error, dict) else None
        if isinstance(parameters, dict):
            named.update(k for k in parameters if isinstance(k, str) and _PARAMETER.fullmatch(k))
    return frozenset(named)


def _parse_body(body: bytes) -> dict[str, Any] | str:
    """The body as a JSON object, or why it is not one (whatever the parser raised)."""
    try:
        doc = json.loads(body)
    except Exception as exc:  # not only ValueError: nesting past the stack raises RecursionError
        detail = f"{exc.__class__.__name__}: {exc}"[:200]
        return f"body of {len(body)} bytes is not valid JSON ({detail})"
    if not isinstance(doc, dict):
        return f"body is JSON but not an object ({type(doc).__name__})"
    return doc


_PAGE_MEMBERS: dict[str, type] = {"data": list, "includes": dict, "meta": dict, "errors": list}


def _page_problem(doc: dict[str, Any]) -> str | None:
    """Why a JSON object is not a usable page of posts, or None when it is.

    Absent members are fine (an empty page has no ``data``); present ones must have the types of
    the OpenAPI document, and ``meta.next_token`` must look like a token, since it is sent back.
    """
    for name, kind in _PAGE_MEMBERS.items():
        if name in doc and not isinstance(doc[name], kind):
            return f"page {name} is {type(doc[name]).__name__}, not {kind.__name__}"
    if not all(isinstance(item, dict) for item in doc.get("data", ())):
        return "page data holds an item that is not an object"
    token = doc.get("meta", {}).get("next_token")
    if token is not None and not (isinstance(token, str) and _NEXT_TOKEN.fullmatch(token)):
        return "page meta.next_token is not a pagination token (1-512 URL-safe ASCII characters)"
    return None


class XClient:
    """An X API v2 client: tweepy underneath, rate-limit state and a user cache on top.

    Make one with :func:`make_client`; share it across the sources of a run so rate limits
    (per endpoint) and user lookups are shared too.

    Attributes:
        base_url: where requests go (the real API or the emulator).
        session: the ``requests`` session tweepy sends through (tests may mount adapters on it).
    """

    def __init__(self, api: tweepy.Client, session: _ApiSession, secret: str) -> None:
        self._api = api
        self._secret = secret
        self.session = session
        self.base_url = session.base_url
        self._limits: dict[str, _RateLimit] = {}
        self._user_ids: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"XClient(base_url={self.base_url!r})"

    def redact(self, text: str) -> str:
        """``text`` with the token (and any bearer credential) replaced by ``[REDACTED]``."""
        return _redact(text, self._secret)

    # --- one request, with rate limits and retries ---------------------------------------------
    def _fetch(
        self,
        endpoint: str,
        call: Callable[[], requests.Response],
        run: _Run,
        keep_rejected: Callable[[bytes, str, dict[str, Any] | None], dict[str, Any]],
        usable: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> _Fetched | _Refused | str:
        """Send one request until it yields a JSON object; return it, or why it failed for good.

        ``usable`` says why a JSON object is not what the endpoint answers (None: it is); such a
        body is kept and the request retried, as a broken one is.
        """
        tries = 0
        rate_limited = 0
        rejected: list[dict[str, Any]] = []
        while True:
            self._respect_quota(endpoint, run)
            run.stats.requests += 1
            outcome = self._attempt(endpoint, call, run, usable)
            if isinstance(outcome, _Fetched):
                return replace(outcome, attempts=tries + 1, rejected=tuple(rejected))
            if isinstance(outcome, str | _Refused):
                return outcome
            if isinstance(outcome, _RateLimited):
                rate_limited += 1
                if rate_limited > run.policy.max_rate_limit_waits:
                    return f"still rate limited after {rate_limited - 1} wait(s) until the reset"
                failure = self._wait_for_reset(endpoint, outcome.reset, tries + rate_limited, run)
                if failure:
                    return failure
                continue
            tries += 1
            if outcome.body is not None or outcome.refusal is not None:
                rejected.append(keep_rejected(outcome.body or b"", outcome.reason, outcome.refusal))
            if tries >= run.policy.max_attempts:
                return f"gave up after {tries} attempts; last error: {outcome.reason}"
            delay = run.policy.backoff(tries, run.rng)
            run.stats.retries += 1
            log.warning("%s: %s; retry %d in %.2f s", endpoint, outcome.reason, tries, delay)
            run.wait(delay, f"backoff before retry {tries} of {endpoint}")

    def _attempt(
        self,
        endpoint: str,
        call: Callable[[], requests.Response],
        run: _Run,
        usable: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> _Fetched | _Retry | _RateLimited | _Refused | str:
        response = self._send(endpoint, call)
        if not isinstance(response, requests.Response):
            return response
        limits = _RateLimit.from_headers(response.headers)
        self._limits[endpoint] = limits
        body = response.content
        parsed = _parse_body(body)
        if isinstance(parsed, str):
            return _Retry(parsed, body)
        problem = usable(parsed) if usable is not None else None
        if problem is not None:
            return _Retry(problem, body)
        return _Fetched(
            body=body,
            doc=parsed,
            status=response.status_code,
            rate_limit=limits,
            fetched_at=run.now().isoformat(),
            attempts=1,
            rejected=(),
        )

    def _send(
        self, endpoint: str, call: Callable[[], requests.Response]
    ) -> requests.Response | _Retry | _RateLimited | _Refused | str:
        """One request: the response, or what its failure means for the next try."""
        try:
            return call()
        except _BodyRefused as exc:
            return _Retry(exc.reason, exc.kept, exc.refusal)
        except tweepy.TooManyRequests as exc:
            self._limits[endpoint] = _RateLimit.from_headers(exc.response.headers)
            return _RateLimited(self._limits[endpoint].reset)
        except tweepy.TwitterServerError as exc:
            self._limits[endpoint] = _RateLimit.from_headers(exc.response.headers)
            return _Retry(self.redact(_problem_text(exc.response)))
        except tweepy.HTTPException as exc:
            return _Refused(
                exc.response.status_code,
                self.redact(_problem_text(exc.response)),
                _named_parameters(exc.response),
            )
        except requests.RequestException as exc:
            return _Retry(self.redact(f"{exc.__class__.__name__}: {exc}")[:_MAX_REASON])
        except Exception as exc:  # tweepy choking on a hostile answer (int() of a reset header)
            reason = self.redact(f"{exc.__class__.__name__}: {exc}")[:_MAX_REASON]
            return _Retry(reason, self.session.last_body)

    def _respect_quota(self, endpoint: str, run: _Run) -> None:
        """Wait for the reset before a request the last response said would be refused."""
        limits = self._limits.get(endpoint)
        if limits is None or limits.remaining != 0 or limits.reset is None:
            return
        delay = limits.reset + run.policy.reset_margin - run.clock()
        if delay > 0:
            run.stats.rate_limit_waits += 1
            run.wait(delay, f"{endpoint} quota spent until reset {limits.reset}")
        self._limits[endpoint] = _RateLimit(limits.limit, None, None)

    def _wait_for_reset(self, endpoint: str, reset: int | None, attempt: int, run: _Run) -> str:
        """After a 429: wait until the reset the response names; no reset header -> backoff."""
        if reset is None:
            delay = run.policy.backoff(attempt, run.rng)
        else:
            delay = max(reset - run.clock(), 0.0) + run.policy.reset_margin
        if delay > run.policy.max_wait:
            return f"rate limited until {reset}, {delay:.0f} s away (more than the max wait)"
        run.stats.rate_limit_waits += 1
        run.wait(delay, f"{endpoint} answered 429 until reset {reset}")
        self._limits[endpoint] = _RateLimit(None, None, None)
        return ""

    # --- endpoints ------------------------------------------------------------------------------
    def timeline_page(self, user_id: str, params: dict[str, Any], token: str | None) -> Any:
        """One page of ``GET /2/users/{id}/tweets`` (a ``requests.Response``)."""
        return self._api.get_users_tweets(user_id, pagination_token=token, **params)

    def search_page(self, query: str, params: dict[str, Any], token: str | None) -> Any:
        """One page of ``GET /2/tweets/search/recent`` (a ``requests.Response``)."""
        return self._api.search_recent_tweets(query, next_token=token, **params)

    def lookup_user(self, username: str) -> Any:
        """``GET /2/users/by/username/{username}`` (a ``requests.Response``)."""
        return self._api.get_user(username=username, user_fields=list(USER_FIELDS))

    def cached_user_id(self, username: str) -> str | None:
        """The user id resolved earlier in this process, if any."""
        return self._user_ids.get(username.lower())

    def remember_user_id(self, username: str, user_id: str) -> None:
        """Cache a resolved user id for the rest of the process."""
        self._user_ids[username.lower()] = user_id


def make_client(
    token: str,
    base_url: str | None = None,
    *,
    timeout: tuple[float, float] = (10.0, 60.0),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> XClient:
    """An X API v2 client authenticated with an app bearer token.

    Args:
        token: the bearer token (resolved by the caller: ``X_BEARER_TOKEN``, an Airflow
            connection). It stays inside the client.
        base_url: API base URL, e.g. the emulator's ``http://127.0.0.1:8089``; None for the real
            API (``https://api.twitter.com``).
        timeout: (connect, read) timeout of every request, in seconds; a timeout is retried.
        max_body_bytes: the largest response body accepted, on the wire and decoded; a larger
            one is refused while it streams in (1 KiB to 1 GiB; see :func:`resolve_max_body_bytes`).

    Returns:
        The client.
    """
    if not token or not token.strip():
        raise ValueError("the X API bearer token is empty")
    if not MIN_MAX_BODY_BYTES <= max_body_bytes <= MAX_MAX_BODY_BYTES:
        raise ValueError(
            f"max_body_bytes {max_body_bytes} is not between {MIN_MAX_BODY_BYTES} and "
            f"{MAX_MAX_BODY_BYTES}"
        )
    parts = urlsplit(base_url or DEFAULT_API_BASE_URL)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"API base URL {base_url!r} is not an http(s) URL")
    if "@" in parts.netloc:  # requests would send them as basic auth, replacing the bearer token
        raise ValueError("the API base URL must not carry credentials (user:password@host)")
    _install_log_redaction()
    session = _ApiSession(base_url or DEFAULT_API_BASE_URL, timeout, max_body_bytes)
    api = tweepy.Client(bearer_token=token, return_type=requests.Response, wait_on_rate_limit=False)
    api.session = session
    return XClient(api, session, token)


# --- one source ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceResult:
    """What :func:`extract_source` did for one source.

    Attributes:
        source: the source.
        status: ``"landed"`` (this call completed the window) or ``"skipped"`` (its manifest
            already existed, so nothing was fetched).
        window: the ``window=`` label in the keys.
        page_keys: every page of the window, in order (also for a skipped window).
        manifest_key: the manifest of the window.
        pages: number of pages.
        tweets: posts in those pages.
        api_errors: partial errors (``errors`` beside ``data``) in those pages.
        requests: HTTP requests sent by this call (user lookup, pages, retries, 429s).
        user_lookups: user-lookup requests among them (0 when the id was cached).
        retries: tries repeated after a server error, network error or broken body.
        rate_limit_waits: waits for a rate-limit reset.
        wait_seconds: seconds spent waiting (rate limits and backoff).
        resumed_pages: pages found landed by an earlier, unfinished call and not fetched again.
        rejected_keys: broken bodies kept under ``_rejected/``.
        newest_id: newest post id in the window, or None.
        watermark: the source's watermark after the call.
    """

    source: Source
    status: str
    window: str
    page_keys: tuple[str, ...]
    manifest_key: str
    pages: int
    tweets: int
    api_errors: int = 0
    requests: int = 0
    user_lookups: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    wait_seconds: float = 0.0
    resumed_pages: int = 0
    rejected_keys: tuple[str, ...] = ()
    newest_id: str | None = None
    watermark: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Small JSON-ready summary (e.g. for XCom)."""
        doc = dict(self.__dict__)
        doc["source"] = {"kind": self.source.kind, "value": self.source.value}
        doc["slug"] = self.source.slug
        doc["page_keys"] = list(self.page_keys)
        doc["rejected_keys"] = list(self.rejected_keys)
        return doc


@dataclass
class _Page:
    number: int
    key: str
    sha256: str
    size: int
    tweets: int
    api_errors: int
    newest_id: str | None
    next_token: str | None
    request_token: str | None
    created: bool
    resumed: bool = False
    fetch: dict[str, Any] | None = None
    ids_not_counted: int = 0

    def entry(self) -> dict[str, Any]:
        doc = {k: v for k, v in self.__dict__.items() if k != "fetch"}
        doc["pagination_token"] = doc.pop("request_token")
        if self.fetch is not None:
            doc.update(self.fetch)
        return doc


class _Facts(NamedTuple):
    tweets: int
    api_errors: int
    newest_id: str | None
    next_token: str | None
    ids_not_counted: int


def _page_facts(doc: dict[str, Any], now: datetime) -> _Facts:
    """What a parsed page holds; ``newest_id`` counts only ids fit for the watermark.

    A post whose id is not one (malformed, in the future, at odds with its ``created_at``) is
    landed with its page like any other; it is counted in ``ids_not_counted`` instead.
    """
    data = doc.get("data")
    tweets = data if isinstance(data, list) else []
    errors = doc.get("errors")
    newest: int | None = None
    not_counted = 0
    for tweet in tweets:
        if not isinstance(tweet, dict):
            continue  # not a post at all: the transform quarantines it
        post_id = tweet.get("id")
        if watermark_problem(post_id, tweet.get("created_at"), now) is not None:
            not_counted += 1
            continue
        number = parse_id(post_id)
        if number is not None and (newest is None or number > newest):
            newest = number
    meta = doc.get("meta")
    token = meta.get("next_token") if isinstance(meta, dict) else None
    return _Facts(
        len(tweets),
        len(errors) if isinstance(errors, list) else 0,
        str(newest) if newest is not None else None,
        str(token) if token else None,
        not_counted,
    )


def _newest(*ids: str | None) -> str | None:
    present = [n for n in map(parse_id, ids) if n is not None]
    return str(max(present)) if present else None


def _resume(store: Store, prefix: str, now: datetime) -> list[_Page]:
    """Pages an earlier, unfinished call landed under ``prefix`` (read back, not refetched)."""
    pages = []
    token: str | None = None
    for number, key in enumerate(landed_pages(store, prefix), start=1):
        body = store.get(key)
        parsed = _parse_body(body)
        if isinstance(parsed, str) or key != page_key(prefix, number):
            raise ValueError(f"{store.url}/{key}: cannot resume from it ({parsed or 'gap'})")
        facts = _page_facts(parsed, now)
        pages.append(
            _Page(
                number,
                key,
                sha256_hex(body),
                len(body),
                facts.tweets,
                facts.api_errors,
                facts.newest_id,
                facts.next_token,
                token,
                created=False,
                resumed=True,
                ids_not_counted=facts.ids_not_counted,
            )
        )
        token = facts.next_token
    return pages


def _request_params(source: Source, window: Window, since_id: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "max_results": MAX_RESULTS,
        "tweet_fields": list(TWEET_FIELDS),
        "expansions": list(EXPANSIONS),
        "user_fields": list(USER_FIELDS),
    }
    if window.start is not None and window.end is not None:
        params["start_time"] = window.start
        params["end_time"] = window.end
    elif since_id is not None:
        params["since_id"] = since_id
    return params


def _manifest_params(params: dict[str, Any]) -> dict[str, Any]:
    """Request parameters as sent on the wire (tweepy's names and formats); no credentials."""
    wire: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, list):
            value = ",".join(value)
        elif isinstance(value, datetime):
            value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        wire[name.replace("_fields", ".fields")] = value
    return wire


class _SourceRun:
    """The state of one :func:`extract_source` call."""

    def __init__(
        self, client: XClient, store: Store, source: Source, window: Window, run: _Run
    ) -> None:
        self.client = client
        self.store = store
        self.source = source
        self.window = window
        self.run = run
        self.started = run.now()
        self.endpoint = ENDPOINT_TIMELINE if source.kind == "account" else ENDPOINT_SEARCH
        self.pages: list[_Page] = []
        self.since_id: str | None = None
        if window.bounded:
            self.label = window_label(window, None, self.started)
        else:
            self.since_id = self._watermark()
            self.label = incremental_window(
                store, source.slug, self.endpoint, self.since_id, self.started
            )
        self.prefix = window_prefix(source.slug, self.endpoint, self.label)
        self.manifest_key = manifest_key(self.prefix)
        self.rejected: list[str] = []
        self.user: dict[str, Any] = {}
        self.on_page: Callable[[int], None] | None = None

    def fail(self, reason: str) -> SourceFailed:
        stats = self.run.stats
        return SourceFailed(
            self.source,
            reason,
            [p.key for p in self.pages],
            requests=stats.requests,
            user_lookups=stats.user_lookups,
            retries=stats.retries,
            rate_limit_waits=stats.rate_limit_waits,
            wait_seconds=stats.wait_seconds,
        )

    def reset_command(self) -> str:
        """The command that clears this source's watermark, ready to paste into a shell."""
        return (
            f"tweetpipe state reset --source {shlex.quote(self.source.spec)} "
            f"--store {shlex.quote(self.store.url)}"
        )

    def _watermark(self) -> str | None:
        """The stored watermark, checked before any request; unusable -> the source fails."""
        try:
            return read_watermark(self.store, self.source.slug, now=self.started)
        except WatermarkError as exc:
            raise self.fail(f"{exc}; clear it with `{self.reset_command()}`") from None

    def refused_since_id(self, refused: _Refused) -> str:
        """Why a request carrying the watermark as ``since_id`` was refused, and the way out."""
        blamed = "since_id" in refused.parameters
        cause = "refused" if blamed else "refused a request carrying"
        return (
            f"the API {cause} since_id={self.since_id}, the watermark "
            f"{watermark_key(self.source.slug)}; if it is wrong, clear it with "
            f"`{self.reset_command()}` (the next run starts without it)"
        )

    def keep_rejected(
        self, what: str
    ) -> Callable[[bytes, str, dict[str, Any] | None], dict[str, Any]]:
        def keep(body: bytes, reason: str, refusal: dict[str, Any] | None) -> dict[str, Any]:
            record: dict[str, Any] = {"key": None, "sha256": None, "size": 0, "reason": reason}
            if body:  # a body refused on its declared length left nothing to keep
                key = rejected_key(self.prefix, what, sha256_hex(body))
                put = land_rejected(self.store, key, body)
                self.rejected.append(put.key)
                record.update(key=put.key, sha256=put.sha256, size=put.size)
            if refusal is not None:
                record["refusal"] = refusal
            return record

        return keep

    def resolve_user(self) -> str:
        """The account's user id: process cache, then ``state/users/``, then one lookup."""
        username = self.source.value
        cached = self.client.cached_user_id(username)
        if cached is None:
            cached = self._stored_user_id(username)
        if cached is not None:
            self.user = {"username": username, "id": cached, "looked_up": False}
            self.client.remember_user_id(username, cached)
            return cached
        before = self.run.stats.requests
        fetched = self.client._fetch(
            ENDPOINT_USER_LOOKUP,
            lambda: self.client.lookup_user(username),
            self.run,
            self.keep_rejected("user-lookup"),
        )
        self.run.stats.user_lookups += self.run.stats.requests - before
        if not isinstance(fetched, _Fetched):
            raise self.fail(f"user lookup of @{username}: {fetched}")
        data = fetched.doc.get("data")
        if not isinstance(data, dict) or parse_id(data.get("id")) is None:
            raise self.fail(
                f"user lookup of @{username} found no user: {_errors_text(fetched.doc)}"
            )
        user_id = str(data["id"])
        self.store.put(user_key(username), fetched.body, "application/json")
        self.client.remember_user_id(username, user_id)
        self.user = {
            "username": username,
            "id": user_id,
            "looked_up": True,
            "state_key": user_key(username),
        }
        return user_id

    def _stored_user_id(self, username: str) -> str | None:
        try:
            doc = read_json(self.store, user_key(username))
        except ValueError:
            return None  # a broken cache entry is looked up again and overwritten
        data = doc.get("data") if doc else None
        if isinstance(data, dict) and parse_id(data.get("id")) is not None:
            return str(data["id"])
        return None

    def page_call(
        self, target: str, params: dict[str, Any], token: str | None
    ) -> Callable[[], requests.Response]:
        if self.source.kind == "account":
            return lambda: self.client.timeline_page(target, params, token)
        return lambda: self.client.search_page(target, params, token)

    def land(self, fetched: _Fetched, token: str | None) -> _Page:
        number = len(self.pages) + 1
        put = land_page(self.store, page_key(self.prefix, number), fetched.body)
        facts = _page_facts(fetched.doc, self.run.now())
        if facts.ids_not_counted:
            log.warning(
                "%s: %d post id(s) in %s do not count for the watermark (malformed, in the "
                "future or at odds with created_at)",
                self.source,
                facts.ids_not_counted,
                put.key,
            )
        return _Page(
            number,
            put.key,
            put.sha256,
            put.size,
            facts.tweets,
            facts.api_errors,
            facts.newest_id,
            facts.next_token,
            token,
            created=put.created,
            ids_not_counted=facts.ids_not_counted,
            fetch={
                "status": fetched.status,
                "fetched_at": fetched.fetched_at,
                "rate_limit": fetched.rate_limit.as_dict(),
                "attempts": fetched.attempts,
                "rejected": list(fetched.rejected),
            },
        )


def _errors_text(doc: dict[str, Any]) -> str:
    errors = doc.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return " - ".join(str(first[k]) for k in ("title", "detail") if first.get(k)) or "no data"
    return "no data"


def _skipped(source: Source, manifest: dict[str, Any], key: str, store: Store) -> SourceResult:
    pages = manifest.get("pages", [])
    totals = manifest.get("totals", {})
    return SourceResult(
        source=source,
        status="skipped",
        window=str(manifest.get("window", {}).get("label", "")),
        page_keys=tuple(p["key"] for p in pages),
        manifest_key=key,
        pages=len(pages),
        tweets=int(totals.get("tweets", 0)),
        api_errors=int(totals.get("api_errors", 0)),
        newest_id=manifest.get("newest_id"),
        watermark=_watermark_or_none(store, source.slug),
    )


def _watermark_or_none(store: Store, slug: str) -> str | None:
    """The watermark for a report; an unusable one reads as none (the next run names it)."""
    try:
        return read_watermark(store, slug)
    except WatermarkError as exc:
        log.warning("%s", exc)
        return None


def _advance(job: _SourceRun, newest_id: str | None) -> str | None:
    """Advance the watermark after the manifest. An unusable one fails an incremental run (it
    read it at the start, so it changed meanwhile); a bounded run, which does not start from it,
    lands anyway and leaves it to the next incremental run to report, with a warning now."""
    try:
        return advance_watermark(
            job.store, job.source.slug, newest_id, manifest=job.manifest_key, now=job.run.now()
        )
    except WatermarkError as exc:
        reason = (
            f"the window is landed ({job.manifest_key}) but the watermark cannot advance: {exc}; "
            f"clear it with `{job.reset_command()}`"
        )
        if not job.window.bounded:
            raise job.fail(reason) from None
        log.warning("%s: %s", job.source, reason)
        return None


def _paginate(job: _SourceRun, target: str, params: dict[str, Any]) -> None:
    token = job.pages[-1].next_token if job.pages else None
    finished = bool(job.pages) and token is None
    # Every token requested so far (resumed pages too), by the page it fetched: a next_token among
    # them means the pagination loops, and following it would never end.
    requested = {p.request_token: p.number for p in job.pages}
    while not finished:
        if token in requested:
            raise job.fail(_cycle_reason(token, requested[token], len(job.pages)))
        if len(job.pages) >= job.run.policy.max_pages:
            raise job.fail(f"pagination did not end after {job.run.policy.max_pages} pages")
        requested[token] = len(job.pages) + 1
        fetched = job.client._fetch(
            job.endpoint,
            job.page_call(target, params, token),
            job.run,
            job.keep_rejected(f"page-{len(job.pages) + 1:05d}"),
            _page_problem,
        )
        if not isinstance(fetched, _Fetched):
            reason = f"page {len(job.pages) + 1} of {job.endpoint}: {fetched}"
            if isinstance(fetched, _Refused) and fetched.status == 400 and job.since_id:
                reason += f"; {job.refused_since_id(fetched)}"
            raise job.fail(reason)
        page = job.land(fetched, token)
        job.pages.append(page)
        log.debug("landed %s (%d posts)", page.key, page.tweets)
        if job.on_page is not None:
            job.on_page(page.tweets)
        token = page.next_token
        finished = token is None


def _cycle_reason(token: str | None, asked_by: int, last: int) -> str:
    shown = repr(token) if token is None or len(token) <= 64 else repr(token[:61] + "...")
    return (
        f"next_token {shown} of page {last} was already requested for page {asked_by}: "
        f"the API's pagination loops (a cycle of {last - asked_by + 1} page(s))"
    )


def _manifest(job: _SourceRun, params: dict[str, Any], finished: datetime) -> dict[str, Any]:
    stats = job.run.stats
    path = "/2/users/{id}/tweets" if job.source.kind == "account" else "/2/tweets/search/recent"
    return {
        "manifest_version": 1,
        "source": {"kind": job.source.kind, "value": job.source.value, "slug": job.source.slug},
        "endpoint": job.endpoint,
        "api_base_url": job.client.base_url,
        "request": {"method": "GET", "path": path, "params": _manifest_params(params)},
        "user": job.user or None,
        "window": {
            "label": job.label,
            "start": job.window.start.astimezone(UTC).isoformat() if job.window.start else None,
            "end": job.window.end.astimezone(UTC).isoformat() if job.window.end else None,
            "since_id": job.since_id,
        },
        "started_at": job.started.isoformat(),
        "finished_at": finished.isoformat(),
        "pages": [p.entry() for p in job.pages],
        "next_token_chain": [p.next_token for p in job.pages],
        "rejected": list(job.rejected),
        "newest_id": _newest(*(p.newest_id for p in job.pages)),
        "totals": {
            "pages": len(job.pages),
            "tweets": sum(p.tweets for p in job.pages),
            "api_errors": sum(p.api_errors for p in job.pages),
            "requests": stats.requests,
            "user_lookups": stats.user_lookups,
            "retries": stats.retries,
            "rate_limit_waits": stats.rate_limit_waits,
            "wait_seconds": round(stats.wait_seconds, 3),
            "resumed_pages": sum(p.resumed for p in job.pages),
        },
    }


def extract_source(
    client: XClient,
    store: Store,
    source: Source,
    window: Window,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    policy: RetryPolicy = DEFAULT_POLICY,
    on_page: Callable[[int], None] | None = None,
    rng: random.Random | None = None,
) -> SourceResult:
    """Extract one source over one window and land it in ``raw/``.

    Pages are landed as they arrive; the manifest is written after the last page, then the
    watermark advances (to the newest plausible post id, :func:`etl.ids.watermark_problem`). A
    window whose manifest exists is skipped without a request; a window with pages but no
    manifest (an earlier call failed or was killed midway) resumes after its last page, for an
    incremental window also in a later run from the same watermark.

    Args:
        client: from :func:`make_client`.
        store: where ``raw/`` and ``state/`` live.
        source: the account or query.
        window: bounded (``start``/``end``) or incremental (from the watermark).
        clock: epoch seconds now (injectable: tests pass a fake clock).
        sleep: waits that many seconds (injectable: tests pass a fake that advances the clock).
        policy: retries, backoff and rate-limit margins.
        on_page: called with the post count of each landed page (progress bars).
        rng: jitter source (default: a fresh ``random.Random``).

    Returns:
        Keys, counts and waits of the window.

    Raises:
        SourceFailed: the API refused, or kept failing after the retries; pages landed so far stay.
            Also when the stored watermark is unusable or refused as ``since_id``: the message
            names it and the ``tweetpipe state reset`` command that clears it.
        etl.storage.store.ObjectExistsError: a key already holds a different body (never overwritten).
    """
    run = _Run(clock, sleep, policy, rng or random.Random())
    job = _SourceRun(client, store, source, window, run)
    job.on_page = on_page
    existing = read_json(store, job.manifest_key)
    if existing is not None:
        log.info("%s: %s already complete, skipped", source, job.manifest_key)
        return _skipped(source, existing, job.manifest_key, store)
    target = job.resolve_user() if source.kind == "account" else source.value
    params = _request_params(source, window, job.since_id)
    try:
        job.pages = _resume(store, job.prefix, run.now())
    except ValueError as exc:
        raise job.fail(str(exc)) from None
    _paginate(job, target, params)
    manifest = _manifest(job, params, run.now())
    write_manifest(store, job.manifest_key, manifest)
    watermark = _advance(job, manifest["newest_id"])
    totals = manifest["totals"]
    return SourceResult(
        source=source,
        status="landed",
        window=job.label,
        page_keys=tuple(p.key for p in job.pages),
        manifest_key=job.manifest_key,
        pages=totals["pages"],
        tweets=totals["tweets"],
        api_errors=totals["api_errors"],
        requests=run.stats.requests,
        user_lookups=run.stats.user_lookups,
        retries=run.stats.retries,
        rate_limit_waits=run.stats.rate_limit_waits,
        wait_seconds=run.stats.wait_seconds,
        resumed_pages=totals["resumed_pages"],
        rejected_keys=tuple(job.rejected),
        newest_id=manifest["newest_id"],
        watermark=watermark,
    )


# --- many sources -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExtractReport:
    """What :func:`extract_sources` did.

    Attributes:
        results: the sources that landed (or were already complete).
        failures: the sources that failed, with their errors; the others still landed.
    """

    results: tuple[SourceResult, ...]
    failures: tuple[SourceFailed, ...]

    @property
    def ok(self) -> bool:
        """Whether every source landed."""
        return not self.failures


def extract_sources(
    client: XClient,
    store: Store,
    sources: Iterable[Source],
    window: Window,
    **kwargs: Any,
) -> ExtractReport:
    """Extract several sources one after the other; a failing source fails alone.

    Whatever a source raises (an API that keeps failing, a store error, a disk that is full, a bug)
    becomes its :class:`SourceFailed`, with the requests it sent and a message without the token;
    the next source runs all the same. Only ``KeyboardInterrupt`` and ``SystemExit`` stop the loop.

    Args:
        client: from :func:`make_client` (shared, so rate limits and user lookups are shared).
        store: where ``raw/`` and ``state/`` live.
        sources: accounts and queries.
        window: the same window for every source.
        **kwargs: passed to :func:`extract_source` (``clock``, ``sleep``, ``policy``, ...).

    Returns:
        Results and failures, in source order.
    """
    results: list[SourceResult] = []
    failures: list[SourceFailed] = []
    for source in sources:
        sent = client.session.sent
        try:
            results.append(extract_source(client, store, source, window, **kwargs))
        except SourceFailed as exc:
            log.error("%s", exc)
            failures.append(exc)
        except Exception as exc:  # a source fails alone, whatever it raised
            failures.append(_unexpected_failure(client, source, exc, client.session.sent - sent))
    return ExtractReport(tuple(results), tuple(failures))


def _unexpected_failure(
    client: XClient, source: Source, exc: Exception, requests_sent: int
) -> SourceFailed:
    """A :class:`SourceFailed` for an exception extract_source does not raise on purpose."""
    reason = client.redact(f"{exc.__class__.__name__}: {exc}")[:_MAX_REASON]
    failed = SourceFailed(source, reason, requests=requests_sent)
    log.error("%s", failed)
    # The traceback is for debugging only, and goes through the same redaction as the message.
    trace = "".join(traceback.format_exception(exc))
    log.debug("%s failed with this traceback:\n%s", source, client.redact(trace))
    return failed


# --- command line -------------------------------------------------------------------------------
def resolve_max_body_bytes(config: PipelineConfig | None, flag: str | None = None) -> int:
    """The response body limit: ``flag``, else ``X_API_MAX_BODY_BYTES``, else the config's
    ``api.max_body_bytes``, else :data:`DEFAULT_MAX_BODY_BYTES` (8 MiB).

    Args:
        config: the pipeline config, if any.
        flag: the value of ``--max-body-bytes``, if given.

    Returns:
        The limit in bytes.

    Raises:
        etl.config.ConfigError: the flag or the variable is not a whole number of bytes in range.
    """
    if flag is not None:
        return parse_max_body_bytes(flag, "--max-body-bytes")
    from_env = os.environ.get("X_API_MAX_BODY_BYTES", "").strip()
    if from_env:
        return parse_max_body_bytes(from_env, "X_API_MAX_BODY_BYTES")
    if config is not None and config.max_body_bytes is not None:
        return config.max_body_bytes
    return DEFAULT_MAX_BODY_BYTES
