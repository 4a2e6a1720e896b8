"""Backstage's health endpoints: liveness always, readiness once the catalog is loaded."""

from __future__ import annotations

from flask import Response
from marshmallow import Schema, fields
from sqlalchemy.exc import SQLAlchemyError

from app import jsonutil
from app.api.blueprint import Blueprint, catalog
from app.api.errors import json_response

blp = Blueprint("health", __name__, url_prefix="/.backstage/health/v1", description="Health")


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok", "error"]})
    message = fields.String(metadata={"description": "why the catalog is not ready"})


@blp.route("/liveness")
@blp.response(200, HealthSchema)
def liveness() -> Response:
    return json_response(jsonutil.dumps({"status": "ok"}))


@blp.route("/readiness")
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema)
def readiness() -> Response:
    """200 once every configured location has been processed and stitched; else 503,
    with the reason (work still pending, providers not connected, database down)."""
    try:
        ready, reason = catalog().is_ready()
    except SQLAlchemyError as exc:
        ready, reason = False, f"the database is unreachable ({exc.__class__.__name__})"
    if ready:
        return json_response(jsonutil.dumps({"status": "ok"}))
    body = {"status": "error", "message": f"The catalog is not ready: {reason}"}
    return json_response(jsonutil.dumps(body), 503)
