"""Entity filters as a small tree, and their translation to SQL over ``search``.

Both of Backstage's filter languages (the legacy ``filter=`` strings and the
``FilterPredicate`` JSON) parse into this tree, so there is one SQL translation.
Every leaf becomes ``entity_id IN (SELECT entity_id FROM search WHERE key = ...)``,
which the ``(key, value, entity_id)`` index answers by itself.

``relations.<type>`` keys are the exception: the ``relations`` table already holds
exactly those pairs, so they are answered from it instead of being copied into
``search`` (where they would be about half of all rows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from app.storage.tables import final_entities, relations, search

RELATIONS_PREFIX = "relations."


@dataclass(frozen=True)
class FieldIn:
    """``key`` has one of ``values`` (already lowercased); ``None`` means "exists"."""

    key: str
    values: tuple[str, ...] | None


@dataclass(frozen=True)
class FieldPrefix:
    key: str
    prefix: str


@dataclass(frozen=True)
class Not:
    inner: Filter


@dataclass(frozen=True)
class AllOf:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Filter, ...]


Filter = FieldIn | FieldPrefix | Not | AllOf | AnyOf

MATCH_ALL: Filter = AllOf(())


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def field_values(key: str) -> Select[Any]:
    """Rows ``(entity_id, value, original_value)`` of one search key, from its table."""
    if key.startswith(RELATIONS_PREFIX):
        owner = final_entities.alias("relation_owner")
        return (
            select(
                owner.c.entity_id.label("entity_id"),
                relations.c.target_entity_ref.label("value"),
                relations.c.target_entity_ref.label("original_value"),
            )
            .select_from(relations.join(owner, owner.c.entity_ref == relations.c.source_entity_ref))
            .where(func.lower(relations.c.type) == key[len(RELATIONS_PREFIX) :])
            .distinct()
        )
    return select(search.c.entity_id, search.c.value, search.c.original_value).where(
        search.c.key == key
    )


def matching_ids(key: str, value_condition: Any = None) -> Select[Any]:
    """``SELECT entity_id`` of the entities whose ``key`` satisfies ``value_condition``
    (a function of the value column), or that have the key at all."""
    rows = field_values(key).subquery()
    query = select(rows.c.entity_id)
    if value_condition is not None:
        query = query.where(value_condition(rows.c.value))
    return query


def _probe(key: str, entity_id_column: Any, value_condition: Any = None) -> ColumnElement[bool]:
    """``EXISTS`` a row of ``key`` for this one entity (whose value satisfies the condition)."""
    if key.startswith(RELATIONS_PREFIX):
        owner = final_entities.alias()
        relation = relations.alias()
        query = (
            select(literal(1))
            .select_from(relation.join(owner, owner.c.entity_ref == relation.c.source_entity_ref))
            .where(owner.c.entity_id == entity_id_column)
            .where(func.lower(relation.c.type) == key[len(RELATIONS_PREFIX) :])
        )
        value = relation.c.target_entity_ref
    else:
        row = search.alias()
        query = select(literal(1)).where(row.c.entity_id == entity_id_column, row.c.key == key)
        value = row.c.value
    if value_condition is not None:
        query = query.where(value_condition(value))
    return exists(query)


def to_sql(node: Filter, entity_id_column: Any, *, probe: bool = False) -> ColumnElement[bool]:
    """The condition that ``entity_id_column`` satisfies ``node``.

    By default each leaf is an ``IN`` over every matching id, which suits a filter that
    decides which rows there are. With ``probe``, each leaf is an ``EXISTS`` looked up
    for one entity at a time, which suits walking another index and stopping early.
    """
    if isinstance(node, FieldIn | FieldPrefix):
        return _leaf(node, entity_id_column, probe)
    if isinstance(node, Not):
        return not_(to_sql(node.inner, entity_id_column, probe=probe))
    if isinstance(node, AllOf):
        if not node.items:
            return true()
        return and_(*(to_sql(item, entity_id_column, probe=probe) for item in node.items))
    if isinstance(node, AnyOf):
        if not node.items:
            return false()
        return or_(*(to_sql(item, entity_id_column, probe=probe) for item in node.items))
    raise TypeError(f"Unknown filter node {node!r}")


def _value_condition(node: FieldIn | FieldPrefix) -> Callable[[Any], Any] | None:
    if isinstance(node, FieldPrefix):
        pattern = _escape_like(node.prefix) + "%"
        return lambda column: column.like(pattern, escape="\\")
    values = node.values
    if values is None:
        return None
    if len(values) == 1:
        return lambda column: column == values[0]
    return lambda column: column.in_(values)


def _leaf(node: FieldIn | FieldPrefix, entity_id_column: Any, probe: bool) -> ColumnElement[bool]:
    condition = _value_condition(node)
    if probe:
        return _probe(node.key, entity_id_column, condition)
    if isinstance(node, FieldIn) and not node.key.startswith(RELATIONS_PREFIX):
        # Straight on search, so the (key, value, entity_id) index answers it alone.
        sub = select(search.c.entity_id).where(search.c.key == node.key)
        if condition is not None:
            sub = sub.where(condition(search.c.value))
        return entity_id_column.in_(sub)
    return entity_id_column.in_(matching_ids(node.key, condition))


def is_match_all(node: Filter | None) -> bool:
    return node is None or (isinstance(node, AllOf) and not node.items)


def to_predicate(node: Filter) -> dict[str, Any]:
    """The same filter as Backstage ``FilterPredicate`` JSON (used inside cursors)."""
    if isinstance(node, FieldIn):
        if node.values is None:
            return {node.key: {"$exists": True}}
        if len(node.values) == 1:
            return {node.key: node.values[0]}
        return {node.key: {"$in": list(node.values)}}
    if isinstance(node, FieldPrefix):
        return {node.key: {"$hasPrefix": node.prefix}}
    if isinstance(node, Not):
        return {"$not": to_predicate(node.inner)}
    if isinstance(node, AllOf):
        return {"$all": [to_predicate(item) for item in node.items]}
    if isinstance(node, AnyOf):
        return {"$any": [to_predicate(item) for item in node.items]}
    raise TypeError(f"Unknown filter node {node!r}")
