"""Pay-per-use: what an extraction costs, the caps that bound it, the dry run that predicts it.

Against the hostile fake API (tweepy's real code, the fake clock); every request is counted at the
fake's side, in ``api.log``.
"""

from __future__ import annotations

import json
import math
import pickle
import random
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from etl.config import ConfigError, Source, Window, load_config
from etl.errors import SourceFailed, SpendingStopped
from etl.payloads import COST_COUNT_FIELDS, CostPayload
from etl.pricing import MICRO, Budget, Prices, parse_usd, usd_problem, usd_text
from etl.steps.extract.cost import CostCounts, Spending, fit_max_results, month_spent
from etl.steps.extract.estimate import estimate_sources
from etl.steps.extract.land import read_json
from etl.steps.extract.run import extract_source, extract_sources
from etl.storage.keys import billing_key
from etl.storage.store import LocalStore
from tests.unit.fake_x_api import (
    EPOCH,
    FAST_RETRIES,
    USAGE_CAPPED_BODY,
    FakeClock,
    FakeXApi,
    Fault,
    mounted_client,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit

TOKEN = "unit-test-bearer-token-c0575"
ALICE = Source("account", "alice")
POSTS = Source("query", "post")
DAY = Window(EPOCH, EPOCH + timedelta(days=1))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(EPOCH.timestamp() + 2 * 86400)


@pytest.fixture
def api(clock: FakeClock) -> FakeXApi:
    return FakeXApi(clock, TOKEN)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def _extract(api, store, clock, source=POSTS, window=DAY, spending=None):  # type: ignore[no-untyped-def]
    return extract_source(
        mounted_client(api),
        store,
        source,
        window,
        clock=clock,
        sleep=clock.sleep,
        policy=FAST_RETRIES,
        rng=random.Random(7),
        spending=spending,
    )


def _capped(usd: str) -> Spending:
    return Spending(Prices(), Budget(per_run=parse_usd(usd, "test")), {"per_run": "--max-cost-usd"})


def _landed_posts(store: LocalStore, keys: Any) -> list[str]:
    return [t["id"] for k in keys for t in json.loads(store.get(k)).get("data", [])]


def _page_requests(api: FakeXApi) -> list[dict[str, str]]:
    return [params for path, params, _ in api.log if path == "/2/tweets/search/recent"]


# --- cost accounting ------------------------------------------------------------------------------
def test_an_uncapped_run_records_exactly_the_cost_of_what_it_read(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 250)

    result = _extract(api, store, clock, source=ALICE)

    manifest = read_json(store, result.manifest_key)
    assert manifest is not None and manifest["complete"] is True
    read = _landed_posts(store, result.page_keys)
    assert len(read) == 250
    # 250 posts at $0.005 and one user lookup at $0.010: $1.26, to the micro-dollar.
    expected = 250 * 5_000 + 10_000
    for cost in (manifest["cost"], result.cost):
        assert cost["posts_read"] == cost["posts_billable"] == 250
        assert cost["user_reads"] == cost["user_reads_billable"] == 1
        assert cost["estimated_cost_micro_usd"] == expected
        assert cost["estimated_cost_usd"] == 1.26
        assert cost["prices"] == {
            "post_read_usd": 0.005,
            "user_read_usd": 0.01,
            "counts_request_usd": 0.01,
        }
    assert result.to_dict()["cost"]["estimated_cost_micro_usd"] == expected


def test_custom_prices_are_the_ones_recorded(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 30)
    prices = Prices(post_read=1_234, user_read=0, counts_request=0)

    result = _extract(api, store, clock, spending=Spending(prices))

    assert result.cost["estimated_cost_micro_usd"] == 30 * 1_234
    assert result.cost["prices"]["post_read_usd"] == 0.001234


def test_the_cost_payload_has_the_declared_keys_in_order() -> None:
    numbers = list(range(1, len(COST_COUNT_FIELDS) + 1))
    counts = CostCounts(*numbers)

    payload = counts.payload(Prices())

    assert list(payload) == list(CostPayload.__annotations__)
    assert [payload[n] for n in COST_COUNT_FIELDS] == numbers  # type: ignore[literal-required]
    assert CostCounts.from_manifest(payload).plus(counts) == CostCounts(*(2 * n for n in numbers))


def test_a_post_read_again_the_same_utc_day_is_counted_as_deduplicated(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    posts = api.add_posts("alice", 120)  # one a minute from EPOCH
    first = Window(EPOCH, EPOCH + timedelta(minutes=80))
    overlapping = Window(EPOCH + timedelta(minutes=50), EPOCH + timedelta(minutes=120))

    _extract(api, store, clock, window=first)
    second = _extract(api, store, clock, window=overlapping)

    assert len(posts) == 120
    assert second.cost["posts_read"] == 70
    assert second.cost["posts_deduplicated"] == 30  # minutes 50-79 were read an hour ago
    assert second.cost["posts_billable"] == 40
    assert second.cost["estimated_cost_micro_usd"] == 40 * 5_000
    # The next UTC day, X bills them again.
    clock.now += 86400
    third = _extract(api, store, clock, window=Window(EPOCH, EPOCH + timedelta(minutes=10)))
    assert third.cost["posts_billable"] == 10 and third.cost["posts_deduplicated"] == 0
    day = billing_key(clock_day(clock), POSTS.slug)
    assert store.exists(day)
    assert [k for k in store.list("state/billing/") if k.endswith(f"/{POSTS.slug}.json")] == [day]


def clock_day(clock: FakeClock) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(clock(), UTC).strftime("%Y-%m-%d")


def test_a_cached_user_lookup_costs_nothing(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 5)
    _extract(api, store, clock, source=ALICE)

    again = _extract(
        api, store, clock, source=ALICE, window=Window(EPOCH, EPOCH + timedelta(hours=2))
    )

    assert again.cost["user_reads"] == 0 and again.cost["user_reads_cached"] == 1
    assert again.cost["posts_deduplicated"] == 5


def test_a_hostile_day_object_excuses_nothing(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 20)
    key = billing_key(clock_day(clock), "query-other")
    ids = [str(p.id) for p in api.posts]
    store.put(key, json.dumps({"posts": [*ids[:5], 7, "٣", "1" * 30, {"a": 1}]}).encode())
    store.put(billing_key(clock_day(clock), "query-broken"), b"{not json")

    result = _extract(api, store, clock)

    # Only the five real ids another source read today are excused.
    assert result.cost["posts_deduplicated"] == 5
    assert result.cost["posts_billable"] == 15


# --- the cap --------------------------------------------------------------------------------------
def test_a_two_dollar_cap_reads_at_most_400_of_1000_posts_and_lands_them(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 1000, start=EPOCH)  # a 1,000-post window: 1,000 minutes of one a minute

    with pytest.raises(SpendingStopped) as caught:
        _extract(api, store, clock, spending=_capped("2.00"))

    stop = caught.value
    assert stop.limit == "budget" and stop.name == "--max-cost-usd"
    assert "--max-cost-usd" in str(stop) and "incomplete" in str(stop)
    read = _landed_posts(store, stop.landed)
    assert len(read) == 400 and len(set(read)) == 400
    requested = [int(p["max_results"]) for p in _page_requests(api)]
    assert sum(requested) <= 400  # the worst case of every request fitted the cap
    prefix = stop.landed[0].rsplit("/", 1)[0]
    manifest = read_json(store, f"{prefix}/_manifest.json")
    assert manifest is not None
    assert manifest["complete"] is False
    assert manifest["incomplete"]["limit"] == "budget"
    assert manifest["incomplete"]["name"] == "--max-cost-usd"
    assert manifest["cost"]["estimated_cost_micro_usd"] == 2 * MICRO
    assert stop.cost is not None and stop.cost["posts_billable"] == 400


def test_the_cap_lowers_max_results_to_fit_then_stops(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 1000, start=EPOCH)

    with pytest.raises(SpendingStopped) as caught:
        _extract(api, store, clock, spending=_capped("0.80"))

    requested = [int(p["max_results"]) for p in _page_requests(api)]
    assert requested == [100, 60]  # $0.50, then the $0.30 left buys 60 posts
    assert len(_landed_posts(store, caught.value.landed)) == 160


def test_a_cap_below_the_smallest_page_sends_nothing(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 100)

    with pytest.raises(SpendingStopped, match="10 posts at least"):
        _extract(api, store, clock, spending=_capped("0.049"))

    assert api.log == []


def test_the_next_run_continues_a_stopped_window_once_the_budget_allows(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 1000, start=EPOCH)
    with pytest.raises(SpendingStopped):
        _extract(api, store, clock, spending=_capped("2.00"))
    api.log.clear()

    result = _extract(api, store, clock, spending=_capped("10"))

    assert result.status == "landed" and result.resumed_pages == 4
    read = _landed_posts(store, result.page_keys)
    assert len(read) == 1000 and len(set(read)) == 1000
    assert [p.get("next_token") for p in _page_requests(api)][0] == "t400"
    manifest = read_json(store, result.manifest_key)
    assert manifest is not None and manifest["complete"] is True and manifest["incomplete"] is None
    # The window's cost covers both calls; this call's, the 600 posts it read.
    assert manifest["cost"]["posts_billable"] == 1000
    assert manifest["cost"]["estimated_cost_micro_usd"] == 5 * MICRO
    assert result.cost["posts_billable"] == 600
    # Complete now: a third call is skipped.
    assert _extract(api, store, clock).status == "skipped"


def test_a_per_source_cap_stops_one_source_and_the_others_go_on(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 150, start=EPOCH)
    api.add_posts("bob", 50, start=EPOCH + timedelta(hours=3))
    spending = Spending(Prices(), Budget(per_source=parse_usd("0.5", "t")))

    report = extract_sources(
        mounted_client(api),
        store,
        [POSTS, Source("account", "bob")],
        DAY,
        clock=clock,
        sleep=clock.sleep,
        policy=FAST_RETRIES,
        spending=spending,
    )

    (stopped,) = report.failures
    assert isinstance(stopped, SpendingStopped) and stopped.source == POSTS
    assert stopped.name == "budget.per_source_usd"
    (bob,) = report.results
    assert bob.tweets == 50  # bob's own per-source cap is untouched by the query's
    # The query's first page held bob's 50 posts (they match "post" too): read today already,
    # they are not billed again when bob's timeline returns them.
    assert bob.cost["posts_deduplicated"] == 50 and bob.cost["posts_billable"] == 0
    assert spending.run_spent == 100 * 5_000 + 10_000


def test_a_usage_cap_429_stops_the_source_at_once_without_retrying(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 300)
    api.usage_cap = 200

    with pytest.raises(SpendingStopped) as caught:
        _extract(api, store, clock)

    stop = caught.value
    assert stop.limit == "usage_cap" and "usage cap (Monthly, Product)" in stop.name
    assert "UsageCapExceeded" in str(stop) and "not retried" in str(stop)
    statuses = [status for path, _, status in api.log if path == "/2/tweets/search/recent"]
    assert statuses == [200, 200, 429]  # the 429 was sent once
    assert clock.sleeps == []  # no wait for a rate-limit reset, no backoff
    assert len(_landed_posts(store, stop.landed)) == 200
    manifest = read_json(store, f"{stop.landed[0].rsplit('/', 1)[0]}/_manifest.json")
    assert manifest is not None and manifest["incomplete"]["limit"] == "usage_cap"


def test_a_plain_429_is_still_waited_out(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 5)
    reset = str(int(clock()) + 30)
    api.script.append(
        Fault(
            429,
            b'{"title":"Too Many Requests","type":"about:blank"}',
            headers={"x-rate-limit-reset": reset},
        )
    )

    result = _extract(api, store, clock)

    assert result.tweets == 5 and result.rate_limit_waits == 1


def test_a_usage_cap_on_the_user_lookup_stops_the_account(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.script.append(Fault(429, USAGE_CAPPED_BODY))

    with pytest.raises(SpendingStopped, match="user lookup of @alice"):
        _extract(api, store, clock, source=ALICE)

    assert len(api.log) == 1


def test_spending_stopped_survives_pickling() -> None:
    stop = SpendingStopped(POSTS, "budget", ["a"], 3, 1, limit="budget", name="--max-cost-usd")
    stop.cost = {"posts_billable": 4}
    stop.retries = 2

    back = pickle.loads(pickle.dumps(stop))

    assert isinstance(back, SourceFailed) and back.name == "--max-cost-usd"
    assert (back.cost, back.retries, back.requests, back.landed) == (
        {"posts_billable": 4},
        2,
        3,
        ("a",),
    )


@pytest.mark.parametrize(
    ("headroom", "expected"),
    [
        (None, 100),
        ((10 * MICRO, "cap"), 100),
        ((300_000, "cap"), 60),
        ((50_000, "cap"), 10),
        ((49_999, "cap"), (49_999, "cap")),
        ((-5, "cap"), (-5, "cap")),
    ],
)
def test_fit_max_results(headroom: Any, expected: Any) -> None:
    assert fit_max_results(headroom, 5_000, 10, 100) == expected


def test_a_month_budget_counts_the_months_manifests_and_the_usage_report(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 40)
    _extract(api, store, clock)  # $0.20 this month
    client = mounted_client(api)
    from etl.steps.extract.client import FetchContext

    context = FetchContext(clock, clock.sleep, FAST_RETRIES, random.Random(1))
    from datetime import UTC, datetime

    now = datetime.fromtimestamp(clock(), UTC)
    spent, basis = month_spent(store, now, Prices(), None, None)
    assert spent == 40 * 5_000 and "1 manifest" in basis
    api.posts_served = 1000  # the project read more than our manifests know (another app)
    spent, basis = month_spent(store, now, Prices(), client, context)
    assert spent == 1000 * 5_000 and "usage/tweets: 1000 posts" in basis
    next_month = now + timedelta(days=40)
    assert month_spent(store, next_month, Prices(), None, None)[0] == 0


# --- the dry run ----------------------------------------------------------------------------------
def test_a_dry_run_sends_only_counts_and_lookup_requests(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 130, start=EPOCH)
    api.add_posts("bob", 20, start=EPOCH + timedelta(days=3))

    report = estimate_sources(
        mounted_client(api),
        store,
        [POSTS, Source("account", "bob")],
        DAY,
        clock=clock,
        sleep=clock.sleep,
    )

    paths = [path for path, _, _ in api.log]
    assert paths == ["/2/tweets/counts/recent", "/2/users/by/username/bob"]
    query, account = report.estimates
    assert (query.posts, query.method) == (130, "counts_recent")
    assert query.cost_micros == 130 * 5_000 and query.spent_micros == 10_000
    assert (account.posts, account.method) == (20, "user_tweet_count")
    assert "public_metrics.tweet_count" in account.detail
    assert account.cost_micros == 20 * 5_000 + 10_000
    assert not list(store.list("raw/"))


def test_a_dry_run_of_an_old_window_asks_the_full_archive_counts(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    clock.now += 30 * 86400

    report = estimate_sources(
        mounted_client(api), store, [POSTS], DAY, clock=clock, sleep=clock.sleep
    )

    assert [path for path, _, _ in api.log] == ["/2/tweets/counts/all"]
    assert report.estimates[0].method == "counts_all"


def test_a_dry_run_estimates_an_account_from_its_last_run(
    api: FakeXApi, store: LocalStore, clock: FakeClock
) -> None:
    api.add_posts("alice", 48, start=EPOCH)  # 48 posts in the first day
    _extract(api, store, clock, source=ALICE)
    api.log.clear()
    two_days = Window(EPOCH + timedelta(days=1), EPOCH + timedelta(days=3))

    report = estimate_sources(
        mounted_client(api), store, [ALICE], two_days, clock=clock, sleep=clock.sleep
    )

    assert api.log == []  # the rate and the cached user id need no request
    (estimate,) = report.estimates
    assert estimate.method == "last_run_rate" and estimate.posts == 96
    assert estimate.cost_micros == 96 * 5_000  # the user id is cached: no lookup to pay


@pytest.mark.parametrize(
    "meta",
    [
        {"total_tweet_count": "12"},
        {"total_tweet_count": -1},
        {"total_tweet_count": True},
        {"total_tweet_count": 1e30},
        {"total_tweet_count": 10**13},
        {"next_token": "not a token\n"},
    ],
)
def test_hostile_counts_are_kept_and_fail_the_source(
    api: FakeXApi, store: LocalStore, clock: FakeClock, meta: dict[str, Any]
) -> None:
    api.counts_override = meta

    report = estimate_sources(
        mounted_client(api),
        store,
        [POSTS],
        DAY,
        clock=clock,
        sleep=clock.sleep,
        policy=FAST_RETRIES,
    )

    (failure,) = report.failures
    assert "counts" in failure.reason
    assert len(api.log) == FAST_RETRIES.max_attempts
    assert store.list("state/dry-run/_rejected/")  # what could not be used is kept


# --- settings -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "-1",
        "nan",
        "inf",
        "1e3",
        "1.1234567",
        " ",
        "٣",
        "2,5",
        True,
        -0.5,
        math.nan,
        math.inf,
        1e-9,
    ],
)
def test_bad_amounts_are_refused(value: object) -> None:
    assert usd_problem(value, 1_000_000) is not None
    with pytest.raises(ValueError, match="--max-cost-usd"):
        parse_usd(value, "--max-cost-usd")


@pytest.mark.parametrize(
    ("value", "micros"),
    [("2", 2 * MICRO), ("2.00", 2 * MICRO), (0.005, 5_000), (0, 0), ("0.000001", 1)],
)
def test_good_amounts_are_exact(value: object, micros: int) -> None:
    assert parse_usd(value, "x") == micros


def test_usd_text() -> None:
    assert [usd_text(n) for n in (0, 5_000, 2 * MICRO, 1_234_567)] == [
        "$0.00",
        "$0.005",
        "$2.00",
        "$1.234567",
    ]


def test_prices_and_budget_come_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "sources: {queries: [x]}\nprices: {post_read_usd: 0.004}\n"
        "budget: {per_run_usd: 5, per_month_usd: 100.5}\n",
        encoding="utf-8",
    )

    config = load_config(path)

    assert config.prices == Prices(post_read=4_000)
    assert config.budget == Budget(per_run=5 * MICRO, per_month=100_500_000)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("prices: {post_read_usd: .nan}", "prices.post_read_usd"),
        ("prices: {post_read_usd: -1}", "prices.post_read_usd"),
        ("prices: {post_read_usd: 101}", "prices.post_read_usd"),
        ("prices: {user_read_usd: 'x'}", "prices.user_read_usd"),
        ("budget: {per_run_usd: .inf}", "budget.per_run_usd"),
        ("budget: {per_month_usd: 2000000}", "budget.per_month_usd"),
        ("budget: {per_source_usd: true}", "budget.per_source_usd"),
        ("budget: {per_day_usd: 1}", "budget.per_day_usd"),
    ],
)
def test_bad_prices_and_budgets_in_the_config_are_named(
    tmp_path: Path, body: str, where: str
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"sources: {{queries: [x]}}\n{body}\n", encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert where in str(caught.value) and "\n" not in str(caught.value)


def test_the_emulator_usage_cap_fault_parses_and_refuses_bad_values() -> None:
    from etl.tools.emulator import Faults

    assert Faults.parse(["usage-cap=0"]).usage_cap == 0
    assert "usage_cap=0" in Faults.parse(["usage-cap=0"]).describe()
    for bad in ("usage-cap=-1", "usage-cap=x", "usage-cap"):
        with pytest.raises(ValueError, match="usage-cap=POSTS"):
            Faults.parse([bad])


@pytest.mark.parametrize(
    "body", [b'{"data":{"project_usage":"999"}}', b'{"data":{"project_usage":-5}}', b"[1]", b"{}"]
)
def test_a_hostile_usage_report_is_not_believed(
    api: FakeXApi, store: LocalStore, clock: FakeClock, body: bytes
) -> None:
    from datetime import UTC, datetime

    from etl.steps.extract.client import FetchContext

    api.script.extend([Fault(200, body)] * FAST_RETRIES.max_attempts)
    context = FetchContext(clock, clock.sleep, FAST_RETRIES, random.Random(1))
    now = datetime.fromtimestamp(clock(), UTC)

    spent, basis = month_spent(store, now, Prices(), mounted_client(api), context)

    assert spent == 0 and "did not answer" in basis
