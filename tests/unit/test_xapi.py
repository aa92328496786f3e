"""The X API's endpoint table: path templates turn into the routes the emulator serves."""

from __future__ import annotations

import pytest

from etl import xapi


@pytest.mark.parametrize(
    ("path", "endpoint", "argument"),
    [
        ("/2/users/by/username/alice", xapi.USER_LOOKUP, ("alice",)),
        ("/2/users/2244994945/tweets", xapi.TIMELINE, ("2244994945",)),
        ("/2/tweets/search/recent", xapi.SEARCH, ()),
        ("/2/tweets", xapi.TWEETS_LOOKUP, ()),
    ],
)
def test_a_path_matches_its_endpoint_only(path: str, endpoint: str, argument: tuple[str]) -> None:
    matched = {
        name: m.groups()
        for name, template in xapi.PATHS.items()
        if (m := xapi.path_pattern(template).fullmatch(path))
    }

    assert matched == {endpoint: argument}


def test_a_placeholder_matches_one_segment_and_dots_are_literal() -> None:
    timeline = xapi.path_pattern(xapi.TIMELINE_PATH)

    assert timeline.fullmatch("/2/users/1/2/tweets") is None
    assert timeline.fullmatch("/2/users//tweets") is None
    assert xapi.path_pattern("/a.b/{id}").fullmatch("/axb/1") is None


def test_every_source_kind_reads_an_endpoint_with_a_path() -> None:
    assert set(xapi.SOURCE_ENDPOINTS) == {"account", "query"}
    assert all(name in xapi.PATHS for name in xapi.SOURCE_ENDPOINTS.values())
