"""Great Expectations quality gates: checkpoints on the suites in ``expectations/``, with evidence.

``validate_raw_pages`` audits the landed response envelopes, ``validate_curated`` the curated CSV in
``staging/`` before it is published (the audit of write–audit–publish). Both run a GX checkpoint
whose validation result and page go to a local Data Docs site (see ``etl.steps.quality.docs``) and return a
:class:`CheckpointSummary`, small enough for XCom; :func:`raise_on_failure` turns a breach into
:class:`QualityGateFailed`, whose message names the failed expectations, the counts and the page.

Hand-written expectations may use suite parameters (``{"$PARAMETER": "interval_start"}``): the
gate passes the data interval and the transform report's counts. An expectation whose parameter
has no value in a run (no report, no interval) is skipped and listed in the summary, never silently
passed; ``meta.skip_if_empty`` skips an aggregate check (min, max) on a batch without rows.

A gate fails on a failed expectation of ``critical`` severity (the default); ``warning``
expectations are shown in the Data Docs and the summary but do not stop the pipeline.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl.contracts.model import CURATED_CONTRACT, RAW_PAGE_CONTRACT, ContractSpec, load_contract
from etl.contracts.suites import (
    CRITICAL,
    CURATED_SUITE,
    EXPECTATIONS_DIR,
    INTEGER_REGEX,
    NUMBER_REGEX,
    RAW_PAGE_SUITE,
    flatten_page,
    import_gx,
    load_suite_file,
    page_checks,
    page_columns,
    suite_kwargs,
)
from etl.errors import ContractError, QualityGateFailed
from etl.steps.quality.docs import (
    SITE_NAME,
    build_docs_from_store,
    open_context,
    publish_docs,
    save_results,
    suite_files,
)
from etl.steps.quality.docs_page import META_KEY
from etl.steps.quality.explain_gate import explain_failure, explain_summary
from etl.storage.keys import DOCS_PREFIX, RESULTS_DIR

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

    from etl.storage.keys import Partition

__all__ = [
    "CheckpointSummary",
    "QualityGateFailed",
    "build_docs_from_store",
    "explain_failure",
    "explain_summary",
    "publish_docs",
    "raise_on_failure",
    "run_sync_cli",
    "save_results",
    "validate_curated",
    "validate_curated_bytes",
    "validate_raw_pages",
]

_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_LIST = 30
_MAX_TEXT = 200
_BOUND_ARGS = ("min_value", "max_value", "value", "strict_min", "strict_max")
# Each gate's suite: the contract it was derived from, and what one row of its batch is.
_GATES: dict[str, tuple[Path, str]] = {
    CURATED_SUITE: (CURATED_CONTRACT, "rows"),
    RAW_PAGE_SUITE: (RAW_PAGE_CONTRACT, "pages"),
}


# --- checkpoints ------------------------------------------------------------------------------
@dataclass
class CheckpointSummary:
    """What a checkpoint found, small enough for XCom.

    Attributes:
        suite: the suite name.
        success: no expectation of critical severity failed.
        evaluated: expectations run.
        failed: failed expectations (type, column, rule, severity, counts, observed value).
        results: every expectation run (type, column, success, observed/unexpected), for lineage.
        docs_page: the validation page, relative to the Data Docs site root.
        run_name: the GX run name.
        rows: rows in the validated batch.
        skipped: expectations not run, with the reason (a parameter without value, no rows).
        parameters: the suite parameter values used.
    """

    suite: str
    success: bool
    evaluated: int
    failed: list[dict[str, Any]]
    results: list[dict[str, Any]]
    docs_page: str | None
    run_name: str
    rows: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-serializable data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointSummary:
        """Rebuild a summary from :meth:`to_dict` output (e.g. pulled from XCom)."""
        return cls(**data)


def _parameter_names(value: Any) -> set[str]:
    if isinstance(value, dict):
        if "$PARAMETER" in value:
            return set(_PARAMETER_NAME.findall(str(value["$PARAMETER"])))
        return set().union(*(_parameter_names(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_parameter_names(v) for v in value))
    return set()


def _skip_reason(exp: dict[str, Any], parameters: dict[str, Any], rows: int) -> str | None:
    missing = sorted(
        n for n in _parameter_names(exp.get("kwargs")) if n in parameters and parameters[n] is None
    )
    if missing:
        return f"no value for parameter {', '.join(missing)}"
    if rows == 0 and (exp.get("meta") or {}).get("skip_if_empty"):
        return "the batch has no rows"
    return None


def _column_of(kwargs: dict[str, Any]) -> str | None:
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    return None


def _rule_of(exp: dict[str, Any]) -> str | None:
    meta = exp.get("meta") or {}
    rules = meta.get("rules")
    return ", ".join(rules) if rules else meta.get("name")


def _small(value: Any) -> Any:
    """A JSON-safe, bounded copy of an observed value."""
    from great_expectations.util import convert_to_json_serializable

    value = convert_to_json_serializable(value)
    if isinstance(value, str):
        return value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "…"
    if isinstance(value, list):
        return [_small(v) for v in value[:_MAX_LIST]]
    if isinstance(value, dict):
        return {str(k): _small(v) for k, v in list(value.items())[:_MAX_LIST]}
    return value


def _exception_message(info: Any) -> str | None:
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    nested = (_exception_message(v) for v in info.values() if isinstance(v, dict))
    return next((m for m in nested if m), None)


def _result_entry(result: Any) -> dict[str, Any]:
    config = result.expectation_config
    kwargs, meta = dict(config.kwargs), dict(config.meta or {})
    details = result.result or {}
    observed = details.get("observed_value")
    entry: dict[str, Any] = {
        "expectation_type": config.type,
        "column": _column_of(kwargs),
        "rule": _rule_of({"meta": meta}),
        "source": meta.get("source"),
        "severity": str(getattr(config.severity, "value", config.severity or CRITICAL)),
        "success": bool(result.success),
        # A passed check's list (the column names) is noise in XCom; a failed one's is evidence.
        "observed_value": observed
        if not result.success or not isinstance(observed, list)
        else None,
        "unexpected_count": details.get("unexpected_count"),
        "unexpected_percent": details.get("unexpected_percent"),
        # Empty values of the column (GX skips them in map expectations): lineage null counts.
        "missing_count": details.get("missing_count"),
        "exception": _exception_message(result.exception_info),
    }
    if not result.success:
        entry["expected"] = _expected(kwargs)
        for name in ("partial_unexpected_list", "partial_unexpected_index_list", "details"):
            entry[name] = details.get(name)
    return {k: _small(v) for k, v in entry.items() if v is not None}


def _expected(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments a failed expectation was checked against, parameters already filled in."""
    return {
        k: v for k, v in kwargs.items() if k not in ("column", "batch_id", "column_A", "column_B")
    }


