"""Synthetic X API v2 response pages for the transform's tests.

Written by us and modeled on the OpenAPI document (2.159) in ../shared/reference/x-api-v2:
``Tweet`` (id, text, author_id, created_at, lang, conversation_id, in_reply_to_user_id,
referenced_tweets, public_metrics, entities, note_tweet, possibly_sensitive,
edit_history_tweet_ids, edit_controls, withheld), ``User`` (id, name, username) and the
``Get2UsersIdTweetsResponse`` envelope (data, includes, meta, errors).
"""

from __future__ import annotations

import json
from typing import Any

BIG_ID = "1846986476133195777"  # a real-looking post id, far above 2**53
ALICE = {"id": "2244994945", "username": "alice_dev", "name": 'Alice, "the" dev'}
BOB = {"id": "783214", "username": "bob", "name": "בוב 🚀"}


def tweet(tid: str = BIG_ID, **fields: Any) -> dict[str, Any]:
    """A post with every commonly requested field; ``fields`` override or add (None removes)."""
    post: dict[str, Any] = {
        "id": tid,
        "text": "Hello pipeline #data @bob https://t.co/abc",
        "author_id": ALICE["id"],
        "created_at": "2024-05-01T12:34:56.000Z",
        "lang": "en",
        "conversation_id": tid,
        "possibly_sensitive": False,
        "edit_history_tweet_ids": [tid],
        "edit_controls": {
            "edits_remaining": 5,
            "is_edit_eligible": True,
            "editable_until": "2024-05-01T13:34:56.000Z",
        },
        "public_metrics": {
            "retweet_count": 3,
            "reply_count": 1,
            "like_count": 12,
            "quote_count": 0,
            "bookmark_count": 2,
            "impression_count": 340,
        },
        "entities": {
            "hashtags": [{"start": 15, "end": 20, "tag": "data"}],
            "mentions": [{"start": 21, "end": 25, "username": "bob", "id": BOB["id"]}],
            "urls": [
                {
                    "start": 26,
                    "end": 42,
                    "url": "https://t.co/abc",
                    "expanded_url": "https://example.com/post",
                    "display_url": "example.com/post",
                }
            ],
        },
    }
    for key, value in fields.items():
        if value is None:
            post.pop(key, None)
        else:
            post[key] = value
    return post


