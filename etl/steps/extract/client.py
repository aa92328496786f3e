"""The X API client: one request at a time, with rate limits honoured and failures retried.

:meth:`XClient.fetch` sends one request until it yields a JSON object, or says why it failed for
good. Rate limits are honoured from the response headers (wait until ``x-rate-limit-reset`` when
the quota is spent or on a 429); server errors, network errors and broken bodies are retried with
bounded exponential backoff and jitter, and every broken body is kept through the caller's
``keep_rejected``. Clock and sleep live in a :class:`FetchContext`, so tests never sleep.

The bearer token lives only inside the tweepy client; :meth:`XClient.redact` scrubs it from any
text the client's caller is about to show.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import requests
import tweepy

from etl import xapi
from etl.redact import redact_token
from etl.steps.extract.session import ApiSession, BodyRefused

if TYPE_CHECKING:
    import random
    from collections.abc import Callable

log = logging.getLogger(__name__)

USER_FIELDS = ("username", "name")
"""User fields asked for, by the user lookup and with every page."""

_COUNTS = ("query", "start_time", "end_time", "since_id", "granularity", "next_token")
_USAGE_FIELDS = ("cap_reset_day", "daily_project_usage", "project_cap", "project_usage")

MAX_REASON = 1000
"""Longest exception text in a message: it can be as long as a hostile body."""


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
class FetchStats:
    """Counters of one source's requests, for its result and manifest."""

    requests: int = 0
    user_lookups: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    wait_seconds: float = 0.0


@dataclass
class FetchContext:
    """What every request of one :func:`~etl.steps.extract.run.extract_source` call shares:
    injected time (clock and sleep), the retry policy, the jitter source and the counters."""

    clock: Callable[[], float]
    sleep: Callable[[float], None]
    policy: RetryPolicy
    rng: random.Random
    stats: FetchStats = field(default_factory=FetchStats)

    def now(self) -> datetime:
        """The injected clock's time, in UTC."""
        return datetime.fromtimestamp(self.clock(), UTC)

    def wait(self, seconds: float, why: str) -> None:
        """Sleep ``seconds`` (through the injected sleep), counted and logged with ``why``."""
        self.stats.wait_seconds += seconds
        log.info("waiting %.2f s: %s", seconds, why)
        self.sleep(seconds)


_HEADER_NUMBER = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class RateLimit:
    """An endpoint's rate-limit headers; a missing or hostile one reads as None."""

    limit: int | None
    remaining: int | None
    reset: int | None

    @classmethod
    def from_headers(cls, headers: Any) -> RateLimit:
        """The ``x-rate-limit-*`` headers of a response (ASCII digits only, or None)."""

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
        """For the manifest."""
        return {"limit": self.limit, "remaining": self.remaining, "reset": self.reset}


@dataclass(frozen=True)
class Fetched:
    """A body that parsed as a usable JSON object, with how it was fetched.

    Attributes:
        body: the bytes as received (decoded), to land unchanged.
        doc: the body parsed.
        status: the HTTP status.
        rate_limit: the response's rate-limit headers.
        fetched_at: when it arrived (ISO 8601, UTC).
        attempts: tries it took.
        rejected: the records of the broken bodies kept on the way.
    """

    body: bytes
    doc: dict[str, Any]
    status: int
    rate_limit: RateLimit
    fetched_at: str
    attempts: int
    rejected: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class _Retry:
    """A failed try worth repeating (server error, network error, broken or refused body)."""

    reason: str
    body: bytes | None = None
    refusal: dict[str, Any] | None = None


@dataclass(frozen=True)
class _RateLimited:
    reset: int | None


@dataclass(frozen=True)
class Refused:
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


@dataclass(frozen=True)
class UsageCapped:
    """A 429 whose Problem says the project's usage cap is reached (``UsageCapExceeded``).

    Waiting for the rate-limit reset does not lift it, so it is never retried.

    Attributes:
        reason: status and the Problem's title/detail, redacted.
        period: ``Daily`` or ``Monthly`` when the Problem says so, else None.
        scope: ``Account`` or ``Product`` when the Problem says so, else None.
    """

    reason: str
    period: str | None = None
    scope: str | None = None

    def __str__(self) -> str:
        return self.reason


_CAP_PERIODS = ("Daily", "Monthly")
_CAP_SCOPES = ("Account", "Product")


def _usage_capped(response: requests.Response, redact: Callable[[str], str]) -> UsageCapped | None:
    """The usage-cap Problem of a 429, or None when it is a plain rate limit."""
    try:
        doc = json.loads(response.content)
    except Exception:  # noqa: BLE001 - an unreadable 429 is a plain rate limit
        return None
    if not isinstance(doc, dict) or doc.get("type") != xapi.USAGE_CAPPED:
        return None
    period, scope = doc.get("period"), doc.get("scope")
    return UsageCapped(
        redact(_problem_text(response))[:MAX_REASON],
        period if period in _CAP_PERIODS else None,
        scope if scope in _CAP_SCOPES else None,
    )


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


