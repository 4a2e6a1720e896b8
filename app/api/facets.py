"""``/entity-facets``: value counts of any indexed field, optionally filtered."""

from __future__ import annotations

from typing import Any

from flask import Response

from app import jsonutil
from app.api.blueprint import Blueprint, catalog
from app.api.cache import cached
from app.api.errors import json_response
from app.api.filter_params import parse_filter_params, parse_predicate
from app.api.schemas import FacetsBody, FacetsQuery, FacetsResponse
from app.errors import InputError
from app.storage.filters import Filter

blp = Blueprint("facets", __name__, url_prefix="/api/catalog", description="Entity facets")


def _facets(facets: list[str], node: Filter | None) -> Response:
    if not facets:
        raise InputError("Missing or empty facets parameter")
    reader = catalog().reader
    with reader.connect() as conn:
        result = reader.facets(conn, facets, node)
    return json_response(jsonutil.dumps({"facets": result}))


@blp.route("/entity-facets", methods=["GET"])
@blp.arguments(FacetsQuery, location="query", as_kwargs=True)
@blp.response(200, FacetsResponse)
@cached
def get_facets(**args: Any) -> Response:
    """Counts per value of each ``facet``, over the entities matching ``filter``."""
    return _facets(args["facet"], parse_filter_params(args.get("filter") or []))


@blp.route("/entity-facets", methods=["POST"])
@blp.arguments(FacetsBody, location="json", as_kwargs=True)
@blp.response(200, FacetsResponse)
@cached
def post_facets(**body: Any) -> Response:
    """Like the GET form, with a ``FilterPredicate`` query."""
    node = parse_predicate(body["query"]) if body.get("query") is not None else None
    return _facets(body["facets"], node)
