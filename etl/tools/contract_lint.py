"""``tweetpipe contracts lint``: is a contract file valid ODCS v3.1, and can the pipeline use it?

Checks, each finding naming the file, the line and the field:

- the ODCS v3.1 JSON Schema, as shipped in the ``open-data-contract-standard`` package (pinned to
  3.1.x in ``pyproject.toml``: the 3.2 package ships the v3.2 schema, which no longer requires
  ``status`` and accepts v3.2-only keys, so it would pass contracts that declare v3.1.0 wrongly);
- our rules: every property has a ``logicalType`` and a ``description``; property names are unique
  within their parent; every ``pattern`` compiles with Python ``re`` (what the gates run) and uses
  no construct that ECMA-262 (what ODCS specifies) reads differently; the ``version`` is semantic
  (MAJOR.MINOR.PATCH); no YAML key is given twice (YAML loaders silently keep the last one);
- the views: :class:`etl.contracts.model.ContractSpec`, the Pandera schema and the GX suite build from it.

Line numbers come from the YAML node tree (``yaml.compose``), so a JSON-Schema error path such as
``schema/0/properties/3/logicalType`` points at the line a reviewer has to change.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import yaml

from etl import resources
from etl.contracts.model import parse_contract
from etl.contracts.tree import display_path, iter_properties, schema_objects
from etl.errors import ContractError, LintUsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from etl.contracts.model import ContractSpec
    from etl.contracts.tree import PropertyRef, YamlPath

ODCS_SCHEMA_SERIES = "v3.1"
CONTRACT_GLOB = "*.odcs.yaml"

# SemVer 2.0.0: MAJOR.MINOR.PATCH without leading zeros, optional pre-release and build metadata.
SEMVER = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)  # used with fullmatch

# Regex tokens, so escapes and character classes are looked at as units.
_REGEX_TOKEN = re.compile(
    r"(?P<cls>\[\^?\]?(?:\\.|[^\]\\])*\])"
    r"|(?P<esc>\\.)"
    r"|(?P<group>\(\?(?:P[<=>]|[#>(]|[aiLmsux-]+[:)]))"
    r"|(?P<possessive>[*+?}]\+)"
    r"|.",
    re.DOTALL,
)
_ESCAPE_DIFFERENCES = {
    "d": r"\d matches every Unicode digit in Python but only 0-9 in ECMA-262; write [0-9]",
    "D": r"\D differs between Python (Unicode) and ECMA-262 (ASCII); write [^0-9]",
    "w": r"\w matches Unicode letters in Python but only [A-Za-z0-9_] in ECMA-262",
    "W": r"\W differs between Python (Unicode) and ECMA-262 (ASCII)",
    "b": r"\b follows \w, which differs between Python (Unicode) and ECMA-262 (ASCII)",
    "B": r"\B follows \w, which differs between Python (Unicode) and ECMA-262 (ASCII)",
    "A": r"\A is not an anchor in ECMA-262; use ^",
    "Z": r"\Z is not an anchor in ECMA-262; use $",
}
_GROUP_DIFFERENCES = {
    "(?P": "(?P<name>...) and (?P=name) are Python-only; ECMA-262 spells (?<name>...) and \\k<name>",
    "(?#": "(?#...) comments are Python-only",
    "(?>": "atomic groups (?>...) are not ECMA-262",
    "(?(": "conditional groups (?(...)...) are not ECMA-262",
}


@dataclass(frozen=True, order=True)
class Finding:
    """One problem in one contract file.

    Attributes:
        file: the contract file as given.
        line: 1-based line the problem is on (or the nearest enclosing one).
        field: where in the document, e.g. ``schema[tweets].properties[author_id].description``.
        message: what is wrong.
        rule: which check found it (``odcs-schema``, ``column-description``, ``pattern``...).
    """

    file: str
    line: int
    field: str
    message: str
    rule: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message} [{self.rule}]"


@dataclass(frozen=True)
class _Doc:
    file: str
    data: dict[str, Any]
    root: yaml.Node

    def finding(self, path: YamlPath, message: str, rule: str) -> Finding:
        return Finding(
            self.file, _line_of(self.root, path), display_path(self.data, path), message, rule
        )


@functools.cache
def odcs_schema() -> dict[str, Any]:
    """The ODCS JSON Schema shipped in the ``open-data-contract-standard`` package.

    Returns:
        The schema document.

    Raises:
        RuntimeError: the installed package ships a schema of another ODCS series than v3.1.
    """
    text = importlib.resources.files("open_data_contract_standard").joinpath("schema.json")
    schema: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    series = str(schema.get("properties", {}).get("apiVersion", {}).get("default", ""))
    if not series.startswith(f"{ODCS_SCHEMA_SERIES}."):
        raise RuntimeError(
            f"open-data-contract-standard ships the ODCS {series or '?'} schema; contracts lint "
            f"validates against {ODCS_SCHEMA_SERIES}.x (pin the package to 3.1.x)"
        )
    return schema


def lint_text(text: str, file: str) -> list[Finding]:
    """Lint one contract given as text.

    Args:
        text: the YAML document.
        file: the name to report findings under.

    Returns:
        Every finding, sorted by line.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"not valid YAML: {problem}" + (f" ({context})" if context else "")
        return [Finding(file, line, "(document)", message, "yaml")]
    if root is None or not isinstance(data, dict):
        return [Finding(file, 1, "(document)", "a contract is a YAML mapping", "yaml")]
    doc = _Doc(file, data, root)
    schema_findings = list(_schema_findings(doc))
    findings = [
        *_duplicate_keys(doc),
        *schema_findings,
        *_version_findings(doc),
        *_property_findings(doc),
    ]
    # The views assume the ODCS structure; on a malformed document they would only add noise.
    if not schema_findings:
        findings.extend(_view_findings(doc))
    return sorted(set(findings))


