"""The emulator's API logic: parameters in, X API v2 response bodies out (no sockets here).

Validation follows the OpenAPI document (400 ``invalid-request`` Problems naming the parameter,
unknown parameters included), bodies carry only the requested fields, and the :class:`Faults`
that change content (partial errors, schema drift) are applied here; the transport faults (5xx,
resets, truncation, delays) belong to the HTTP layer in ``etl.tools.emulator``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from etl import xapi
from etl.errors import HttpProblem, QueryError
from etl.tools.emulator import _usage
from etl.tools.emulator._params import ID_RE, in_window, invalid

if TYPE_CHECKING:
    from etl.tools.emulator.corpus import Corpus

__all__ = ["Backend", "Faults", "HttpProblem", "dumps", "generic_problem", "respond", "route"]

_TWEET_FIELDS = frozenset(
    "article attachments author_id card_uri community_id context_annotations conversation_id "
    "created_at display_text_range edit_controls edit_history_tweet_ids entities geo id "
    "in_reply_to_user_id lang media_metadata non_public_metrics note_tweet organic_metrics "
    "possibly_sensitive promoted_metrics public_metrics referenced_tweets reply_settings scopes "
    "source suggested_source_links suggested_source_links_with_counts text withheld".split()
)
_USER_FIELDS = frozenset(
    "affiliation confirmed_email connection_status created_at description entities id "
    "is_identity_verified location most_recent_tweet_id name parody pinned_tweet_id "
    "profile_banner_url profile_image_url protected public_metrics receives_your_dm subscription "
    "subscription_type url username verified verified_followers_count verified_type "
    "withheld".split()
)
_TWEET_EXPANSIONS = frozenset(
    "article.cover_media article.media_entities attachments.media_keys "
    "attachments.media_source_tweet attachments.poll_ids author_id edit_history_tweet_ids "
    "entities.mentions.username geo.place_id in_reply_to_user_id entities.note.mentions.username "
    "referenced_tweets.id referenced_tweets.id.attachments.media_keys "
    "referenced_tweets.id.author_id".split()
)
_USER_EXPANSIONS = frozenset({"affiliation.user_id", "most_recent_tweet_id", "pinned_tweet_id"})
_DEFAULT_TWEET_FIELDS = ("id", "text", "edit_history_tweet_ids")
_DEFAULT_USER_FIELDS = ("id", "name", "username")
# The OpenAPI patterns, matched in full and on ASCII only (why: :data:`._params.ID_RE`).
_USERNAME_RE = re.compile(r"[A-Za-z0-9_]{1,15}")
_COUNT_RE = re.compile(r"[0-9]{1,9}")
_PROBLEMS = xapi.PROBLEMS_URL
_DRIFTS = (None, "new_field", "missing_field", "changed_type", "breach")


def generic_problem(status: int, title: str) -> dict[str, Any]:
    """The API's generic Problem body (401, 404, 429, 503): ``type`` is ``about:blank``."""
    return {"title": title, "detail": title, "type": "about:blank", "status": status}


