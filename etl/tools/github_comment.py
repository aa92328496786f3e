"""Post the contract review as one pull-request comment, edited in place on later pushes.

The pull-request workflow's ``comment`` job runs this with the only token that may write to the
pull request, so it is kept small and standard-library only: the job installs nothing and runs
this file from the base branch, reviewed code, never from the pull request under review. What it
posts is data the ``contracts`` job produced from the pull request (``comment.md`` and
``review.json``, handed over as an artifact): it is checked, never executed.

The comment is found again by a hidden marker (:data:`COMMENT_MARKER`) at the start of its body,
among the comments written by the workflow's own account, so a later push edits it instead of
adding another. When a pull request no longer touches the contracts, an earlier comment is edited
to say so, and none is created.

Run as ``python3 -m etl.tools.github_comment --body comment.md --state review.json`` with the runner's
variables: ``GITHUB_TOKEN``, ``GITHUB_REPOSITORY``, ``GITHUB_EVENT_PATH`` (the pull request's
number) and ``GITHUB_API_URL``. Exit codes: 0 posted, updated or nothing to do; 1 the API refused;
2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from etl.errors import CommentApiError, CommentInputError

COMMENT_MARKER = "<!-- tweetpipe-contract-review -->"
# The host refuses comment bodies over 65,536 characters.
MAX_BODY_CHARS = 65_536
DEFAULT_AUTHOR = "github-actions[bot]"
DEFAULT_API_URL = "https://api.github.com"
PER_PAGE = 100
MAX_PAGES = 50
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
TIMEOUT_S = 30.0
MAX_STATE_BYTES = 64 * 1024

_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
_API_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?")
_AUTHOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}(?:\[bot\])?")
_LINK_NEXT = re.compile(r'<([^<>\s]+)>\s*;\s*rel="next"')


class ReviewState(TypedDict):
    """What the ``contracts`` job tells the ``comment`` job beside the body (``review.json``).

    Attributes:
        touched: the pull request changes ``contracts/`` or ``expectations/``.
        ok: every gate passed.
        base: the revision compared with, as shown.
    """

    touched: bool
    ok: bool
    base: str


@dataclass(frozen=True)
class Target:
    """Where the comment goes.

    Attributes:
        api_url: the REST API root, without a trailing slash.
        repository: ``owner/name``.
        number: the pull request's number.
        token: the token (never shown in messages).
        author: the login whose comment is edited in place.
    """

    api_url: str
    repository: str
    number: int
    token: str
    author: str = DEFAULT_AUTHOR

    def __repr__(self) -> str:
        return f"Target({self.api_url!r}, {self.repository!r}, #{self.number})"


# --- reading what the contracts job left -----------------------------------------------------------
def read_body(path: Path) -> str:
    """The comment body, checked: it carries the marker and fits in a comment.

    Args:
        path: ``comment.md``.

    Returns:
        The body.

    Raises:
        CommentInputError: unreadable, without the marker, or too long.
    """
    try:
        if path.stat().st_size > 4 * MAX_BODY_CHARS:
            raise CommentInputError(f"{path}: larger than a comment can be")
        body = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommentInputError(f"{path}: cannot read the comment body: {exc}") from exc
    if not body.startswith(COMMENT_MARKER):
        raise CommentInputError(f"{path}: does not start with {COMMENT_MARKER}")
    if len(body) > MAX_BODY_CHARS:
        raise CommentInputError(f"{path}: {len(body)} characters, over {MAX_BODY_CHARS}")
    return body


def read_state(path: Path) -> ReviewState:
    """The review's state, checked field by field.

    Args:
        path: ``review.json``.

    Returns:
        The state.

    Raises:
        CommentInputError: unreadable, not JSON, or a field of the wrong type.
    """
    try:
        if path.stat().st_size > MAX_STATE_BYTES:
            raise CommentInputError(f"{path}: larger than {MAX_STATE_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CommentInputError(f"{path}: cannot read the review state: {exc}") from exc
    if not isinstance(data, dict):
        raise CommentInputError(f"{path}: not a JSON object")
    for key, kind in (("touched", bool), ("ok", bool), ("base", str)):
        if not isinstance(data.get(key), kind):
            raise CommentInputError(f"{path}: {key!r} is not a {kind.__name__}")
    return ReviewState(touched=data["touched"], ok=data["ok"], base=data["base"])


def target_from_environment(environ: dict[str, str], author: str = DEFAULT_AUTHOR) -> Target:
    """The pull request to comment on, from the runner's variables.

    Args:
        environ: the environment.
        author: the login whose comment is edited.

    Returns:
        The target.

    Raises:
        CommentInputError: a variable is missing or malformed, or the event is no pull request.
    """
    token = environ.get("GITHUB_TOKEN", "")
    if not token:
        raise CommentInputError("GITHUB_TOKEN is not set")
    repository = environ.get("GITHUB_REPOSITORY", "")
    if not _REPOSITORY.fullmatch(repository):
        raise CommentInputError(f"GITHUB_REPOSITORY {repository[:100]!r} is not owner/name")
    api_url = environ.get("GITHUB_API_URL") or DEFAULT_API_URL
    if not _API_URL.fullmatch(api_url):
        raise CommentInputError(f"GITHUB_API_URL {api_url[:100]!r} is not a plain http(s) URL")
    if not _AUTHOR.fullmatch(author):
        raise CommentInputError(f"--author {author[:50]!r} is not a login")
    return Target(api_url.rstrip("/"), repository, _pull_number(environ), token, author)


def _pull_number(environ: dict[str, str]) -> int:
    event_path = environ.get("GITHUB_EVENT_PATH", "")
    if not event_path:
        raise CommentInputError("GITHUB_EVENT_PATH is not set")
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CommentInputError(f"GITHUB_EVENT_PATH: cannot read the event: {exc}") from exc
    pull = event.get("pull_request") if isinstance(event, dict) else None
    number = pull.get("number") if isinstance(pull, dict) else None
    if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 10**9:
        raise CommentInputError("GITHUB_EVENT_PATH: not a pull_request event with a number")
    return number


# --- the API ---------------------------------------------------------------------------------------
def _request(
    target: Target, method: str, url: str, payload: dict[str, Any] | None = None
) -> tuple[Any, str | None]:
    """One API call: the parsed JSON answer, and the next page's URL for listings."""
    data = json.dumps(payload).encode("utf-8") if payload is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/vnd.github+json")
    request.add_header("X-GitHub-Api-Version", "2022-11-28")
    request.add_header("Authorization", f"Bearer {target.token}")
    request.add_header("User-Agent", "tweetpipe-contract-review")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    path = urllib.parse.urlsplit(url).path
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            raw = response.read(MAX_RESPONSE_BYTES + 1)
            link = response.headers.get("Link", "")
    except urllib.error.HTTPError as exc:
        raise CommentApiError(f"{method} {path}: the API answered {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CommentApiError(f"{method} {path}: {type(exc).__name__}") from None
    if len(raw) > MAX_RESPONSE_BYTES:
        raise CommentApiError(f"{method} {path}: answer larger than {MAX_RESPONSE_BYTES} bytes")
    try:
        answer = json.loads(raw) if raw else None
    except ValueError:
        raise CommentApiError(f"{method} {path}: the answer is not JSON") from None
    return answer, _next_page(target, link)


def _next_page(target: Target, link: str) -> str | None:
    match = _LINK_NEXT.search(link)
    if match is None:
        return None
    url = match.group(1)
    # The token goes with every request: never follow a link off the API's own origin.
    if not url.startswith(f"{target.api_url}/"):
        raise CommentApiError("a listing's next page lies outside the API")
    return url


def find_comment(target: Target) -> tuple[int, str] | None:
    """The review comment already on the pull request: its id and body, None when there is none.

    Args:
        target: the pull request.

    Returns:
        The first comment by ``target.author`` whose body starts with the marker.

    Raises:
        CommentApiError: the API refused, or the listing is longer than :data:`MAX_PAGES` pages.
    """
    url: str | None = (
        f"{target.api_url}/repos/{target.repository}/issues/{target.number}/comments"
        f"?per_page={PER_PAGE}"
    )
    for _ in range(MAX_PAGES):
        if url is None:
            return None
        comments, url = _request(target, "GET", url)
        if not isinstance(comments, list):
            raise CommentApiError("the comment listing is not a list")
        for comment in comments:
            if _is_review_comment(comment, target.author):
                return int(comment["id"]), str(comment["body"])
    if url is None:
        return None
    raise CommentApiError(f"more than {MAX_PAGES * PER_PAGE} comments; gave up looking")


def _is_review_comment(comment: Any, author: str) -> bool:
    if not isinstance(comment, dict) or not isinstance(comment.get("id"), int):
        return False
    user = comment.get("user")
    login = user.get("login") if isinstance(user, dict) else None
    body = comment.get("body")
    return login == author and isinstance(body, str) and body.startswith(COMMENT_MARKER)


def post_review(target: Target, body: str, touched: bool) -> str:
    """Create the review comment, or edit the one already there.

    Args:
        target: the pull request.
        body: the comment, starting with :data:`COMMENT_MARKER`.
        touched: whether the pull request changes contracts (no new comment otherwise).

    Returns:
        ``created``, ``updated``, ``unchanged`` or ``skipped``.

    Raises:
        CommentApiError: the API refused.
    """
    found = find_comment(target)
    if found is None:
        if not touched:
            return "skipped"
        url = f"{target.api_url}/repos/{target.repository}/issues/{target.number}/comments"
        _request(target, "POST", url, {"body": body})
        return "created"
    comment_id, current = found
    if current == body:
        return "unchanged"
    url = f"{target.api_url}/repos/{target.repository}/issues/comments/{comment_id}"
    _request(target, "PATCH", url, {"body": body})
    return "updated"


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    """``python3 -m etl.tools.github_comment --body FILE --state FILE [--author LOGIN]``.

    Args:
        argv: arguments (default: the process's).
        environ: the environment (default: the process's).

    Returns:
        0 posted, updated or nothing to do; 1 the API refused; 2 bad input.
    """
    parser = argparse.ArgumentParser(
        prog="python3 -m etl.tools.github_comment", description=__doc__
    )
    parser.add_argument("--body", required=True, metavar="FILE", help="comment.md")
    parser.add_argument("--state", required=True, metavar="FILE", help="review.json")
    parser.add_argument("--author", default=DEFAULT_AUTHOR, help="whose comment is edited")
    args = parser.parse_args(argv)
    try:
        body = read_body(Path(args.body))
        state = read_state(Path(args.state))
        target = target_from_environment(
            dict(os.environ if environ is None else environ), args.author
        )
    except CommentInputError as exc:
        print(f"github_comment: error: {exc}", file=sys.stderr)
        return 2
    try:
        outcome = post_review(target, body, state["touched"])
    except CommentApiError as exc:
        print(f"github_comment: {exc}", file=sys.stderr)
        return 1
    print(f"contract review comment on {target.repository}#{target.number}: {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
