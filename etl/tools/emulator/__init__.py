"""A faithful X API v2 emulator on loopback, for the demo and the tests.

It serves the read endpoints the pipeline uses from a deterministic :class:`Corpus`:

- ``GET /2/users/by/username/{username}``
- ``GET /2/users/{id}/tweets`` (user timeline, reaching back ``corpus.timeline_cap`` posts)
- ``GET /2/tweets/search/recent``
- ``GET /2/tweets?ids=...`` (lookup)
- ``GET /2/tweets/counts/recent`` and ``/counts/all`` (``granularity``, buckets,
  ``meta.total_tweet_count``) and ``GET /2/usage/tweets`` (posts served, the project cap):
  ``etl.tools.emulator._usage``

with the real API's parameters (``max_results``, ``pagination_token``/``next_token``,
``since_id``, ``until_id``, ``start_time``, ``end_time``, ``tweet.fields``, ``expansions``,
``user.fields``), response shape (``data``/``includes``/``meta``/``errors``, compact JSON, only
the requested fields), bearer-token auth (401 Problem), per-endpoint rate limits with the
``x-rate-limit-*`` headers (429 Problem) and switchable :class:`Faults`. It binds 127.0.0.1 only,
records every request without its ``Authorization`` header, and keeps the exact bytes it served.

This module is the HTTP layer (auth, rate limits, transport faults, the server and the CLI);
``etl.tools.emulator._api`` turns parameters into bodies (``_params`` checks the parameters);
``etl.tools.emulator.corpus`` holds the data.

Fault specs (``tweetpipe emulator --fault ...``, :meth:`Faults.parse`): ``5xx=N``, ``reset=N``,
``truncate=N``, ``slow=SECONDS``, ``partial-errors``, ``drift=new_field|missing_field|
changed_type|breach``, ``usage-cap=POSTS`` (post reads answer 429 ``UsageCapExceeded`` once
that many posts were served).
"""

from __future__ import annotations

import hmac
import math
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from etl import xapi
from etl.errors import HttpProblem
from etl.tools.emulator._api import Faults, dumps, generic_problem, respond, route
from etl.tools.emulator._usage import Usage, usage_capped_problem
from etl.tools.emulator.corpus import Corpus

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "DEMO_TOKEN",
    "Corpus",
    "EmulatorServer",
    "Faults",
    "RequestRecord",
    "run_emulator_cli",
    "start_emulator",
]

# A harmless demo value, deliberately not shaped like a real X bearer token.
DEMO_TOKEN = "tweetpipe-emulator-demo-token"

# Requests per 15-minute window with app-only auth, as the X developer docs list them.
DEFAULT_RATE_LIMITS = {
    xapi.USER_LOOKUP: 300,
    xapi.TIMELINE: 1500,
    xapi.SEARCH: 450,
    xapi.TWEETS_LOOKUP: 3500,
    xapi.COUNTS_RECENT: 300,
    xapi.COUNTS_ALL: 300,
    xapi.USAGE: 50,
}
# The endpoints that return posts: what a project's usage (and its cap) counts.
_POST_READS = (xapi.TIMELINE, xapi.SEARCH, xapi.TWEETS_LOOKUP)


@dataclass(frozen=True)
class RequestRecord:
    """One request as the emulator saw and answered it. Never holds the Authorization header.

    Attributes:
        method: HTTP method.
        path: URL path.
        params: query parameters (last value of each).
        kind: endpoint kind (``users_by_username``, ``users_tweets``, ``tweets_search_recent``,
            ``tweets_lookup``, ``tweets_counts_recent``, ``tweets_counts_all``, ``usage_tweets``)
            or ``unknown``.
        status: HTTP status sent, or 0 when the connection was reset instead.
        headers: response headers sent.
        body: the exact response body bytes sent.
        fault: the fault applied (``5xx``, ``reset``, ``truncate``) or None.
    """

    method: str
    path: str
    params: dict[str, str]
    kind: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    fault: str | None = None