@dataclass(frozen=True)
class Faults:
    """Fault modes, all off by default. Counts are per endpoint kind (lookup, timeline, ...).

    Attributes:
        server_errors: the first N requests of each endpoint kind answer 503, then it recovers.
        connection_resets: the first N requests of each kind get the socket reset, no response.
        truncated: the first N 200 responses of each kind have their body cut in half
            (``Content-Length`` matches the cut body, so the client sees complete, invalid JSON).
        slow_seconds: real delay before each response.
        partial_errors: 200 pages carry a top-level ``errors`` array beside ``data``: the first
            referenced post of each timeline/search page is reported not authorized; lookups
            always report missing ids.
        drift: ``None``, ``"new_field"`` (an unknown field on every post), ``"missing_field"``
            (``public_metrics`` absent), ``"changed_type"`` (``edit_controls.edits_remaining``
            and the ``public_metrics`` counts as strings), or ``"breach"`` (every third post
            lacks ``created_at``: enough for the curated gate to fail).
        usage_cap: the project's post cap: once that many posts were served, post reads
            (timeline, search, lookup) answer HTTP 429 with X's ``UsageCapExceeded`` Problem
            (0: from the first request).
    """

    server_errors: int = 0
    connection_resets: int = 0
    truncated: int = 0
    slow_seconds: float = 0.0
    partial_errors: bool = False
    drift: str | None = None
    usage_cap: int | None = None

    def __post_init__(self) -> None:
        if self.drift not in _DRIFTS:
            raise ValueError(f"drift must be one of {_DRIFTS}, got {self.drift!r}")
        counts = (self.server_errors, self.connection_resets, self.truncated, self.slow_seconds)
        if min(counts) < 0 or (self.usage_cap is not None and self.usage_cap < 0):
            raise ValueError(f"fault counts and delays must be >= 0: {self}")

    @classmethod
    def parse(cls, specs: list[str]) -> Faults:
        """Faults from CLI specs.

        Args:
            specs: items like ``5xx=3``, ``reset=2``, ``truncate=1``, ``slow=0.2``,
                ``partial-errors``, ``drift=new_field`` (``missing_field``, ``changed_type``,
                ``breach``).

        Returns:
            The faults.

        Raises:
            ValueError: a spec is unknown or its value is malformed (the message names it).
        """
        values: dict[str, Any] = {}
        names = {"5xx": "server_errors", "reset": "connection_resets", "truncate": "truncated"}
        for spec in specs:
            key, sep, value = spec.partition("=")
            try:
                if key in names and sep:
                    values[names[key]] = int(value)
                elif key == "slow" and sep:
                    values["slow_seconds"] = float(value)
                elif key == "partial-errors" and not sep:
                    values["partial_errors"] = True
                elif key == "drift" and sep:
                    values["drift"] = value
                elif key == "usage-cap" and sep:
                    values["usage_cap"] = int(value)
                else:
                    raise ValueError("unknown fault")
                cls(**{k: v for k, v in values.items()})
            except ValueError as exc:
                raise ValueError(
                    f"fault {spec!r}: {exc}; expected 5xx=N, reset=N, truncate=N, slow=SECONDS, "
                    f"partial-errors, usage-cap=POSTS or "
                    f"drift=new_field|missing_field|changed_type|breach"
                ) from None
        return cls(**values)

    def describe(self) -> str:
        """The active faults as CLI specs (empty when none)."""
        return ", ".join(
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if getattr(self, f.name) or (f.name == "usage_cap" and self.usage_cap is not None)
        )


class Backend(Protocol):
    """What the endpoints read: the corpus, the active faults, the clock and the usage so far."""

    corpus: Corpus
    faults: Faults
    usage: _usage.Usage

    def clock(self) -> float:
        """Epoch seconds now."""
        ...


