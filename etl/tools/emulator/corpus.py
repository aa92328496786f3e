"""The emulator's deterministic corpus: accounts and their posts over time, from a seed.

Everything is derived from ``random.Random(seed)``, so the same seed gives the same users, posts,
ids and texts on every machine, and tests can ask :meth:`Corpus.ground_truth` for the complete
answer an extraction must return. Post objects are full X API v2 tweet objects (every field the
emulator knows); the server picks the requested fields from them.

The mix follows what recordings of the real API show: snowflake ids (well above 2**53) made from
the creation time, HTML-escaped text with emoji, RTL scripts and newlines, long posts with the full
text in ``note_tweet``, edited posts with several ids in ``edit_history_tweet_ids``, withheld
posts, retweets, quotes and replies, and ``bookmark_count``/``impression_count`` only on posts
newer than when X introduced them.

Besides that fixed history (Nov 2022 to Apr 2023, what the tests' ground truths rely on), a corpus
can also cover the days up to now (``recent_days``), so a run triggered on today's date finds posts.
Each of those days is generated from its own seed (the corpus seed and the date), so a day holds
the same posts whichever day the emulator was started on; only posts created after ``now`` (and
edits made after it) are left out. Every account posts on every one of those days, and its first
post of the day is an original carrying the word ``python`` and one hashtag (``#dataeng`` for the
first account), so the demo's accounts and queries (``pipeline.yaml``) have posts in every daily
interval.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from etl.errors import QueryError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "DEFAULT_END",
    "DEFAULT_START",
    "METRICS_SINCE",
    "RECENT_POSTS_PER_DAY",
    "TIMELINE_CAP",
    "Corpus",
    "QueryError",
    "format_time",
    "snowflake",
]

TWITTER_EPOCH_MS = 1_288_834_974_657
TIMELINE_CAP = 3200
DEFAULT_START = datetime(2022, 11, 1, tzinfo=UTC)
DEFAULT_END = datetime(2023, 5, 1, tzinfo=UTC)
# bookmark_count and impression_count appear in public_metrics only on posts from here on.
METRICS_SINCE = datetime(2022, 12, 15, tzinfo=UTC)
# Long posts (note_tweet) only exist from here on.
NOTE_TWEET_SINCE = datetime(2023, 2, 9, tzinfo=UTC)
RECENT_POSTS_PER_DAY = (3, 6)
"""Fewest and most posts an account makes on each recent day (400 days stay within the timeline's
3,200-post reach)."""
_EDIT_WINDOW = timedelta(hours=1)
_TRUNCATE_AT = 270
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_HANDLES = (
    "ada_builds",
    "tomas_ng",
    "quietriver",
    "nadia_k",
    "pixelfox",
    "data_eng",
    "yuki_codes",
    "lena_m",
    "ravi_writes",
    "mx_ortega",
    "owl_at_dawn",
    "samir_h",
    "frida_ok",
    "kenji_t",
)
_NAMES = (
    "Ada Builds 🛠️",
    "Tomás N.",
    "quiet river",
    "نادية ك",
    "PixelFox 🦊",
    "Data Eng & Co",
    "ゆき",
    "Lena M.",
    "Ravi <writes>",
    "M. Ortega",
    "Owl at dawn 🦉",
    "שמיר ה",
    "Frida",
    "Kenji",
)
_WORDS = (
    "pipeline",
    "data",
    "contract",
    "release",
    "coffee",
    "weekend",
    "airflow",
    "bug",
    "deploy",
    "schema",
    "rain",
    "train",
    "python",
    "garden",
    "review",
    "lunch",
    "meeting",
    "launch",
    "bird",
    "music",
    "tests",
    "rust",
    "query",
    "cloud",
    "bucket",
    "night",
    "morning",
    "team",
    "idea",
)
_TAGS = ("dataeng", "python", "MondayMotivation", "opensource", "café", "日本", "ML", "news")
_EXTRAS = (
    "fish & chips",
    "a < b > c",
    "🎉🎉",
    "مرحبا بالعالم",
    "שלום עולם",
    "日本語のテキスト",
    "line one\nline two",
    "“quoted” words",
    "ok 👍🏽",
    "x&y",
    "tabs\tand spaces",
)
_LANGS = ("en", "en", "en", "en", "es", "ja", "ar", "he", "und")
_COUNTRIES = ("DE", "FR", "IN", "TR", "RU", "BR")
_TOKEN_RE = re.compile(r'-?"[^"]*"|\S+')


@dataclass(frozen=True)
class _Post:
    """A post before rendering, with what the query engine and ground truth need."""

    id: int
    author: int
    created: datetime
    full_text: str
    kind: str  # original, retweeted, quoted, replied_to
    ref: int | None
    hashtags: tuple[str, ...]
    mentions: tuple[str, ...]
    lang: str
    links: tuple[tuple[str, str], ...] = ()  # (t.co url in the text, expanded url)


def snowflake(when: datetime, sequence: int) -> int:
    """A snowflake id for a moment: milliseconds since the Twitter epoch, shifted, plus a sequence.

    Args:
        when: the creation time.
        sequence: distinguishes ids created in the same millisecond (0..4095).

    Returns:
        The id; for any date after 2010-11 it is above 2**53.
    """
    ms = (when - _EPOCH) // timedelta(milliseconds=1) - TWITTER_EPOCH_MS
    # Worker and sequence bits vary like the real ones do, so the low bits are not all zero and
    # a float (53-bit mantissa) cannot hold the id exactly.
    worker = (ms * 7919) % 1024
    return (ms << 22) | (worker << 12) | ((ms * 37 + sequence) & 0xFFF)


def format_time(when: datetime) -> str:
    """The API's timestamp format: UTC, millisecond precision, ``Z`` suffix."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _escape(text: str) -> str:
    # The API escapes exactly these three; quotes stay as they are.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Corpus:
    """Accounts and posts, deterministic from a seed.

    Attributes:
        seed: the seed everything derives from.
        users: API user objects (every user field the emulator knows), in account order.
        timeline_cap: how far back a user timeline reaches (the API's 3,200 posts).
    """

    def __init__(
        self,
        seed: int = 42,
        accounts: int = 5,
        posts_per_account: int | Sequence[int] = 400,
        start: datetime = DEFAULT_START,
        end: datetime = DEFAULT_END,
        *,
        timeline_cap: int = TIMELINE_CAP,
        recent_days: int = 0,
        now: datetime | None = None,
    ) -> None:
        """Generate the corpus.

        Args:
            seed: the random seed.
            accounts: number of accounts (at most 14).
            posts_per_account: posts per account, or one count per account (e.g. one above 3,200
                to exercise the timeline cap).
            start: earliest creation time (inclusive).
            end: latest creation time (exclusive).
            timeline_cap: how many of an account's newest posts its timeline serves.
            recent_days: also cover the UTC days from ``recent_days`` days before ``now`` up to
                ``now`` (0: only the fixed history). Each day is deterministic on its own.
            now: the end of the recent days (default: the current time); nothing created after
                it is served.
        """
        if not 1 <= accounts <= len(_HANDLES):
            raise ValueError(f"accounts must be between 1 and {len(_HANDLES)}, got {accounts}")
        counts = (
            [posts_per_account] * accounts
            if isinstance(posts_per_account, int)
            else list(posts_per_account)
        )
        if len(counts) != accounts or any(c < 0 for c in counts):
            raise ValueError(f"posts_per_account must give {accounts} counts >= 0, got {counts}")
        if end <= start:
            raise ValueError(f"end ({end}) must be after start ({start})")
        if not 0 <= recent_days <= 3650:
            raise ValueError(f"recent_days must be between 0 and 3650, got {recent_days}")
        self.seed = seed
        self.timeline_cap = timeline_cap
        self._rng = random.Random(seed)
        self.users = [self._make_user(i) for i in range(accounts)]
        self._user_by_id = {u["id"]: u for u in self.users}
        self._posts: dict[int, _Post] = {}
        self._order: list[_Post] = []
        self._tweets: dict[str, dict[str, Any]] = {}
        self._old_versions: dict[str, dict[str, Any]] = {}
        self._by_author: dict[str, list[str]] = {u["id"]: [] for u in self.users}
        self._searches: dict[str, list[dict[str, Any]]] = {}
        # References (replies, quotes) reach back only to posts from here on: a recent day's
        # posts then depend on that day alone.
        self._tail_from = 0
        self._used_ids: set[int] = set()
        self._generate(counts, start, end)
        if recent_days:
            moment = (now or datetime.now(UTC)).astimezone(UTC)
            first = moment.date() - timedelta(days=recent_days)
            for n in range(recent_days + 1):
                self._generate_day(first + timedelta(days=n), moment, accounts)
        self._index_authors()

    # --- public queries -----------------------------------------------------------------------
    def user_by_username(self, username: str) -> dict[str, Any] | None:
        """The user with this handle (case-insensitive, as the API), or None."""
        wanted = username.lower()
        return next((u for u in self.users if u["username"].lower() == wanted), None)

    def user_by_id(self, user_id: str) -> dict[str, Any] | None:
        """The user with this id, or None."""
        return self._user_by_id.get(user_id)

    def tweet(self, tweet_id: str) -> dict[str, Any] | None:
        """A post by id, current or an earlier version of an edited post; None when unknown."""
        return self._tweets.get(tweet_id) or self._old_versions.get(tweet_id)

    def tweets_of(self, user_id: str) -> list[dict[str, Any]]:
        """Every post of an account, newest first (before the timeline cap)."""
        return [self._tweets[i] for i in self._by_author.get(user_id, [])]

    def timeline(self, user_id: str) -> list[dict[str, Any]]:
        """What the user-timeline endpoint can reach: the newest ``timeline_cap`` posts."""
        return self.tweets_of(user_id)[: self.timeline_cap]

    def all_tweets(self) -> list[dict[str, Any]]:
        """Every current post of every account, newest first."""
        return sorted(self._tweets.values(), key=lambda t: int(t["id"]), reverse=True)

    def search(self, query: str) -> list[dict[str, Any]]:
        """Posts matching a recent-search query, newest first.

        Supported syntax: words (case-insensitive, whole words of the full text), ``"a phrase"``,
        ``#tag``, ``@user``, ``from:user``, ``to:user`` (replies), ``lang:xx``, ``is:retweet``,
        ``is:reply``, ``is:quote``, ``-`` before any term to negate it; terms side by side must
        all match; ``OR`` between groups matches either. Parentheses are not supported.

        Args:
            query: the query.

        Returns:
            Matching posts, newest first.

        Raises:
            QueryError: the query is empty or uses syntax the emulator does not support.
        """
        cached = self._searches.get(query)
        if cached is None:
            groups = _parse_query(query)
            cached = [t for t in self.all_tweets() if any(self._matches(t, g) for g in groups)]
            # The corpus never changes after construction, so a query's answer never does.
            self._searches[query] = cached
        return list(cached)

    def ground_truth(
        self,
        *,
        username: str | None = None,
        query: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        since_id: str | None = None,
        timeline_cap: bool = True,
    ) -> list[str]:
        """The complete set of post ids a correct extraction of one source must return.

        Args:
            username: an account (its timeline), or
            query: a recent-search query.
            start_time: window start, inclusive.
            end_time: window end, exclusive.
            since_id: only posts with a greater id (for a timeline it overrides ``start_time``,
                as the API document says).
            timeline_cap: apply the timeline's reach (only what the API can serve).

        Returns:
            Post ids, newest first.
        """
        if (username is None) == (query is None):
            raise ValueError("give exactly one of username or query")
        if username is not None:
            user = self.user_by_username(username)
            if user is None:
                return []
            tweets = self.timeline(user["id"]) if timeline_cap else self.tweets_of(user["id"])
            if since_id is not None:
                start_time = None  # the timeline document: since_id takes precedence
        else:
            tweets = self.search(query or "")
        return [t["id"] for t in self.window(tweets, start_time, end_time, since_id)]

    @staticmethod
    def window(
        tweets: Iterable[dict[str, Any]],
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        since_id: str | None = None,
        until_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Posts inside a window: ``start_time <= created_at < end_time``, ids in (since, until)."""
        out = []
        for t in tweets:
            created = datetime.fromisoformat(t["created_at"])
            if start_time is not None and created < start_time:
                continue
            if end_time is not None and created >= end_time:
                continue
            if since_id is not None and int(t["id"]) <= int(since_id):
                continue
            if until_id is not None and int(t["id"]) >= int(until_id):
                continue
            out.append(t)
        return out

    # --- generation ---------------------------------------------------------------------------
    def _make_user(self, i: int) -> dict[str, Any]:
        rng = self._rng
        created = datetime(2009 + i, 1 + i % 12, 1 + (i * 3) % 27, 12, 0, tzinfo=UTC)
        # Older accounts have small numeric ids; newer ones snowflake ids above 2**53.
        uid = str(snowflake(created, i) if i % 3 == 2 else 10_000_000 + rng.randrange(10**9))
        username = _HANDLES[i]
        user: dict[str, Any] = {
            "id": uid,
            "name": _NAMES[i],
            "username": username,
            "created_at": format_time(created),
            "description": _escape(f"I post about {rng.choice(_WORDS)} & {rng.choice(_WORDS)}"),
            "protected": False,
            "verified": i % 4 == 0,
            "public_metrics": {
                "followers_count": rng.randrange(10, 50_000),
                "following_count": rng.randrange(10, 2_000),
                "tweet_count": 0,
                "listed_count": rng.randrange(0, 300),
            },
            "url": "",
        }
        if i % 2 == 0:
            user["location"] = rng.choice(("Berlin", "Lagos", "São Paulo", "東京", "Cairo"))
        return user

    def _generate(self, counts: list[int], start: datetime, end: datetime) -> None:
        rng = self._rng
        span = (end - start).total_seconds()
        plan = sorted(
            (start + timedelta(seconds=rng.random() * span), author)
            for author, count in enumerate(counts)
            for _ in range(count)
        )
        for created, author in plan:
            created = created.replace(microsecond=(created.microsecond // 1000) * 1000)
            self._add(created, author, end)

    def _add(
        self,
        created: datetime,
        author: int,
        end: datetime,
        *,
        anchor: bool = False,
        cutoff: datetime | None = None,
    ) -> None:
        post = self._make_post(created, author, self._used_ids, anchor=anchor)
        self._posts[post.id] = post
        self._order.append(post)
        tweet = self._render(post)
        if post.created + _EDIT_WINDOW < end:
            self._maybe_edit(tweet, post, self._used_ids, cutoff)
        self._tweets[tweet["id"]] = tweet
        self._by_author[self.users[author]["id"]].append(tweet["id"])

    def _generate_day(self, day: date, now: datetime, accounts: int) -> None:
        """One recent UTC day, from its own seed; posts created after ``now`` are not added."""
        # A string seed is hashed with SHA-512 by random.seed: the same on every machine.
        rng = random.Random(f"tweetpipe-corpus:{self.seed}:{day.isoformat()}")
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        low, high = RECENT_POSTS_PER_DAY
        plan: list[tuple[datetime, int, bool]] = []
        for author in range(accounts):
            times = sorted(
                midnight + timedelta(milliseconds=rng.randrange(86_400_000))
                for _ in range(rng.randint(low, high))
            )
            plan.extend((when, author, n == 0) for n, when in enumerate(times))
        plan.sort()
        saved, self._rng = self._rng, rng
        self._tail_from = len(self._order)
        try:
            for created, author, anchor in plan:
                if created > now:
                    break  # not posted yet; later ones neither (the plan is in time order)
                self._add(created, author, midnight + timedelta(days=1), anchor=anchor, cutoff=now)
        finally:
            self._rng = saved

    def _index_authors(self) -> None:
        for uid, ids in self._by_author.items():
            ids.sort(key=int, reverse=True)
            self._user_by_id[uid]["public_metrics"]["tweet_count"] = len(ids)
            if ids:
                self._user_by_id[uid]["most_recent_tweet_id"] = ids[0]
                self._user_by_id[uid]["pinned_tweet_id"] = ids[len(ids) // 2]

    def _new_id(self, created: datetime, used: set[int]) -> int:
        seq = 0
        while snowflake(created, seq) in used:
            seq += 1
        used.add(snowflake(created, seq))
        return snowflake(created, seq)

    def _make_post(
        self, created: datetime, author: int, used: set[int], *, anchor: bool = False
    ) -> _Post:
        rng = self._rng
        tid = self._new_id(created, used)
        kind = rng.choices(("original", "retweeted", "quoted", "replied_to"), (70, 10, 10, 10))[0]
        earlier = [p for p in self._tail() if p.kind != "retweeted"]
        if anchor or (kind != "original" and not earlier):
            kind = "original"
        ref = rng.choice(earlier) if kind != "original" else None
        tags = tuple(rng.sample(_TAGS, rng.choice((0, 0, 1, 2))))
        if anchor and _TAGS[author % len(_TAGS)] not in tags:
            tags = (*tags, _TAGS[author % len(_TAGS)])
        others = [u["username"] for j, u in enumerate(self.users) if j != author]
        mentions = tuple(rng.sample(others, min(len(others), rng.choice((0, 0, 0, 1)))))
        if ref is not None and kind == "retweeted":
            ref_author = self.users[ref.author]["username"]
            body = f"RT @{ref_author}: {ref.full_text}"
            return _Post(
                tid,
                author,
                created,
                body,
                kind,
                ref.id,
                ref.hashtags,
                (ref_author,),
                ref.lang,
                ref.links,
            )
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(4, 14)))
        if anchor and "python" not in words.split():
            words = f"{words} python"
        parts = [" ".join(f"@{m}" for m in mentions), words.capitalize()]
        if rng.random() < 0.35:
            parts.append(rng.choice(_EXTRAS))
        parts.extend(f"#{t}" for t in tags)
        links: tuple[tuple[str, str], ...] = ()
        if rng.random() < 0.12:
            page = (
                f"https://blog.example.com/{rng.choice(_WORDS)}/{rng.randrange(1, 999)}?ref=x&s=1"
            )
            links = ((f"https://t.co/{_short(tid)}", page),)
            parts.append(links[0][0])
        if created >= NOTE_TWEET_SINCE and rng.random() < 0.05:
            parts.append(" ".join(rng.choice(_WORDS) for _ in range(70)))
        if kind == "replied_to" and ref is not None:
            ref_author = self.users[ref.author]["username"]
            if ref_author not in mentions:
                mentions = (ref_author, *mentions)
                parts[0] = f"@{ref_author} {parts[0]}".strip()
        text = " ".join(p for p in parts if p)
        lang = rng.choice(_LANGS)
        ref_id = ref.id if ref else None
        return _Post(tid, author, created, text, kind, ref_id, tags, mentions, lang, links)

    def _tail(self) -> list[_Post]:
        # Reference recent posts only: keeps generation linear and references plausible.
        return self._order[max(self._tail_from, len(self._order) - 50) :]

    def _render(self, post: _Post) -> dict[str, Any]:
        rng = self._rng
        user = self.users[post.author]
        full = post.full_text
        is_long = len(full) > 280 and post.kind != "retweeted"
        room = _TRUNCATE_AT - (24 if post.kind == "quoted" else 0)  # a quote ends in its link
        shown = full[:room] + "…" if is_long else full
        if post.kind == "retweeted" and len(shown) > 140:
            shown = shown[:139] + "…"
        links = post.links
        if post.kind == "quoted" and post.ref is not None:
            ref_user = self.users[self._posts[post.ref].author]["username"]
            quoted = (
                f"https://t.co/{_short(post.ref)}",
                f"https://twitter.com/{ref_user}/status/{post.ref}",
            )
            shown = f"{shown} {quoted[0]}"
            links = (*links, quoted)
        metrics: dict[str, Any] = {
            "retweet_count": rng.randrange(0, 500),
            "reply_count": rng.randrange(0, 80),
            "like_count": rng.randrange(0, 3000),
            "quote_count": rng.randrange(0, 40),
        }
        if post.created >= METRICS_SINCE:
            metrics["bookmark_count"] = rng.randrange(0, 200)
            metrics["impression_count"] = rng.randrange(100, 200_000)
        tweet: dict[str, Any] = {
            "id": str(post.id),
            "text": _escape(shown),
            "edit_history_tweet_ids": [str(post.id)],
            "author_id": user["id"],
            "created_at": format_time(post.created),
            "conversation_id": str(post.id),
            "lang": post.lang,
            "possibly_sensitive": rng.random() < 0.03,
            "reply_settings": "everyone",
            "public_metrics": metrics,
            "edit_controls": {
                "edits_remaining": 5,
                "is_edit_eligible": post.kind != "retweeted",
                "editable_until": format_time(post.created + _EDIT_WINDOW),
            },
        }
        entities = _entities(shown, post, self, links)
        if entities:
            tweet["entities"] = entities
        if post.ref is not None:
            ref = self._posts[post.ref]
            tweet["referenced_tweets"] = [{"type": post.kind, "id": str(post.ref)}]
            if post.kind == "replied_to":
                tweet["in_reply_to_user_id"] = self.users[ref.author]["id"]
                root = self._tweets.get(str(ref.id))
                tweet["conversation_id"] = root["conversation_id"] if root else str(ref.id)
        if is_long:
            tweet["note_tweet"] = {"text": _escape(full)}
            note_entities = _entities(full, post, self, post.links)
            if note_entities:
                tweet["note_tweet"]["entities"] = note_entities
        if rng.random() < 0.02:
            tweet["withheld"] = {
                "copyright": False,
                "country_codes": sorted(rng.sample(_COUNTRIES, 2)),
                "scope": "tweet",
            }
        return tweet

    def _maybe_edit(
        self, tweet: dict[str, Any], post: _Post, used: set[int], cutoff: datetime | None
    ) -> None:
        """Some originals were edited: the served version is the last, with the whole chain.

        An edit chain reaching past ``cutoff`` (now, for the recent days) has not been made yet:
        the post stays as it was. The chain is drawn all the same, so the random sequence, and
        with it every later post of the day, does not depend on when the corpus was built.
        """
        rng = self._rng
        if post.kind != "original" or rng.random() >= 0.04:
            return
        chain = [tweet["id"]]
        when = post.created
        minted = [when]
        for _ in range(rng.choice((1, 1, 2))):
            when = when + timedelta(minutes=rng.randrange(1, 50))
            chain.append(str(self._new_id(when, used)))
            minted.append(when)
        if cutoff is not None and when > cutoff:
            return
        for n, old_id in enumerate(chain[:-1]):
            # Each version is a post of its own: created when its id was minted.
            old = {**tweet, "id": old_id, "edit_history_tweet_ids": chain}
            old["created_at"] = format_time(minted[n])
            old["edit_controls"] = {**tweet["edit_controls"], "edits_remaining": 5 - n}
            self._old_versions[old_id] = old
        edited = f"{post.full_text} (edited)" if len(post.full_text) < 260 else post.full_text
        if "note_tweet" not in tweet:
            tweet["text"] = _escape(edited)
        tweet["id"] = chain[-1]
        tweet["created_at"] = format_time(when)
        tweet["conversation_id"] = chain[-1]
        tweet["edit_history_tweet_ids"] = chain
        tweet["edit_controls"] = {**tweet["edit_controls"], "edits_remaining": 5 - len(chain) + 1}

    # --- search -------------------------------------------------------------------------------
    def _matches(self, tweet: dict[str, Any], terms: list[tuple[bool, str, str]]) -> bool:
        return all(self._term(tweet, op, arg) != negated for negated, op, arg in terms)

    def _term(self, tweet: dict[str, Any], op: str, arg: str) -> bool:
        author = self._user_by_id[tweet["author_id"]]["username"].lower()
        text = _unescape(tweet.get("note_tweet", {}).get("text") or tweet["text"]).lower()
        ref_type = str((tweet.get("referenced_tweets") or [{"type": ""}])[0]["type"])
        entities = tweet.get("note_tweet", tweet).get("entities", {})
        if op == "from":
            return bool(author == arg)
        if op == "to":
            target = self._user_by_id.get(tweet.get("in_reply_to_user_id", ""))
            return target is not None and bool(target["username"].lower() == arg)
        if op == "lang":
            return bool(tweet["lang"] == arg)
        if op == "is":
            return (
                ref_type == {"retweet": "retweeted", "reply": "replied_to", "quote": "quoted"}[arg]
            )
        if op == "#":
            return any(h["tag"].lower() == arg for h in entities.get("hashtags", []))
        if op == "@":
            return any(m["username"].lower() == arg for m in entities.get("mentions", []))
        if op == "phrase":
            return arg in text
        return arg in re.findall(r"[\w']+", text)


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _short(n: int) -> str:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    n = n % (62**10)
    for _ in range(10):
        n, r = divmod(n, 62)
        out += alphabet[r]
    return out


def _entities(
    text: str, post: _Post, corpus: Corpus, links: tuple[tuple[str, str], ...]
) -> dict[str, Any]:
    """Hashtags, mentions and urls with code-point indices into the unescaped text."""
    entities: dict[str, Any] = {}
    tags = [
        {"start": m.start(), "end": m.end(), "tag": m.group(1)}
        for m in re.finditer(r"#(\w+)", text)
        if m.group(1) in post.hashtags
    ]
    mentions = []
    for m in re.finditer(r"@(\w+)", text):
        user = corpus.user_by_username(m.group(1))
        if user is not None:
            mentions.append(
                {"start": m.start(), "end": m.end(), "username": user["username"], "id": user["id"]}
            )
    urls = []
    for short, expanded in links:
        if short in text:
            start = text.index(short)
            display = expanded.split("://", 1)[1]
            urls.append(
                {
                    "start": start,
                    "end": start + len(short),
                    "url": short,
                    "expanded_url": expanded,
                    "display_url": display if len(display) <= 26 else display[:25] + "…",
                }
            )
    for name, found in (("hashtags", tags), ("mentions", mentions), ("urls", urls)):
        if found:
            entities[name] = found
    return entities


def _parse_query(query: str) -> list[list[tuple[bool, str, str]]]:
    """``a b OR c`` -> [[a, b], [c]]; each term is (negated, operator, argument)."""
    if not query.strip():
        raise QueryError("query is empty")
    if "(" in query or ")" in query:
        raise QueryError(f"query {query!r}: parentheses are not supported by the emulator")
    groups: list[list[tuple[bool, str, str]]] = [[]]
    for token in _TOKEN_RE.findall(query):
        if token == "OR":
            groups.append([])
            continue
        groups[-1].append(_parse_term(token, query))
    if any(not g for g in groups):
        raise QueryError(f"query {query!r}: OR needs a term on each side")
    return groups


def _parse_term(token: str, query: str) -> tuple[bool, str, str]:
    negated = token.startswith("-") and len(token) > 1
    body = token[1:] if negated else token
    if body.startswith('"'):
        return negated, "phrase", body.strip('"').lower()
    if body[:1] in "#@" and len(body) > 1:
        return negated, body[0], body[1:].lower()
    op, sep, arg = body.partition(":")
    if sep and op in ("from", "to", "lang", "is"):
        if op == "is" and arg not in ("retweet", "reply", "quote"):
            raise QueryError(f"query {query!r}: is:{arg} is not supported by the emulator")
        return negated, op, arg.lower()
    return negated, "word", body.lower()
