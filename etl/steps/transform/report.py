"""What a transform run did (:class:`TransformReport`), and the gate's run-level fatal checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from etl.errors import GateBreachError

if TYPE_CHECKING:
    from collections.abc import Callable

    from etl.contracts.model import ContractSpec, QualityRule


@dataclass
class TransformReport:
    """What a transform run did; ``report.json`` is :meth:`to_dict`.

    Attributes:
        tweets_in: posts read from parseable pages (duplicates included).
        curated: posts written to the CSV.
        quarantined: posts rejected by the gate.
        duplicates: posts whose id was already seen in this run.
        api_errors: Problem objects found in the responses' ``errors`` arrays.
        pages: response documents read (a JSONL line is one).
        pages_quarantined: documents quarantined whole (unparseable or not a response).
        check_failures: how many posts (or pages) failed each check, by ``column:check``.
        fatal: messages naming the failed fatal checks; empty when the gate passes.
        contract: name and version of the contract the gate was built from.
    """

    tweets_in: int = 0
    curated: int = 0
    quarantined: int = 0
    duplicates: int = 0
    api_errors: int = 0
    pages: int = 0
    pages_quarantined: int = 0
    check_failures: dict[str, int] = field(default_factory=dict)
    fatal: list[str] = field(default_factory=list)
    contract: str = ""

    @property
    def passed(self) -> bool:
        """Whether the gate passed (no fatal check failed)."""
        return not self.fatal

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict, with ``passed``."""
        out = asdict(self)
        out["check_failures"] = dict(sorted(self.check_failures.items()))
        out["passed"] = self.passed
        return out

    def raise_for_gate(self, evidence: str = "") -> None:
        """Raise :class:`GateBreachError` when the gate failed.

        Args:
            evidence: where the quarantine and report are, quoted in the message.

        Raises:
            GateBreachError: the message lists every failed fatal check.
        """
        if self.fatal:
            where = f"; evidence: {evidence}" if evidence else ""
            raise GateBreachError("gate breach: " + "; ".join(self.fatal) + where)

    def count(self, check: str, n: int = 1) -> None:
        """Add ``n`` failures of ``check`` (``column:check``)."""
        self.check_failures[check] = self.check_failures.get(check, 0) + n


def add_fatal_checks(
    report: TransformReport, spec: ContractSpec, unproduced: list[str], filled: set[str]
) -> None:
    """Append to ``report.fatal`` every run-level check the run failed.

    Args:
        report: the run's counts, complete.
        spec: the contract the gate was built from.
        unproduced: contract columns the transform has no way to build.
        filled: columns at least one post gave a value for.
    """
    for name in unproduced:
        report.fatal.append(
            f"{name}: contract column has no source the transform can read "
            f"(transformSourceObjects {list(spec.column(name).sources)})"
        )
    if report.tweets_in - report.duplicates > 0:
        for col in spec.columns:
            if col.required and col.name not in unproduced and col.name not in filled:
                sources = ", ".join(col.sources) or col.name
                report.fatal.append(
                    f"{col.name}: required column missing entirely (no post carried {sources})"
                )
    for rule in spec.quality:
        if rule.metric == "invalidValues" and rule.fatal:
            breach = _share_breach(rule, report)
            if breach:
                report.fatal.append(breach)
    if report.pages and report.pages == report.pages_quarantined:
        report.fatal.append(f"pages: none of the {report.pages} pages could be parsed")


_OPERATORS: dict[str, Callable[[float, Any], bool]] = {
    "mustBe": lambda v, t: v == t,
    "mustNotBe": lambda v, t: v != t,
    "mustBeGreaterThan": lambda v, t: v > t,
    "mustBeGreaterOrEqualTo": lambda v, t: v >= t,
    "mustBeLessThan": lambda v, t: v < t,
    "mustBeLessOrEqualTo": lambda v, t: v <= t,
    "mustBeBetween": lambda v, t: t[0] <= v <= t[1],
    "mustNotBeBetween": lambda v, t: not t[0] <= v <= t[1],
}


def _share_breach(rule: QualityRule, report: TransformReport) -> str | None:
    """The contract's quarantined-share rule (``invalidValues`` over the run), if breached."""
    if report.tweets_in == 0:
        return None
    rejected = report.quarantined
    value = 100.0 * rejected / report.tweets_in if rule.unit == "percent" else float(rejected)
    if _OPERATORS[rule.operator](value, rule.threshold):
        return None
    shown = f"{value:.2f}%" if rule.unit == "percent" else f"{rejected:.0f} rows"
    return (
        f"{rule.name}: {shown} of posts quarantined ({rejected} of {report.tweets_in}), "
        f"contract: {rule.operator} {rule.threshold}{'%' if rule.unit == 'percent' else ''}"
    )