def dumps(obj: Any) -> bytes:
    """JSON as the API sends it: compact separators, UTF-8 characters unescaped."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- request parsing ------------------------------------------------------------------------------
def _csv(params: dict[str, str], name: str, allowed: frozenset[str]) -> list[str] | None:
    if name not in params:
        return None
    values = params[name].split(",")
    for v in values:
        if v not in allowed:
            raise invalid(
                name,
                v,
                f"The `{name}` query parameter value [{v}] is not one of "
                f"[{','.join(sorted(allowed))}]",
            )
    return values


def _max_results(params: dict[str, str], low: int, high: int, default: int) -> int:
    raw = params.get("max_results", str(default))
    if _COUNT_RE.fullmatch(raw) is None or not low <= int(raw) <= high:
        raise invalid(
            "max_results",
            raw,
            f"The `max_results` query parameter value [{raw}] is not between {low} and {high}",
        )
    return int(raw)


_NEXT, _PREVIOUS = "7140", "77qp"  # token prefixes: older-than and newer-than cursors


def _token_encode(prefix: str, tweet_id: str) -> str:
    n, out = int(tweet_id), ""
    while n:
        n, r = divmod(n, 36)
        out = "0123456789abcdefghijklmnopqrstuvwxyz"[r] + out
    return prefix + out


def _token_decode(name: str, raw: str) -> tuple[str, int]:
    try:
        if raw[:4] not in (_NEXT, _PREVIOUS):
            raise ValueError(raw)
        return raw[:4], int(raw[4:], 36)
    except ValueError:
        raise invalid(
            name, raw, f"The `{name}` query parameter value [{raw}] is not a valid token"
        ) from None


# --- response building ----------------------------------------------------------------------------
class _Renderer:
    """Builds a response body from corpus objects, honouring field selection and faults."""

    def __init__(self, state: Backend, params: dict[str, str], expansions: frozenset[str]) -> None:
        self.corpus = state.corpus
        self.faults = state.faults
        self.tweet_fields = _csv(params, "tweet.fields", _TWEET_FIELDS) or []
        self.user_fields = _csv(params, "user.fields", _USER_FIELDS) or []
        self.expansions = set(_csv(params, "expansions", expansions) or [])

    def tweet(self, full: dict[str, Any], *, top: bool = True) -> dict[str, Any]:
        keep = set(_DEFAULT_TWEET_FIELDS) | set(self.tweet_fields)
        out = {k: v for k, v in full.items() if k in keep}
        if top:
            self._drift(out)
        return out

    def user(self, full: dict[str, Any]) -> dict[str, Any]:
        keep = set(_DEFAULT_USER_FIELDS) | set(self.user_fields)
        return {k: v for k, v in full.items() if k in keep}

    def _drift(self, tweet: dict[str, Any]) -> None:
        drift = self.faults.drift
        if drift == "new_field":
            tweet["community_note_status"] = {"state": "none", "rated": False}
        elif drift == "missing_field":
            tweet.pop("public_metrics", None)
        elif drift == "changed_type":
            if "edit_controls" in tweet:
                ec = tweet["edit_controls"]
                tweet["edit_controls"] = {**ec, "edits_remaining": str(ec["edits_remaining"])}
            if "public_metrics" in tweet:
                tweet["public_metrics"] = {k: str(v) for k, v in tweet["public_metrics"].items()}
        elif drift == "breach" and int(tweet["id"]) % 3 == 0:
            tweet.pop("created_at", None)

    def tweets_page(self, tweets: list[dict[str, Any]], unavailable: set[str]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if tweets:
            body["data"] = [self.tweet(t) for t in tweets]
        users: dict[str, dict[str, Any]] = {}
        refs: dict[str, dict[str, Any]] = {}
        for t in tweets:
            self._expand(t, users, refs, unavailable)
        if users or refs:
            body["includes"] = {}
            if users:
                body["includes"]["users"] = [self.user(u) for u in users.values()]
            if refs:
                body["includes"]["tweets"] = [self.tweet(r, top=False) for r in refs.values()]
        return body

    def _expand(
        self,
        tweet: dict[str, Any],
        users: dict[str, dict[str, Any]],
        refs: dict[str, dict[str, Any]],
        unavailable: set[str],
    ) -> None:
        user_ids = self._expanded_user_ids(tweet)
        for ref in tweet.get("referenced_tweets", []):
            found = self.corpus.tweet(ref["id"])
            if found is None or ref["id"] in unavailable:
                continue
            if "referenced_tweets.id" in self.expansions:
                refs.setdefault(ref["id"], found)
            if "referenced_tweets.id.author_id" in self.expansions:
                user_ids.append(found["author_id"])
        if "edit_history_tweet_ids" in self.expansions:
            for old_id in tweet.get("edit_history_tweet_ids", [])[:-1]:
                old = self.corpus.tweet(old_id)
                if old is not None:
                    refs.setdefault(old_id, old)
        for uid in user_ids:
            user = self.corpus.user_by_id(uid)
            if user is not None:
                users.setdefault(uid, user)

    def _expanded_user_ids(self, tweet: dict[str, Any]) -> list[str]:
        ids = []
        if "author_id" in self.expansions:
            ids.append(tweet["author_id"])
        if "in_reply_to_user_id" in self.expansions and "in_reply_to_user_id" in tweet:
            ids.append(tweet["in_reply_to_user_id"])
        if "entities.mentions.username" in self.expansions:
            ids.extend(m["id"] for m in tweet.get("entities", {}).get("mentions", []))
        return ids


def _not_found(resource: str, parameter: str, value: str) -> dict[str, Any]:
    return {
        "value": value,
        "detail": f"Could not find {resource} with {parameter}: [{value}].",
        "title": "Not Found Error",
        "resource_type": resource,
        "parameter": parameter,
        "resource_id": value,
        "type": f"{_PROBLEMS}resource-not-found",
    }


def _not_authorized(tweet_id: str) -> dict[str, Any]:
    return {
        "value": tweet_id,
        "detail": f"Sorry, you are not authorized to see the Post with referenced_tweets.id: "
        f"[{tweet_id}].",
        "title": "Authorization Error",
        "resource_type": "tweet",
        "parameter": "referenced_tweets.id",
        "resource_id": tweet_id,
        "section": "includes",
        "type": f"{_PROBLEMS}not-authorized-for-resource",
    }


def _page(
    state: Backend,
    params: dict[str, str],
    tweets: list[dict[str, Any]],
    *,
    token_param: str,
    low: int,
    previous: bool,
) -> dict[str, Any]:
    """One page of a timeline or search result (tweets already filtered, newest first).

    Timelines also carry ``previous_token`` after the first page (search has none).
    """
    size = _max_results(params, low, 100, 10)
    render = _Renderer(state, params, _TWEET_EXPANSIONS)
    begin = 0
    if token_param in params:
        direction, cursor = _token_decode(token_param, params[token_param])
        newer = sum(1 for t in tweets if int(t["id"]) > cursor)
        # A next token starts at its post; a previous token ends just before its post.
        begin = newer if direction == _NEXT else max(0, newer - size)
    page, rest = tweets[begin : begin + size], tweets[begin + size :]
    unavailable = _unavailable(state, page)
    body = render.tweets_page(page, unavailable)
    if unavailable:
        body["errors"] = [_not_authorized(i) for i in sorted(unavailable)]
    meta: dict[str, Any] = {"result_count": len(page)}
    if page:
        meta = {"newest_id": page[0]["id"], "oldest_id": page[-1]["id"], **meta}
    if rest:
        meta["next_token"] = _token_encode(_NEXT, rest[0]["id"])
    if previous and begin > 0 and page:
        meta["previous_token"] = _token_encode(_PREVIOUS, page[0]["id"])
    body["meta"] = meta
    return body


def _unavailable(state: Backend, page: list[dict[str, Any]]) -> set[str]:
    """With the partial-errors fault, the page's first referenced post is 'not authorized'."""
    if not state.faults.partial_errors:
        return set()
    refs = (t["referenced_tweets"][0]["id"] for t in page if "referenced_tweets" in t)
    first = next(refs, None)
    return {first} if first is not None else set()


