"""An in-process fake of the three X API v2 endpoints the extractor calls, for unit tests.

It is a ``requests`` transport adapter: mounted on the extractor's session, tweepy's real code
runs end to end, but no socket is opened; :func:`serve_on_loopback` puts the same fake behind a
real HTTP server on 127.0.0.1. Synthetic data, shaped after the OpenAPI document
(``data``/``includes``/``meta``, ids as strings above 2**53, ``next_token`` absent on the last
page). Post ids are Snowflake ids minted from the post's ``created_at``, like the real ones, and
``add_post`` can add a post with any id text at all (hostile ids). Faults are scripted per request:
``fake.script.append(...)``. Like the API, ``since_id`` must match ``^[0-9]{1,19}$`` and, for
recent search, be no older than seven days; otherwise the answer is a 400 naming it. ``fake.token_cycle`` makes pagination loop
(``next_token`` walks the cycle for ever); over a real wire, compressed, oversized and cut-off
bodies can be scripted too.
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from etl.steps.extract.client import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Iterator

    from etl.steps.extract.client import XClient

EPOCH = datetime(2024, 5, 1, tzinfo=UTC)
TWITTER_EPOCH = datetime(2010, 11, 4, 1, 42, 54, 657000, tzinfo=UTC)
SEARCH_SINCE_ID_DAYS = 7  # recent search refuses a since_id older than this
_ID = re.compile(r"[0-9]{1,19}")
FAKE_BASE = "http://x-api.fake"
"""The base URL a :func:`mounted_client` sends to: no host of that name is ever resolved."""
FAST_RETRIES = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=4.0, reset_margin=1.0)
"""Retries short enough for the fake clock's tests (every wait is a fake sleep anyway)."""


def snowflake(created_at: datetime, sequence: int) -> int:
    """A Snowflake id minted at ``created_at``; ``sequence`` (< 2**22) keeps ids apart."""
    ms = (created_at - TWITTER_EPOCH) // timedelta(milliseconds=1)
    return (ms << 22) | (sequence & 0x3FFFFF)


class FakeClock:
    """Epoch seconds that only move when ``sleep`` is called; records every sleep."""

    def __init__(self, start: float = EPOCH.timestamp()) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, seconds
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Fault:
    """A scripted answer for the next request: a status with a body, a raw body, or an error."""

    status: int = 200
    body: bytes | None = None
    raise_error: Exception | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Post:
    id: int  # orders the posts; also the id sent, unless ``id_text`` says otherwise
    author_id: str
    created_at: datetime
    text: str
    id_text: Any = None  # sent instead of ``str(id)``: any JSON value, hostile ones too

    @property
    def sent_id(self) -> Any:
        return str(self.id) if self.id_text is None else self.id_text