def page(
    tweets: list[Any] | dict[str, Any] | None,
    users: list[dict[str, Any]] | None = None,
    errors: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A timeline response around ``tweets``; ``users`` default to Alice and Bob."""
    response: dict[str, Any] = {}
    if tweets is not None:
        response["data"] = tweets
    response["includes"] = {"users": [ALICE, BOB] if users is None else users}
    if isinstance(tweets, list):
        response["meta"] = {"result_count": len(tweets)}
    if errors is not None:
        response["errors"] = errors
    response.update(extra)
    return response


def body(response: Any) -> bytes:
    """A response as the API sends it: UTF-8 JSON."""
    return json.dumps(response, ensure_ascii=False).encode("utf-8")


def problem(resource_id: str = "1") -> dict[str, Any]:
    """A partial error for a post the API could not return (the OpenAPI ``Problem``)."""
    return {
        "value": resource_id,
        "detail": f"Could not find tweet with ids: [{resource_id}].",
        "title": "Not Found Error",
        "resource_type": "tweet",
        "parameter": "ids",
        "resource_id": resource_id,
        "type": "https://api.twitter.com/2/problems/resource-not-found",
    }


def ids(start: int, n: int) -> list[str]:
    """``n`` consecutive post ids above 2**53."""
    return [str(int(BIG_ID) + start + i) for i in range(n)]


def mixed_corpus() -> list[bytes]:
    """Pages with every case the transform distinguishes, for equivalence tests."""
    long_text = "long post " * 40
    return [
        body(page([tweet(t) for t in ids(0, 5)])),
        body(
            page(
                [
                    tweet(
                        ids(10, 1)[0],
                        note_tweet={"text": long_text, "entities": {"hashtags": [{"tag": "x"}]}},
                    ),
                    tweet(ids(11, 1)[0], text="a &amp; b", public_metrics={"like_count": "12"}),
                    tweet(ids(12, 1)[0], created_at="2024-05-01T14:34:56+02:00", lang="??"),
                    tweet(ids(0, 1)[0], text="duplicate"),
                    tweet(ids(13, 1)[0], referenced_tweets=[{"type": "quoted", "id": "1"}]),
                    tweet(ids(14, 1)[0], withheld={"copyright": False, "country_codes": ["DE"]}),
                    tweet(ids(15, 1)[0], author_id=BOB["id"], future_field={"x": [1, 2]}),
                ],
                errors=[problem("7")],
            )
        ),
        body(page([tweet(ids(20, 1)[0], public_metrics="drifted"), "not a post"])),
        body(page([tweet(ids(21, 1)[0], created_at=None, possibly_sensitive="true")], users=[])),
        body({"data": tweet(ids(22, 1)[0]), "includes": {"users": "not a list"}}),
        b'{"data": [{"id": "1", "text": "trunc',
        b"",
        b"\n".join(
            [body(page([tweet(ids(30, 1)[0])])), b"{bad", body(page([tweet(ids(31, 1)[0])]))]
        ),
        body(page([tweet(ids(40, 1)[0], text="lone LONE surrogate")])).replace(b"LONE", b"\\ud800"),
        body(page(None, errors=[problem("8")])),
        body({"title": "Too Many Requests", "status": 429}),
        # Bodies msgspec refuses but json.loads (and so the extractor) accepts, and posts whose
        # fields have the wrong JSON type.
        body(page([tweet(t, text="raw RAW") for t in ids(50, 2)])).replace(
            b"RAW", b"\xed\xa0\x80", 1
        ),
        body(page([tweet(ids(52, 1)[0], text="bad \xff byte")])).replace(b"\xc3\xbf", b"\xff"),
        body(page([tweet(ids(53, 1)[0], public_metrics={"like_count": "NAN"})])).replace(
            b'"NAN"', b"NaN"
        ),
        "\ufeff".encode() + body(page([tweet(ids(54, 1)[0])])),
        body(page([tweet(ids(55, 1)[0])])).decode().encode("utf-16"),
        body(
            page(
                [
                    tweet(ids(56, 1)[0], text={"a": 1}),
                    tweet(ids(57, 1)[0], edit_history_tweet_ids=[]),
                ]
            )
        ),
    ]


def _spliced(response: Any, word: str, bad: bytes) -> bytes:
    """A response's body with ``bad`` bytes put inside the first occurrence of ``word``."""
    raw = body(response)
    return raw.replace(word.encode(), word[:2].encode() + bad + word[2:].encode(), 1)


def hostile_corpus() -> list[bytes]:
    """Pages the API should never send but a store may hold, for equivalence tests: bytes no
    decoder agrees on, numbers out of range, values of every wrong JSON type, ids that are not
    decimal, cells that need CSV quoting, bodies that are not responses.

    Not here: a number of more digits than Python converts in a field the contract does not
    read. ``json.loads`` refuses the page (the reference quarantines it whole); msgspec skips
    the field and the page is curated. That difference is the fast reader's to keep
    (tests/unit/test_transform.py tests it).
    """
    deep = b"[" * 5_000 + b"]" * 5_000
    quoted = 'say "hi", then\r\nleave\rnow\n'
    return [
        _spliced(page([tweet(t) for t in ids(100, 3)]), "Hello", b"\xed\xa0\x80"),
        _spliced(page([tweet(t) for t in ids(103, 3)]), "alice_dev", b"\xff"),
        _spliced(page([tweet(t) for t in ids(106, 2)]), "pipeline", b"\\u0000"),
        _spliced(page([tweet(t) for t in ids(108, 2)]), "bob", b"\xf4\x90\x80\x80"),
        _spliced(page([tweet(t) for t in ids(110, 2)]), "2024-05-01T12", b"\\udfff"),
        body(page([tweet(ids(112, 1)[0], lang="en")])).replace(
            b'"lang": "en"', b'"lang": "en", "x": ' + deep, 1
        ),
        body(page([tweet(ids(113, 1)[0], public_metrics={"like_count": "BIG"})])).replace(
            b'"BIG"', b"1e400"
        ),
        body(
            page(
                [
                    tweet("0123"),
                    tweet("abc"),
                    tweet("0123", text="again"),
                    tweet(ids(116, 1)[0], id=116),  # type: ignore[arg-type]
                    tweet(ids(117, 1)[0], id=None),
                    tweet("18446744073709551616"),  # one above uint64
                    tweet(ids(118, 1)[0], public_metrics={"like_count": 2**70}),
                    tweet(ids(119, 1)[0], public_metrics={"like_count": 1.5}),
                    tweet(ids(120, 1)[0], possibly_sensitive="false"),
                    tweet(ids(121, 1)[0], created_at="2024-05-01T12:34:56"),
                    tweet(ids(122, 1)[0], created_at="2024-05-01 12:34:56+05:30"),
                    tweet(ids(123, 1)[0], text=quoted, author_id=BOB["id"]),
                    tweet(ids(124, 1)[0], entities={"urls": [{"url": 'https://t.co/"q"'}]}),
                    tweet(ids(125, 1)[0], entities={"hashtags": [{"tag": "a,b"}, "bare"]}),
                    tweet(ids(126, 1)[0], entities={"mentions": {"username": "x"}}),
                    tweet(ids(127, 1)[0], edit_history_tweet_ids=[1, 2]),
                    tweet(ids(128, 1)[0], referenced_tweets=[]),
                    tweet(ids(129, 1)[0], note_tweet={"text": 7}),
                    tweet(ids(130, 1)[0], possibly_sensitive=True, text="carriage\ronly"),
                    tweet(ids(136, 1)[0], text="comma,only", lang="und"),
                    tweet(ids(137, 1)[0], text="newline\nonly", author_id=None),
                    tweet(ids(138, 1)[0], text='quote"only', author_id="999"),
                    tweet(ids(142, 1)[0], author_id="555"),
                    tweet(ids(139, 1)[0], withheld={"copyright": True, "country_codes": ['D"E']}),
                ],
                users=[
                    ALICE,
                    {"id": 783214, "username": "num", "name": "Num, the id is a number"},
                    {"id": "555", "username": "carol", "name": ["not", "text"]},
                ],
            )
        ),
        body(page([None, [tweet(ids(140, 1)[0])], tweet(ids(141, 1)[0]), 7, "post"])),
        body([page([tweet(ids(131, 1)[0])])]),
        body("just a string"),
        body({"data": "x"}),
        body({"errors": {"title": "not a list"}}),
        body({"data": [tweet(ids(132, 1)[0])], "includes": {"users": [None, {"id": None}]}}),
        b"\n".join([body(page([tweet(ids(133, 1)[0])])), body({"title": "Problem"}), b"[1"]),
        body(page([tweet(t, text=f"{t} &amp;lt; &copy;") for t in ids(134, 3)] + [tweet()])),
    ]


def usual_corpus() -> list[bytes]:
    """Well-typed pages with the variety real ones have, so that every fast path is taken
    (one odd value in a column sends the whole column down the per-value path)."""
    texts = ["plain", "a, b", 'say "hi"', "line\nbreak", "cr\ronly", "&amp; &lt;3 &copy;", "✓ 😀"]
    pages = []
    for n in range(4):
        posts = [
            tweet(
                t,
                text=texts[(i + n) % len(texts)],
                possibly_sensitive=bool((i + n) % 2),
                author_id=BOB["id"] if i % 3 else ALICE["id"],
                created_at="2024-05-01T14:34:56+02:00"
                if i % 4 == 1
                else "2024-05-01T12:34:56.000Z",
                referenced_tweets=[{"type": "replied_to", "id": t}] if i % 2 else None,
                withheld={"copyright": False, "country_codes": ["DE", 'F"R'][: 1 + i % 2]},
                entities={"hashtags": [{"tag": f"t{i}"}], "urls": [{"url": "https://t.co/x"}]},
            )
            for i, t in enumerate(ids(200 + 5 * n, 8))
        ]
        if n == 2:
            posts.append(tweet(text="x " * 140, note_tweet={"text": "long, " * 60}))
        pages.append(body(page(posts, users=[ALICE, BOB] if n != 3 else [])))
    return pages