def _users_by_username(state: Backend, params: dict[str, str], username: str) -> dict[str, Any]:
    if _USERNAME_RE.fullmatch(username) is None:
        raise invalid(
            "username", username, f"The `username` path parameter value [{username}] is invalid"
        )
    render = _Renderer(state, params, _USER_EXPANSIONS)
    user = state.corpus.user_by_username(username)
    if user is None:
        return {"errors": [_not_found("user", "username", username)]}
    body: dict[str, Any] = {"data": render.user(user)}
    pinned = state.corpus.tweet(user.get("pinned_tweet_id", ""))
    if "pinned_tweet_id" in render.expansions and pinned is not None:
        body["includes"] = {"tweets": [render.tweet(pinned, top=False)]}
    return body


def _users_tweets(state: Backend, params: dict[str, str], user_id: str) -> dict[str, Any]:
    if ID_RE.fullmatch(user_id) is None:
        raise invalid("id", user_id, f"The `id` path parameter value [{user_id}] is invalid")
    excluded = set(_csv(params, "exclude", frozenset({"replies", "retweets"})) or [])
    user = state.corpus.user_by_id(user_id)
    if user is None:
        _max_results(params, 5, 100, 10)
        return {"errors": [_not_found("user", "id", user_id)]}
    tweets = [
        t
        for t in state.corpus.timeline(user_id)
        if not ("retweets" in excluded and _ref_type(t) == "retweeted")
        and not ("replies" in excluded and _ref_type(t) == "replied_to")
    ]
    return _page(
        state,
        params,
        in_window(params, tweets, ids_first=True),
        token_param="pagination_token",
        low=5,
        previous=True,
    )


def _ref_type(tweet: dict[str, Any]) -> str:
    return str((tweet.get("referenced_tweets") or [{"type": ""}])[0]["type"])


def _search_recent(state: Backend, params: dict[str, str]) -> dict[str, Any]:
    query = params.get("query")
    if params.get("sort_order", "recency") not in ("recency", "relevancy"):
        order = params["sort_order"]
        raise invalid("sort_order", order, f"The `sort_order` value [{order}] is not valid")
    if not query:
        raise invalid("query", "", "The `query` query parameter can not be empty")
    try:
        tweets = state.corpus.search(query)
    except QueryError as exc:
        raise invalid("query", query, str(exc)) from None
    if "pagination_token" in params and "next_token" not in params:
        params = {**params, "next_token": params["pagination_token"]}
    return _page(
        state,
        params,
        in_window(params, tweets, ids_first=False),
        token_param="next_token",
        low=10,
        previous=False,
    )


