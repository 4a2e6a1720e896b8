"""Writes on entities and the catalog-import helpers.

* ``POST /refresh``: the entity and its nearest Location ancestor are processed
  again at once (200, empty body; processing is asynchronous).
* ``DELETE /entities/by-uid/{uid}``: 204 even for an unknown uid. An entity its
  parent still emits comes back, with a new uid, as in Backstage.
* ``POST /validate-entity``: 200 with an empty body, or 400 ``{errors: [...]}``
  (not the error envelope) when the entity or the location ref is invalid.
* ``POST /analyze-location``: existing catalog files, or a suggested entity.

Backstage allows refresh and delete-by-uid in ``catalog.readonly`` mode, and so do
we; only location writes are refused there.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from app import jsonutil
from app.api.blueprint import Blueprint, catalog
from app.api.errors import json_response
from app.api.locations import NoQuery, empty_response
from app.api.write_schemas import (
    AnalyzeLocationBody,
    AnalyzeLocationResponse,
    RefreshBody,
    ValidateEntityBody,
    ValidateEntityErrors,
)
from app.engine import operations
from app.engine.analyze import LocationAnalyzer
from app.errors import serialize_error
from app.model import parse_location_ref, validate_envelope
from app.model.refs import LocationRefError

blp = Blueprint("writes", __name__, url_prefix="/api/catalog", description="Entity writes")


@blp.route("/refresh", methods=["POST"])
@blp.arguments(NoQuery, location="query")
@blp.arguments(RefreshBody, location="json")
@blp.response(200)
def refresh(_query: dict[str, Any], body: dict[str, Any]) -> Response:
    """Process an entity and the Location that emits it again, now."""
    operations.refresh_entity(catalog().engine, body["entityRef"])
    return empty_response(200)


@blp.route("/entities/by-uid/<uid>", methods=["DELETE"])
@blp.arguments(NoQuery, location="query")
@blp.response(204)
def delete_by_uid(_query: dict[str, Any], uid: str) -> Response:
    """Delete an entity; a parent that still emits it brings it back under a new uid."""
    operations.delete_entity_by_uid(catalog().engine, uid)
    return empty_response(204)


def _invalid(errors: list[dict[str, Any]]) -> Response:
    return json_response(jsonutil.dumps({"errors": errors}), 400)


@blp.route("/validate-entity", methods=["POST"])
@blp.arguments(NoQuery, location="query")
@blp.arguments(ValidateEntityBody, location="json")
@blp.response(200)
@blp.alt_response(400, schema=ValidateEntityErrors)
def validate_entity(_query: dict[str, Any], body: dict[str, Any]) -> Response:
    """Run an entity through the whole processing pipeline without storing it."""
    location = body["location"]
    try:
        entity = validate_envelope(body["entity"])
        location_type, _ = parse_location_ref(location)
        if location_type != "url":
            raise LocationRefError(
                f"Invalid location ref {location}, only 'url:<target>' is supported, "
                "e.g. url:https://host/path"
            )
    except Exception as exc:
        return _invalid([serialize_error(exc)])
    errors = operations.validate_entity(catalog().orchestrator, entity, location)
    if errors:
        return _invalid(errors)
    return empty_response(200)


@blp.route("/analyze-location", methods=["POST"])
@blp.arguments(NoQuery, location="query")
@blp.arguments(AnalyzeLocationBody, location="json")
@blp.response(200, AnalyzeLocationResponse)
def analyze_location(_query: dict[str, Any], body: dict[str, Any]) -> Response:
    """The catalog files at a repository URL, or an entity to create for it."""
    current = catalog()
    analyzer = LocationAnalyzer(current.readers, current.orchestrator.parser, current.db)
    location = body["location"]
    result = analyzer.analyze(
        location["type"],
        location["target"],
        body.get("catalogFilename") or body.get("catalogFileName"),
    )
    return json_response(jsonutil.dumps(result))