def _docs_page(docs_dir: Path, key: Any) -> str | None:
    path = "/".join(str(p) for p in key.to_tuple())
    page = f"validations/{path}.html"
    # Without a page of its own, the site built from the stored result will have it.
    built = (docs_dir / page).is_file() or (docs_dir / RESULTS_DIR / f"{path}.json").is_file()
    return page if built else None


def _safe_run_name(run_name: str) -> str:
    # The run name becomes a directory of the site and a store key part.
    safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", run_name).strip("._")
    if not safe:
        raise ValueError(f"run name {run_name!r} has no usable characters")
    return safe


def run_prefix(run_id: str) -> str:
    """The start of every gate run name of an orchestrator run (``<run id>__<source>``).

    Args:
        run_id: the Airflow run id.

    Returns:
        The prefix, unsafe characters replaced as in the run names; the docs build lists only
        the results under it (:func:`etl.steps.quality.docs_site.build_docs` ``runs``).
    """
    return _safe_run_name(run_id) + "__"


def _run_checkpoint(
    frame: pd.DataFrame,
    suite_doc: dict[str, Any],
    *,
    docs_dir: Path,
    run_name: str,
    parameters: dict[str, Any],
    expectations_dir: Path,
    index_column: str,
    partition: Partition | None = None,
    build_page: bool = True,
) -> CheckpointSummary:
    gx = import_gx()
    from great_expectations.checkpoint.actions import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier

    rows = len(frame)
    runnable, skipped = [], []
    for exp in suite_doc["expectations"]:
        reason = _skip_reason(exp, parameters, rows)
        if reason is None:
            runnable.append(exp)
        else:
            skipped.append(
                {
                    "expectation_type": exp["type"],
                    "column": _column_of(exp["kwargs"]),
                    "rule": _rule_of(exp),
                    "reason": reason,
                }
            )
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
    if index_column in frame.columns:
        # Failed rows are then named by this column (a page key, a tweet id) in results and docs.
        result_format["unexpected_index_column_names"] = [index_column]
    name = suite_doc["name"]
    # The other suites are added only so that this run's index page lists them too.
    others = [s for s in suite_files(expectations_dir) if s["name"] != name]
    context = open_context(docs_dir, others)
    suite = context.suites.add(
        gx.ExpectationSuite(**(suite_kwargs(suite_doc) | {"expectations": runnable}))
    )
    batch = (
        context.data_sources.add_pandas("tweetpipe")
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("batch")
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name}.validation", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{name}.gate",
            validation_definitions=[definition],
            # Rendering the page costs about a third of a small checkpoint (GX compiles its
            # templates afresh each time); a caller that rebuilds the site from the stored
            # results (the DAG's build_docs) skips it.
            actions=[UpdateDataDocsAction(name="data_docs", site_names=[SITE_NAME])]
            if build_page
            else [],
            result_format=result_format,
        )
    )
    run_name = _safe_run_name(run_name)
    with warnings.catch_warnings():
        # GX runs regexes through pandas' str.contains, which warns about the contract patterns'
        # groups once per column; the match itself is what we want.
        warnings.filterwarnings("ignore", "This pattern is interpreted as a regular expression")
        outcome = checkpoint.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters={k: v for k, v in parameters.items() if v is not None},
            run_id=RunIdentifier(run_name=run_name),
        )
    ((key, validation),) = outcome.run_results.items()
    # The gate's own record beside GX's: which source and interval, and the parameter values, so
    # the Data Docs page can name the data and state a threshold in the contract's terms.
    record: dict[str, Any] = {"parameters": _small(parameters)}
    if partition is not None:
        record |= {"source": partition.source, "interval": partition.interval}
    validation.meta[META_KEY] = record  # type: ignore[literal-required]
    context.validation_results_store.set(key, validation)
    results = [_result_entry(r) for r in validation.results]
    failed = [r for r in results if not r["success"]]
    return CheckpointSummary(
        suite=name,
        success=not any(r["severity"] == CRITICAL for r in failed),
        evaluated=len(results),
        failed=failed,
        results=results,
        docs_page=_docs_page(docs_dir, key),
        run_name=run_name,
        rows=rows,
        skipped=skipped,
        parameters=_small(parameters),
    )


