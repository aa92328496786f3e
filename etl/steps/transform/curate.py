"""Raw X API v2 response pages to curated CSV, through the Pandera gate built from the contract.

The transform streams: pages are grouped into units of about :data:`UNIT_BYTES`; each unit is
parsed, turned into columns, validated by one vectorized Pandera call and written out before more
input is read, so memory does not grow with the input (only the set of tweet ids already seen
does, at 8 bytes an id). Units can run in worker processes (``workers``); results are merged in
input order, so the output does not depend on how many.

Speed comes from doing per-post work in C where the semantics allow it, in fast parts that
each replace a reference part with the same output (:class:`~etl.steps.transform.unit.Parts`):
msgspec decodes a page into structs holding only the fields the contract reads
(:mod:`~etl.steps.transform.fast`); columns are built with ``map`` and type-set checks, and only
values of an unexpected type take the per-value path; CSV lines are built column by column
(:mod:`~etl.steps.transform.csv_lines`); ids already seen live in a uint64 array
(:mod:`~etl.steps.transform.uint64_ids`); units run in worker processes with fewer garbage
collections (:mod:`~etl.steps.transform.pool`). Any page the fast reader cannot take goes
through ``json`` and the reference path, whose behaviour every fast part must match (tested).

Decisions users rely on (each is tested):

* Columns come from the contract. A column whose ``transformSourceObjects`` is a plain path
  (``data[].public_metrics.like_count``, ``data[].referenced_tweets[0].id``) is read from that path,
  coalescing several paths in order; ``text``, the entity lists, the author columns and
  ``source_page`` follow the ``transformLogic`` the contract states for them.
* ``text`` is ``note_tweet.text`` when present, else ``text``, with exactly ``&amp; &lt; &gt;``
  unescaped in one pass: those are the only entities X escapes, so anything else (``&copy;``,
  ``&#39;``) is what the author typed and stays as is (``html.unescape`` would change it).
* JSON types are the contract's: a column's logical type is also the JSON type its source must
  have (ids and text are strings, counts integers, flags booleans, lists arrays; on the way, an
  object such as ``public_metrics`` must be an object). A value of another JSON type (an id sent
  as a number, a count as a numeric string or a float, text as an object, a hashtag as a bare
  string) is never converted: it reaches the gate as a :class:`~etl.contracts.model.Mistyped` cell, the
  column's ``json_type`` check rejects the post, and the reason quotes the value. Ids stay exact
  strings; counts are integers (Int64 in the gate, as the contract's int64 says); a value the API
  did not send (absent or null) is empty, not 0. Unknown and new fields are never read, never
  checked, and never make a post or page fail.
* ``created_at`` is normalised to the contract's format in UTC; a time without a zone is ambiguous
  and is rejected, not guessed.
* List columns are JSON arrays (``[]`` when the API sent none), written with ``ensure_ascii=False``.
* Rows keep input order, so the same input gives a byte-identical CSV. The CSV is RFC 4180: UTF-8,
  CRLF line ends, fields quoted when they hold a comma, quote, CR or LF.
* Duplicates: the first occurrence of a tweet id wins (curated or quarantined); later ones are
  counted in ``duplicates`` and not written again. ``tweets_in = curated + quarantined +
  duplicates`` always holds.
* Any body ``json.loads`` reads (what the extractor lands) is processed: UTF-8 with or without a
  BOM, UTF-16 or UTF-32; a lone surrogate, escaped (``"\\ud800"``) or raw (bytes ``ED A0 80``);
  invalid UTF-8 inside a string; ``NaN`` or a number out of range (``1e400``). The fast path
  (msgspec) gives way to the reference path (``json``) on whatever it raises, and a bad value
  costs only its post: a string that cannot be UTF-8 fails the gate's ``utf8`` check wherever
  the contract reads it, a non-finite number its column's type; the rest of the page is curated.
* Quarantine lines are strict JSON objects ``{"kind", "reason", "source", "record"}``: ``kind`` is
  ``tweet`` (rejected by the gate; ``record`` is the post's JSON as received), ``page`` (a body that
  is empty, not UTF-8, not JSON or not a response; ``record`` is the body as text, or the JSON
  value when it parsed) or
  ``api_error`` (a Problem from a response's partial ``errors`` array, counted in ``api_errors``).
  A record JSON in UTF-8 cannot hold as it is (a lone surrogate, undecodable bytes, a non-finite
  number) is written ASCII-escaped, non-finite numbers as the strings ``NaN``/``Infinity``, and
  ``record_base64`` holds its original bytes: the post's own bytes, cut from the page, or the
  body's (an ``api_error`` record has none; its page is in ``raw/``).
* The gate fails (``report.fatal``) when a dataset-level contract rule of severity ``error`` is
  breached (``quarantined_share``), when a required column is missing entirely (no post carried
  it, e.g. a field that was not requested), when the transform cannot produce a contract column,
  or when no page at all could be parsed.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, TYPE_CHECKING

from etl.contracts.model import CURATED_CONTRACT, load_contract
from etl.errors import InputError, OutputDirBusyError
from etl.payloads import contract_label
from etl.steps.transform.columns import Columns
from etl.steps.transform.csv_lines import csv_lines
from etl.steps.transform.fast import FAST_COLUMN_OPS, FastDecoder
from etl.steps.transform.pool import few_gc_passes, results_in_parallel
from etl.steps.transform.report import TransformReport, add_fatal_checks
from etl.steps.transform.uint64_ids import SeenIds
from etl.steps.transform.unit import Parts, UnitProcessor

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from etl.contracts.model import ContractSpec
    from etl.steps.transform.unit import UnitResult

__all__ = [
    "FAST_PARTS",
    "INPUT_SUFFIXES",
    "JSONL_SUFFIXES",
    "OUTPUT_NAMES",
    "UNIT_BYTES",
    "TransformReport",
    "auto_workers",
    "input_files",
    "transform_files",
    "transform_pages",
]

UNIT_BYTES = 8 * 2**20
"""Page bytes per unit of work (about 10,000 posts): one Pandera call each, large enough to
amortise its per-call cost, small enough to keep memory flat."""

JSONL_SUFFIXES = (".jsonl", ".ndjson")
INPUT_SUFFIXES = (".json", *JSONL_SUFFIXES)

FAST_PARTS = Parts(
    reader=FastDecoder,
    column_ops=FAST_COLUMN_OPS,
    csv_lines=csv_lines,
    seen_ids=SeenIds,
    gc_tuning=few_gc_passes,
)
"""The parts a run uses unless told otherwise: every fast part."""


class _OutputMerger:
    """The caller's side of a run: the outputs, the ids already taken and the report."""

    def __init__(
        self, spec: ContractSpec, parts: Parts, csv_out: IO[str], quarantine_out: IO[str]
    ) -> None:
        import csv

        self.spec = spec
        self.report = TransformReport(contract=contract_label(spec.name, spec.version))
        self.unproduced = Columns(spec).unproduced
        self.csv_out = csv_out
        self.quarantine_out = quarantine_out
        csv.writer(csv_out, lineterminator="\r\n").writerow(spec.column_names)
        # Rows arrive as UTF-8 bytes: a file's binary layer takes them as they are.
        self.csv_bytes: IO[bytes] | None = getattr(csv_out, "buffer", None)
        if self.csv_bytes is not None:
            csv_out.flush()
        self.seen = parts.seen_ids()
        self.filled: set[str] = set()

    def merge(self, unit: UnitResult) -> None:
        """Take a unit's result in input order; repeats of ids from earlier units are dropped."""
        report = self.report
        report.pages += unit.pages
        report.pages_quarantined += unit.pages_quarantined
        report.tweets_in += unit.tweets_in
        report.api_errors += unit.api_errors
        report.quarantined += unit.not_objects
        report.duplicates += unit.duplicates
        for key, n in unit.checks.items():
            report.count(key, n)
        self.quarantine_out.writelines(unit.early_lines)
        self.filled |= unit.filled
        keep = self.seen.first_seen(unit.ids)
        if all(keep) and not unit.rejected:
            self._write_csv(unit.csv)
            report.curated += len(unit.passed)
            return
        rows: list[bytes] = []
        start = 0
        sizes = iter(unit.csv_sizes)
        for i, (kept, passed) in enumerate(zip(keep, unit.passed, strict=True)):
            if passed:
                end = start + next(sizes)
                row, start = unit.csv[start:end], end
            if not kept:
                report.duplicates += 1
            elif passed:
                rows.append(row)
                report.curated += 1
            else:
                self.quarantine_out.write(unit.rejected[i])
                report.quarantined += 1
                for key in unit.reasons[i]:
                    report.count(key)
        self._write_csv(b"".join(rows))

    def _write_csv(self, rows: bytes) -> None:
        if self.csv_bytes is not None:
            self.csv_bytes.write(rows)
        else:
            self.csv_out.write(rows.decode("utf-8"))

    def finish(self) -> TransformReport:
        add_fatal_checks(self.report, self.spec, self.unproduced, self.filled)
        return self.report


