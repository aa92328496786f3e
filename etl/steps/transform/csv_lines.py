"""CSV lines built column by column: the bytes ``csv.writer`` writes, at a fraction of the cost.

Formatting field by field (what ``csv.writer`` does) is most of the time of writing a row. Here
each column is checked once for a character that needs quoting, and rows are joined from ready
cells. A column holding a value of a type ``csv.writer`` formats itself (a float, a bool) goes
to :func:`etl.steps.transform.lines.csv_writer_lines`, the reference (tested equal).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, cast

from etl.contracts.pandera_schema import Mistyped
from etl.steps.transform.lines import csv_writer_lines

if TYPE_CHECKING:
    from etl.steps.transform.values import Column

_NONE = type(None)
_CSV_SPECIAL = re.compile(r'[,"\r\n]')  # what makes csv's QUOTE_MINIMAL quote a field
_CSV_CELL_TYPES = frozenset((str, int, _NONE))


def csv_lines(columns: list[Column], types: list[set[type]] | None = None) -> list[str]:
    """The CSV line of each row, as :func:`~etl.steps.transform.lines.csv_writer_lines`.

    Args:
        columns: the cells, column by column (all of the same length); a Mistyped cell is
            written empty (the gate rejects its row, which is never written).
        types: the types each column holds, when the caller has them.

    Returns:
        One line per row, each ending in CRLF.
    """
    held = types if types is not None else [set(map(type, c)) for c in columns]
    cells = [_csv_cells(c, t) for c, t in zip(columns, held, strict=True)]
    if not columns or not columns[0] or any(c is None for c in cells):
        return csv_writer_lines(columns)
    ready = cast("list[list[str]]", cells)
    # A row of one empty field is written as "" by csv.writer; join would write nothing.
    if len(ready) == 1:
        return [(c or '""') + "\r\n" for c in ready[0]]
    ready[-1] = [c + "\r\n" for c in ready[-1]]
    return list(map(",".join, zip(*ready, strict=True)))


def _csv_cells(values: Column, types: set[type]) -> list[str] | None:
    """One column as CSV cells, quoted as csv.writer would; None when it holds a value of
    another type, which csv.writer must format."""
    if Mistyped in types:  # the gate rejects those rows: they are never written
        values = [None if type(v) is Mistyped else v for v in values]
        types = (types - {Mistyped}) | {_NONE}
    if not types <= _CSV_CELL_TYPES:
        return None
    cells: list[str] = values if types <= {str} else ["" if v is None else str(v) for v in values]
    # Most columns (ids, counts, times) never need quoting: one search over the whole column
    # proves it, and only columns that do (text, names) are quoted value by value.
    if not _CSV_SPECIAL.search("".join(cells)):
        return cells
    # Four substring tests are several times cheaper than a regex search per value.
    return [
        '"' + c.replace('"', '""') + '"' if '"' in c or "," in c or "\n" in c or "\r" in c else c
        for c in cells
    ]