def lint_file(path: Path) -> list[Finding]:
    """Lint one contract file.

    Args:
        path: an ``*.odcs.yaml`` file.

    Returns:
        Every finding, sorted by line.

    Raises:
        LintUsageError: the file cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LintUsageError(f"{path}: cannot read contract: {exc}") from exc
    return lint_text(text, str(path))


def contract_files(paths: Sequence[str | Path] = ()) -> list[Path]:
    """The contract files to look at: the given files, ``*.odcs.yaml`` in given directories.

    Args:
        paths: files or directories; empty means ``contracts/`` of the working directory when
            there is one, else the pipeline's own contracts (:func:`etl.resources.contracts_dir`:
            the repository's in a checkout, the bundled ones in an installed wheel).

    Returns:
        The files, directories expanded in name order.

    Raises:
        LintUsageError: a path does not exist, or no contract file was found.
    """
    paths = paths or [resources.working_contracts_dir()]
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files.extend(sorted(path.glob(CONTRACT_GLOB)))
        elif path.is_file():
            files.append(path)
        else:
            raise LintUsageError(f"{path}: no such contract file or directory")
    if not files:
        raise LintUsageError(f"no {CONTRACT_GLOB} files in {', '.join(map(str, paths))}")
    return files


# --- line numbers --------------------------------------------------------------------------------
def _child(node: yaml.Node, key: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        found = None
        for key_node, value_node in node.value:
            # the last one wins, as in yaml.safe_load
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(key):
                found = (key_node, value_node)
        return found
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        item = node.value[key]
        return item, item
    return None


def _line_of(root: yaml.Node, path: YamlPath) -> int:
    """The line of the deepest node along ``path``; a key's own line when the path ends at a key."""
    node, line = root, root.start_mark.line + 1
    for key in path:
        child = _child(node, key)
        if child is None:
            break
        key_node, node = child
        line = key_node.start_mark.line + 1
    return line


