"""Backstage's health endpoints: liveness always, readiness once the catalog is loaded."""

from __future__ import annotations

from flask import Response

from app import jsonutil
from app.api.blueprint import Blueprint, catalog
from app.api.errors import json_response

blp = Blueprint("health", __name__, url_prefix="/.backstage/health/v1", description="Health")


@blp.route("/liveness")
@blp.response(200)
def liveness() -> Response:
    return json_response(jsonutil.dumps({"status": "ok"}))


@blp.route("/readiness")
@blp.response(200)
@blp.alt_response(503)
def readiness() -> Response:
    """200 once every configured location has been processed and stitched; else 503."""
    ready, reason = catalog().is_ready()
    if ready:
        return json_response(jsonutil.dumps({"status": "ok"}))
    body = {"status": "error", "message": f"The catalog is not ready: {reason}"}
    return json_response(jsonutil.dumps(body), 503)
