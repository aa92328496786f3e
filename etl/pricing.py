"""Pay-per-use prices and budgets: what a read costs and how much a run may spend.

X sells API access per use: a post read, a user read, a counts request each have a price, and X
does not bill the same resource twice within a UTC day. The prices change, so they are settings
(``prices:`` in ``pipeline.yaml``) with X's published rates as defaults; budgets (``budget:``,
``--max-cost-usd``, the DAG's ``max_cost_usd`` param) cap what a run may spend.

Money is counted in whole micro-dollars (:data:`MICRO`), so sums are exact: a run of 400 posts at
$0.005 records $2.000000, never $1.9999999998. Every amount, from a file or a flag, is checked
here: a finite, non-negative number of dollars with at most six decimals, below a bound.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from etl.payloads import PricesPayload

MICRO = 1_000_000
"""Micro-dollars per dollar."""
MAX_PRICE_USD = 100
"""The largest price of one read accepted (X's are fractions of a cent)."""
MAX_BUDGET_USD = 1_000_000
"""The largest budget accepted; a larger one is a typo, not a budget."""

_USD_TEXT = re.compile(r"[0-9]{1,7}(?:\.[0-9]{1,6})?")

PRICE_KEYS = ("post_read_usd", "user_read_usd", "counts_request_usd")
"""The keys of ``prices:`` (USD per read or request)."""
BUDGET_KEYS = ("per_run_usd", "per_source_usd", "per_month_usd")
"""The keys of ``budget:`` (USD caps; each optional)."""

_AMOUNT: dict[str, Any] = {"type": ["number", "null"]}
PRICES_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "properties": {key: _AMOUNT for key in PRICE_KEYS},
}
"""The JSON Schema of ``prices:`` (the bounds are checked by :func:`usd_problem`)."""
BUDGET_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "properties": {key: _AMOUNT for key in BUDGET_KEYS},
}
"""The JSON Schema of ``budget:`` (the bounds are checked by :func:`usd_problem`)."""


def usd_problem(value: object, maximum: int) -> str | None:
    """Why ``value`` is not an amount of dollars from 0 to ``maximum``; None when it is.

    Args:
        value: an int or float (from YAML or JSON) or text (from a flag): ASCII digits with at
            most six decimals.
        maximum: the largest amount accepted, in dollars.

    Returns:
        The problem, without quoting the value, or None.
    """
    micros = _micros(value)
    if micros is None:
        return (
            f"must be a number of US dollars from 0 to {maximum:,} with at most 6 decimals "
            "(e.g. 2.50)"
        )
    if micros > maximum * MICRO:
        return f"must be at most {maximum:,} US dollars"
    return None


def _micros(value: object) -> int | None:
    """``value`` in micro-dollars, or None when it is not a finite, non-negative amount."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value * MICRO if value >= 0 else None
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0 or value > 1e12:
            return None
        micros = round(value * MICRO)
        # More than six decimals would be rounded silently: refuse instead.
        return micros if abs(micros - value * MICRO) < 1e-3 else None
    if isinstance(value, str) and _USD_TEXT.fullmatch(value.strip()):
        whole, _, fraction = value.strip().partition(".")
        return int(whole) * MICRO + int(fraction.ljust(6, "0") or "0")
    return None


def parse_usd(value: object, name: str, maximum: int = MAX_BUDGET_USD) -> int:
    """An amount of dollars, checked, in micro-dollars.

    Args:
        value: the amount (see :func:`usd_problem`).
        name: where it comes from, for the message (``--max-cost-usd``, ``budget.per_run_usd``).
        maximum: the largest amount accepted, in dollars.

    Returns:
        The amount in micro-dollars.

    Raises:
        ValueError: the value is not such an amount; the message names ``name``.
    """
    problem = usd_problem(value, maximum)
    micros = _micros(value)
    if problem is not None or micros is None:
        raise ValueError(f"{name} {problem or 'is not an amount'}")
    return micros


def usd(micros: int) -> float:
    """Micro-dollars as dollars (exact to the sixth decimal), for JSON and messages."""
    return round(micros / MICRO, 6)


def usd_text(micros: int) -> str:
    """Micro-dollars as ``$1.234567`` trimmed to at least cents (``$2.00``, ``$0.005``)."""
    whole, fraction = divmod(micros, MICRO)
    digits = f"{fraction:06d}".rstrip("0").ljust(2, "0")
    return f"${whole}.{digits}"


@dataclass(frozen=True)
class Prices:
    """What each billable read costs, in micro-dollars.

    Attributes:
        post_read: one post returned by a timeline or search page.
        user_read: one user returned by a user lookup.
        counts_request: one request to the counts endpoints.
    """

    post_read: int = 5_000
    user_read: int = 10_000
    # X lists $0.005-0.010 per counts request; the estimate takes the upper rate, so it never
    # understates what a dry run costs.
    counts_request: int = 10_000

    @classmethod
    def from_mapping(cls, doc: dict[str, Any] | None, where: str = "prices") -> Prices:
        """Prices from a ``prices:`` mapping; missing keys keep X's published rates.

        Args:
            doc: the mapping (or None).
            where: its name in messages.

        Returns:
            The prices.

        Raises:
            ValueError: a price is not an amount from 0 to :data:`MAX_PRICE_USD`.
        """
        doc = doc or {}
        given = {
            key.removesuffix("_usd"): parse_usd(doc[key], f"{where}.{key}", MAX_PRICE_USD)
            for key in PRICE_KEYS
            if doc.get(key) is not None
        }
        return cls(**given)

    def as_dict(self) -> PricesPayload:
        """The prices in dollars, as the manifest and the lineage facet record them."""
        return {
            "post_read_usd": usd(self.post_read),
            "user_read_usd": usd(self.user_read),
            "counts_request_usd": usd(self.counts_request),
        }


@dataclass(frozen=True)
class Budget:
    """Spending caps in micro-dollars; None means no cap.

    Attributes:
        per_run: what one run (one CLI call, one DAG run) may spend over all its sources.
        per_source: what one source may spend in one run.
        per_month: what the calendar month (UTC) may spend, as the store's manifests (and the
            API's usage report, when it answers) record it.
    """

    per_run: int | None = None
    per_source: int | None = None
    per_month: int | None = None

    @classmethod
    def from_mapping(cls, doc: dict[str, Any] | None, where: str = "budget") -> Budget:
        """A budget from a ``budget:`` mapping.

        Args:
            doc: the mapping (or None).
            where: its name in messages.

        Returns:
            The budget.

        Raises:
            ValueError: a cap is not an amount from 0 to :data:`MAX_BUDGET_USD`.
        """
        doc = doc or {}
        caps = {
            key.removesuffix("_usd"): None
            if doc.get(key) is None
            else parse_usd(doc[key], f"{where}.{key}")
            for key in BUDGET_KEYS
        }
        return cls(**caps)

    @property
    def capped(self) -> bool:
        """Whether any cap is set."""
        return any(v is not None for v in (self.per_run, self.per_source, self.per_month))

    def with_run_cap(self, micros: int | None) -> Budget:
        """This budget with a per-run cap no larger than ``micros`` (a flag or DAG param)."""
        if micros is None:
            return self
        run = micros if self.per_run is None else min(self.per_run, micros)
        return Budget(run, self.per_source, self.per_month)

    def as_dict(self) -> dict[str, float | None]:
        """The caps in dollars (None when unset)."""
        return {
            "per_run_usd": None if self.per_run is None else usd(self.per_run),
            "per_source_usd": None if self.per_source is None else usd(self.per_source),
            "per_month_usd": None if self.per_month is None else usd(self.per_month),
        }
