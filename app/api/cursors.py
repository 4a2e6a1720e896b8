"""Cursor encoding for ``/entities/by-query`` and the ``after`` cursor of ``/entities``.

Cursors are base64 (standard alphabet) of JSON, as in Backstage. The client looks
inside: a by-query cursor with a truthy top-level ``query`` is continued with
``POST /entities/by-query``, otherwise with ``GET``. So ``query`` is present
exactly when the original request had a filter or predicate.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from app.errors import InputError


@dataclass
class QueryCursor:
    order_fields: list[dict[str, str]]
    order_field_values: list[str | None]
    first_sort_field_values: list[str | None] | None
    is_previous: bool
    total_items: int
    query: dict[str, Any] | None
    full_text: dict[str, Any] | None

    def encode(self) -> str:
        body: dict[str, Any] = {"orderFields": self.order_fields, "isPrevious": self.is_previous}
        if self.query is not None:
            body["query"] = self.query
        if self.full_text is not None:
            body["fullTextFilter"] = self.full_text
        body["orderFieldValues"] = self.order_field_values
        if self.first_sort_field_values is not None:
            body["firstSortFieldValues"] = self.first_sort_field_values
        body["totalItems"] = self.total_items
        return _b64(body)


def _b64(body: dict[str, Any]) -> str:
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(text.encode()).decode()


def _unb64(cursor: str) -> Any:
    try:
        return json.loads(base64.b64decode(cursor, validate=False).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(str(exc)) from exc
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


def decode_query_cursor(cursor: str) -> QueryCursor:
    if cursor == "":
        raise InputError("Cursor cannot be empty")
    try:
        body = _unb64(cursor)
    except ValueError as exc:
        raise InputError(f"Malformed cursor: {exc}") from exc
    if not isinstance(body, dict):
        raise InputError("Malformed cursor: expected an object")
    order_fields = body.get("orderFields")
    values = body.get("orderFieldValues")
    if not isinstance(order_fields, list) or not isinstance(values, list) or not values:
        raise InputError("Malformed cursor: missing orderFields or orderFieldValues")
    if not all(
        isinstance(f, dict)
        and isinstance(f.get("field"), str)
        and f.get("order", "asc") in ("asc", "desc")
        for f in order_fields
    ):
        raise InputError("Malformed cursor: invalid orderFields")
    first = body.get("firstSortFieldValues")
    query = body.get("query")
    full_text = body.get("fullTextFilter")
    total = body.get("totalItems", 0)
    if not isinstance(total, int) or isinstance(total, bool):
        raise InputError("Malformed cursor: invalid totalItems")
    if query is not None and not isinstance(query, dict):
        raise InputError("Malformed cursor: invalid query")
    if full_text is not None and not (
        isinstance(full_text, dict)
        and isinstance(full_text.get("term", ""), str)
        and isinstance(full_text.get("fields") or [], list)
        and all(isinstance(f, str) for f in full_text.get("fields") or [])
    ):
        raise InputError("Malformed cursor: invalid fullTextFilter")
    for value in [*values, *(first or [])]:
        if value is not None and not isinstance(value, str):
            raise InputError("Malformed cursor: invalid sort values")
    return QueryCursor(
        order_fields=order_fields,
        order_field_values=values,
        first_sort_field_values=first if isinstance(first, list) else None,
        is_previous=bool(body.get("isPrevious")),
        total_items=total,
        query=query,
        full_text=full_text,
    )


def encode_after_cursor(limit: int, offset: int) -> str:
    return _b64({"limit": limit, "offset": offset})


def decode_after_cursor(cursor: str) -> tuple[int, int]:
    try:
        body = _unb64(cursor)
        limit, offset = body["limit"], body["offset"]
        if not (isinstance(limit, int) and isinstance(offset, int)) or limit < 0 or offset < 0:
            raise ValueError("bad values")
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError("Malformed after cursor, could not be parsed") from exc
    return limit, offset
