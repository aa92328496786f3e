"""Walking an ODCS contract document: every property with its place in the YAML.

``contracts lint``, ``contracts diff`` and ``contracts docs`` all look at every property of every
schema object, nested ones included (the raw page contract describes ``data[].id``), which
:class:`etl.contracts.model.ContractSpec` flattens away. This module is that one traversal, so the three
tools name a property the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

YamlPath = tuple[str | int, ...]


@dataclass(frozen=True)
class PropertyRef:
    """One property of a schema object, wherever it is nested.

    Attributes:
        dataset: name of the schema object it belongs to.
        name: dotted name inside the dataset: ``author_id``, ``data[].id``, ``meta.next_token``;
            an array's ``items`` is ``hashtags[]``.
        path: keys and indexes from the document root to the property mapping.
        prop: the property mapping as parsed.
        depth: 0 for a top-level column, one more per nesting level.
        is_item: the ``items`` of an array (it has a type but is not a column of its own).
    """

    dataset: str
    name: str
    path: YamlPath
    prop: dict[str, Any]
    depth: int = 0
    is_item: bool = False


def schema_objects(doc: dict[str, Any]) -> Iterator[tuple[YamlPath, dict[str, Any]]]:
    """The schema objects of a contract document, in order.

    Args:
        doc: the parsed contract.

    Returns:
        An iterator of (path, schema object mapping); entries that are not mappings are skipped.
    """
    schema = doc.get("schema")
    if not isinstance(schema, list):
        return
    for index, obj in enumerate(schema):
        if isinstance(obj, dict):
            yield ("schema", index), obj


def iter_properties(doc: dict[str, Any]) -> Iterator[PropertyRef]:
    """Every property of every schema object, depth first, in document order.

    Args:
        doc: the parsed contract.

    Returns:
        An iterator of :class:`PropertyRef`; nested object properties and array items included.
    """
    for path, obj in schema_objects(doc):
        yield from _children(str(obj.get("name", "")), obj, path, "", 0)


def _children(
    dataset: str, parent: dict[str, Any], path: YamlPath, prefix: str, depth: int
) -> Iterator[PropertyRef]:
    props = parent.get("properties")
    if not isinstance(props, list):
        return
    for index, prop in enumerate(props):
        if not isinstance(prop, dict):
            continue
        name = f"{prefix}{prop.get('name', f'#{index}')}"
        here = (*path, "properties", index)
        yield PropertyRef(dataset, name, here, prop, depth)
        yield from _nested(dataset, prop, here, name, depth + 1)


def _nested(
    dataset: str, prop: dict[str, Any], path: YamlPath, name: str, depth: int
) -> Iterator[PropertyRef]:
    yield from _children(dataset, prop, path, f"{name}.", depth)
    items = prop.get("items")
    if isinstance(items, dict):
        item_path = (*path, "items")
        yield PropertyRef(dataset, f"{name}[]", item_path, items, depth, is_item=True)
        yield from _nested(dataset, items, item_path, f"{name}[]", depth + 1)


def allowed_values(prop: dict[str, Any]) -> list[Any] | None:
    """The closed value set of a property, if a quality rule declares one.

    ODCS v3.1 has no ``enum`` keyword; the contracts state a value set as an ``invalidValues``
    rule with ``arguments.validValues`` (the same reading as :mod:`etl.contracts.model`).

    Args:
        prop: a property mapping.

    Returns:
        The allowed values, or None when the property has no value set.
    """
    for rule in prop.get("quality") or []:
        if not isinstance(rule, dict):
            continue
        arguments = rule.get("arguments")
        if isinstance(arguments, dict) and isinstance(arguments.get("validValues"), list):
            return list(arguments["validValues"])
    return None


def display_path(doc: dict[str, Any], path: YamlPath) -> str:
    """A YAML path as people read it: list items by their ``name`` where they have one.

    Args:
        doc: the parsed contract (to look the names up).
        path: keys and indexes from the root.

    Returns:
        For example ``schema[tweets].properties[author_id].logicalType``.
    """
    out = ""
    node: Any = doc
    for key in path:
        if isinstance(key, int):
            item = node[key] if isinstance(node, list) and 0 <= key < len(node) else None
            label = item.get("name") if isinstance(item, dict) else None
            out += f"[{label if isinstance(label, str) and label else key}]"
            node = item
        else:
            out += f".{key}" if out else str(key)
            node = node.get(key) if isinstance(node, dict) else None
    return out or "(document)"
