"""The seen-ids registry in 8 bytes an id: decimal ids as a sorted uint64 array.

A Python set (:class:`etl.steps.transform.duplicates.SeenIdSet`, the reference) costs about 100
bytes an id and would break the flat-memory target at a million posts. Decimal ids (all real
ones) also travel from a worker to the caller as one array, without a Python object per id.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

# Decimal ids of up to 19 digits without a leading zero (they fit in a uint64), one a line.
_DECIMAL_IDS = re.compile(r"(?:0|[1-9][0-9]{0,18})(?:\n(?:0|[1-9][0-9]{0,18}))*")


def _all_decimal_ids(ids: list[Any]) -> bool:
    """Whether every id is a decimal id (see above), checked in one pass."""
    try:
        joined = "\n".join(cast("list[str]", ids))
    except TypeError:  # a missing id
        return False
    return joined.count("\n") == len(ids) - 1 and _DECIMAL_IDS.fullmatch(joined) is not None


def _id_numbers(ids: list[str]) -> np.ndarray:
    """Decimal ids as uint64 numbers."""
    return np.array(list(map(int, ids)), dtype=np.uint64)


class SeenIds:
    """Tweet ids already taken in this run: decimal ids in a sorted uint64 array, others in a
    set."""

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)
        self._other: set[str] = set()

    @staticmethod
    def pack(ids: list[Any]) -> list[str | None] | np.ndarray:
        """A unit's ids as they travel to the caller: all decimal, as numbers; else a list in
        which a mistyped id is no id."""
        if _all_decimal_ids(ids):
            return _id_numbers(ids)
        return [t if type(t) is str else None for t in ids]

    def first_seen(self, ids: list[str | None] | np.ndarray) -> list[bool]:
        """Mark which ids are new (first occurrence, also within ``ids``) and remember them.
        ``ids`` may be decimal ids already as numbers (see :meth:`pack`)."""
        keep = [True] * len(ids)
        if isinstance(ids, np.ndarray):
            self._take(ids, range(len(ids)), keep)
            return keep
        if _all_decimal_ids(ids):  # the usual case: one match over all ids, no loop
            self._take(_id_numbers(cast("list[str]", ids)), range(len(ids)), keep)
            return keep
        positions: list[int] = []
        numbers: list[int] = []
        for i, tid in enumerate(ids):
            if tid is None:
                continue  # no id: the gate rejects it
            if tid.isascii() and tid.isdigit() and len(tid) <= 19 and (tid[0] != "0" or tid == "0"):
                positions.append(i)
                numbers.append(int(tid))
            elif tid in self._other:
                keep[i] = False
            else:
                self._other.add(tid)
        if numbers:
            self._take(np.array(numbers, dtype=np.uint64), positions, keep)
        return keep

    def _take(self, values: np.ndarray, positions: Sequence[int], keep: list[bool]) -> None:
        unique, first = np.unique(values, return_index=True)
        drop = np.ones(len(values), dtype=bool)
        drop[first] = False
        drop |= self._known(values)
        for pos in np.flatnonzero(drop).tolist():
            keep[positions[pos]] = False
        fresh = unique[~self._known(unique)]
        # Two sorted runs: the stable sort (timsort) merges them in linear time.
        self._sorted = np.sort(np.concatenate((self._sorted, fresh)), kind="stable")

    def _known(self, values: np.ndarray) -> np.ndarray:
        if not len(self._sorted):
            return np.zeros(len(values), dtype=bool)
        at = np.minimum(np.searchsorted(self._sorted, values), len(self._sorted) - 1)
        known: np.ndarray = self._sorted[at] == values
        return known
