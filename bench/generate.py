"""Write N realistic X API v2 posts as timeline response pages, deterministically from a seed.

Each page is one ``GET /2/users/{id}/tweets`` response body (OpenAPI 2.159 ``Get2UsersIdTweetsResponse``)
with 100 posts, ``includes.users`` and ``meta``; the pages go one per line into a JSONL file. The mix
follows what a timeline with every tweet field requested looks like: entities (hashtags, mentions,
URLs, annotations), public metrics, edit controls, context annotations, replies, quotes, retweets,
long posts with ``note_tweet``, HTML-escaped text, emoji, right-to-left scripts and newlines.

    python bench/generate.py --tweets 100000 --seed 7 --out bench/data/tweets-100k.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

PAGE_SIZE = 100
_FIRST_ID = 1_700_000_000_000_000_000  # far above 2**53, like real post ids
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_WORDS = (
    "data pipeline contract quality lineage stream batch schema release deploy cloud storage "
    "python pandas airflow metrics latency window partition replay backfill audit publish "
    "morning coffee weekend launch team review ship fix bug test green build cache"
).split()
_EXTRAS = (
    "&amp;",
    "&lt;3",
    "-&gt;",
    "🎉",
    "🚀",
    "👩🏽‍💻",
    "שלום עולם",
    "مرحبا",
    "日本語のテキスト",
    '"quoted"',
    "a, b, c",
    "\n",
)
_LANGS = ("en", "en", "en", "de", "fr", "ja", "es", "he", "ar", "und")
_DOMAINS = ("example.com", "blog.example.org", "docs.example.net")


def _user(rng: random.Random, index: int) -> dict[str, Any]:
    uid = str(10_000_000 + index * 7919)
    return {
        "id": uid,
        "username": f"user_{index}",
        "name": rng.choice(("Alice", "Bob 🚀", "Chloé, PhD", "דוד", 'Eve "E"')) + f" {index}",
        "created_at": "2015-03-01T10:00:00.000Z",
        "verified": rng.random() < 0.1,
        "public_metrics": {
            "followers_count": rng.randrange(10**6),
            "following_count": rng.randrange(5000),
            "tweet_count": rng.randrange(10**5),
            "listed_count": rng.randrange(500),
        },
    }


def _text(rng: random.Random, tags: list[str], mentions: list[str], url: str | None) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randrange(6, 30))]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words) + 1), rng.choice(_EXTRAS))
    parts = [f"@{m}" for m in mentions] + words + [f"#{t}" for t in tags]
    if url:
        parts.append(url)
    return " ".join(parts)


def _entities(text: str, tags: list[str], mentions: list[str], url: str | None) -> dict[str, Any]:
    entities: dict[str, Any] = {}
    if tags:
        entities["hashtags"] = [
            {"start": text.find(f"#{t}"), "end": text.find(f"#{t}") + len(t) + 1, "tag": t}
            for t in tags
        ]
    if mentions:
        entities["mentions"] = [
            {
                "start": text.find(f"@{m}"),
                "end": text.find(f"@{m}") + len(m) + 1,
                "username": m,
                "id": str(20_000_000 + len(m)),
            }
            for m in mentions
        ]
    if url:
        start = text.find(url)
        entities["urls"] = [
            {
                "start": start,
                "end": start + len(url),
                "url": url,
                "expanded_url": f"https://{_DOMAINS[len(url) % 3]}/p/{start}",
                "display_url": f"{_DOMAINS[len(url) % 3]}/p/{start}",
            }
        ]
    return entities


def _tweet(
    rng: random.Random, tid: int, author: dict[str, Any], created: datetime
) -> dict[str, Any]:
    tags = [rng.choice(_WORDS) for _ in range(rng.choice((0, 0, 1, 2)))]
    mentions = [f"user_{rng.randrange(500)}" for _ in range(rng.choice((0, 0, 1)))]
    url = f"https://t.co/{rng.randrange(16**8):08x}" if rng.random() < 0.3 else None
    text = _text(rng, tags, mentions, url)
    sid = str(tid)
    tweet: dict[str, Any] = {
        "id": sid,
        "text": text[:280],
        "author_id": author["id"],
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "lang": rng.choice(_LANGS),
        "conversation_id": sid,
        "possibly_sensitive": rng.random() < 0.02,
        "reply_settings": "everyone",
        "edit_history_tweet_ids": [sid],
        "edit_controls": {
            "edits_remaining": 5,
            "is_edit_eligible": True,
            "editable_until": (created + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        },
        "public_metrics": {
            "retweet_count": rng.randrange(1000),
            "reply_count": rng.randrange(100),
            "like_count": rng.randrange(10000),
            "quote_count": rng.randrange(50),
            "bookmark_count": rng.randrange(100),
            "impression_count": rng.randrange(10**6),
        },
    }
    entities = _entities(text, tags, mentions, url)
    if entities:
        tweet["entities"] = entities
    kind = rng.random()
    if kind < 0.15:
        parent = str(tid - rng.randrange(1, 10**9))
        tweet["referenced_tweets"] = [{"type": "replied_to", "id": parent}]
        tweet["in_reply_to_user_id"] = str(10_000_000 + rng.randrange(500) * 7919)
        tweet["conversation_id"] = parent
    elif kind < 0.25:
        tweet["referenced_tweets"] = [{"type": "quoted", "id": str(tid - rng.randrange(1, 10**9))}]
    elif kind < 0.35:
        tweet["referenced_tweets"] = [
            {"type": "retweeted", "id": str(tid - rng.randrange(1, 10**9))}
        ]
        tweet["text"] = "RT @user_1: " + tweet["text"][:260]
    if rng.random() < 0.2:
        tweet["context_annotations"] = [
            {
                "domain": {"id": "46", "name": "Business Taxonomy", "description": "Categories"},
                "entity": {"id": "1557697333571112960", "name": "Technology Business"},
            }
        ]
    if len(text) > 280:
        tweet["note_tweet"] = {"text": text, "entities": entities}
    elif rng.random() < 0.03:
        long_text = text + "\n\n" + " ".join(rng.choice(_WORDS) for _ in range(80))
        tweet["note_tweet"] = {"text": long_text, "entities": entities}
        tweet["text"] = long_text[:275] + "…"
    return tweet


def generate_pages(n_tweets: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Yield timeline response pages holding ``n_tweets`` posts in total.

    Args:
        n_tweets: how many posts to generate.
        seed: random seed; the same seed gives the same pages.

    Returns:
        An iterator of response objects, ``PAGE_SIZE`` posts each (the last may hold fewer).
    """
    rng = random.Random(seed)
    users = [_user(rng, i) for i in range(500)]
    tid = _FIRST_ID
    created = _EPOCH
    for start in range(0, n_tweets, PAGE_SIZE):
        authors = rng.sample(users, 10)
        tweets = []
        for _ in range(min(PAGE_SIZE, n_tweets - start)):
            tid += rng.randrange(1, 10**12)
            created += timedelta(seconds=rng.randrange(1, 120))
            tweets.append(_tweet(rng, tid, rng.choice(authors), created))
        ids = [t["id"] for t in tweets]
        yield {
            "data": tweets,
            "includes": {"users": authors},
            "meta": {
                "result_count": len(tweets),
                "newest_id": max(ids, key=int),
                "oldest_id": min(ids, key=int),
                "next_token": f"b26v89c19zqg8o3f{start:08d}",
            },
        }


def write_jsonl(path: Path, n_tweets: int, seed: int = 7) -> Path:
    """Write the pages of :func:`generate_pages` to ``path``, one response per line.

    Args:
        path: the JSONL file to write (parents are created).
        n_tweets: how many posts.
        seed: random seed.

    Returns:
        ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for page in generate_pages(n_tweets, seed):
            out.write(json.dumps(page, ensure_ascii=False, separators=(",", ":")))
            out.write("\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tweets", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    write_jsonl(args.out, args.tweets, args.seed)
    print(args.out)


if __name__ == "__main__":
    main()