def _tweets_lookup(state: Backend, params: dict[str, str]) -> dict[str, Any]:
    raw = params.get("ids", "")
    ids = raw.split(",") if raw else []
    if not 1 <= len(ids) <= 100 or not all(ID_RE.fullmatch(i) for i in ids):
        raise invalid("ids", raw, f"The `ids` query parameter value [{raw}] is not 1 to 100 ids")
    render = _Renderer(state, params, _TWEET_EXPANSIONS)
    found = [t for t in (state.corpus.tweet(i) for i in ids) if t is not None]
    unavailable = _unavailable(state, found)
    body = render.tweets_page(found, unavailable)
    missing = [i for i in ids if state.corpus.tweet(i) is None]
    errors = [_not_found("tweet", "ids", i) for i in missing]
    errors += [_not_authorized(i) for i in sorted(unavailable)]
    if errors:
        body["errors"] = errors
    return body


_ROUTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (xapi.path_pattern(xapi.USER_LOOKUP_PATH), xapi.USER_LOOKUP),
    (xapi.path_pattern(xapi.TIMELINE_PATH), xapi.TIMELINE),
    (xapi.path_pattern(xapi.SEARCH_PATH), xapi.SEARCH),
    (xapi.path_pattern(xapi.TWEETS_LOOKUP_PATH), xapi.TWEETS_LOOKUP),
    (xapi.path_pattern(xapi.COUNTS_RECENT_PATH), xapi.COUNTS_RECENT),
    (xapi.path_pattern(xapi.COUNTS_ALL_PATH), xapi.COUNTS_ALL),
    (xapi.path_pattern(xapi.USAGE_PATH), xapi.USAGE),
)


def route(path: str) -> tuple[str, str]:
    """Endpoint kind and path argument (username or user id) of a URL path.

    Args:
        path: the URL path, e.g. ``/2/users/123/tweets``.

    Returns:
        ``(kind, argument)``; kind is ``unknown`` for paths the emulator does not serve.
    """
    for pattern, kind in _ROUTES:
        m = pattern.fullmatch(path)
        if m:
            return kind, unquote(m.group(1)) if m.groups() else ""
    return "unknown", ""


_FIELD_PARAMS = ("tweet.fields", "user.fields", "media.fields", "poll.fields", "place.fields")
_ALLOWED_PARAMS = {
    xapi.USER_LOOKUP: frozenset({"expansions", "tweet.fields", "user.fields"}),
    xapi.TIMELINE: frozenset(
        {"since_id", "until_id", "max_results", "pagination_token", "exclude", "start_time"}
        | {"end_time", "expansions", *_FIELD_PARAMS}
    ),
    xapi.SEARCH: frozenset(
        {"query", "start_time", "end_time", "since_id", "until_id", "max_results", "next_token"}
        | {"pagination_token", "sort_order", "expansions", *_FIELD_PARAMS}
    ),
    xapi.TWEETS_LOOKUP: frozenset({"ids", "expansions", *_FIELD_PARAMS}),
    xapi.COUNTS_RECENT: _usage.COUNTS_PARAMS,
    xapi.COUNTS_ALL: _usage.COUNTS_PARAMS,
    xapi.USAGE: _usage.USAGE_PARAMS,
}


def respond(state: Backend, kind: str, arg: str, params: dict[str, str]) -> dict[str, Any]:
    """The 200 response body of one request.

    Args:
        state: corpus and faults.
        kind: endpoint kind from :func:`route`.
        arg: path argument from :func:`route`.
        params: query parameters (last value of each).

    Returns:
        The body, ready for :func:`dumps`.

    Raises:
        HttpProblem: a parameter is invalid (400).
    """
    allowed = _ALLOWED_PARAMS[kind]
    for name, value in params.items():
        if name not in allowed:
            raise invalid(
                name,
                value,
                f"The query parameter [{name}] is not one of [{','.join(sorted(allowed))}]",
            )
    if kind == xapi.USER_LOOKUP:
        return _users_by_username(state, params, arg)
    if kind == xapi.TIMELINE:
        return _users_tweets(state, params, arg)
    if kind == xapi.SEARCH:
        return _search_recent(state, params)
    if kind in (xapi.COUNTS_RECENT, xapi.COUNTS_ALL):
        return _usage.counts(
            state.corpus,
            params,
            state.clock(),
            archive=kind == xapi.COUNTS_ALL,
        )
    if kind == xapi.USAGE:
        return _usage.usage(state.usage, params, state.clock())
    return _tweets_lookup(state, params)
