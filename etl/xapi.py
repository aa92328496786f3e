"""The X API v2 as this package calls it: base URL, endpoint names and paths, in one place.

The endpoint names are this package's own (tweepy's method names, roughly); they appear in store
keys (``endpoint=users_tweets``), in rate-limit bookkeeping and in the emulator's request log, so
they never change. The paths are the OpenAPI document's, with its ``{id}``/``{username}``
placeholders; :func:`path_pattern` turns one into a regular expression for routing.
"""

from __future__ import annotations

import re

BASE_URL = "https://api.twitter.com"
"""The real API's base URL (also the one tweepy hard-codes, and the lineage namespace)."""

PROBLEMS_URL = f"{BASE_URL}/2/problems/"
"""Prefix of the ``type`` URI of the API's problem answers (``.../invalid-request``)."""

USER_LOOKUP = "users_by_username"
"""Endpoint name of the user lookup by username."""
TIMELINE = "users_tweets"
"""Endpoint name of an account's timeline."""
SEARCH = "tweets_search_recent"
"""Endpoint name of the recent search."""
TWEETS_LOOKUP = "tweets_lookup"
"""Endpoint name of the post lookup by ids."""

COUNTS_RECENT = "tweets_counts_recent"
"""Endpoint name of the post counts of the last seven days (a dry run's query estimate)."""
COUNTS_ALL = "tweets_counts_all"
"""Endpoint name of the post counts of the full archive (windows older than seven days)."""
USAGE = "usage_tweets"
"""Endpoint name of the project's post usage report."""

USER_LOOKUP_PATH = "/2/users/by/username/{username}"
TIMELINE_PATH = "/2/users/{id}/tweets"
SEARCH_PATH = "/2/tweets/search/recent"
TWEETS_LOOKUP_PATH = "/2/tweets"
COUNTS_RECENT_PATH = "/2/tweets/counts/recent"
COUNTS_ALL_PATH = "/2/tweets/counts/all"
USAGE_PATH = "/2/usage/tweets"

PATHS: dict[str, str] = {
    USER_LOOKUP: USER_LOOKUP_PATH,
    TIMELINE: TIMELINE_PATH,
    SEARCH: SEARCH_PATH,
    TWEETS_LOOKUP: TWEETS_LOOKUP_PATH,
    COUNTS_RECENT: COUNTS_RECENT_PATH,
    COUNTS_ALL: COUNTS_ALL_PATH,
    USAGE: USAGE_PATH,
}
"""Path template of each endpoint, by endpoint name."""

SOURCE_ENDPOINTS: dict[str, str] = {"account": TIMELINE, "query": SEARCH}
"""The endpoint a source of each kind (``account``, ``query``) is read from."""

MAX_RESULTS_RANGE: dict[str, tuple[int, int]] = {TIMELINE: (5, 100), SEARCH: (10, 100)}
"""The ``max_results`` an endpoint accepts, ``(minimum, maximum)``, as the OpenAPI document says."""

RECENT_COUNTS_DAYS = 7
"""How far back ``/2/tweets/counts/recent`` reaches; an older window needs ``/counts/all``."""

USAGE_CAPPED = f"{PROBLEMS_URL}usage-capped"
"""The ``type`` of the Problem a 429 carries when the project's usage cap is reached."""

_PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def path_pattern(template: str) -> re.Pattern[str]:
    """A regular expression matching the paths of a template, one group per placeholder.

    Args:
        template: a path with ``{name}`` placeholders, e.g. :data:`TIMELINE_PATH`.

    Returns:
        The pattern (use ``fullmatch``); each placeholder matches one non-empty path segment.
    """
    parts = _PLACEHOLDER.split(template)
    return re.compile("([^/]+)".join(re.escape(part) for part in parts))