def raw_pages_frame(pages: Iterable[tuple[str, bytes]], spec: ContractSpec) -> pd.DataFrame:
    """The raw-page table GX validates: one row per landed page.

    Args:
        pages: ``(key, body)`` pairs.
        spec: the raw page contract.

    Returns:
        A DataFrame with :func:`page_columns` (counts as nullable integers).
    """
    import pandas as pd

    checks = page_checks(spec)
    rows = [flatten_page(key, body, checks) for key, body in pages]
    frame = pd.DataFrame(rows, columns=page_columns(spec))
    frame["key"] = frame["key"].astype(object)
    frame["parsed_ok"] = frame["parsed_ok"].astype(bool)
    for column in frame.columns[2:]:
        frame[column] = frame[column].astype("Int64")
    return frame


def _iso(moment: datetime | None, name: str) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")
    return moment.astimezone(UTC).isoformat()


def _report_counts(report: dict[str, Any] | None) -> dict[str, Any]:
    names = ("tweets_in", "curated", "quarantined", "duplicates")
    if report is None:
        return dict.fromkeys(names)
    missing = [n for n in ("curated", "quarantined") if not isinstance(report.get(n), int)]
    if missing:
        raise ValueError(f"transform report lacks integer {', '.join(missing)}: {report!r}")
    return {n: report.get(n) for n in names}


def _as_numbers(column: pd.Series, logical_type: str) -> pd.Series:
    """Integer and number columns become numeric when every value is one, for range checks.

    A column with a non-numeric value stays text: its type expectation then names the value.
    """
    import pandas as pd

    pattern = re.compile(INTEGER_REGEX if logical_type == "integer" else NUMBER_REGEX)
    present = column.dropna()
    if not all(isinstance(v, str) and pattern.fullmatch(v) for v in present):
        return column
    try:
        if logical_type == "integer":
            values = pd.array([None if v is None else int(v) for v in column], "Int64")
        else:
            values = pd.array([None if v is None else float(v) for v in column], "Float64")
    except (OverflowError, TypeError, ValueError):
        return column
    return pd.Series(values, index=column.index, name=column.name)


