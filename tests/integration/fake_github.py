"""A fake of the few GitHub REST endpoints the review comment uses, on 127.0.0.1.

``GET /repos/{owner}/{repo}/issues/{n}/comments`` (paginated with ``per_page``/``page`` and a
``Link: <...>; rel="next"`` header, as the real API does), ``POST`` to the same path, and
``PATCH /repos/{owner}/{repo}/issues/comments/{id}``. Requests without the expected bearer token
get 401; ``refuse_writes`` answers writes with 403, as the API does for a fork's read-only token;
``next_link_base`` makes listings point their next page elsewhere. Every request is recorded.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

_LIST = re.compile(r"/repos/([^/]+/[^/]+)/issues/([0-9]+)/comments")
_EDIT = re.compile(r"/repos/([^/]+/[^/]+)/issues/comments/([0-9]+)")


@dataclass
class FakeGitHub:
    """The fake's state: comments per pull request, and every request seen.

    Attributes:
        token: the bearer token accepted.
        url: ``http://127.0.0.1:<port>`` once started.
        comments: ``{(repo, number): [comment, ...]}``; a comment is ``{id, body, user: {login}}``.
        requests: ``(method, path, authorization header)`` per request.
        refuse_writes: answer POST and PATCH with 403.
        next_link_base: the origin put in ``Link`` headers (default: the fake's own).
        author: the login new comments are made as.
    """

    token: str
    url: str = ""
    comments: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    refuse_writes: bool = False
    next_link_base: str | None = None
    author: str = "github-actions[bot]"
    _next_id: int = 1000

    def add_comment(self, repo: str, number: int, body: str, login: str) -> int:
        """Put a comment on a pull request, as someone; its id."""
        self._next_id += 1
        entry = {"id": self._next_id, "body": body, "user": {"login": login, "type": "User"}}
        self.comments.setdefault((repo, number), []).append(entry)
        return self._next_id

    def writes(self) -> list[tuple[str, str]]:
        """The POST and PATCH requests, in order."""
        return [(m, p) for m, p, _ in self.requests if m in ("POST", "PATCH")]


class _Handler(BaseHTTPRequestHandler):
    state: FakeGitHub

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _start(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        """Record the request; the path's match when it is authorised and known, else answer."""
        auth = self.headers.get("Authorization", "")
        self.state.requests.append((self.command, self.path, auth))
        if auth != f"Bearer {self.state.token}":
            self._send(401, {"message": "Bad credentials"})
            return None
        match = pattern.fullmatch(urllib.parse.urlsplit(self.path).path)
        if match is None:
            self._send(404, {"message": "Not Found"})
        elif self.command != "GET" and self.state.refuse_writes:
            self._send(403, {"message": "Resource not accessible by integration"})
            return None
        return match

    def _body(self) -> str:
        length = int(self.headers.get("Content-Length", "0"))
        body: str = json.loads(self.rfile.read(length) or b"{}")["body"]
        return body

    def do_GET(self) -> None:
        match = self._start(_LIST)
        if match is None:
            return
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query)
        per_page = int(query.get("per_page", ["30"])[0])
        page = int(query.get("page", ["1"])[0])
        items = self.state.comments.get((match.group(1), int(match.group(2))), [])
        headers = {}
        if page * per_page < len(items):
            origin = self.state.next_link_base or self.state.url
            link = f"{origin}{parts.path}?per_page={per_page}&page={page + 1}"
            headers["Link"] = f'<{link}>; rel="next"'
        self._send(200, items[(page - 1) * per_page : page * per_page], headers)

    def do_POST(self) -> None:
        match = self._start(_LIST)
        if match is None:
            return
        body = self._body()
        author = self.state.author
        new_id = self.state.add_comment(match.group(1), int(match.group(2)), body, author)
        self._send(201, {"id": new_id, "body": body})

    def do_PATCH(self) -> None:
        match = self._start(_EDIT)
        if match is None:
            return
        wanted = int(match.group(2))
        every = [c for comments in self.state.comments.values() for c in comments]
        found = next((c for c in every if c["id"] == wanted), None)
        if found is None:
            self._send(404, {"message": "Not Found"})
            return
        found["body"] = self._body()
        self._send(200, found)


def serve(state: FakeGitHub) -> Iterator[FakeGitHub]:
    """Run the fake on 127.0.0.1 until the generator is closed (use from a fixture)."""
    handler = type("FakeGitHubHandler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
