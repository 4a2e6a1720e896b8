"""``GET /providers``: what each entity provider did last.

For every provider: how many entities it supplies now, its schedule, the last mutation
it applied (added, removed), the last one the deletion guard refused and why, and, for
providers that report runs (git, GitHub), the last run, its error and the repositories
that currently fail. A refused or failed run leaves the provider's entities as they
were; this is where that shows.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from marshmallow import Schema, fields

from app import jsonutil
from app.api.blueprint import Blueprint, catalog
from app.api.errors import json_response
from app.api.locations import NoQuery
from app.engine.provider_runs import entity_counts

blp = Blueprint(
    "providers", __name__, url_prefix="/api/catalog", description="Entity provider status"
)


class ProviderStatus(Schema):
    name = fields.String(required=True)
    entities = fields.Integer(metadata={"description": "Entities the provider supplies now"})
    frequencySeconds = fields.Float(allow_none=True)
    lastMutation = fields.Dict(allow_none=True)
    lastRefusal = fields.Dict(
        allow_none=True, metadata={"description": "The last run the deletion guard refused"}
    )
    refusals = fields.Integer()
    lastRun = fields.Dict(metadata={"description": "Start, end, trigger and error of a run"})
    lastSuccessAt = fields.String()
    repositories = fields.Integer()
    files = fields.Integer()
    failingRepositories = fields.List(fields.Dict())


class ProvidersResponse(Schema):
    items = fields.List(fields.Nested(ProviderStatus))


@blp.route("/providers")
@blp.arguments(NoQuery, location="query")
@blp.response(200, ProvidersResponse)
def list_providers(_query: dict[str, Any]) -> Response:
    """Each entity provider's entities, last mutation, refusals and last run."""
    current = catalog()
    counts = entity_counts(current.db)
    items = []
    for provider in current.engine.providers:
        name = provider.get_provider_name()
        status = provider.status() if callable(getattr(provider, "status", None)) else {}
        items.append(
            {
                "name": name,
                "entities": counts.get(name, 0),
                "frequencySeconds": provider.refresh_interval(),
                **current.engine.provider_runs.as_json(name),
                **status,
            }
        )
    return json_response(jsonutil.dumps({"items": items}))
