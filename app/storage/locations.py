"""The ``locations`` table: locations registered through the API.

Each row is ``{id, type, target, location_entity_ref}``; the last is the ref of the
Location entity generated for it, named after the ``type:target`` it was registered
with and kept when ``PUT /locations/{id}`` changes the target (as in Backstage).
``POST /locations/by-query`` filters rows with a ``FilterPredicate`` over ``id``,
``type``, ``target`` and ``entityRef`` using Backstage's location semantics, which
differ from the entity ones: values compare case-insensitively as text, an empty
``$all``/``$any`` matches nothing, and ``$contains`` never matches.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, false, func, not_, or_, select, true

from app.errors import InputError
from app.model.locations import generated_location_name
from app.storage.tables import locations

# Backstage hides these internal rows from every listing.
BOOTSTRAP_TYPE = "bootstrap"


def location_entity_ref(location_type: str, target: str) -> str:
    return f"location:default/{generated_location_name(location_type, target)}"


@dataclass(frozen=True)
class LocationRow:
    id: str
    type: str
    target: str
    entity_ref: str

    def to_json(self) -> dict[str, str]:
        """A ``Location`` as ``GET /locations/{id}`` answers it."""
        return {
            "id": self.id,
            "type": self.type,
            "target": self.target,
            "entityRef": self.entity_ref,
        }

    def to_query_json(self) -> dict[str, str]:
        """A ``Location`` as ``POST /locations/by-query`` lists it (same data, its key order)."""
        return {
            "id": self.id,
            "target": self.target,
            "type": self.type,
            "entityRef": self.entity_ref,
        }


def _row(row: Any) -> LocationRow:
    return LocationRow(
        id=row.id,
        type=row.type,
        target=row.target,
        entity_ref=row.location_entity_ref or location_entity_ref(row.type, row.target),
    )


_COLUMNS = (locations.c.id, locations.c.type, locations.c.target, locations.c.location_entity_ref)


def list_locations(conn: Connection) -> list[LocationRow]:
    query = select(*_COLUMNS).where(locations.c.type != BOOTSTRAP_TYPE).order_by(locations.c.id)
    return [_row(row) for row in conn.execute(query)]


def get_location(conn: Connection, location_id: str) -> LocationRow | None:
    row = conn.execute(select(*_COLUMNS).where(locations.c.id == location_id)).first()
    return _row(row) if row is not None else None


def find_location(
    conn: Connection, location_type: str, target: str, *, except_id: str | None = None
) -> LocationRow | None:
    query = select(*_COLUMNS).where(locations.c.type == location_type, locations.c.target == target)
    if except_id is not None:
        query = query.where(locations.c.id != except_id)
    row = conn.execute(query.where(locations.c.type != BOOTSTRAP_TYPE)).first()
    return _row(row) if row is not None else None


def insert_location(conn: Connection, location_type: str, target: str) -> LocationRow:
    row = LocationRow(
        id=str(uuid.uuid4()),
        type=location_type,
        target=target,
        entity_ref=location_entity_ref(location_type, target),
    )
    conn.execute(
        locations.insert().values(
            id=row.id, type=row.type, target=row.target, location_entity_ref=row.entity_ref
        )
    )
    return row


def update_location(
    conn: Connection, location_id: str, location_type: str, target: str
) -> LocationRow | None:
    current = get_location(conn, location_id)
    if current is None:
        return None
    conn.execute(
        locations.update()
        .where(locations.c.id == location_id)
        .values(type=location_type, target=target, location_entity_ref=current.entity_ref)
    )
    return LocationRow(location_id, location_type, target, current.entity_ref)


def delete_location(conn: Connection, location_id: str) -> LocationRow | None:
    current = get_location(conn, location_id)
    if current is not None:
        conn.execute(locations.delete().where(locations.c.id == location_id))
    return current


def query_locations(
    conn: Connection, query: Any, *, after_id: str | None, limit: int
) -> tuple[list[LocationRow], int]:
    """A keyset page (by id) of the rows matching ``query``, and the total number of matches."""
    condition = locations.c.type != BOOTSTRAP_TYPE
    if query is not None:
        condition = and_(condition, location_condition(query))
    total = conn.execute(select(func.count()).select_from(locations).where(condition)).scalar_one()
    page = select(*_COLUMNS).where(condition)
    if after_id is not None:
        page = page.where(locations.c.id > after_id)
    rows = conn.execute(page.order_by(locations.c.id).limit(limit))
    return [_row(row) for row in rows], int(total)


_KEYS = {
    "id": locations.c.id,
    "type": locations.c.type,
    "target": locations.c.target,
    "entityref": locations.c.location_entity_ref,
}


def _text(value: Any) -> str:
    """A primitive as JavaScript turns it into a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def location_condition(query: Any) -> ColumnElement[bool]:
    """A ``FilterPredicate`` over location rows, with Backstage's messages for bad ones."""
    if not isinstance(query, dict):
        raise InputError("Invalid filter predicate, expected an object")
    if "$all" in query or "$any" in query:
        operator = "$all" if "$all" in query else "$any"
        items = [location_condition(item) for item in query[operator]]
        if not items:
            return false()
        return and_(true(), *items) if operator == "$all" else or_(false(), *items)
    if "$not" in query:
        return not_(location_condition(query["$not"]))
    keys = list(query)
    if any(key.startswith("$") for key in keys):
        raise InputError(f"Invalid filter predicate, unknown logic operator '{', '.join(keys)}'")
    conditions = []
    for key, value in query.items():
        column = _KEYS.get(key.lower())
        if column is None:
            raise InputError(
                "Invalid filter predicate, expected key to be 'id', 'type', 'target', or "
                f"'entityRef', got '{key}'"
            )
        conditions.append(_value_condition(column, key.lower(), value))
    return and_(true(), *conditions)


def _value_condition(column: Any, key: str, value: Any) -> ColumnElement[bool]:
    if isinstance(value, str | int | float | bool):
        return func.upper(column) == func.upper(_text(value))
    if isinstance(value, dict):
        if "$exists" in value:
            return column.is_not(None) if value["$exists"] else column.is_(None)
        if "$in" in value:
            items = [_text(item) for item in value["$in"]]
            if not items:
                return false()
            if key == "id":
                return column.in_(items)
            return func.upper(column).in_([func.upper(item) for item in items])
        if "$hasPrefix" in value:
            pattern = _escape_like(str(value["$hasPrefix"])) + "%"
            return func.upper(column).like(func.upper(pattern), escape="\\")
        if "$contains" in value:
            return false()
    if isinstance(value, dict | list) or value is None:
        raise InputError(
            "Invalid filter predicate, got unknown matcher object "
            f"'{json.dumps(value, separators=(',', ':'))}'"
        )
    raise InputError(
        "Invalid filter predicate, expected value to be a primitive value or a matcher "
        f"object, got '{type(value).__name__}'"
    )
