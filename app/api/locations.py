"""``/locations`` endpoints: register (or dry-run), list, query, read, update, remove.

Shapes are Backstage's: ``GET /locations`` wraps every location as ``{data: ...}``,
every other endpoint returns bare ``{id, type, target, entityRef}`` objects, a
registration answers 201 ``{location, entities, exists?}``. Writes are refused with
403 in ``catalog.readonly`` mode (a dry run is not a write).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from flask import Response, request

from app import jsonutil
from app.api.blueprint import Blueprint, catalog
from app.api.errors import json_response
from app.api.filter_params import parse_predicate
from app.api.limits import check_page_size
from app.api.params import QuerySchema, parser
from app.api.write_schemas import (
    CreateLocationBody,
    CreateLocationQuery,
    CreateLocationResponse,
    LocationInputBody,
    LocationSchema,
    LocationsQueryBody,
    LocationsQueryResponse,
    LocationWrapperSchema,
    strict_location_input,
)
from app.engine.locations import LocationService
from app.errors import InputError, NotAllowedError

blp = Blueprint(
    "locations", __name__, url_prefix="/api/catalog", description="Registered locations"
)

DEFAULT_QUERY_LIMIT = 1000
_YES = ("y", "yes", "true", "1", "on")


class NoQuery(QuerySchema):
    """Routes without query parameters still reject unknown ones, as Backstage's validator does."""


def service() -> LocationService:
    return catalog().locations  # type: ignore[no-any-return]


def disallow_readonly() -> None:
    if catalog().config.readonly:
        raise NotAllowedError("This operation not allowed in readonly mode")


def empty_response(status: int) -> Response:
    """A body-less answer, like Node's ``res.status(n).end()`` (no Content-Type)."""
    response = Response(status=status)
    del response.headers["Content-Type"]
    return response


@blp.route("/locations", methods=["POST"])
@blp.arguments(CreateLocationQuery, location="query", as_kwargs=True)
@blp.arguments(CreateLocationBody, location="json")
@blp.response(201, CreateLocationResponse)
def create_location(body: dict[str, Any], **query: Any) -> Response:
    """Register a location (201); ``dryRun`` processes it without storing anything."""
    # The parsed body, in the caller's key order (zod lists unknown keys in that order).
    raw = request.get_json(silent=True)
    location = strict_location_input(
        raw if isinstance(raw, dict) else body, ("type", "target", "presence")
    )
    dry_run = str(query.get("dryRun") or "").strip().lower() in _YES
    if not dry_run:
        disallow_readonly()
    result = service().create(
        location["type"],
        location["target"],
        presence=location.get("presence"),
        dry_run=dry_run,
        on_conflict=query.get("onConflict") or "reject",
    )
    return json_response(jsonutil.dumps(result), 201)


@blp.route("/locations", methods=["GET"])
@blp.arguments(NoQuery, location="query")
@blp.response(200, LocationWrapperSchema(many=True))
def list_locations(_query: dict[str, Any]) -> Response:
    """Every registered location, each wrapped as ``{data: location}``."""
    items = [{"data": row.to_json()} for row in service().list_all()]
    return json_response(jsonutil.dumps(items))


def _decode_cursor(cursor: str) -> tuple[int, str | None, Any]:
    if cursor == "":
        raise InputError("Cursor cannot be empty")
    try:
        data = json.loads(base64.b64decode(cursor.encode(), validate=False).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InputError("Malformed cursor, unknown encoding") from None
    if not isinstance(data, dict):
        raise InputError("Malformed cursor: Validation error: Expected object")
    limit, after_id = data.get("limit"), data.get("afterId")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError('Malformed cursor: Validation error: Invalid limit at "limit"')
    if after_id is not None and not isinstance(after_id, str):
        raise InputError('Malformed cursor: Validation error: Expected string at "afterId"')
    query = data.get("query")
    if query is not None:
        parse_predicate(query)
    return limit, after_id, query


@blp.route("/locations/by-query", methods=["POST"])
@blp.arguments(NoQuery, location="query")
@blp.doc(
    requestBody={
        "required": False,
        "content": {"application/json": {"schema": LocationsQueryBody}},
    }
)
@blp.response(200, LocationsQueryResponse)
def query_locations(_query: dict[str, Any]) -> Response:
    """A page of locations matching a ``FilterPredicate``, keyset-paged by id."""
    # The body is optional: no body and no Content-Type at all is an empty query.
    if not request.content_type and not request.get_data(cache=True):
        body: dict[str, Any] = {}
    else:
        body = parser.parse(LocationsQueryBody(), request, location="json")
    after_id: str | None = None
    if "cursor" in body:
        limit, after_id, query = _decode_cursor(body["cursor"])
    else:
        limit = body.get("limit", DEFAULT_QUERY_LIMIT)
        if not float(limit).is_integer() or limit < 1:
            raise InputError("Limit must be a positive integer >= 1")
        limit = int(limit)
        query = body.get("query")
        if query is not None:
            parse_predicate(query)
    check_page_size(limit)
    rows, total = service().query(query, limit=limit + 1, after_id=after_id)
    page = rows[:limit]
    page_info: dict[str, str] = {}
    if len(rows) > limit:
        cursor: dict[str, Any] = {"limit": limit, "afterId": page[-1].id}
        if query is not None:
            cursor["query"] = query
        page_info["nextCursor"] = base64.b64encode(jsonutil.dumps(cursor).encode()).decode()
    body_out = {
        "items": [row.to_query_json() for row in page],
        "totalItems": total,
        "pageInfo": page_info,
    }
    return json_response(jsonutil.dumps(body_out))


@blp.route("/locations/<location_id>", methods=["GET"])
@blp.arguments(NoQuery, location="query")
@blp.response(200, LocationSchema)
def get_location(_query: dict[str, Any], location_id: str) -> Response:
    return json_response(jsonutil.dumps(service().get(location_id).to_json()))


@blp.route("/locations/<location_id>", methods=["PUT"])
@blp.arguments(NoQuery, location="query")
@blp.arguments(LocationInputBody, location="json")
@blp.response(200, LocationSchema)
def update_location(_query: dict[str, Any], body: dict[str, Any], location_id: str) -> Response:
    """Change a location's type and target; its Location entity keeps its name."""
    disallow_readonly()
    row = service().update(location_id, body["type"], body["target"])
    return json_response(jsonutil.dumps(row.to_json()))


@blp.route("/locations/<location_id>", methods=["DELETE"])
@blp.arguments(NoQuery, location="query")
@blp.response(204)
def delete_location(_query: dict[str, Any], location_id: str) -> Response:
    """Unregister a location; the entities only it emitted are deleted at once."""
    disallow_readonly()
    service().delete(location_id)
    return empty_response(204)


@blp.route("/locations/by-entity/<kind>/<namespace>/<name>", methods=["GET"])
@blp.arguments(NoQuery, location="query")
@blp.response(200, LocationSchema)
def get_location_by_entity(
    _query: dict[str, Any], kind: str, namespace: str, name: str
) -> Response:
    """The registered location an entity originates from."""
    row = service().by_entity(kind, namespace, name)
    return json_response(jsonutil.dumps(row.to_json()))
