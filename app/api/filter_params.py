"""Parsing Backstage's two filter languages into :mod:`app.storage.filters` trees.

* Legacy ``filter`` query parameters: each parameter is a set of ``key=value``
  statements joined by commas (AND); repeated parameters are OR'ed; statements
  with the same key inside one set OR their values; a bare ``key`` means exists.
* ``FilterPredicate`` JSON: ``$all``, ``$any``, ``$not`` and field expressions
  with ``$exists``, ``$in``, ``$hasPrefix`` and ``$contains``.

Keys and values are lowercased here, as the search index stores them.
"""

from __future__ import annotations

from typing import Any

from app.errors import InputError
from app.storage.filters import AllOf, AnyOf, FieldIn, FieldPrefix, Filter, Not

MAX_PREDICATE_DEPTH = 32
# No indexed field starts with "$" (an entity has only apiVersion, kind, metadata, spec,
# relations and status at its root), so such a legacy statement matches nothing. Written
# as "nothing" rather than as the field, so that it survives the trip through a cursor's
# FilterPredicate, where "$" keys are operators.
NEVER: Filter = AnyOf(())


def parse_filter_params(values: list[str]) -> Filter | None:
    """The legacy ``filter`` parameters, or None when there are none."""
    if not values:
        return None
    sets: list[Filter] = []
    for text in values:
        if text == "":
            raise InputError("Empty value found for query parameter 'filter'")
        by_key: dict[str, list[str] | None] = {}
        for raw_statement in text.split(","):
            statement = raw_statement.strip()
            if not statement:
                continue
            key, sep, value = statement.partition("=")
            key = key.strip()
            if not key:
                raise InputError(
                    f"Invalid filter, '{statement}' is not a valid statement (expected a string "
                    "on the form a=b or a= or a)"
                )
            lowered = key.lower()
            current = by_key.setdefault(lowered, None if not sep else [])
            if sep:
                if current is None:
                    current = by_key[lowered] = []
                current.append(value.strip().lower())
        conditions = [
            FieldIn(key, tuple(dict.fromkeys(vals)) if vals is not None else None)
            if not key.startswith("$")
            else NEVER
            for key, vals in by_key.items()
        ]
        sets.append(AllOf(tuple(conditions)))
    if len(sets) == 1:
        return sets[0]
    return AnyOf(tuple(sets))


def _primitive(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(value).lower()
    if isinstance(value, str):
        return value.lower()
    return None


def parse_predicate(query: Any, depth: int = 0) -> Filter:
    """A ``FilterPredicate`` object. Raises InputError("Invalid query: ...")."""
    if depth > MAX_PREDICATE_DEPTH:
        raise InputError(f"Invalid query: predicates nest deeper than {MAX_PREDICATE_DEPTH} levels")
    if not isinstance(query, dict):
        if depth == 0:
            raise InputError("Query must be an object")
        raise InputError(f"Invalid query: expected an object, received {_describe(query)}")
    logical = [key for key in query if key in ("$all", "$any", "$not")]
    if logical:
        if len(query) != 1:
            extra = ", ".join(f"'{k}'" for k in query if k != logical[0])
            raise InputError(
                f"Invalid query: {logical[0]} cannot be combined with other keys ({extra})"
            )
        operator = logical[0]
        operand = query[operator]
        if operator == "$not":
            return Not(parse_predicate(operand, depth + 1))
        if not isinstance(operand, list):
            raise InputError(
                f'Invalid query: expected an array at "{operator}", received {_describe(operand)}'
            )
        items = tuple(parse_predicate(item, depth + 1) for item in operand)
        return AllOf(items) if operator == "$all" else AnyOf(items)
    conditions: list[Filter] = []
    for key, value in query.items():
        if not isinstance(key, str) or key.startswith("$"):
            raise InputError(f"Invalid query: unknown operator '{key}'")
        conditions.append(_field_condition(key.lower(), key, value))
    if len(conditions) == 1:
        return conditions[0]
    return AllOf(tuple(conditions))


def _field_condition(key: str, original_key: str, value: Any) -> Filter:
    primitive = _primitive(value)
    if primitive is not None:
        return FieldIn(key, (primitive,))
    if isinstance(value, dict) and len(value) == 1:
        operator, operand = next(iter(value.items()))
        if operator == "$exists" and isinstance(operand, bool):
            return FieldIn(key, None) if operand else Not(FieldIn(key, None))
        if operator == "$in" and isinstance(operand, list):
            items = [_primitive(item) for item in operand]
            if all(item is not None for item in items):
                return FieldIn(key, tuple(dict.fromkeys(i for i in items if i is not None)))
        if operator == "$hasPrefix" and isinstance(operand, str):
            return FieldPrefix(key, operand.lower())
        if operator == "$contains":
            # Array items are indexed under the array's own key, so "contains" is a
            # match on one item.
            item = _primitive(operand)
            if item is not None:
                return FieldIn(key, (item,))
    raise InputError(
        f'Invalid query: Invalid filter predicate value for field "{original_key}", expected a '
        "string, number or boolean, or one of {$exists: boolean}, {$in: [...]}, "
        f"{{$hasPrefix: string}}, {{$contains: value}}; received {_describe(value)}"
    )


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