def _duplicate_keys(doc: _Doc) -> Iterator[Finding]:
    stack: list[yaml.Node] = [doc.root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in seen:
                    yield Finding(
                        doc.file,
                        key_node.start_mark.line + 1,
                        key,
                        f"key {key!r} is given twice in one mapping; YAML keeps only the last",
                        "yaml-duplicate-key",
                    )
                seen.add(key)
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


# --- the ODCS JSON Schema ------------------------------------------------------------------------
def _schema_findings(doc: _Doc) -> Iterator[Finding]:
    schema = odcs_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    for error in validator.iter_errors(doc.data):
        best = jsonschema.exceptions.best_match([error])
        path: YamlPath = tuple(best.absolute_path)
        extras = _unexpected_keys(best)
        if extras:
            # point at each stray key, not at the mapping that holds it
            for key in extras:
                message = f"ODCS {ODCS_SCHEMA_SERIES}: key {key!r} is not allowed here"
                yield doc.finding((*path, key), message, "odcs-schema")
        else:
            message = f"ODCS {ODCS_SCHEMA_SERIES}: {_short(best.message)}"
            yield doc.finding(path, message, "odcs-schema")


def _unexpected_keys(error: jsonschema.ValidationError) -> list[str]:
    """The keys an additionalProperties/unevaluatedProperties error complains about."""
    if error.validator not in ("additionalProperties", "unevaluatedProperties"):
        return []
    if not isinstance(error.instance, dict):
        return []
    # jsonschema names the keys by repr inside "(... was/were unexpected)"
    named = re.search(r"\((.*) (?:was|were) unexpected\)", error.message)
    listed = named.group(1) if named else ""
    return [str(k) for k in error.instance if repr(k) in listed]


def _short(message: str, limit: int = 240) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


# --- our rules -----------------------------------------------------------------------------------
def _version_findings(doc: _Doc) -> Iterator[Finding]:
    version = doc.data.get("version")
    if not isinstance(version, str) or not SEMVER.fullmatch(version):
        yield doc.finding(
            ("version",),
            f"version {version!r} is not semantic (MAJOR.MINOR.PATCH as a string, e.g. '1.2.0')",
            "version",
        )


def _property_findings(doc: _Doc) -> Iterator[Finding]:
    for ref in iter_properties(doc.data):
        if not ref.is_item:
            yield from _column_findings(doc, ref)
        options = ref.prop.get("logicalTypeOptions")
        if isinstance(options, dict) and "pattern" in options:
            yield from _pattern_findings(
                doc, (*ref.path, "logicalTypeOptions", "pattern"), options["pattern"]
            )
    for path, obj in schema_objects(doc.data):
        yield from _duplicate_names(doc, (*path, "properties"), obj.get("properties"))


def _column_findings(doc: _Doc, ref: PropertyRef) -> Iterator[Finding]:
    for key, rule in (("logicalType", "column-type"), ("description", "column-description")):
        value = ref.prop.get(key)
        if not isinstance(value, str) or not value.strip():
            yield doc.finding((*ref.path, key), f"property {ref.name!r} needs a {key}", rule)
    yield from _duplicate_names(doc, (*ref.path, "properties"), ref.prop.get("properties"))


def _duplicate_names(doc: _Doc, path: YamlPath, props: Any) -> Iterator[Finding]:
    if not isinstance(props, list):
        return
    seen: set[str] = set()
    for index, prop in enumerate(props):
        name = prop.get("name") if isinstance(prop, dict) else None
        if isinstance(name, str) and name in seen:
            yield doc.finding(
                (*path, index, "name"), f"property name {name!r} is used twice", "column-name"
            )
        if isinstance(name, str):
            seen.add(name)


def _pattern_findings(doc: _Doc, path: YamlPath, pattern: Any) -> Iterator[Finding]:
    if not isinstance(pattern, str):
        return  # the JSON Schema reports the type
    try:
        re.compile(pattern)
    except re.error as exc:
        yield doc.finding(
            path, f"pattern {pattern!r} does not compile with Python re: {exc}", "pattern"
        )
        return
    for problem in ecma_differences(pattern):
        yield doc.finding(path, f"pattern {pattern!r}: {problem}", "pattern-ecma")


def ecma_differences(pattern: str) -> list[str]:
    """Constructs in a regular expression that Python ``re`` and ECMA-262 read differently.

    ODCS patterns follow ECMA-262; the gates run Python ``re``. The two agree on the common subset
    (anchors, classes, quantifiers, groups, alternation); this flags what falls outside it.

    Args:
        pattern: a pattern that compiles with Python ``re``.

    Returns:
        One sentence per problem, in order of appearance, without repeats.
    """
    problems: list[str] = []
    for token in _REGEX_TOKEN.finditer(pattern):
        problems.extend(_token_differences(token))
    return list(dict.fromkeys(problems))


def _token_differences(token: re.Match[str]) -> list[str]:
    kind, text = token.lastgroup, token.group()
    if kind == "cls":
        escapes = re.findall(r"\\(.)", text)
        return [_ESCAPE_DIFFERENCES[e] for e in escapes if e in "dDwW"]
    if kind == "esc":
        problem = _ESCAPE_DIFFERENCES.get(text[1])
        return [problem] if problem else []
    if kind == "group":
        problem = _GROUP_DIFFERENCES.get(text[:3])
        return [problem or f"inline flags {text!r} are not ECMA-262; ODCS patterns have no flags"]
    if kind == "possessive":
        return [f"possessive quantifier {text!r} is not ECMA-262"]
    return []


# --- the views the pipeline builds from a contract ---------------------------------------------
def _view_findings(doc: _Doc) -> Iterator[Finding]:
    try:
        spec = parse_contract(doc.data, Path(doc.file))
    except ContractError as exc:
        yield doc.finding(("schema",), f"the pipeline cannot read it: {exc}", "contract-spec")
        return
    for label, build in _view_builders():
        try:
            build(spec)
        except Exception as exc:  # any failure to build is the finding itself
            yield doc.finding(("schema",), f"the {label} cannot be built from it: {exc}", "views")


def _view_builders() -> Iterable[tuple[str, Callable[[ContractSpec], object]]]:
    # Imported here: pandas, pandera and GX are slow to import and only this check needs them.
    from etl.contracts.pandera_schema import pandera_schema

    return (("Pandera schema", pandera_schema), ("GX suite", _gx_suite))


def _gx_suite(spec: ContractSpec) -> object:
    """The contract's GX suite as GX objects: GX checks each expectation's type and arguments."""
    from etl.contracts.suites import derive_expectations, import_gx, suite_kwargs

    gx = import_gx()
    suite = {"name": spec.name, "expectations": derive_expectations(spec)}
    return gx.ExpectationSuite(**suite_kwargs(suite))
