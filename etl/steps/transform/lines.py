"""The lines a run writes: quarantine lines, and CSV rows as ``csv.writer`` writes them.

Quarantine lines are strict JSON objects ``{"kind", "reason", "source", "record"}``: ``kind`` is
``tweet`` (rejected by the gate; ``record`` is the post's JSON as received), ``page`` (a body that
is empty, not UTF-8, not JSON or not a response; ``record`` is the body as text, or the JSON value
when it parsed) or ``api_error`` (a Problem from a response's partial ``errors`` array). A record
JSON in UTF-8 cannot hold as it is (a lone surrogate, undecodable bytes, a non-finite number) is
written ASCII-escaped, non-finite numbers as the strings ``NaN``/``Infinity``, and
``record_base64`` holds its original bytes.

The CSV is RFC 4180: UTF-8, CRLF line ends, fields quoted when they hold a comma, quote, CR or
LF. :func:`csv_writer_lines` is the reference; :mod:`etl.steps.transform.csv_lines` builds the
same lines column by column.
"""

from __future__ import annotations

import base64
import csv
import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from etl.steps.transform.values import Column


def quarantine_line(
    kind: str,
    reasons: list[str],
    source: str,
    record: Any,
    original: Callable[[], bytes | None] | None = None,
) -> str:
    """One quarantine line (with its newline).

    Args:
        kind: ``tweet``, ``page`` or ``api_error``.
        reasons: why the record was rejected.
        source: the raw object (and JSONL line) it came from.
        record: the JSON value as received.
        original: how to get the record's original bytes, kept when JSON cannot hold it.

    Returns:
        The line, strict JSON.
    """
    obj = {"kind": kind, "reason": reasons, "source": source, "record": record}
    return _dump_line(obj, original)


def _dump_line(obj: dict[str, Any], original: Callable[[], bytes | None] | None = None) -> str:
    """The record as it came when JSON in UTF-8 can hold it; else ASCII-escaped, non-finite
    numbers as strings, and its original bytes beside it in ``record_base64``: those, not the
    approximation, are the record."""
    try:
        line = json.dumps(obj, ensure_ascii=False, allow_nan=False)
        line.encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        pass
    else:
        return line + "\n"
    kept = dict(obj)
    raw = original() if original is not None else None
    if raw is not None:
        kept["record_base64"] = base64.b64encode(raw).decode("ascii")
    try:
        kept["record"] = _finite(obj["record"])
        return json.dumps(kept, ensure_ascii=True, allow_nan=False) + "\n"
    except (ValueError, RecursionError):  # nested too deeply to write: the bytes hold it
        kept["record"] = None
        return json.dumps(kept, ensure_ascii=True) + "\n"


def _finite(value: Any) -> Any:
    """``value`` with each non-finite float as the JSON token it stands for, as a string."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class _LineSink:
    """A file-like target for csv.writer that keeps each row's text apart."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)


def csv_writer_lines(columns: list[Column], types: list[set[type]] | None = None) -> list[str]:
    """The CSV line of each row, written by ``csv.writer`` (QUOTE_MINIMAL, CRLF).

    Args:
        columns: the cells, column by column (all of the same length).
        types: unused; the signature of :func:`etl.steps.transform.csv_lines.csv_lines`.

    Returns:
        One line per row, each ending in CRLF.
    """
    sink = _LineSink()
    csv.writer(sink, lineterminator="\r\n").writerows(zip(*columns, strict=True))
    return sink.lines
