"""Every exception class of the package, in one place (the base layer: standard library only).

Steps and tools raise these; they never know that a command line exists. The command line
(:mod:`etl.adapters.cli`) maps them to exit codes and one-line messages, the Airflow task
functions (:mod:`etl.adapters.airflow.tasks`) to task failures. This module imports nothing but
the standard library, so ``python3 -m etl.tools.github_comment`` still runs with nothing installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path


# --- inputs and settings -------------------------------------------------------------------------
class InputError(ValueError):
    """Bad input to a step or tool: a missing file, an unusable setting or output directory.

    The command line reports it as ``tweetpipe VERB: error: MESSAGE`` with exit code 2; the
    message names the input.
    """


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration file, as data.

    Attributes:
        file: the file as given.
        line: 1-based line, or None when the problem is the file as a whole.
        key: the key path (``sources.accounts[2]``), empty for the file itself.
        problem: what is wrong, without quoting any value from the file.
        column: 1-based column, when known (YAML syntax errors).
    """

    file: str
    line: int | None
    key: str
    problem: str
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.key}: {self.problem}" if self.key else f"{where}: {self.problem}"


class ConfigError(ValueError):
    """A pipeline configuration (file, source or window) is not usable; the message names it.

    Attributes:
        problems: for a configuration file, every problem found (the message names the first).
    """

    def __init__(self, message: str, problems: tuple[ConfigProblem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems

    @classmethod
    def from_problems(cls, problems: list[ConfigProblem]) -> ConfigError:
        """The error for a file's problems: the first named, the rest counted."""
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return cls(f"{problems[0]}{more}", tuple(problems))

    @classmethod
    def at(
        cls, path: Path, line: int | None, key: str, problem: str, column: int | None = None
    ) -> ConfigError:
        """The error for one problem in file ``path``."""
        return cls.from_problems([ConfigProblem(str(path), line, key, problem, column)])


class ResourceError(RuntimeError):
    """The package's files cannot be reached as plain files (e.g. imported from a zip archive)."""


# --- contracts and storage -----------------------------------------------------------------------
class ContractError(ValueError):
    """A contract file cannot be read or does not say what the pipeline needs."""


class StoreError(ValueError):
    """A store setting cannot be used: a malformed URL, a path that is no writable directory, a
    bucket that cannot be reached. The message says what to do and never quotes a URL part that
    could hold a credential."""


class ObjectExistsError(Exception):
    """A write-once key already holds a different body."""


# --- steps ---------------------------------------------------------------------------------------
class SourceRef(Protocol):
    """What :class:`SourceFailed` needs of a source (``etl.config.Source`` is one)."""

    @property
    def kind(self) -> str:
        """``"account"`` or ``"query"``."""

    @property
    def value(self) -> str:
        """The username or the query text."""

    @property
    def slug(self) -> str:
        """The source's name in store keys."""

    @property
    def spec(self) -> str:
        """The source as ``account:NAME`` or ``query:TEXT``."""


class SourceFailed(Exception):
    """A source could not be extracted (after retries, or for a reason retrying cannot fix).

    Attributes:
        source: the source that failed.
        reason: what went wrong, without secrets.
        landed: page keys landed before the failure; they stay, and a rerun resumes after them.
        requests: HTTP requests the failed call sent, each counted whatever came of it.
        user_lookups: user-lookup requests among them.
        retries: tries repeated after a server error, network error or unusable body.
        rate_limit_waits: waits for a rate-limit reset.
        wait_seconds: seconds spent waiting (rate limits and backoff).
    """

    def __init__(
        self,
        source: SourceRef,
        reason: str,
        landed: Iterable[str] = (),
        requests: int = 0,
        user_lookups: int = 0,
        retries: int = 0,
        rate_limit_waits: int = 0,
        wait_seconds: float = 0.0,
    ) -> None:
        self.source = source
        self.reason = reason
        self.landed = tuple(landed)
        self.requests = requests
        self.user_lookups = user_lookups
        self.retries = retries
        self.rate_limit_waits = rate_limit_waits
        self.wait_seconds = wait_seconds
        kept = f"; {len(self.landed)} page(s) landed before the failure are kept" if landed else ""
        super().__init__(f"{source} failed: {reason}{kept}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps the exception picklable (Airflow and multiprocessing pickle task errors).
        counts = (self.requests, self.user_lookups, self.retries, self.rate_limit_waits)
        return (SourceFailed, (self.source, self.reason, self.landed, *counts, self.wait_seconds))


class SpendingStopped(SourceFailed):
    """A source stopped before a request because of a spending limit; retrying cannot help.

    Either a budget (``--max-cost-usd``, ``budget:``) left too little for the next request's
    worst case, or the API answered that the project's usage cap is reached (HTTP 429
    ``UsageCapExceeded``). What was read is landed and the window's manifest says it is
    incomplete; the next run continues it once the limit allows.

    Attributes:
        limit: ``"budget"`` or ``"usage_cap"``.
        name: which one (``budget.per_run_usd``, ``--max-cost-usd``, ``usage cap (Monthly)``).
        cost: what the call read and cost (``etl.payloads.CostPayload``), or None.
    """

    def __init__(
        self,
        source: SourceRef,
        reason: str,
        landed: Iterable[str] = (),
        requests: int = 0,
        user_lookups: int = 0,
        *,
        limit: str = "budget",
        name: str = "",
    ) -> None:
        super().__init__(source, reason, landed, requests, user_lookups)
        self.limit = limit
        self.name = name
        self.cost: dict[str, Any] | None = None  # the call's CostPayload, set by the extractor

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _spending_stopped,
            (self.source, self.reason, self.landed, self.requests, self.user_lookups),
            {"limit": self.limit, "name": self.name, "cost": self.cost, **self._counters()},
        )

    def _counters(self) -> dict[str, Any]:
        return {
            "retries": self.retries,
            "rate_limit_waits": self.rate_limit_waits,
            "wait_seconds": self.wait_seconds,
        }


def _spending_stopped(*args: Any) -> SpendingStopped:
    return SpendingStopped(*args)


class WatermarkError(ValueError):
    """A stored watermark cannot be used: unreadable, not a post id, or in the future.

    Attributes:
        key: the watermark's key.
        value: what its ``newest_id`` holds (shortened), or None when the object is unreadable.
        problem: why it cannot be used.
    """

    def __init__(self, key: str, value: str | None, problem: str) -> None:
        self.key = key
        self.value = value
        self.problem = problem
        held = "is unreadable" if value is None else f"holds newest_id {value}"
        super().__init__(f"watermark {key} {held}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (WatermarkError, (self.key, self.value, self.problem))


class GateBreachError(Exception):
    """The gate failed: a fatal contract check was breached. The message names the checks."""


class OutputDirBusyError(Exception):
    """Another run holds the output directory."""


class QualityGateFailed(Exception):
    """A quality gate found a breach; the message names what failed and where the evidence is.

    Raised by ``etl.steps.quality.raise_on_failure``, which writes the message.

    Attributes:
        summary: the checkpoint summary (an ``etl.steps.quality.CheckpointSummary``).
    """

    def __init__(self, message: str, summary: Any = None) -> None:
        self.summary = summary
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (QualityGateFailed, (str(self), self.summary))


class StagingChangedError(Exception):
    """The staged candidate is not the one that was audited, so it must not be published."""


# --- tools ---------------------------------------------------------------------------------------
class LintUsageError(ValueError):
    """A path to lint does not exist or names no contract."""


class DiffInputError(ValueError):
    """A contract to compare cannot be read: missing file, bad YAML, unknown git revision."""


class DocsInputError(ValueError):
    """A contract to render cannot be read."""


class CodeownersInputError(ValueError):
    """The section cannot be built: a contract is unreadable or names no usable owner."""


class CodeownersUsageError(ValueError):
    """Bad input from the user: no contracts folder, a malformed or oversized CODEOWNERS file."""


class ReviewUsageError(ValueError):
    """The review cannot start: not a git tree, an unknown base, a bad setting."""


class CommentInputError(ValueError):
    """A body, state file or runner variable that cannot be used."""


class CommentApiError(RuntimeError):
    """The host's API refused a request or answered something unexpected."""


class QueryError(ValueError):
    """A search query the emulator cannot evaluate (it names the offending part)."""


class HttpProblem(Exception):
    """An error answer of the emulator: status and a Problem body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("detail", ""))
        self.status = status
        self.body = body


class DemoError(Exception):
    """The demo cannot run as asked (e.g. ``--dir`` holds something else)."""


class LocalAirflowError(Exception):
    """The local Airflow could not be started or stopped as asked."""


# --- adapters ------------------------------------------------------------------------------------
class PipelineError(Exception):
    """The run cannot start as configured (no sources, no store, no token); not retried."""
