"""The transform's semantics, through its public function on synthetic pages (tests/pages.py)."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl.contracts.model import ColumnSpec, ContractSpec, load_contract
from etl.errors import GateBreachError
from etl.steps.transform import curate, values
from etl.steps.transform.curate import TransformReport, transform_pages
from tests.pages import ALICE, BIG_ID, BOB, body, ids, page, problem, tweet


@pytest.fixture(scope="module")
def contract() -> ContractSpec:
    return load_contract()


@dataclass
class Result:
    report: TransformReport
    csv_text: str
    rows: list[dict[str, str]]
    quarantine: list[dict[str, Any]]

    def row(self, tid: str) -> dict[str, str]:
        return next(r for r in self.rows if r["tweet_id"] == tid)


def run(*bodies: bytes, contract: ContractSpec | None = None) -> Result:
    pages = [(f"raw/source=alice/page-{i:05d}.json", b) for i, b in enumerate(bodies, 1)]
    csv_out, q_out = io.StringIO(newline=""), io.StringIO(newline="")
    report = transform_pages(pages, csv_out, q_out, contract)
    text = csv_out.getvalue()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    quarantine = [json.loads(line) for line in q_out.getvalue().split("\n") if line]
    assert report.tweets_in == report.curated + report.quarantined + report.duplicates
    assert report.curated == len(rows)
    return Result(report, text, rows, quarantine)


# --- text -----------------------------------------------------------------------------------------
def test_long_post_takes_the_full_text_from_note_tweet() -> None:
    full = "word " * 80 + "the end"
    res = run(body(page([tweet(text=full[:270] + "…", note_tweet={"text": full})])))
    assert res.row(BIG_ID)["text"] == full


def test_short_post_keeps_text() -> None:
    res = run(body(page([tweet(text="just this")])))
    assert res.row(BIG_ID)["text"] == "just this"


def test_only_the_three_entities_x_escapes_are_unescaped_in_one_pass() -> None:
    sent = "fish &amp; chips &lt;3 -&gt; &amp;lt;b&amp;gt; &copy; &#39; &quot;"
    res = run(body(page([tweet(text=sent)])))
    # &amp;lt; is what a user who typed "&lt;" gets: it must come back as "&lt;", not "<".
    assert res.row(BIG_ID)["text"] == "fish & chips <3 -> &lt;b&gt; &copy; &#39; &quot;"


def test_newlines_quotes_commas_emoji_rtl_survive_csv_and_pandas() -> None:
    text = 'line one\nline "two", with commas\r\nשלום עולם مرحبا 👩🏽‍💻 🎉\rend'
    res = run(body(page([tweet(text=text)])))
    assert res.row(BIG_ID)["text"] == text
    frame = pd.read_csv(io.StringIO(res.csv_text), dtype=str, keep_default_na=False)
    assert frame.loc[0, "text"] == text
    assert frame.loc[0, "author_name"] == ALICE["name"]


# --- ids, times, counts ---------------------------------------------------------------------------
def test_an_id_sent_as_a_json_number_is_quarantined_with_its_digits_not_coerced() -> None:
    # The API says string; a number is another JSON type, however exact Python keeps it.
    as_number = body(page([tweet(), tweet(ids(1, 1)[0])])).replace(
        f'"id": "{BIG_ID}"'.encode(), f'"id": {BIG_ID}'.encode()
    )
    res = run(as_number)
    assert (res.report.curated, res.report.quarantined) == (1, 1)
    line = res.quarantine[0]
    assert line["reason"] == [f"tweet_id: json_type string ('a JSON number: {BIG_ID}')"]
    assert line["record"]["id"] == int(BIG_ID)  # the record keeps every digit
    assert res.report.check_failures == {"tweet_id:json_type": 1}


def test_id_sent_as_a_float_is_quarantined_not_rounded() -> None:
    raw = body(page([tweet()])).replace(
        f'"id": "{BIG_ID}"'.encode(), b'"id": 1.8469864761331958e18'
    )
    res = run(raw)
    assert res.report.quarantined == 1
    assert res.quarantine[0]["reason"] == [
        "tweet_id: json_type string ('a JSON number: 1.8469864761331958e+18')"
    ]


@pytest.mark.parametrize(
    ("sent", "written"),
    [
        ("2024-05-01T12:34:56.000Z", "2024-05-01T12:34:56.000Z"),
        ("2024-05-01T12:34:56Z", "2024-05-01T12:34:56.000Z"),
        ("2024-05-01T14:34:56.5+02:00", "2024-05-01T12:34:56.500Z"),
        ("2024-05-01T12:34:56.123456+00:00", "2024-05-01T12:34:56.123Z"),
    ],
)
def test_created_at_is_normalised_to_utc_milliseconds(sent: str, written: str) -> None:
    res = run(body(page([tweet(created_at=sent)])))
    assert res.row(BIG_ID)["created_at"] == written


@pytest.mark.parametrize("sent", ["2024-05-01T12:34:56", "yesterday", "2024-13-01T12:34:56.000Z"])
def test_created_at_without_zone_or_invalid_is_quarantined(sent: str) -> None:
    res = run(body(page([tweet(created_at=sent)])))
    assert res.report.quarantined == 1
    assert res.quarantine[0]["reason"][0].startswith("created_at: timestamp")
    assert sent in res.quarantine[0]["reason"][0]


def test_counts_absent_are_empty_not_zero() -> None:
    older = tweet(
        public_metrics={"retweet_count": 0, "reply_count": 4, "like_count": 9, "quote_count": 1}
    )
    res = run(body(page([older, tweet(ids(1, 1)[0], public_metrics=None)])))
    row = res.row(BIG_ID)
    assert (row["retweet_count"], row["reply_count"]) == ("0", "4")
    assert (row["bookmark_count"], row["impression_count"]) == ("", "")
    assert res.row(ids(1, 1)[0])["like_count"] == ""


def test_numeric_string_counts_and_string_flags_are_quarantined_not_coerced() -> None:
    drift = tweet(
        public_metrics={"retweet_count": "7", "reply_count": 1, "like_count": 12.0},
        possibly_sensitive="true",
    )
    plain = tweet(ids(1, 1)[0])
    res = run(body(page([drift, plain])))
    assert (res.report.curated, res.report.quarantined) == (1, 1)
    assert res.quarantine[0]["reason"] == [
        "retweet_count: json_type integer ('a JSON string: \"7\"')",
        "like_count: json_type integer ('a JSON number: 12.0')",
        "possibly_sensitive: json_type boolean ('a JSON string: \"true\"')",
    ]


def test_wrong_typed_count_is_quarantined_with_the_value_in_the_reason() -> None:
    res = run(body(page([tweet(public_metrics={"like_count": "lots"})])))
    assert res.report.quarantined == 1
    # The json_type check rejects it; the dtype and coercion failures that follow are not repeated.
    assert res.quarantine[0]["reason"] == [
        "like_count: json_type integer ('a JSON string: \"lots\"')"
    ]
    assert res.report.check_failures == {"like_count:json_type": 1}


def test_count_beyond_int64_is_quarantined() -> None:
    res = run(body(page([tweet(public_metrics={"impression_count": 2**63})])))
    assert res.report.quarantined == 1
    assert res.quarantine[0]["reason"][0].startswith("impression_count: coerce_dtype('Int64')")


# --- authors, lists, references, lineage ----------------------------------------------------------
def test_author_comes_from_includes_users() -> None:
    res = run(body(page([tweet(), tweet(ids(1, 1)[0], author_id=BOB["id"])])))
    assert (res.row(BIG_ID)["author_username"], res.row(BIG_ID)["author_name"]) == (
        ALICE["username"],
        ALICE["name"],
    )
    assert res.row(ids(1, 1)[0])["author_name"] == BOB["name"]


def test_missing_includes_leaves_author_empty_and_keeps_the_post() -> None:
    response = page([tweet()])
    del response["includes"]
    res = run(body(response))
    assert res.report.curated == 1
    assert (res.rows[0]["author_username"], res.rows[0]["author_id"]) == ("", ALICE["id"])


def test_list_columns_are_json_arrays() -> None:
    withheld = {"copyright": False, "country_codes": ["DE", "TR"], "scope": "tweet"}
    res = run(body(page([tweet(withheld=withheld, edit_history_tweet_ids=["1", BIG_ID])])))
    row = res.row(BIG_ID)
    assert json.loads(row["hashtags"]) == ["data"]
    assert json.loads(row["mentions"]) == ["bob"]
    assert json.loads(row["urls"]) == ["https://example.com/post"]
    assert json.loads(row["withheld_country_codes"]) == ["DE", "TR"]
    assert json.loads(row["edit_history_tweet_ids"]) == ["1", BIG_ID]


def test_list_columns_without_entities_are_empty_arrays_and_urls_fall_back_to_url() -> None:
    bare = tweet(entities=None, withheld=None)
    short_url = tweet(
        ids(1, 1)[0], entities={"urls": [{"start": 0, "end": 5, "url": "https://t.co/x"}]}
    )
    res = run(body(page([bare, short_url])))
    row = res.row(BIG_ID)
    assert (row["hashtags"], row["mentions"], row["urls"], row["withheld_country_codes"]) == (
        "[]",
        "[]",
        "[]",
        "[]",
    )
    assert json.loads(res.row(ids(1, 1)[0])["urls"]) == ["https://t.co/x"]


def test_long_post_entities_come_from_note_tweet() -> None:
    note = {
        "text": "long #one #two",
        "entities": {
            "hashtags": [
                {"start": 5, "end": 9, "tag": "one"},
                {"start": 10, "end": 14, "tag": "two"},
            ]
        },
    }
    res = run(body(page([tweet(note_tweet=note)])))
    assert json.loads(res.row(BIG_ID)["hashtags"]) == ["one", "two"]
    assert res.row(BIG_ID)["mentions"] == "[]"


def test_references_reply_that_quotes() -> None:
    refs = [{"type": "replied_to", "id": ids(5, 1)[0]}, {"type": "quoted", "id": ids(6, 1)[0]}]
    res = run(body(page([tweet(referenced_tweets=refs, in_reply_to_user_id=BOB["id"])])))
    row = res.row(BIG_ID)
    assert (row["referenced_tweet_type"], row["referenced_tweet_id"]) == (
        "replied_to",
        ids(5, 1)[0],
    )
    assert json.loads(row["referenced_tweets"]) == refs
    assert row["in_reply_to_user_id"] == BOB["id"]


def test_retweet_and_original_post() -> None:
    rt = tweet(referenced_tweets=[{"type": "retweeted", "id": ids(9, 1)[0]}])
    original = tweet(ids(1, 1)[0])
    res = run(body(page([rt, original])))
    assert res.row(BIG_ID)["referenced_tweet_type"] == "retweeted"
    assert res.row(ids(1, 1)[0])["referenced_tweet_type"] == ""
    assert res.row(ids(1, 1)[0])["referenced_tweets"] == "[]"


def test_unknown_reference_type_is_quarantined() -> None:
    res = run(body(page([tweet(referenced_tweets=[{"type": "boosted", "id": "1"}])])))
    assert res.quarantine[0]["reason"] == [
        "referenced_tweet_type: allowed values ['retweeted', 'quoted', 'replied_to'] ('boosted')"
    ]


def test_every_row_names_its_source_page() -> None:
    res = run(body(page([tweet()])), body(page([tweet(ids(1, 1)[0])])))
    assert [r["source_page"] for r in res.rows] == [
        "raw/source=alice/page-00001.json",
        "raw/source=alice/page-00002.json",
    ]


def test_output_columns_are_the_contracts_in_order(contract: ContractSpec) -> None:
    res = run(body(page([tweet()])))
    assert res.csv_text.split("\r\n", 1)[0].split(",") == contract.column_names


# --- new fields, bad records, bad pages -----------------------------------------------------------
def test_new_fields_never_drop_posts() -> None:
    # twarc-csv drops a whole batch when a field like note_tweet first appears: we must not.
    new = tweet(
        note_tweet={"text": "long", "brand_new": {"x": 1}},
        community_id="1234",
        future_field=[{"nested": True}],
    )
    res = run(body(page([tweet(ids(1, 1)[0]), new], future_envelope={"a": 1})))
    assert res.report.curated == 2
    assert res.row(BIG_ID)["text"] == "long"


def test_gate_failure_quarantines_the_original_post_with_every_reason() -> None:
    bad = tweet(author_id=None, lang="english!", created_at=None)
    res = run(body(page([bad, tweet(ids(1, 1)[0])])))
    assert (res.report.curated, res.report.quarantined) == (1, 1)
    line = res.quarantine[0]
    assert line["kind"] == "tweet"
    assert line["source"] == "raw/source=alice/page-00001.json"
    assert line["record"] == bad
    assert sorted(r.split(":")[0] for r in line["reason"]) == ["author_id", "created_at", "lang"]


def test_a_non_object_post_is_quarantined() -> None:
    res = run(body(page(["not a post", tweet()])))
    assert (res.report.tweets_in, res.report.quarantined) == (2, 1)
    assert res.quarantine[0]["record"] == "not a post"
    assert res.quarantine[0]["reason"] == ["record: not a post object (a JSON string)"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty body"),
        (b'{"data": [{"id": "1", "text": "trunc', "invalid JSON"),
        (b"[1, 2]", "not an X API v2 response: a JSON array"),
        (b'{"title": "Too Many Requests", "status": 429}', "not an X API v2 response"),
        (b'{"data": "oops"}', "not an X API v2 response: data is a JSON string"),
        (b"null", "not an X API v2 response: a JSON null"),
        (b"true", "not an X API v2 response: a JSON boolean"),
        (b'{"data": []}\xff', "not UTF-8"),
    ],
)
def test_unparseable_page_is_quarantined_whole(raw: bytes, reason: str) -> None:
    res = run(raw, body(page([tweet()])))
    assert (res.report.pages, res.report.pages_quarantined, res.report.curated) == (2, 1, 1)
    line = res.quarantine[0]
    assert line["kind"] == "page" and line["reason"][0].startswith(reason)
    assert line["source"] == "raw/source=alice/page-00001.json"
    assert res.report.passed


def test_truncated_page_record_keeps_the_body() -> None:
    raw = body(page([tweet()]))[:-40]
    res = run(raw, body(page([tweet(ids(1, 1)[0])])))
    record = res.quarantine[0]["record"]
    assert record.encode("utf-8", "surrogateescape") == raw  # lossless, even cut mid-character


def test_jsonl_body_one_response_per_line_with_a_bad_line() -> None:
    lines = b"\n".join([body(page([tweet()])), b"{broken", b"", body(page([tweet(ids(1, 1)[0])]))])
    res = run(lines)
    assert (res.report.pages, res.report.pages_quarantined, res.report.curated) == (3, 1, 2)
    assert res.quarantine[0]["source"] == "raw/source=alice/page-00001.json:2"
    assert res.rows[0]["source_page"] == "raw/source=alice/page-00001.json:1"


def test_jsonl_line_holding_two_documents_is_quarantined() -> None:
    two = body(page([tweet()])) + b" " + body(page([tweet(ids(1, 1)[0])]))
    res = run(b"\n".join([two, body(page([tweet(ids(2, 1)[0])]))]))
    assert (res.report.pages, res.report.pages_quarantined, res.report.curated) == (2, 1, 1)
    assert res.quarantine[0]["reason"][0].startswith("invalid JSON: Extra data")


def test_tweet_lookup_response_with_a_single_post() -> None:
    res = run(body({"data": tweet(), "includes": {"users": [ALICE]}}))
    assert res.report.curated == 1


def test_partial_errors_are_counted_and_kept() -> None:
    res = run(
        body(page([tweet()], errors=[problem("1"), problem("2")])),
        body(page(None, errors=[problem("3")])),
    )
    assert (res.report.api_errors, res.report.curated, res.report.pages_quarantined) == (3, 1, 0)
    kept = [q for q in res.quarantine if q["kind"] == "api_error"]
    assert [q["record"]["resource_id"] for q in kept] == ["1", "2", "3"]
    assert kept[0]["reason"] == ["api_error: Not Found Error: Could not find tweet with ids: [1]."]
    assert res.report.passed


def test_lone_surrogate_is_quarantined_losslessly() -> None:
    raw = body(page([tweet(), tweet(ids(1, 1)[0])])).replace(b"Hello", b"Hel\\ud800lo", 1)
    res = run(raw)
    assert (res.report.curated, res.report.quarantined) == (1, 1)
    line = res.quarantine[0]
    assert line["reason"] == [
        "text: utf8 (no lone surrogates) ('Hel\\ud800lo pipeline #data @bob https://t.co/abc')"
    ]
    assert line["record"]["text"] == "Hel\ud800lo pipeline #data @bob https://t.co/abc"


# --- bodies msgspec refuses: the reference path isolates the bad post -----------------------------
def _strict_json(line: dict[str, Any]) -> None:
    """A quarantine line is strict JSON (no NaN) and UTF-8, whatever the record held."""

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    text = json.dumps(line, ensure_ascii=False, allow_nan=False)
    json.loads(text, parse_constant=refuse)


def test_a_raw_lone_surrogate_quarantines_its_post_and_curates_the_rest() -> None:
    # ED A0 80 is U+D800 encoded as UTF-8: json.loads (so the extractor) takes it, msgspec
    # raises UnicodeDecodeError.
    posts = [tweet(t, text=f"post {t}") for t in ids(0, 3)]
    raw = body(page(posts)).replace(f"post {ids(1, 1)[0]}".encode(), b"bad \xed\xa0\x80 post", 1)
    assert json.loads(raw)["data"][1]["text"] == "bad \ud800 post"

    res = run(raw)

    assert (res.report.tweets_in, res.report.curated, res.report.quarantined) == (3, 2, 1)
    assert [r["tweet_id"] for r in res.rows] == [ids(0, 1)[0], ids(2, 1)[0]]
    line = res.quarantine[0]
    assert line["reason"] == ["text: utf8 (no lone surrogates) ('bad \\ud800 post')"]
    assert line["record"]["id"] == ids(1, 1)[0]
    original = base64.b64decode(line["record_base64"])
    assert original == body(posts[1]).replace(
        f"post {ids(1, 1)[0]}".encode(), b"bad \xed\xa0\x80 post"
    )
    assert original in raw  # the post's bytes exactly as they came


def test_invalid_utf8_inside_a_string_costs_only_its_post() -> None:
    posts = [tweet(t) for t in ids(0, 2)] + [tweet(ids(2, 1)[0], source="\u00ff")]
    raw = body(page(posts))
    bad = raw.replace(b"Hello", b"He\xff\xfello", 1)  # in the first post's text (read)
    bad = bad.replace(b"\xc3\xbf", b"\xff")  # in the third post's source (never read)

    res = run(bad)

    # The third post's bad byte is in a field the contract does not read: it is curated.
    assert (res.report.curated, res.report.quarantined) == (2, 1)
    line = res.quarantine[0]
    assert line["reason"][0].startswith("text: utf8")
    assert base64.b64decode(line["record_base64"]) in bad
    assert base64.b64decode(line["record_base64"]).startswith(b'{"id": "' + BIG_ID.encode())


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        (b"NaN", "NaN"),
        (b"Infinity", "Infinity"),
        (b"-Infinity", "-Infinity"),
        (b"1e400", "Infinity"),
    ],
)
def test_a_count_json_cannot_hold_is_quarantined_with_its_bytes(sent: bytes, shown: str) -> None:
    raw = body(page([tweet(), tweet(ids(1, 1)[0])])).replace(
        b'"like_count": 12', b'"like_count": ' + sent, 1
    )

    res = run(raw)

    assert (res.report.curated, res.report.quarantined) == (1, 1)
    line = res.quarantine[0]
    _strict_json(line)
    assert line["reason"] == [f"like_count: json_type integer ('a JSON number: {shown}')"]
    assert line["record"]["public_metrics"]["like_count"] == shown
    assert b'"like_count": ' + sent in base64.b64decode(line["record_base64"])


def test_a_number_python_cannot_convert_in_an_unread_field_costs_nothing() -> None:
    huge = b"9" * 5000  # json.loads refuses more than 4300 digits; msgspec skips it unread
    raw = body(page([tweet(lang="??"), tweet(ids(1, 1)[0])])).replace(
        b'"lang": "??"', b'"lang": "??", "x": ' + huge, 1
    )

    res = run(raw)

    assert (res.report.curated, res.report.quarantined) == (1, 1)
    record = res.quarantine[0]["record"]  # json cannot parse it: the post's JSON text
    assert record.startswith('{"id": "' + BIG_ID) and huge.decode() in record


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: "\ufeff".encode() + text.encode(),
        lambda text: text.encode("utf-16"),
        lambda text: text.encode("utf-16-le"),
        lambda text: text.encode("utf-32"),
    ],
    ids=["utf-8 BOM", "utf-16", "utf-16-le", "utf-32"],
)
def test_bodies_in_any_encoding_json_loads_reads_are_transformed(encode: Any) -> None:
    text = body(page([tweet(t, text="naïve ✓ 😀") for t in ids(0, 2)])).decode()
    raw = encode(text)
    assert json.loads(raw)["data"][0]["text"] == "naïve ✓ 😀"

    res = run(raw)

    assert res.report.curated == 2 and [r["text"] for r in res.rows] == ["naïve ✓ 😀"] * 2


def test_a_utf16_post_with_a_lone_surrogate_keeps_its_utf16_bytes() -> None:
    text = body(page([tweet(), tweet(ids(1, 1)[0])])).decode().replace("Hello", "He\ud800llo", 1)
    raw = text.encode("utf-16-le", "surrogatepass")

    res = run(raw)

    assert (res.report.curated, res.report.quarantined) == (1, 1)
    original = base64.b64decode(res.quarantine[0]["record_base64"])
    assert original in raw and original.decode("utf-16-le", "surrogatepass").startswith('{"id"')


def test_nesting_too_deep_for_json_quarantines_the_page_without_a_crash() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    raw = body(page([tweet()])).replace(b'"lang": "en"', b'"lang": "en", "x": ' + deep, 1)

    res = run(raw, body(page([tweet(ids(1, 1)[0])])))

    assert (res.report.pages_quarantined, res.report.curated) == (1, 1)
    assert res.quarantine[0]["reason"] == ["invalid JSON: nested too deeply"]
    assert res.report.check_failures == {"page:invalid_JSON": 1}


_HOSTILE_BYTES = st.lists(
    st.sampled_from(
        [
            b"\xed\xa0\x80",
            b"\xed\xbf\xbf",
            b"\xff",
            b"\xc3",
            b"\x80",
            b"\\ud800",
            b"\\udfff",
            b"\\u0000",
            b"\xf4\x90\x80\x80",
        ]
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=st.lists(
        st.sampled_from(["Hello", "alice_dev", "pipeline", "2024-05-01T12", "bob"]),
        min_size=1,
        max_size=3,
    ),
    junk=_HOSTILE_BYTES,
)
def test_any_body_json_loads_reads_is_processed_and_nothing_is_lost(
    where: list[str], junk: list[bytes]
) -> None:
    # Hostile bytes spliced into string values of a page: whatever json.loads accepts (what
    # the extractor lands), the transform processes; every post is curated or quarantined.
    raw = body(page([tweet(t) for t in ids(0, 4)]))
    for word, bad in zip(where, junk * len(where), strict=False):
        raw = raw.replace(word.encode(), word[:2].encode() + bad + word[2:].encode(), 1)

    res = run(raw)

    lands = True
    try:
        json.loads(raw)
    except ValueError:
        lands = False
    if lands:
        assert res.report.pages_quarantined == 0
        assert res.report.curated + res.report.quarantined == 4
    for line in res.quarantine:
        _strict_json(line)
        if "record_base64" in line:
            assert base64.b64decode(line["record_base64"]) in raw


# --- JSON types: a value of another JSON type is rejected, never converted ------------------------
_OF_KIND: dict[str, Any] = {
    "string": "7",
    "integer": 7,
    "float": 7.5,
    "boolean": True,
    "object": {"k": "v"},
    "array": ["x"],
}
_ACCEPTS = {
    "string": {"string"},
    "timestamp": {"string"},
    "integer": {"integer"},
    "boolean": {"boolean"},
    "array": {"array"},
}


def _put(post: dict[str, Any], path: str, value: Any) -> None:
    """Set ``data[].a.b``, ``data[].a[0].b`` or ``data[].a.b[].c`` in a post, building what is
    missing."""
    steps = path.removeprefix("data[].").replace("[0]", ".0").replace("[]", ".0").split(".")
    node: Any = post
    for step, after in zip(steps, steps[1:], strict=False):
        empty: Any = [{}] if after == "0" else {}
        if step == "0":
            node = node[0]
            continue
        if not isinstance(node.get(step), type(empty)) or not node.get(step):
            node[step] = empty
        node = node[step]
    node[steps[-1]] = value


def _mistyped_cases() -> list[tuple[str, str, str]]:
    cases = []
    for col in load_contract().columns:
        path = next((s for s in col.sources if s.startswith("data[].")), None)
        if path is None:
            continue
        json_type = (
            "string"
            if path.endswith("[].tag") or path.endswith("[].username") or path.endswith("_url")
            else col.logical_type
        )
        for kind in _OF_KIND:
            if kind not in _ACCEPTS[json_type]:
                cases.append((col.name, path, kind))
    return cases


@pytest.mark.parametrize(("column", "path", "kind"), _mistyped_cases())
def test_every_column_rejects_a_source_value_of_another_json_type(
    column: str, path: str, kind: str
) -> None:
    post = tweet(note_tweet=None) if "note_tweet" not in path else tweet()
    _put(post, path, _OF_KIND[kind])
    res = run(body(page([post, tweet(ids(1, 1)[0])])))

    assert (res.report.curated, res.report.quarantined) == (1, 1), res.rows
    reasons = res.quarantine[0]["reason"]
    # A list item of the wrong type fails the list's JSON check; anything else, json_type.
    assert any(r.startswith((f"{column}: json_type", f"{column}: json_array")) for r in reasons), (
        reasons
    )
    assert res.rows[0]["tweet_id"] == ids(1, 1)[0]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("text", {"a": 1}, "text: json_type string ('a JSON object: {\"a\": 1}')"),
        ("text", 42, "text: json_type string ('a JSON number: 42')"),
        ("text", ["a", "b"], 'text: json_type string (\'a JSON array: ["a", "b"]\')'),
        ("note_tweet", "long", "text: json_type string ('a JSON string: \"long\"')"),
        ("public_metrics", [1, 2], "retweet_count: json_type integer ('a JSON array: [1, 2]')"),
        ("entities", "none", "hashtags: json_type array ('a JSON string: \"none\"')"),
        (
            "referenced_tweets",
            {"type": "quoted"},
            'referenced_tweet_type: json_type string (\'a JSON object: {"type": "quoted"}\')',
        ),
        ("withheld", ["DE"], "withheld_country_codes: json_type array ('a JSON array: [\"DE\"]')"),
        (
            "edit_history_tweet_ids",
            BIG_ID,
            f"edit_history_tweet_ids: json_type array ('a JSON string: \"{BIG_ID}\"')",
        ),
    ],
)
def test_a_wrong_json_type_is_named_in_the_reason(field: str, value: Any, reason: str) -> None:
    res = run(body(page([tweet(**{field: value})])))
    assert res.report.quarantined == 1 and res.rows == []
    assert reason in res.quarantine[0]["reason"]


def test_an_author_username_of_another_json_type_is_rejected_not_stringified() -> None:
    users = [{**ALICE, "username": 12345}, BOB]
    res = run(body(page([tweet(), tweet(ids(1, 1)[0], author_id=BOB["id"])], users=users)))
    assert (res.report.curated, res.report.quarantined) == (1, 1)
    assert res.quarantine[0]["reason"] == [
        "author_username: json_type string ('a JSON number: 12345')"
    ]


def test_hashtags_sent_as_bare_strings_are_rejected_not_taken_as_tags() -> None:
    res = run(body(page([tweet(entities={"hashtags": ["data"]}), tweet(ids(1, 1)[0])])))
    assert (res.report.curated, res.report.quarantined) == (1, 1)
    assert res.quarantine[0]["reason"] == ["hashtags: json_type array ('a JSON string: \"data\"')"]


def test_an_empty_edit_history_breaks_the_contracts_min_items() -> None:
    res = run(body(page([tweet(edit_history_tweet_ids=[]), tweet(ids(1, 1)[0])])))
    assert (res.report.curated, res.report.quarantined) == (1, 1)
    assert res.quarantine[0]["reason"] == ["edit_history_tweet_ids: item_count 1.. ('[]')"]
    assert res.report.check_failures == {"edit_history_tweet_ids:item_count": 1}


# --- duplicates, identity, determinism ------------------------------------------------------------
def test_duplicates_across_pages_are_kept_once_and_counted() -> None:
    first = body(page([tweet(), tweet(ids(1, 1)[0])]))
    again = body(page([tweet(text="later copy"), tweet(ids(2, 1)[0]), tweet(ids(2, 1)[0])]))
    res = run(first, again)
    assert (res.report.tweets_in, res.report.curated, res.report.duplicates) == (5, 3, 2)
    assert res.row(BIG_ID)["text"] == "Hello pipeline #data @bob https://t.co/abc"


def test_duplicate_of_a_quarantined_post_is_counted_not_curated() -> None:
    res = run(body(page([tweet(lang="??"), tweet()])))
    assert (res.report.quarantined, res.report.duplicates, res.report.curated) == (1, 1, 0)


def test_duplicates_are_found_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(curate, "UNIT_BYTES", 1)  # one page a unit
    pages = [body(page([tweet(t) for t in ids(0, 4)])), body(page([tweet(t) for t in ids(2, 4)]))]
    res = run(*pages)
    assert (res.report.curated, res.report.duplicates) == (6, 2)
    assert [r["tweet_id"] for r in res.rows] == ids(0, 6)


def test_non_numeric_ids_are_deduplicated_too() -> None:
    res = run(body(page([tweet("0123"), tweet("abc"), tweet("0123"), tweet("abc")])))
    assert (res.report.curated, res.report.quarantined, res.report.duplicates) == (1, 1, 2)
    assert res.rows[0]["tweet_id"] == "0123"  # a string id: the leading zero stays


def test_same_input_gives_byte_identical_csv() -> None:
    pages = [body(page([tweet(t, text=f"post {t} &amp; more") for t in ids(0, 30)]))]
    assert run(*pages).csv_text == run(*pages).csv_text


def test_rows_keep_input_order() -> None:
    order = list(reversed(ids(0, 5)))
    res = run(body(page([tweet(t) for t in order])))
    assert [r["tweet_id"] for r in res.rows] == order


def test_no_pages_passes_with_a_header_only(contract: ContractSpec) -> None:
    res = run()
    assert res.report.passed and res.report.tweets_in == 0
    assert res.csv_text == ",".join(contract.column_names) + "\r\n"


# --- the gate's fatal checks ----------------------------------------------------------------------
def test_quarantined_share_at_the_threshold_passes_and_above_fails() -> None:
    good = [tweet(t) for t in ids(0, 19)]
    at_five = run(body(page([*good, tweet(ids(100, 1)[0], lang="??")])))
    assert at_five.report.passed  # 1 of 20 = 5%, allowed
    above = run(body(page([*good[:18], *(tweet(t, lang="??") for t in ids(100, 2))])))
    assert not above.report.passed
    assert above.report.fatal == [
        "quarantined_share: 10.00% of posts quarantined (2 of 20), contract: mustBeLessOrEqualTo 5%"
    ]
    with pytest.raises(GateBreachError, match="quarantined_share"):
        above.report.raise_for_gate()


def test_required_column_missing_entirely_is_fatal() -> None:
    res = run(body(page([tweet(t, created_at=None) for t in ids(0, 3)])))
    assert (
        "created_at: required column missing entirely (no post carried data[].created_at)"
        in res.report.fatal
    )


def test_every_page_unparseable_is_fatal() -> None:
    res = run(b"{", b"")
    assert res.report.fatal == ["pages: none of the 2 pages could be parsed"]


def test_a_contract_column_the_transform_cannot_read_is_fatal(contract: ContractSpec) -> None:
    extra = ColumnSpec(
        name="place_name", logical_type="string", required=True, sources=("includes.places[].name",)
    )
    spec = dataclasses.replace(contract, columns=(*contract.columns, extra))
    res = run(body(page([tweet()])), contract=spec)
    assert any(m.startswith("place_name: contract column has no source") for m in res.report.fatal)
    assert res.quarantine[0]["reason"] == ["place_name: column_in_dataframe"]


def test_a_new_contract_column_with_a_plain_path_just_works(contract: ContractSpec) -> None:
    extra = ColumnSpec(
        name="edits_remaining",
        logical_type="integer",
        sources=("data[].edit_controls.edits_remaining",),
    )
    spec = dataclasses.replace(contract, columns=(*contract.columns, extra))
    res = run(
        body(page([tweet(), tweet(ids(1, 1)[0], edit_controls={"edits_remaining": 2})])),
        contract=spec,
    )
    assert [r["edits_remaining"] for r in res.rows] == ["5", "2"]


def test_report_dict_is_json_ready() -> None:
    report = run(body(page([tweet(lang="??"), tweet(ids(1, 1)[0])]))).report.to_dict()
    assert json.loads(json.dumps(report))["check_failures"] == {"lang:pattern": 1}
    assert report["passed"] is False and report["tweets_in"] == 2


# --- property: any text round-trips ---------------------------------------------------------------
# Lone surrogates (category Cs) cannot be UTF-8; the gate quarantines them (tested above).
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(_TEXT, min_size=1, max_size=8))
def test_any_unicode_text_round_trips_through_the_csv(texts: list[str]) -> None:
    posts = [tweet(t, text=x) for t, x in zip(ids(0, len(texts)), texts, strict=True)]
    res = run(body(page(posts)))
    expected = [values.unescape(x) for x in texts]
    assert [r["text"] for r in res.rows] == expected
    frame = pd.read_csv(io.StringIO(res.csv_text), dtype=str, keep_default_na=False)
    assert frame["text"].tolist() == expected
    assert frame["tweet_id"].tolist() == ids(0, len(texts))