@dataclass
class _Window:
    reset_at: float
    used: int = 0


class _State:
    """Mutable server state, guarded by one lock."""

    def __init__(
        self,
        corpus: Corpus,
        token: str,
        faults: Faults,
        limits: dict[str, int],
        rate_window: float,
        clock: Callable[[], float],
    ) -> None:
        self.corpus = corpus
        self.token = token
        self.faults = faults
        self.limits = limits
        self.rate_window = rate_window
        self.clock = clock
        self.lock = threading.Lock()
        self.log: list[RequestRecord] = []
        self.windows: dict[str, _Window] = {}
        self.seen: dict[tuple[str, str], int] = {}
        self.usage = Usage()
        if faults.usage_cap is not None:
            self.usage.cap = faults.usage_cap

    def count(self, what: str, kind: str) -> int:
        """How many times ``what`` happened for ``kind`` before (then counts this one)."""
        with self.lock:
            n = self.seen.get((what, kind), 0)
            self.seen[(what, kind)] = n + 1
            return n

    def take(self, kind: str) -> tuple[bool, dict[str, str]]:
        """Consume one request of the kind's quota: (allowed, rate-limit headers)."""
        now = self.clock()
        limit = self.limits[kind]
        with self.lock:
            window = self.windows.get(kind)
            if window is None or now >= window.reset_at:
                # Windows are counted in whole epoch seconds, like x-rate-limit-reset: the header
                # then names the window's true end, and a client waiting until it loses nothing.
                opened = float(math.floor(now))
                window = self.windows[kind] = _Window(reset_at=opened + self.rate_window)
            allowed = window.used < limit
            if allowed:
                window.used += 1
            headers = {
                "x-rate-limit-limit": str(limit),
                "x-rate-limit-remaining": str(limit - window.used),
                "x-rate-limit-reset": str(math.ceil(window.reset_at)),
            }
        return allowed, headers


