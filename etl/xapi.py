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

USER_LOOKUP_PATH = "/2/users/by/username/{username}"
TIMELINE_PATH = "/2/users/{id}/tweets"
SEARCH_PATH = "/2/tweets/search/recent"
TWEETS_LOOKUP_PATH = "/2/tweets"

PATHS: dict[str, str] = {
    USER_LOOKUP: USER_LOOKUP_PATH,
    TIMELINE: TIMELINE_PATH,
    SEARCH: SEARCH_PATH,
    TWEETS_LOOKUP: TWEETS_LOOKUP_PATH,
}
"""Path template of each endpoint, by endpoint name."""

SOURCE_ENDPOINTS: dict[str, str] = {"account": TIMELINE, "query": SEARCH}
"""The endpoint a source of each kind (``account``, ``query``) is read from."""

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
