"""Data contracts (ODCS v3.1) read once into plain specs that every view is built from.

The contract YAML in ``contracts/`` is the single source of truth: the Pandera gate
(:mod:`etl.contracts.pandera_schema`), the GX suites (:mod:`etl.contracts.suites`), the lineage schema facet and the contract
docs all read :class:`ContractSpec`, never the YAML on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from etl import resources
from etl.errors import ContractError

# Where the bundled files are (the checkout, or the wheel's package data): etl.resources.
REPO_ROOT = resources.DATA_ROOT
"""Old name of :data:`etl.resources.DATA_ROOT`; in an installed wheel it is not a repository."""
CONTRACTS_DIR = resources.contracts_dir()
CURATED_CONTRACT = CONTRACTS_DIR / "tweets_curated.odcs.yaml"
RAW_PAGE_CONTRACT = CONTRACTS_DIR / "x_api_v2_tweets_page.odcs.yaml"

# The ODCS comparison keys of a quality rule, in the standard's order.
QUALITY_OPERATORS = (
    "mustBe",
    "mustNotBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeBetween",
    "mustNotBeBetween",
)


@dataclass(frozen=True)
class QualityRule:
    """One ODCS ``quality`` entry of the ``library`` type.

    Attributes:
        name: rule name, unique within its schema object or column.
        metric: ODCS metric (``nullValues``, ``invalidValues``, ``duplicateValues``, ``rowCount``...).
        operator: the ODCS comparison key (``mustBe``, ``mustBeLessOrEqualTo``...).
        threshold: the value compared against.
        unit: ``rows`` or ``percent``.
        severity: ``error`` fails the run; anything else only reports.
        arguments: metric arguments (e.g. ``validValues``).
        description: what the rule means, for people.
    """

    name: str
    metric: str
    operator: str
    threshold: Any
    unit: str = "rows"
    severity: str = "error"
    arguments: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def fatal(self) -> bool:
        """Whether a breach of this rule fails the run."""
        return self.severity == "error"


@dataclass(frozen=True)
class ColumnSpec:
    """One column (ODCS property) with everything the gate and the suite need.

    Attributes:
        name: column name.
        logical_type: ODCS logical type (string, integer, number, boolean, timestamp, date, array,
            object).
        physical_type: the type as stored (``string``, ``int64``, ``json``...).
        description: what the column means.
        required: the column may not be empty.
        unique: values may not repeat.
        pattern: regular expression every non-empty value matches in full.
        minimum: inclusive lower bound for numbers.
        maximum: inclusive upper bound for numbers.
        min_length: shortest allowed string.
        max_length: longest allowed string.
        allowed_values: the value set, from an ``invalidValues`` rule with ``validValues``.
        format: the ``logicalTypeOptions.format`` of a timestamp (``yyyy-MM-ddTHH:mm:ss.SSSZ``).
        items_type: the logical type of an array's items.
        min_items: fewest items an array may hold (``logicalTypeOptions.minItems``).
        max_items: most items an array may hold (``logicalTypeOptions.maxItems``).
        unique_items: an array's items may not repeat (``logicalTypeOptions.uniqueItems``).
        sources: raw JSON paths the column is derived from (``transformSourceObjects``).
        transform_logic: how the sources become the column.
        quality: the column's own quality rules.
    """

    name: str
    logical_type: str
    physical_type: str = ""
    description: str = ""
    required: bool = False
    unique: bool = False
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    allowed_values: tuple[str, ...] | None = None
    format: str | None = None
    items_type: str | None = None
    min_items: int | None = None
    max_items: int | None = None
    unique_items: bool = False
    sources: tuple[str, ...] = ()
    transform_logic: str = ""
    quality: tuple[QualityRule, ...] = ()


@dataclass(frozen=True)
class ContractSpec:
    """A contract's first schema object, flattened.

    Attributes:
        path: the YAML file.
        id: contract id.
        name: contract name (also the dataset's name in GX and lineage).
        version: semantic version of the contract.
        dataset: the schema object's name.
        description: the schema object's description.
        columns: the columns in order.
        quality: dataset-level quality rules.
        raw: the parsed YAML, for views that need more (docs, lint).
    """

    path: Path
    id: str
    name: str
    version: str
    dataset: str
    description: str
    columns: tuple[ColumnSpec, ...]
    quality: tuple[QualityRule, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def column_names(self) -> list[str]:
        """Column names in contract order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        """The column called ``name``."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def rule(self, name: str) -> QualityRule | None:
        """The dataset-level quality rule called ``name``, if the contract declares it."""
        return next((r for r in self.quality if r.name == name), None)


def _rule(entry: dict[str, Any], where: str) -> QualityRule | None:
    if entry.get("type", "library") != "library" or "metric" not in entry:
        return None
    ops = [k for k in QUALITY_OPERATORS if k in entry]
    if len(ops) != 1:
        raise ContractError(f"{where}: quality rule {entry.get('name')!r} needs one operator")
    return QualityRule(
        name=str(entry.get("name") or entry["metric"]),
        metric=str(entry["metric"]),
        operator=ops[0],
        threshold=entry[ops[0]],
        unit=str(entry.get("unit", "rows")),
        severity=str(entry.get("severity", "error")),
        arguments=dict(entry.get("arguments") or {}),
        description=str(entry.get("description", "")),
    )


def _rules(entries: list[dict[str, Any]] | None, where: str) -> tuple[QualityRule, ...]:
    rules = (_rule(e, where) for e in entries or [])
    return tuple(r for r in rules if r is not None)


def _column(prop: dict[str, Any], where: str) -> ColumnSpec:
    name = prop.get("name")
    if not name or "logicalType" not in prop:
        raise ContractError(f"{where}: every property needs a name and a logicalType ({prop!r})")
    opts = prop.get("logicalTypeOptions") or {}
    quality = _rules(prop.get("quality"), f"{where}.{name}")
    allowed = next(
        (tuple(r.arguments["validValues"]) for r in quality if "validValues" in r.arguments), None
    )
    return ColumnSpec(
        name=str(name),
        logical_type=str(prop["logicalType"]),
        physical_type=str(prop.get("physicalType", "")),
        description=str(prop.get("description", "")),
        required=bool(prop.get("required", False)),
        unique=bool(prop.get("unique", False)),
        pattern=opts.get("pattern"),
        minimum=opts.get("minimum"),
        maximum=opts.get("maximum"),
        min_length=opts.get("minLength"),
        max_length=opts.get("maxLength"),
        allowed_values=allowed,
        format=opts.get("format"),
        items_type=(prop.get("items") or {}).get("logicalType"),
        min_items=opts.get("minItems"),
        max_items=opts.get("maxItems"),
        unique_items=bool(opts.get("uniqueItems", False)),
        sources=tuple(prop.get("transformSourceObjects") or ()),
        transform_logic=str(prop.get("transformLogic", "")),
        quality=quality,
    )


def parse_contract(doc: dict[str, Any], path: Path) -> ContractSpec:
    """Flatten a parsed ODCS document into a :class:`ContractSpec`.

    Args:
        doc: the YAML document as parsed.
        path: where it came from, for messages.

    Returns:
        The spec of the document's first schema object.

    Raises:
        ContractError: the document has no schema object or a malformed property.
    """
    schema = doc.get("schema") or []
    if not isinstance(schema, list) or not schema:
        raise ContractError(f"{path}: the contract has no schema object")
    obj = schema[0]
    where = f"{path}: schema {obj.get('name')}"
    return ContractSpec(
        path=path,
        id=str(doc.get("id", "")),
        name=str(doc.get("name") or obj.get("name")),
        version=str(doc.get("version", "")),
        dataset=str(obj.get("name", "")),
        description=str(obj.get("description", "")),
        columns=tuple(_column(p, where) for p in obj.get("properties") or []),
        quality=_rules(obj.get("quality"), where),
        raw=doc,
    )


# libyaml's safe loader when PyYAML was built with it: the same documents, about 8x faster than
# the pure-Python one (a CLI run reads two or three contracts before any work starts).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_contract(path: Path | str = CURATED_CONTRACT) -> ContractSpec:
    """Read a contract file.

    Args:
        path: an ``*.odcs.yaml`` file (default: the curated tweets contract).

    Returns:
        The flattened spec.

    Raises:
        ContractError: the file is missing, not YAML, or not a usable contract.
    """
    path = Path(path)
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise ContractError(f"{path}: cannot read contract: {exc}") from exc
    if not isinstance(doc, dict):
        raise ContractError(f"{path}: a contract is a YAML mapping")
    return parse_contract(doc, path)


# The JSON type a column's source must have, by the column's logical type.
JSON_TYPES = {
    "string": "string",
    "timestamp": "string",
    "date": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "object": "object",
    "array": "array",
}