def _units(pages: Iterable[tuple[str, bytes]]) -> Iterator[list[tuple[str, bytes]]]:
    """Group pages into units of about UNIT_BYTES (one unit is one Pandera call)."""
    unit: list[tuple[str, bytes]] = []
    size = 0
    for source, body in pages:
        unit.append((source, body))
        size += len(body)
        if size >= UNIT_BYTES:
            yield unit
            unit, size = [], 0
    if unit:
        yield unit


def transform_pages(
    pages: Iterable[tuple[str, bytes]],
    csv_out: IO[str],
    quarantine_out: IO[str],
    contract: ContractSpec | None = None,
    progress: bool = False,
    workers: int = 1,
    *,
    parts: Parts = FAST_PARTS,
) -> TransformReport:
    """Transform raw response bodies into curated CSV rows and quarantine lines, streaming.

    Args:
        pages: ``(source, body)`` pairs: the name of the raw object (store key or file path) and
            its bytes, one JSON response or JSON Lines with one response per line.
        csv_out: text stream for the CSV, opened with ``newline=""``; the header is written first.
        quarantine_out: text stream for the quarantine JSON lines.
        contract: the curated contract (default: the bundled one).
        progress: show a progress bar (pages) on stderr.
        workers: worker processes for parsing and the gate; 1 (the default) runs everything in
            this process. The output is the same byte for byte whatever the number.
        parts: the implementation of each swappable part (default: the fast ones;
            :data:`etl.steps.transform.unit.REFERENCE_PARTS` gives the same output slower).

    Returns:
        The report; ``report.passed`` says whether the gate passed. The caller decides what to do
        with the CSV on a breach (``report.raise_for_gate`` raises).
    """
    spec = contract or load_contract(CURATED_CONTRACT)
    run = _OutputMerger(spec, parts, csv_out, quarantine_out)
    if progress:
        from tqdm import tqdm

        pages = tqdm(pages, unit="page", file=sys.stderr)
    units = _units(pages)
    with parts.gc_tuning():
        if workers > 1:
            results: Iterable[UnitResult] = results_in_parallel(spec, parts, units, workers)
        else:
            results = map(UnitProcessor(spec, parts).process, units)
        for result in results:
            run.merge(result)
    return run.finish()


