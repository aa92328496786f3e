"""The emulator's corpus: deterministic per seed, API-shaped posts, and a ground truth to test by."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from etl.errors import QueryError
from etl.tools.emulator.corpus import METRICS_SINCE, Corpus, format_time, snowflake

ID_PATTERN = re.compile(r"^[0-9]{1,19}$")


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus(seed=7)


def _full_text(tweet: dict) -> str:
    return html.unescape(tweet.get("note_tweet", {}).get("text") or tweet["text"])


def test_same_seed_same_corpus_and_other_seed_differs() -> None:
    first, second, other = Corpus(seed=3, accounts=3), Corpus(seed=3, accounts=3), Corpus(seed=4)

    dump = json.dumps([first.users, first.all_tweets()], ensure_ascii=False)
    assert dump == json.dumps([second.users, second.all_tweets()], ensure_ascii=False)
    assert [t["id"] for t in other.all_tweets()][:50] != [t["id"] for t in first.all_tweets()][:50]


def test_ids_are_strings_of_digits_above_2_to_the_53_unique_and_newest_first(
    corpus: Corpus,
) -> None:
    tweets = corpus.all_tweets()
    ids = [t["id"] for t in tweets]

    assert len(tweets) == 5 * 400
    assert all(isinstance(i, str) and ID_PATTERN.match(i) for i in ids)
    assert all(int(i) > 2**53 for i in ids)
    assert any(int(float(i)) != int(i) for i in ids)  # a float would lose them
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids, key=int, reverse=True)
    assert any(int(u["id"]) > 2**53 for u in corpus.users)
    assert all(ID_PATTERN.match(u["id"]) for u in corpus.users)


def test_snowflake_ids_order_like_their_creation_times() -> None:
    early = datetime(2023, 1, 1, tzinfo=UTC)
    late = early + timedelta(milliseconds=1)

    assert snowflake(early, 4095) < snowflake(late, 0)
    assert format_time(early + timedelta(microseconds=123_456)) == "2023-01-01T00:00:00.123Z"


def test_tweets_of_are_one_authors_posts_newest_first(corpus: Corpus) -> None:
    user = corpus.users[1]
    tweets = corpus.tweets_of(user["id"])

    assert len(tweets) == 400 == user["public_metrics"]["tweet_count"]
    assert {t["author_id"] for t in tweets} == {user["id"]}
    assert [t["id"] for t in tweets] == sorted((t["id"] for t in tweets), key=int, reverse=True)
    created = [t["created_at"] for t in tweets]
    assert created == sorted(created, reverse=True)


def test_ground_truth_for_a_window_is_every_post_inside_it(corpus: Corpus) -> None:
    user = corpus.users[0]
    start = datetime(2023, 1, 10, tzinfo=UTC)
    end = datetime(2023, 1, 20, 12, tzinfo=UTC)

    truth = corpus.ground_truth(username=user["username"], start_time=start, end_time=end)

    expected = [
        t["id"]
        for t in corpus.tweets_of(user["id"])
        if start <= datetime.fromisoformat(t["created_at"]) < end
    ]
    assert truth == expected
    assert 10 < len(truth) < 400


def test_ground_truth_since_id_returns_only_newer_posts(corpus: Corpus) -> None:
    username = corpus.users[2]["username"]
    everything = corpus.ground_truth(username=username)
    since = everything[30]

    newer = corpus.ground_truth(username=username, since_id=since)

    assert newer == everything[:30]
    # For a timeline since_id takes precedence over start_time (the API document says so).
    late_start = datetime(2030, 1, 1, tzinfo=UTC)
    assert corpus.ground_truth(username=username, since_id=since, start_time=late_start) == newer


def test_timeline_cap_limits_what_a_timeline_reaches() -> None:
    corpus = Corpus(seed=1, accounts=2, posts_per_account=[130, 20], timeline_cap=100)
    username = corpus.users[0]["username"]

    capped = corpus.ground_truth(username=username)
    uncapped = corpus.ground_truth(username=username, timeline_cap=False)

    assert len(uncapped) == 130
    assert capped == uncapped[:100]
    assert len(corpus.ground_truth(username=corpus.users[1]["username"])) == 20


def test_default_cap_is_the_apis_3200_posts() -> None:
    corpus = Corpus(seed=2, accounts=1, posts_per_account=[3210])

    assert len(corpus.ground_truth(username=corpus.users[0]["username"])) == 3200
    assert len(corpus.tweets_of(corpus.users[0]["id"])) == 3210


def test_long_posts_carry_the_full_text_in_note_tweet(corpus: Corpus) -> None:
    long_posts = [t for t in corpus.all_tweets() if "note_tweet" in t]

    assert long_posts
    for tweet in long_posts:
        full, shown = html.unescape(tweet["note_tweet"]["text"]), html.unescape(tweet["text"])
        assert len(full) > 280
        assert len(shown) <= 280
        shown = re.sub(r" https://t\.co/\w+$", "", shown)  # a quote's link follows the cut
        assert shown.endswith("…")
        assert full.startswith(shown[:-1])


def test_text_is_html_escaped_and_has_emoji_rtl_and_newlines(corpus: Corpus) -> None:
    texts = [t["text"] for t in corpus.all_tweets()]
    raw = "".join(texts)

    assert "<" not in raw and ">" not in raw
    assert not re.search(r"&(?!amp;|lt;|gt;)", raw)
    assert "&amp;" in raw and "&lt;" in raw and "&gt;" in raw
    assert any("\n" in t for t in texts)
    assert any(re.search("[\u0590-\u06ff]", t) for t in texts)  # Hebrew or Arabic
    assert any(re.search("[\U0001f300-\U0001faff]", t) for t in texts)  # emoji


def test_entities_point_at_their_text(corpus: Corpus) -> None:
    seen = {"hashtags": 0, "mentions": 0, "urls": 0}
    for tweet in corpus.all_tweets():
        text = html.unescape(tweet["text"])
        for kind, items in tweet.get("entities", {}).items():
            for item in items:
                seen[kind] += 1
                fragment = text[item["start"] : item["end"]]
                if kind == "hashtags":
                    assert fragment == f"#{item['tag']}"
                elif kind == "mentions":
                    assert fragment == f"@{item['username']}"
                    assert corpus.user_by_username(item["username"])["id"] == item["id"]
                else:
                    assert fragment == item["url"]
                    assert item["expanded_url"].startswith("https://")
    assert min(seen.values()) > 10, seen


def test_referenced_posts_exist_and_kinds_are_mixed(corpus: Corpus) -> None:
    kinds: dict[str, int] = {}
    for tweet in corpus.all_tweets():
        for ref in tweet.get("referenced_tweets", []):
            kinds[ref["type"]] = kinds.get(ref["type"], 0) + 1
            target = corpus.tweet(ref["id"])
            assert target is not None
            assert int(target["id"]) < int(tweet["id"])
            if ref["type"] == "replied_to":
                assert tweet["in_reply_to_user_id"] == target["author_id"]
            if ref["type"] == "retweeted":
                assert tweet["text"].startswith("RT @")
    assert set(kinds) == {"retweeted", "quoted", "replied_to"}


def test_edited_posts_list_their_history_and_old_versions_resolve(corpus: Corpus) -> None:
    edited = [t for t in corpus.all_tweets() if len(t["edit_history_tweet_ids"]) > 1]
    timeline_ids = {t["id"] for t in corpus.all_tweets()}

    assert edited
    for tweet in edited:
        chain = tweet["edit_history_tweet_ids"]
        assert chain[-1] == tweet["id"]
        assert chain == sorted(chain, key=int)
        for old_id in chain[:-1]:
            assert old_id not in timeline_ids
            old = corpus.tweet(old_id)
            assert old is not None and old["edit_history_tweet_ids"] == chain
        assert tweet["edit_controls"]["edits_remaining"] == 5 - (len(chain) - 1)
    plain = next(t for t in corpus.all_tweets() if len(t["edit_history_tweet_ids"]) == 1)
    assert plain["edit_history_tweet_ids"] == [plain["id"]]


def test_newer_posts_alone_have_bookmark_and_impression_counts(corpus: Corpus) -> None:
    for tweet in corpus.all_tweets():
        metrics = tweet["public_metrics"]
        newer = datetime.fromisoformat(tweet["created_at"]) >= METRICS_SINCE
        assert ("bookmark_count" in metrics) is newer
        assert ("impression_count" in metrics) is newer


def test_withheld_and_sensitive_posts_exist(corpus: Corpus) -> None:
    tweets = corpus.all_tweets()
    withheld = [t["withheld"] for t in tweets if "withheld" in t]

    assert withheld
    assert all(re.match(r"^[A-Z]{2}$", c) for w in withheld for c in w["country_codes"])
    assert any(t["possibly_sensitive"] for t in tweets)
    assert {t["lang"] for t in tweets} >= {"en", "ja", "ar", "he", "und"}


def test_search_words_tags_authors_or_and_negation(corpus: Corpus) -> None:
    tweets = corpus.all_tweets()
    author = corpus.users[0]
    by_author = corpus.search(f"from:{author['username']}")
    python = corpus.search("#python")
    either = corpus.search("#python OR #ML")
    not_rt = corpus.search(f"from:{author['username']} -is:retweet")
    coffee = corpus.search("COFFEE")

    assert [t["id"] for t in by_author] == [t["id"] for t in corpus.tweets_of(author["id"])]
    assert python and all(
        "python" in [h["tag"].lower() for h in t["entities"]["hashtags"]] for t in python
    )
    ml = {t["id"] for t in corpus.search("#ML")}
    assert {t["id"] for t in either} == {t["id"] for t in python} | ml
    assert not_rt and all(
        t.get("referenced_tweets", [{}])[0].get("type") != "retweeted" for t in not_rt
    )
    assert len(not_rt) < len(by_author)
    expected_coffee = [t["id"] for t in tweets if re.search(r"\bcoffee\b", _full_text(t).lower())]
    assert [t["id"] for t in coffee] == expected_coffee


def test_search_phrase_and_mentions(corpus: Corpus) -> None:
    handle = corpus.users[3]["username"]
    mentioning = corpus.search(f"@{handle}")
    phrase = corpus.search('"fish & chips"')

    assert mentioning and all(
        handle in [m["username"] for m in t["entities"]["mentions"]] for t in mentioning
    )
    assert phrase and all("fish & chips" in _full_text(t) for t in phrase)


def test_ground_truth_of_a_query_applies_the_window(corpus: Corpus) -> None:
    start = datetime(2023, 3, 1, tzinfo=UTC)

    truth = corpus.ground_truth(query="#python", start_time=start)

    assert truth == [
        t["id"]
        for t in corpus.search("#python")
        if datetime.fromisoformat(t["created_at"]) >= start
    ]


@pytest.mark.parametrize("query", ["", "   ", "(a OR b)", "a OR", "is:verified"])
def test_unsupported_queries_are_rejected_with_the_query_named(corpus: Corpus, query: str) -> None:
    with pytest.raises(QueryError, match="query"):
        corpus.search(query)


def test_bad_corpus_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="posts_per_account"):
        Corpus(accounts=2, posts_per_account=[1, 2, 3])
    with pytest.raises(ValueError, match="end"):
        Corpus(start=datetime(2023, 2, 1, tzinfo=UTC), end=datetime(2023, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="ground_truth|exactly one"):
        Corpus(accounts=1, posts_per_account=1).ground_truth()


# --- the recent days: a corpus that covers the dates a user triggers --------------------------------
_NOW = datetime(2026, 11, 30, 19, 30, 12, tzinfo=UTC)
_DEMO_ACCOUNTS = ("ada_builds", "tomas_ng", "quietriver", "nadia_k", "pixelfox")
_DEMO_QUERIES = ("python", "#dataeng -is:retweet")


@pytest.fixture(scope="module")
def recent() -> Corpus:
    return Corpus(recent_days=400, now=_NOW)


def test_every_recent_day_has_posts_for_each_demo_account_and_query(recent: Corpus) -> None:
    first = datetime(2025, 10, 26, tzinfo=UTC)  # 400 days before _NOW's date
    empty = []
    for n in range(400):
        start = first + timedelta(days=n)
        end = start + timedelta(days=1)
        for name in _DEMO_ACCOUNTS:
            if not recent.ground_truth(username=name, start_time=start, end_time=end):
                empty.append((start.date(), name))
        for query in _DEMO_QUERIES:
            if not recent.ground_truth(query=query, start_time=start, end_time=end):
                empty.append((start.date(), query))

    assert empty == []
    # Today, up to now, too: a trigger on today's date finds posts.
    today = datetime(2026, 11, 30, tzinfo=UTC)
    assert recent.ground_truth(username="ada_builds", start_time=today, end_time=_NOW)


def test_a_recent_day_is_the_same_whenever_the_corpus_is_built() -> None:
    day = datetime(2026, 11, 20, tzinfo=UTC)
    built_then = Corpus(recent_days=3, now=datetime(2026, 11, 22, 8, tzinfo=UTC))
    built_later = Corpus(recent_days=30, now=datetime(2026, 12, 10, 23, tzinfo=UTC))

    def one_day(c: Corpus) -> list[dict]:
        return c.window(c.all_tweets(), day, day + timedelta(days=1))

    assert one_day(built_then)
    assert json.dumps(one_day(built_then)) == json.dumps(one_day(built_later))


def test_recent_posts_are_never_newer_than_now_and_their_ids_carry_their_time(
    recent: Corpus,
) -> None:
    from etl.ids import watermark_problem

    tweets = recent.all_tweets()
    versions = [recent.tweet(i) for t in tweets for i in t["edit_history_tweet_ids"]]
    newest = max(datetime.fromisoformat(t["created_at"]) for t in tweets)

    assert newest <= _NOW
    assert [t["id"] for t in versions if watermark_problem(t["id"], t["created_at"], _NOW)] == []
    assert len({t["id"] for t in tweets}) == len(tweets)
    # The timeline's 3,200-post reach still covers every recent day of every account.
    for user in recent.users:
        assert len(recent.tweets_of(user["id"])) <= recent.timeline_cap


def test_the_fixed_history_is_unchanged_by_the_recent_days(corpus: Corpus) -> None:
    with_recent = Corpus(seed=7, recent_days=20, now=_NOW)

    fixed = {t["id"]: t for t in corpus.all_tweets()}
    assert all(with_recent.tweet(i) == t for i, t in fixed.items())
    assert len(with_recent.all_tweets()) > len(fixed)


def test_recent_days_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="recent_days"):
        Corpus(recent_days=-1)