# --- HTTP ---------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server_version = "tweetpipe-emulator"
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, keep-alive clients would
    # wait ~40 ms for a delayed ACK on every response.
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections end, so stop() leaves nothing hanging for long
    state: _State  # set on the per-server subclass

    def version_string(self) -> str:
        """The ``Server`` header."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silent: the request log is :attr:`EmulatorServer.request_log`."""

    def do_GET(self) -> None:
        """Answer one GET request."""
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        kind, arg = route(url.path)
        status, body, headers, fault = self._answer(kind, arg, params)
        record = RequestRecord("GET", url.path, params, kind, status, headers, body, fault)
        # Logged before sending: once a client holds the response, the log already shows it.
        with self.state.lock:
            self.state.log.append(record)
        if fault == "reset":
            self._reset()
            return
        if self.state.faults.slow_seconds:
            time.sleep(self.state.faults.slow_seconds)
        self._send(status, body, headers)

    def _answer(
        self, kind: str, arg: str, params: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str], str | None]:
        state = self.state
        problem_type = "application/problem+json"
        sent = self.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(sent, f"Bearer {state.token}".encode()):
            body = dumps(generic_problem(401, "Unauthorized"))
            return 401, body, {"content-type": problem_type}, None
        if kind == "unknown":
            return (
                404,
                dumps(generic_problem(404, "Not Found")),
                {"content-type": problem_type},
                None,
            )
        allowed, headers = state.take(kind)
        if not allowed:
            body = dumps(generic_problem(429, "Too Many Requests"))
            return 429, body, {"content-type": problem_type, **headers}, None
        if state.count("reset", kind) < state.faults.connection_resets:
            return 0, b"", headers, "reset"
        if state.count("5xx", kind) < state.faults.server_errors:
            body = dumps(generic_problem(503, "Service Unavailable"))
            return 503, body, {"content-type": problem_type, **headers}, "5xx"
        if self._usage_capped(kind):
            body = dumps(usage_capped_problem())
            return 429, body, {"content-type": problem_type, **headers}, None
        try:
            doc = respond(state, kind, arg, params)
        except HttpProblem as exc:
            return exc.status, dumps(exc.body), {"content-type": problem_type, **headers}, None
        self._count_usage(kind, doc)
        payload = dumps(doc)
        headers = {"content-type": "application/json; charset=utf-8", **headers}
        if state.count("truncate", kind) < state.faults.truncated:
            return 200, payload[: len(payload) // 2], headers, "truncate"
        return 200, payload, headers, None

    def _usage_capped(self, kind: str) -> bool:
        """Whether a post read is refused: the project's usage cap is reached."""
        with self.state.lock:
            return kind in _POST_READS and self.state.usage.over()

    def _count_usage(self, kind: str, doc: dict[str, Any]) -> None:
        """Count the posts a post read serves, as the project's usage."""
        if kind in _POST_READS and isinstance(doc.get("data"), list):
            with self.state.lock:
                self.state.usage.served(len(doc["data"]), self.state.clock())

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST: the client sees a reset, not EOF.
        # Closed here, before socketserver's orderly shutdown could send a FIN first.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    """Tracks open connections, so stopping also ends idle keep-alive ones."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer (killed, timed out) is routine, not a server bug.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer


class EmulatorServer:
    """A running emulator (background thread on 127.0.0.1).

    Attributes:
        base_url: ``http://127.0.0.1:PORT``.
        corpus: the corpus it serves.
        faults: the active fault modes.
    """

    def __init__(self, httpd: _Server, state: _State) -> None:
        self._httpd = httpd
        self._state = state
        self.corpus = state.corpus
        self.faults = state.faults
        host, port = httpd.server_address[:2]
        self.base_url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return int(self._httpd.server_address[1])

    @property
    def request_log(self) -> list[RequestRecord]:
        """Every request answered so far, in order (a copy)."""
        with self._state.lock:
            return list(self._state.log)

    @property
    def served_bodies(self) -> list[bytes]:
        """The exact body bytes of every response, in request order."""
        return [r.body for r in self.request_log]

    def clear_log(self) -> None:
        """Forget the requests recorded so far (quotas and fault counters stay)."""
        with self._state.lock:
            self._state.log.clear()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        self._thread.join(timeout=5)

    def __enter__(self) -> EmulatorServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_emulator(
    *,
    seed: int = 42,
    port: int = 0,
    token: str = DEMO_TOKEN,
    faults: Faults | None = None,
    rate_limit: int | None = None,
    rate_window: float = 900.0,
    clock: Callable[[], float] = time.time,
    corpus: Corpus | None = None,
) -> EmulatorServer:
    """Start an emulator in a background thread on 127.0.0.1.

    Args:
        seed: corpus seed (ignored when ``corpus`` is given).
        port: TCP port; 0 picks a free one.
        token: the bearer token it accepts.
        faults: fault modes (default: none).
        rate_limit: requests per window for every endpoint; None uses the real API's limits.
        rate_window: rate-limit window in seconds.
        clock: epoch seconds, for the rate-limit windows and ``x-rate-limit-reset``.
        corpus: the corpus to serve (default: ``Corpus(seed)``).

    Returns:
        The running server; stop it with :meth:`EmulatorServer.stop` or a ``with`` block.
    """
    if rate_limit is not None and rate_limit < 1:
        raise ValueError(f"rate_limit must be >= 1, got {rate_limit}")
    if rate_window <= 0:
        raise ValueError(f"rate_window must be > 0, got {rate_window}")
    limits = {k: rate_limit or v for k, v in DEFAULT_RATE_LIMITS.items()}
    state = _State(corpus or Corpus(seed), token, faults or Faults(), limits, rate_window, clock)
    handler = type("_BoundHandler", (_Handler,), {"state": state})
    httpd = _Server(("127.0.0.1", port), handler)
    return EmulatorServer(httpd, state)