# --- files ---------------------------------------------------------------------------------------
def input_files(inputs: list[Path]) -> list[Path]:
    """Expand INPUT arguments: files as given, directories to their JSON/JSONL files, sorted.

    Args:
        inputs: files or directories.

    Returns:
        The files, in argument order, each directory's files sorted by path.

    Raises:
        etl.errors.InputError: an input does not exist or a directory holds no JSON/JSONL file.
    """
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if _is_data_file(p, path))
            if not found:
                raise InputError(f"{path}: directory holds no .json, .jsonl or .ndjson file")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return files


def _is_data_file(path: Path, root: Path) -> bool:
    # Names starting with "_" or "." are metadata (raw/'s _manifest.json and _rejected/ bodies,
    # temporary files), not pages: the Hadoop/Spark convention etl.steps.extract.land follows.
    hidden = any(part.startswith(("_", ".")) for part in path.relative_to(root).parts)
    return path.is_file() and path.suffix in INPUT_SUFFIXES and not hidden


def _file_pages(files: list[Path]) -> Iterator[tuple[str, bytes]]:
    for path in files:
        if path.suffix in JSONL_SUFFIXES:
            # Line by line, so a JSONL file of any size never sits in memory whole.
            with path.open("rb") as handle:
                for number, line in enumerate(handle, 1):
                    if line and not line.isspace():  # as line.strip(), without copying the line
                        yield f"{path}:{number}", line
        else:
            yield str(path), path.read_bytes()


