"""Every fast part of the transform gives the same bytes as the reference part it replaces.

The transform is built from :class:`~etl.steps.transform.unit.Parts`; a run with one fast part
swapped for its reference (and a run with every part the reference) must write the same CSV
bytes, the same quarantine lines and the same report, on the corpora of tests/pages.py. The
worker pool's equivalence (1 worker against 2) is in tests/integration/test_transform_cli.py.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.steps.transform import curate, duplicates, fast, lines, uint64_ids, values
from etl.steps.transform.csv_lines import csv_lines
from etl.steps.transform.curate import FAST_PARTS, TransformReport, transform_pages
from etl.steps.transform.unit import REFERENCE_PARTS, Parts
from tests.pages import hostile_corpus, mixed_corpus, usual_corpus

_PART_NAMES = [f.name for f in dataclasses.fields(Parts)]


def _output(pages: list[bytes], parts: Parts) -> tuple[bytes, str, TransformReport]:
    named = [(f"raw/source=alice/page-{i:05d}.json", b) for i, b in enumerate(pages, 1)]
    csv_out, q_out = io.StringIO(newline=""), io.StringIO(newline="")
    report = transform_pages(named, csv_out, q_out, parts=parts)
    return csv_out.getvalue().encode("utf-8"), q_out.getvalue(), report


_CORPORA = {
    "mixed": mixed_corpus,
    "hostile": hostile_corpus,
    "usual": usual_corpus,
    "all": lambda: usual_corpus() + mixed_corpus() * 2 + hostile_corpus() * 2,
}


@pytest.mark.parametrize("corpus", sorted(_CORPORA))
@pytest.mark.parametrize("unit_bytes", [curate.UNIT_BYTES, 2000])  # one unit; many units
@pytest.mark.parametrize("part", [*_PART_NAMES, "every part"])
def test_the_reference_part_gives_the_same_bytes_as_the_fast_part(
    part: str, unit_bytes: int, corpus: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(curate, "UNIT_BYTES", unit_bytes)
    pages = _CORPORA[corpus]()
    if part == "every part":
        swapped = REFERENCE_PARTS
    else:
        assert getattr(FAST_PARTS, part) != getattr(REFERENCE_PARTS, part)
        swapped = dataclasses.replace(FAST_PARTS, **{part: getattr(REFERENCE_PARTS, part)})

    fast_out = _output(pages, FAST_PARTS)
    reference_out = _output(pages, swapped)

    assert reference_out[0] == fast_out[0]
    assert reference_out[1] == fast_out[1]
    assert reference_out[2] == fast_out[2]
    report = fast_out[2]
    assert report.curated >= 5
    if corpus == "all":  # every case: rows curated, posts and pages quarantined, duplicates
        assert report.quarantined > 20 and report.duplicates > 20
        assert report.pages_quarantined > 10 and report.api_errors > 2


def test_the_fast_reader_takes_the_usual_pages_and_declines_the_hostile_ones() -> None:
    # Otherwise the equivalence above would prove nothing about the fast reader.
    reader = fast.FastDecoder(curate.UnitProcessor(_contract()).columns.keys)
    assert all(reader("p", b) is not None for b in mixed_corpus()[:2])
    assert sum(reader("p", b) is None for b in hostile_corpus()) >= 8


def _contract() -> Any:
    from etl.contracts.model import load_contract

    return load_contract()


# --- each fast part against its reference, on generated values -------------------------------------
@settings(max_examples=200, deadline=None)
@given(items=st.lists(st.text(max_size=12), max_size=4))
def test_fast_json_text_is_exactly_what_json_dumps_writes(items: list[str]) -> None:
    assert fast.json_text(items) == values.json_text(items)


_CELL = st.one_of(
    st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(st.sampled_from(',"\r\n\x00 a\u2028\ud800é'), max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.integers(1, 5).flatmap(
        lambda n: st.lists(st.lists(_CELL, min_size=n, max_size=n), min_size=1, max_size=4)
    )
)
def test_csv_lines_are_exactly_what_csv_writer_writes(rows: list[list[Any]]) -> None:
    # rows here are columns: each inner list is one column, all of the same length
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(zip(*rows, strict=True))
    assert "".join(csv_lines(rows)) == out.getvalue()
    assert lines.csv_writer_lines(rows) == csv_lines(rows)


def test_csv_lines_fall_back_to_csv_writer_for_other_types() -> None:
    columns: list[list[Any]] = [["a,b", 1.5], [True, None]]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(zip(*columns, strict=True))
    assert csv_lines(columns) == ['"a,b",True\r\n', "1.5,\r\n"]
    assert "".join(csv_lines(columns)) == out.getvalue()


_ID = st.one_of(
    st.none(), st.sampled_from(["0", "1", "7", "01", "18446744073709551615", "1\n2", "x"])
)


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.lists(_ID, max_size=6), max_size=3))
def test_uint64_seen_ids_keep_exactly_what_the_set_keeps(
    batches: list[list[str | None]],
) -> None:
    # All-decimal batches take the one-pass path, the others the loop: both must agree with a set,
    # whether the ids come as they are or packed as a worker sends them.
    fast_ids, packed_ids = uint64_ids.SeenIds(), uint64_ids.SeenIds()
    reference = duplicates.SeenIdSet()
    for batch in batches:
        expected = reference.first_seen(duplicates.SeenIdSet.pack(batch))
        assert fast_ids.first_seen(batch) == expected
        assert packed_ids.first_seen(uint64_ids.SeenIds.pack(batch)) == expected
