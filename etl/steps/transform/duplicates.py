"""Duplicates: the first occurrence of a tweet id wins; later ones are counted, not written.

Within a unit, :func:`first_in_unit` drops repeats before the gate; across units, the caller's
:class:`SeenIdSet` (the reference) drops ids an earlier unit took, curated or quarantined.
:class:`etl.steps.transform.uint64_ids.SeenIds` does the same in 8 bytes an id (tested equal).
A post without a string id is never anyone's duplicate: the gate rejects it.
"""

from __future__ import annotations

from typing import Any


def first_in_unit(ids: list[Any]) -> list[bool]:
    """Whether each id is its first occurrence in ``ids`` (a missing or mistyped id always is)."""
    seen: set[str] = set()
    keep = []
    for tid in ids:
        fresh = type(tid) is not str or tid not in seen  # no id, or a mistyped one: the gate's
        keep.append(fresh)
        if fresh and tid is not None:
            seen.add(tid)
    return keep


class SeenIdSet:
    """Tweet ids already taken in this run, in a set (about 100 bytes an id)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    @staticmethod
    def pack(ids: list[Any]) -> list[str | None]:
        """A unit's ids as they travel to the caller: a mistyped id is no id."""
        return [t if type(t) is str else None for t in ids]

    def first_seen(self, ids: list[str | None]) -> list[bool]:
        """Mark which ids are new (first occurrence, also within ``ids``) and remember them."""
        keep = []
        for tid in ids:
            keep.append(tid is None or tid not in self._seen)
            if tid is not None:
                self._seen.add(tid)
        return keep