class FakeXApi(BaseAdapter):
    """Serves users/by/username, users/:id/tweets, tweets/search/recent, tweets/counts/recent and
    /all and usage/tweets from memory.

    ``usage_cap`` (posts) makes post reads answer 429 ``UsageCapExceeded`` once that many posts
    were served; ``counts_override`` replaces the counts answer's ``meta`` (hostile counts).
    """

    def __init__(self, clock: FakeClock, token: str, *, rate_limit: int = 10_000) -> None:
        super().__init__()
        self.clock = clock
        self.token = token
        self.users = {"alice": "101", "bob": "102"}
        self.posts: list[Post] = []
        self.script: list[Fault] = []
        self.log: list[tuple[str, dict[str, str], int]] = []
        self.served: dict[str, list[bytes]] = {}
        self.token_cycle: list[str] = []  # when set, next_token walks this cycle and never ends
        self.rate_limit = rate_limit
        self.window = 900
        self.usage_cap: int | None = None
        self.posts_served = 0
        self.counts_override: dict[str, Any] | None = None
        self._used: dict[str, int] = {}
        self._reset_at: dict[str, int] = {}

    # --- corpus -----------------------------------------------------------------------------
    def add_posts(self, user: str, count: int, *, start: datetime | None = None) -> list[Post]:
        """``count`` posts by ``user``, one a minute from ``start``, with Snowflake ids.

        Without ``start`` they follow the newest post (from ``EPOCH`` on), so ids keep increasing.
        """
        if start is None:
            latest = max((p.created_at for p in self.posts), default=EPOCH - timedelta(minutes=1))
            start = max(EPOCH, latest + timedelta(minutes=1))
        return [self.add_post(user, start + timedelta(minutes=i)) for i in range(count)]

    def add_post(
        self, user: str, created_at: datetime, *, id_text: Any = None, order: int | None = None
    ) -> Post:
        """One post; ``id_text`` sends any id at all, ``order`` places it (default: its time)."""
        post = Post(
            id=snowflake(created_at, len(self.posts)) if order is None else order,
            author_id=self.users[user],
            created_at=created_at,
            text=f"post {len(self.posts)} by {user} &amp; friends #data",
            id_text=id_text,
        )
        self.posts.append(post)
        return post

    def posts_of(self, user: str) -> list[Post]:
        return [p for p in self.posts if p.author_id == self.users[user]]

    # --- transport ----------------------------------------------------------------------------
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = urlsplit(str(request.url))
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        endpoint = self._endpoint(url.path)
        if self.script:
            fault = self.script.pop(0)
            self.log.append((url.path, params, fault.status))
            if fault.raise_error is not None:
                raise fault.raise_error
            return self._response(request, fault.status, fault.body or b"", fault.headers)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._logged(request, url.path, params, 401, _problem("Unauthorized"), {})
        limits = self._take(endpoint)
        if limits is None:
            headers = self._limit_headers(endpoint)
            return self._logged(
                request, url.path, params, 429, _problem("Too Many Requests"), headers
            )
        if endpoint in ("search", "timeline") and self._capped():
            return self._logged(request, url.path, params, 429, USAGE_CAPPED_BODY, limits)
        status, doc = self._answer(url.path, params)
        if endpoint in ("search", "timeline") and isinstance(doc.get("data"), list):
            self.posts_served += len(doc["data"])
        body = json.dumps(doc, separators=(",", ":")).encode()
        self.served.setdefault(url.path, []).append(body)
        return self._logged(request, url.path, params, status, body, limits)

    def close(self) -> None:
        pass

    def _logged(
        self,
        request: requests.PreparedRequest,
        path: str,
        params: dict[str, str],
        status: int,
        body: bytes,
        headers: dict[str, str],
    ) -> requests.Response:
        self.log.append((path, params, status))
        return self._response(request, status, body, headers)

    @staticmethod
    def _response(
        request: requests.PreparedRequest, status: int, body: bytes, headers: dict[str, str]
    ) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response._content = body
        response.headers = CaseInsensitiveDict({"content-type": "application/json", **headers})
        response.request = request
        response.url = str(request.url)
        response.reason = "fake"
        return response

    def _capped(self) -> bool:
        return self.usage_cap is not None and self.posts_served >= self.usage_cap

    @staticmethod
    def _endpoint(path: str) -> str:
        if path.startswith("/2/users/by/username/"):
            return "lookup"
        if path.startswith("/2/tweets/counts/"):
            return "counts"
        if path == "/2/usage/tweets":
            return "usage"
        return "search" if path == "/2/tweets/search/recent" else "timeline"

    def _take(self, endpoint: str) -> dict[str, str] | None:
        now = int(self.clock())
        if now >= self._reset_at.get(endpoint, 0):
            self._reset_at[endpoint] = now + self.window
            self._used[endpoint] = 0
        if self._used[endpoint] >= self.rate_limit:
            return None
        self._used[endpoint] += 1
        return self._limit_headers(endpoint)

    def _limit_headers(self, endpoint: str) -> dict[str, str]:
        return {
            "x-rate-limit-limit": str(self.rate_limit),
            "x-rate-limit-remaining": str(self.rate_limit - self._used[endpoint]),
            "x-rate-limit-reset": str(self._reset_at[endpoint]),
        }

    # --- endpoints -----------------------------------------------------------------------------
    def _answer(self, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if path.startswith("/2/users/by/username/"):
            name = path.rsplit("/", 1)[-1].lower()
            if name not in self.users:
                return 200, {"errors": [{"title": "Not Found Error", "detail": f"no user {name}"}]}
            user: dict[str, Any] = {"id": self.users[name], "username": name, "name": name.title()}
            if "public_metrics" in params.get("user.fields", ""):
                user["public_metrics"] = {"tweet_count": len(self.posts_of(name))}
            return 200, {"data": user}
        if path.startswith("/2/tweets/counts/"):
            return 200, self._counts(params)
        if path == "/2/usage/tweets":
            return 200, {
                "data": {
                    "project_id": "1",
                    "project_cap": 10**7,
                    "project_usage": self.posts_served,
                    "cap_reset_day": 3,
                }
            }
        refused = self._refuse_since_id(params, search=path == "/2/tweets/search/recent")
        if refused is not None:
            return 400, refused
        if path == "/2/tweets/search/recent":
            query = params["query"]
            posts = [p for p in self.posts if query in p.text]
            return 200, self._page(posts, params, params.get("next_token"))
        user_id = path.split("/")[3]
        posts = [p for p in self.posts if p.author_id == user_id]
        return 200, self._page(posts, params, params.get("pagination_token"))

    def _refuse_since_id(self, params: dict[str, str], *, search: bool) -> dict[str, Any] | None:
        """The API's 400 for a since_id it will not take: malformed, or too old for search."""
        since = params.get("since_id")
        if since is None:
            return None
        oldest = datetime.fromtimestamp(self.clock(), UTC) - timedelta(days=SEARCH_SINCE_ID_DAYS)
        if _ID.fullmatch(since) is None:
            message = f"The `since_id` query parameter value [{since}] is not valid"
        elif search and TWITTER_EPOCH + timedelta(milliseconds=int(since) >> 22) < oldest:
            message = (
                f"Invalid 'since_id':'{since}'. 'since_id' must be a tweet id created after "
                f"{oldest.strftime('%Y-%m-%dT%H:%MZ')}"
            )
        else:
            return None
        return {
            "errors": [{"parameters": {"since_id": [since]}, "message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        }

    def _counts(self, params: dict[str, str]) -> dict[str, Any]:
        """One bucket per UTC day of the window (the search's posts), or ``counts_override``."""
        posts = [p for p in self.posts if params["query"] in p.text]
        if "start_time" in params:
            start = datetime.fromisoformat(params["start_time"])
            end = datetime.fromisoformat(params["end_time"])
            posts = [p for p in posts if start <= p.created_at < end]
        if "since_id" in params:
            posts = [p for p in posts if p.id > int(params["since_id"])]
        days: dict[str, int] = {}
        for p in posts:
            day = p.created_at.strftime("%Y-%m-%d")
            days[day] = days.get(day, 0) + 1
        data = [
            {"start": f"{d}T00:00:00.000Z", "end": f"{d}T23:59:59.000Z", "tweet_count": n}
            for d, n in sorted(days.items())
        ] or [
            {
                "start": "2024-05-01T00:00:00.000Z",
                "end": "2024-05-02T00:00:00.000Z",
                "tweet_count": 0,
            }
        ]
        meta = (
            self.counts_override
            if self.counts_override is not None
            else {"total_tweet_count": len(posts)}
        )
        return {"data": data, "meta": meta}

    def _page(self, posts: list[Post], params: dict[str, str], token: str | None) -> dict[str, Any]:
        posts = sorted(posts, key=lambda p: p.id, reverse=True)
        if "since_id" in params:
            posts = [p for p in posts if p.id > int(params["since_id"])]
        if "start_time" in params:
            start = datetime.fromisoformat(params["start_time"])
            end = datetime.fromisoformat(params["end_time"])
            posts = [p for p in posts if start <= p.created_at < end]
        size = int(params.get("max_results", 10))
        offset = int(token[1:]) if token and token not in self.token_cycle else 0
        chunk = posts[offset : offset + size]
        meta: dict[str, Any] = {"result_count": len(chunk)}
        if chunk:
            meta["newest_id"] = chunk[0].sent_id
            meta["oldest_id"] = chunk[-1].sent_id
        if offset + size < len(posts):
            meta["next_token"] = f"t{offset + size}"
        if self.token_cycle:
            at = self.token_cycle.index(token) + 1 if token in self.token_cycle else 0
            meta["next_token"] = self.token_cycle[at % len(self.token_cycle)]
        doc: dict[str, Any] = {"meta": meta}
        if chunk:
            doc["data"] = [
                {
                    "id": p.sent_id,
                    "text": p.text,
                    "author_id": p.author_id,
                    "created_at": p.created_at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                    "edit_history_tweet_ids": [p.sent_id],
                }
                for p in chunk
            ]
            authors = sorted({p.author_id for p in chunk})
            names = {v: k for k, v in self.users.items()}
            doc["includes"] = {
                "users": [
                    {"id": a, "username": names[a], "name": names[a].title()} for a in authors
                ]
            }
        return doc


USAGE_CAPPED_BODY = json.dumps(
    {
        "title": "UsageCapExceeded",
        "detail": "Usage cap exceeded: Monthly product cap",
        "type": "https://api.twitter.com/2/problems/usage-capped",
        "period": "Monthly",
        "scope": "Product",
    }
).encode()
"""The 429 Problem of a project over its usage cap, as the OpenAPI document describes it."""


def _problem(title: str) -> bytes:
    return json.dumps({"title": title, "type": "about:blank", "status": 0}).encode()


# --- hostile bodies -------------------------------------------------------------------------------
def deep_json(depth: int) -> bytes:
    """A JSON object whose ``data`` nests ``depth`` arrays: valid JSON, but past any parser's stack."""
    assert 0 < depth <= 1_000_000, depth
    return b'{"data":' + b"[" * depth + b"]" * depth + b"}"


def gzip_bomb(decoded_size: int) -> bytes:
    """A gzip stream of ``decoded_size`` zero bytes (about 1/1000 of that on the wire).

    Compressed a MiB at a time, so making it never holds the decoded size in memory.
    """
    assert 0 < decoded_size <= 1 << 30, decoded_size
    chunk = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    parts = []
    for start in range(0, decoded_size, len(chunk)):
        parts.append(packer.compress(chunk[: decoded_size - start]))
    parts.append(packer.flush())
    return b"".join(parts)


# --- over real HTTP -------------------------------------------------------------------------------
class _LoopbackHandler(BaseHTTPRequestHandler):
    """Hands each request to :attr:`api` and writes its answer as scripted (see below)."""

    protocol_version = "HTTP/1.1"
    api: FakeXApi

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except ConnectionError:
            pass  # the client hung up mid-body (it refused the body): nothing to answer

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        request = requests.Request(
            "GET", f"http://127.0.0.1{self.path}", headers=dict(self.headers.items())
        ).prepare()
        try:
            response = self.api.send(request)
        except Exception:
            self.close_connection = True  # the scripted network error: no answer at all
            return
        self._answer(response.status_code, response.headers, response.content)

    def _answer(self, status: int, headers: Any, body: bytes) -> None:
        chunked = headers.get("transfer-encoding") == "chunked"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "content-length" not in headers and not chunked:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for start in range(0, len(body), 1 << 16):
                piece = body[start : start + (1 << 16)]
                if chunked:  # no declared length: the size shows only as it arrives
                    piece = b"%x\r\n%s\r\n" % (len(piece), piece)
                self.wfile.write(piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the client stopped reading (a refused body)


@contextmanager
def serve_on_loopback(api: FakeXApi) -> Iterator[str]:
    """Serve ``api`` over real HTTP on 127.0.0.1 (a free port); yields its base URL.

    Each request is handed to :meth:`FakeXApi.send`, so scripts, logs and rate limits are the
    same as in-process. The wire is real, so what only a wire shows can be scripted: a
    :class:`Fault` body goes out byte for byte with its headers (``Content-Encoding`` included; a
    ``Content-Length`` among them is sent as declared, even when it lies; ``Transfer-Encoding:
    chunked`` sends the body in chunks, with no length declared), a scripted ``raise_error`` drops
    the connection without an answer, and a client that hangs up mid-body is no error.
    """
    handler = type("Handler", (_LoopbackHandler,), {"api": api})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def mounted_client(api: FakeXApi) -> XClient:
    """The extractor's own client (tweepy inside), its session answered by ``api``: no socket."""
    from etl.steps.extract.run import make_client

    client = make_client(api.token, FAKE_BASE)
    client.session.mount(FAKE_BASE, api)
    return client