def transform_files(
    inputs: list[Path],
    out_dir: Path,
    contract_path: Path | None = None,
    progress: bool = False,
    workers: int | None = None,
) -> TransformReport:
    """Transform JSON/JSONL files; publish ``tweets.csv`` only when the gate passes.

    A run's outputs replace the last run's together, or not at all (see :mod:`etl.steps.transform.outdir`):
    they are written into a staging directory inside ``out_dir`` and moved into place when the
    run is done, ``report.json`` last; so a run that fails or is killed leaves the last outputs
    as they were, and a ``report.json`` always describes the files beside it. Each run writes
    ``quarantine.jsonl`` and ``report.json``; ``tweets.csv`` only on a pass; on a breach a
    ``tweets.csv`` left by an earlier run is removed, so the directory never shows curated rows
    beside a failing report.

    Args:
        inputs: files (JSON, or JSONL by suffix ``.jsonl``/``.ndjson``) or directories of them.
        out_dir: output directory (created).
        contract_path: curated contract (default: the bundled one).
        progress: show a progress bar on stderr.
        workers: worker processes (see :func:`transform_pages`); None: one per CPU (at most 4)
            when the input holds at least four units, else 1 (starting workers costs more than
            it saves on small inputs).

    Returns:
        The report.

    Raises:
        etl.errors.InputError: an input is missing, or another run is writing to ``out_dir``.
        etl.errors.ContractError: the contract cannot be read.
    """
    from etl.steps.transform.outdir import replace_together

    files = input_files(inputs)
    if workers is None:
        workers = auto_workers(files)
    spec = load_contract(contract_path or CURATED_CONTRACT)
    try:
        with replace_together(out_dir, OUTPUT_NAMES) as staging:
            return _transform_into(staging, files, spec, progress, workers)
    except OutputDirBusyError as exc:
        raise InputError(str(exc)) from exc


OUTPUT_NAMES = ("quarantine.jsonl", "tweets.csv", "report.json")
"""What ``tweetpipe transform`` writes in ``--out``, in the order a run's set replaces the last
one's: the report, which describes the others, last."""


def _transform_into(
    staging: Path, files: list[Path], spec: ContractSpec, progress: bool, workers: int
) -> TransformReport:
    csv_path = staging / "tweets.csv"
    with (
        csv_path.open("w", encoding="utf-8", newline="") as csv_out,
        (staging / "quarantine.jsonl").open("w", encoding="utf-8", newline="\n") as q_out,
    ):
        report = transform_pages(_file_pages(files), csv_out, q_out, spec, progress, workers)
    if not report.passed:
        csv_path.unlink()
    (staging / "report.json").write_text(
        json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return report


def auto_workers(files: list[Path]) -> int:
    big = sum(f.stat().st_size for f in files) >= 4 * UNIT_BYTES
    return min(os.cpu_count() or 1, 4) if big else 1