def parse_json_object(body: bytes) -> dict[str, Any] | str:
    """A response body as a JSON object, or why it is not one (whatever the parser raised).

    Args:
        body: the bytes as received.

    Returns:
        The object, or the reason as text.
    """
    try:
        doc = json.loads(body)
    except Exception as exc:  # not only ValueError: nesting past the stack raises RecursionError
        detail = f"{exc.__class__.__name__}: {exc}"[:200]
        return f"body of {len(body)} bytes is not valid JSON ({detail})"
    if not isinstance(doc, dict):
        return f"body is JSON but not an object ({type(doc).__name__})"
    return doc


class XClient:
    """An X API v2 client: tweepy underneath, rate-limit state and a user cache on top.

    Make one with :func:`make_client`; share it across the sources of a run so rate limits
    (per endpoint) and user lookups are shared too.

    Attributes:
        base_url: where requests go (the real API or the emulator).
        session: the ``requests`` session tweepy sends through (tests may mount adapters on it).
    """

    def __init__(self, api: tweepy.Client, session: ApiSession, secret: str) -> None:
        self._api = api
        self._secret = secret
        self.session = session
        self.base_url = session.base_url
        self._limits: dict[str, RateLimit] = {}
        self._user_ids: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"XClient(base_url={self.base_url!r})"

    def redact(self, text: str) -> str:
        """``text`` with the token (and any bearer credential) replaced by ``[REDACTED]``."""
        return redact_token(text, self._secret)

    # --- one request, with rate limits and retries ---------------------------------------------
    def fetch(
        self,
        endpoint: str,
        call: Callable[[], requests.Response],
        context: FetchContext,
        keep_rejected: Callable[[bytes, str, dict[str, Any] | None], dict[str, Any]],
        usable: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> Fetched | Refused | UsageCapped | str:
        """Send one request until it yields a JSON object; return it, or why it failed for good.

        Args:
            endpoint: the endpoint's name (:mod:`etl.xapi`), for its rate-limit state and logs.
            call: sends the request once (e.g. ``lambda: client.lookup_user(name)``).
            context: clock, sleep, retry policy and the counters this request adds to.
            keep_rejected: called with each broken or refused body, its reason and the refusal's
                evidence (or None); returns the record that goes into the manifest.
            usable: says why a JSON object is not what the endpoint answers (None: it is); such a
                body is kept and the request retried, as a broken one is.

        Returns:
            The fetched body; a :class:`Refused` answer (a 4xx retrying cannot fix); a
            :class:`UsageCapped` 429 (the project's usage cap, sent once, never retried); or, as text,
            why the request failed after the retries and rate-limit waits the policy allows.
        """
        tries = 0
        rate_limited = 0
        rejected: list[dict[str, Any]] = []
        while True:
            self._respect_quota(endpoint, context)
            context.stats.requests += 1
            outcome = self._attempt(endpoint, call, context, usable)
            if isinstance(outcome, Fetched):
                return replace(outcome, attempts=tries + 1, rejected=tuple(rejected))
            if isinstance(outcome, str | Refused | UsageCapped):
                return outcome
            if isinstance(outcome, _RateLimited):
                rate_limited += 1
                if rate_limited > context.policy.max_rate_limit_waits:
                    return f"still rate limited after {rate_limited - 1} wait(s) until the reset"
                failure = self._wait_for_reset(
                    endpoint, outcome.reset, tries + rate_limited, context
                )
                if failure:
                    return failure
                continue
            tries += 1
            if outcome.body is not None or outcome.refusal is not None:
                rejected.append(keep_rejected(outcome.body or b"", outcome.reason, outcome.refusal))
            if tries >= context.policy.max_attempts:
                return f"gave up after {tries} attempts; last error: {outcome.reason}"
            delay = context.policy.backoff(tries, context.rng)
            context.stats.retries += 1
            log.warning("%s: %s; retry %d in %.2f s", endpoint, outcome.reason, tries, delay)
            context.wait(delay, f"backoff before retry {tries} of {endpoint}")

    def _attempt(
        self,
        endpoint: str,
        call: Callable[[], requests.Response],
        context: FetchContext,
        usable: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> Fetched | _Retry | _RateLimited | Refused | UsageCapped | str:
        response = self._send(endpoint, call)
        if not isinstance(response, requests.Response):
            return response
        limits = RateLimit.from_headers(response.headers)
        self._limits[endpoint] = limits
        body = response.content
        parsed = parse_json_object(body)
        if isinstance(parsed, str):
            return _Retry(parsed, body)
        problem = usable(parsed) if usable is not None else None
        if problem is not None:
            return _Retry(problem, body)
        return Fetched(
            body=body,
            doc=parsed,
            status=response.status_code,
            rate_limit=limits,
            fetched_at=context.now().isoformat(),
            attempts=1,
            rejected=(),
        )

    def _send(
        self, endpoint: str, call: Callable[[], requests.Response]
    ) -> requests.Response | _Retry | _RateLimited | Refused | UsageCapped | str:
        """One request: the response, or what its failure means for the next try."""
        try:
            return call()
        except BodyRefused as exc:
            return _Retry(exc.reason, exc.kept, exc.refusal)
        except tweepy.TooManyRequests as exc:
            self._limits[endpoint] = RateLimit.from_headers(exc.response.headers)
            capped = _usage_capped(exc.response, self.redact)
            return capped or _RateLimited(self._limits[endpoint].reset)
        except tweepy.TwitterServerError as exc:
            self._limits[endpoint] = RateLimit.from_headers(exc.response.headers)
            return _Retry(self.redact(_problem_text(exc.response)))
        except tweepy.HTTPException as exc:
            return Refused(
                exc.response.status_code,
                self.redact(_problem_text(exc.response)),
                _named_parameters(exc.response),
            )
        except requests.RequestException as exc:
            return _Retry(self.redact(f"{exc.__class__.__name__}: {exc}")[:MAX_REASON])
        except Exception as exc:  # tweepy choking on a hostile answer (int() of a reset header)
            reason = self.redact(f"{exc.__class__.__name__}: {exc}")[:MAX_REASON]
            return _Retry(reason, self.session.last_body)

    def _respect_quota(self, endpoint: str, context: FetchContext) -> None:
        """Wait for the reset before a request the last response said would be refused."""
        limits = self._limits.get(endpoint)
        if limits is None or limits.remaining != 0 or limits.reset is None:
            return
        delay = limits.reset + context.policy.reset_margin - context.clock()
        if delay > 0:
            context.stats.rate_limit_waits += 1
            context.wait(delay, f"{endpoint} quota spent until reset {limits.reset}")
        self._limits[endpoint] = RateLimit(limits.limit, None, None)

    def _wait_for_reset(
        self, endpoint: str, reset: int | None, attempt: int, context: FetchContext
    ) -> str:
        """After a 429: wait until the reset the response names; no reset header -> backoff."""
        if reset is None:
            delay = context.policy.backoff(attempt, context.rng)
        else:
            delay = max(reset - context.clock(), 0.0) + context.policy.reset_margin
        if delay > context.policy.max_wait:
            return f"rate limited until {reset}, {delay:.0f} s away (more than the max wait)"
        context.stats.rate_limit_waits += 1
        context.wait(delay, f"{endpoint} answered 429 until reset {reset}")
        self._limits[endpoint] = RateLimit(None, None, None)
        return ""

    # --- endpoints ------------------------------------------------------------------------------
    def timeline_page(self, user_id: str, params: dict[str, Any], token: str | None) -> Any:
        """One page of ``GET /2/users/{id}/tweets`` (a ``requests.Response``)."""
        return self._api.get_users_tweets(user_id, pagination_token=token, **params)

    def search_page(self, query: str, params: dict[str, Any], token: str | None) -> Any:
        """One page of ``GET /2/tweets/search/recent`` (a ``requests.Response``)."""
        return self._api.search_recent_tweets(query, next_token=token, **params)

    def lookup_user(self, username: str, fields: tuple[str, ...] = USER_FIELDS) -> Any:
        """``GET /2/users/by/username/{username}`` (a ``requests.Response``)."""
        return self._api.get_user(username=username, user_fields=list(fields))

    def counts_page(self, params: dict[str, Any], token: str | None, *, archive: bool) -> Any:
        """One page of ``GET /2/tweets/counts/recent`` (``/all`` with ``archive``)."""
        path = xapi.COUNTS_ALL_PATH if archive else xapi.COUNTS_RECENT_PATH
        query = dict(params, next_token=token) if token else dict(params)
        return self._api._make_request("GET", path, params=query, endpoint_parameters=_COUNTS)

    def usage(self, days: int) -> Any:
        """``GET /2/usage/tweets`` over the last ``days`` days (a ``requests.Response``)."""
        params = {"days": days, "usage_fields": list(_USAGE_FIELDS)}
        return self._api._make_request(
            "GET", xapi.USAGE_PATH, params=params, endpoint_parameters=("days", "usage.fields")
        )

    def cached_user_id(self, username: str) -> str | None:
        """The user id resolved earlier in this process, if any."""
        return self._user_ids.get(username.lower())

    def remember_user_id(self, username: str, user_id: str) -> None:
        """Cache a resolved user id for the rest of the process."""
        self._user_ids[username.lower()] = user_id