def curated_frame(csv_path: Path, spec: ContractSpec) -> pd.DataFrame:
    """Read a curated CSV the way consumers do, for GX.

    Every field is read as text (ids stay exact); an empty field is a missing value, so
    ``required`` means "not empty", as in the transform; integer and number columns become numeric
    when all their values are.

    Args:
        csv_path: the curated CSV.
        spec: the curated contract.

    Returns:
        The batch.

    Raises:
        ValueError: the file cannot be read as CSV.
    """
    import pandas as pd

    try:
        text = pd.read_csv(csv_path, dtype=str, keep_default_na=False, na_filter=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{csv_path}: cannot read curated CSV: {exc}") from exc
    frame = text.astype(object)
    frame = frame.where(frame != "", None)
    for col in spec.columns:
        if col.logical_type in ("integer", "number") and col.name in frame.columns:
            frame[col.name] = _as_numbers(frame[col.name], col.logical_type)
    return frame


def validate_curated(
    csv_path: Path,
    *,
    docs_dir: Path,
    run_name: str,
    interval_start: datetime | None,
    interval_end: datetime | None,
    report: dict[str, Any] | None = None,
    expectations_dir: Path = EXPECTATIONS_DIR,
    partition: Partition | None = None,
    build_page: bool = True,
) -> CheckpointSummary:
    """Run the ``tweets_curated`` checkpoint on a curated CSV (the audit of write–audit–publish).

    Args:
        csv_path: the staged curated CSV, downloaded to local disk.
        docs_dir: the local Data Docs site to add the validation to.
        run_name: the GX run name (e.g. the DAG run id and source); unsafe characters become ``_``.
        interval_start: data interval start (tz-aware); posts may not be older. None skips the
            freshness checks.
        interval_end: data interval end (tz-aware, exclusive); posts must be older.
        report: ``TransformReport.to_dict()`` (``curated``, ``quarantined``, ``tweets_in``,
            ``duplicates``); None skips the checks against the report.
        expectations_dir: where the suite files live.
        partition: the source and interval checked, recorded in the result for the Data Docs.
        build_page: also render the validation's page into ``docs_dir`` (False: only its result
            JSON, from which :func:`build_docs_from_store` renders it later).

    Returns:
        The summary; ``success`` is False on a breach (call :func:`raise_on_failure`).

    Raises:
        ValueError: the CSV cannot be read, a bound is naive, or the report lacks counts.
    """
    spec = load_contract(CURATED_CONTRACT)
    frame = curated_frame(csv_path, spec)
    parameters = {
        "interval_start": _iso(interval_start, "interval_start"),
        "interval_end": _iso(interval_end, "interval_end"),
        **_report_counts(report),
    }
    return _run_checkpoint(
        frame,
        load_suite_file(CURATED_SUITE, expectations_dir),
        docs_dir=docs_dir,
        run_name=run_name,
        parameters=parameters,
        expectations_dir=expectations_dir,
        index_column="tweet_id",
        partition=partition,
        build_page=build_page,
    )


def validate_raw_pages(
    pages: Iterable[tuple[str, bytes]],
    *,
    docs_dir: Path,
    run_name: str,
    expectations_dir: Path = EXPECTATIONS_DIR,
    partition: Partition | None = None,
    build_page: bool = True,
) -> CheckpointSummary:
    """Run the ``x_api_v2_tweets_page`` checkpoint on landed raw pages (the response envelope).

    Args:
        pages: ``(store key, body bytes)`` of every page landed for a source and interval.
        docs_dir: the local Data Docs site to add the validation to.
        run_name: the GX run name; unsafe characters become ``_``.
        expectations_dir: where the suite files live.
        partition: the source and interval the pages were landed for, recorded for the Data Docs.
        build_page: also render the validation's page into ``docs_dir`` (see
            :func:`validate_curated`).

    Returns:
        The summary; ``success`` is False on a breach.
    """
    frame = raw_pages_frame(pages, load_contract(RAW_PAGE_CONTRACT))
    return _run_checkpoint(
        frame,
        load_suite_file(RAW_PAGE_SUITE, expectations_dir),
        docs_dir=docs_dir,
        run_name=run_name,
        parameters={},
        expectations_dir=expectations_dir,
        index_column="key",
        partition=partition,
        build_page=build_page,
    )


def raise_on_failure(summary: CheckpointSummary, *, docs_base: str = DOCS_PREFIX) -> None:
    """Raise :class:`QualityGateFailed` when the gate failed.

    Args:
        summary: a checkpoint summary.
        docs_base: where the Data Docs site is published (prefixed to the page in the message).

    Raises:
        QualityGateFailed: ``summary.success`` is False.
    """
    if not summary.success:
        raise gate_failure(summary, docs_base)


def gate_failure(summary: CheckpointSummary, docs_base: str = DOCS_PREFIX) -> QualityGateFailed:
    """The :class:`QualityGateFailed` for a failed checkpoint: its message names what failed and
    where the evidence is.

    Args:
        summary: a checkpoint summary.
        docs_base: where the Data Docs site is published (prefixed to the page in the message).

    Returns:
        The exception, with ``summary`` attached.
    """
    return QualityGateFailed(_failure_message(summary, docs_base), summary)


def _describe_failure(entry: dict[str, Any]) -> str:
    target = f"{entry['expectation_type']}({entry.get('column') or 'table'})"
    if entry.get("rule"):
        target += f" [{entry['rule']}]"
    facts = []
    if "unexpected_count" in entry:
        facts.append(f"{entry['unexpected_count']} unexpected")
        rows = entry.get("partial_unexpected_index_list")
        if rows:
            sample = "; ".join(", ".join(f"{k}={v!r}" for k, v in r.items()) for r in rows[:3])
            facts.append(f"e.g. {sample}")
        elif entry.get("partial_unexpected_list"):
            sample = ", ".join(repr(v) for v in entry["partial_unexpected_list"][:3])
            facts.append(f"e.g. {sample}")
    elif "observed_value" in entry:
        facts.append(f"observed {entry['observed_value']!r}")
        bounds = {k: v for k, v in entry.get("expected", {}).items() if k in _BOUND_ARGS}
        if bounds:
            facts.append("expected " + ", ".join(f"{k}={v!r}" for k, v in bounds.items()))
    if entry.get("exception"):
        facts.append(f"error: {entry['exception']}")
    if entry.get("severity") != CRITICAL:
        facts.append(f"severity {entry.get('severity')}")
    return f"  - {target}: {'; '.join(facts) or 'failed'}"


def _failure_message(summary: CheckpointSummary, docs_base: str) -> str:
    critical = [f for f in summary.failed if f.get("severity") == CRITICAL]
    lines = [
        f"quality gate {summary.suite} failed in run {summary.run_name}: "
        f"{len(critical)} of {summary.evaluated} expectations failed on {summary.rows} rows"
    ]
    lines += [_describe_failure(f) for f in summary.failed]
    page = f"{docs_base}{summary.docs_page}" if summary.docs_page else "(no page was written)"
    lines.append(f"Data Docs: {page}")
    # Last, because a task log ends with the exception: what failed, in the data's terms.
    lines.append("In short:")
    lines += [f"  {sentence}" for sentence in _explanations(summary)]
    return "\n".join(lines)


def _explanations(summary: CheckpointSummary) -> list[str]:
    contract, unit = _GATES.get(summary.suite, (None, "rows"))
    try:
        spec = load_contract(contract) if contract is not None else None
    except ContractError:
        spec = None  # the GX terms above still say what failed
    return explain_summary(summary, spec, unit)


def validate_curated_bytes(
    body: bytes,
    *,
    docs_dir: Path,
    run_name: str,
    interval_start: datetime | None,
    interval_end: datetime | None,
    report: dict[str, Any] | None = None,
    partition: Partition | None = None,
    build_page: bool = True,
) -> CheckpointSummary:
    """:func:`validate_curated` on CSV bytes (e.g. read from ``staging/``).

    Args:
        body: the curated CSV bytes.
        docs_dir: the local Data Docs site to add the validation to.
        run_name: the GX run name.
        interval_start: data interval start (tz-aware) or None.
        interval_end: data interval end (tz-aware) or None.
        report: the transform report or None.
        partition: the source and interval checked (for the Data Docs) or None.
        build_page: as for :func:`validate_curated`.

    Returns:
        The summary.
    """
    with tempfile.TemporaryDirectory(prefix="tweetpipe-audit-") as tmp:
        path = Path(tmp) / "curated.csv"
        path.write_bytes(body)
        return validate_curated(
            path,
            docs_dir=docs_dir,
            run_name=run_name,
            interval_start=interval_start,
            interval_end=interval_end,
            report=report,
            partition=partition,
            build_page=build_page,
        )
