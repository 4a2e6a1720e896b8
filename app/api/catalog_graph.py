"""``GET /api/catalog-graph/graph``: Backstage's catalog-graph backend, answered from our graph.

Same parameters (``rootEntityRefs``, ``relations``, ``kinds``: repeatable;
``maxDepth``), same settings (``catalogGraph.maxDepth``,
``catalogGraph.limitEntities``) and the same ``{entities, cutoff}`` answer as
``@backstage/plugin-catalog-graph-backend``, so the catalog-graph frontend can
draw a whole neighbourhood with one request instead of fetching entity by entity.
``tests/graph/test_catalog_graph_compat.py`` compares the answers with ones
recorded from the real plugin.

Where the plugin turns bad input into odd answers (``maxDepth=abc`` walks without
limit, ``maxDepth=-1`` answers nothing), this endpoint answers 400, and a limit of
10,000 entities applies unless ``catalogGraph.limitEntities`` says otherwise.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Response, request

from app import jsonutil
from app.api.blueprint import Blueprint
from app.api.errors import json_response
from app.api.graph import graph_service
from app.errors import InputError

blp = Blueprint(
    "catalog-graph",
    __name__,
    url_prefix="/api/catalog-graph",
    description="Backstage's catalog-graph backend plugin API",
)

_INTEGER = re.compile(r"^\s*[+-]?\d+")


def _repeatable(name: str, description: str) -> dict[str, Any]:
    return {
        "in": "query",
        "name": name,
        "description": description,
        "schema": {"type": "array", "items": {"type": "string"}},
        "style": "form",
        "explode": True,
    }


# Documented by hand: the plugin reads ``req.query`` as Express parses it (unknown
# and empty parameters are ignored), not through a validating schema.
_PARAMETERS = [
    _repeatable("rootEntityRefs", "entity refs to start from, exactly as stored"),
    _repeatable("relations", "relation types to follow (default: all)"),
    _repeatable("kinds", "kinds to walk into (default: all; roots are always included)"),
    {
        "in": "query",
        "name": "maxDepth",
        "description": "levels to walk from the roots (default: no limit)",
        "schema": {"type": "integer", "minimum": 0},
    },
]


def _max_depth(values: list[str]) -> int | None:
    """``parseInt``'s reading of ``maxDepth``; what it cannot read sensibly is a 400."""
    if not values or values == [""]:
        return None
    if len(values) > 1:
        raise InputError("maxDepth must be given once")
    match = _INTEGER.match(values[0])
    if match is None:
        raise InputError(f"maxDepth must be an integer, got {values[0]!r}")
    depth = int(match.group())
    if depth < 0:
        raise InputError(f"maxDepth must not be negative, got {depth}")
    return depth


@blp.route("/graph")
@blp.doc(parameters=_PARAMETERS)
@blp.response(200)
def graph() -> Response:
    """The entities reachable from the roots, level by level, and whether a limit cut the walk."""
    args = request.args
    # Like Express: a lone empty parameter is no parameter.
    relations = [value for value in args.getlist("relations") if value]
    kinds = [value for value in args.getlist("kinds") if value]
    texts, cutoff = graph_service().catalog_graph(
        [ref for ref in args.getlist("rootEntityRefs") if ref],
        relations=relations or None,
        kinds=kinds or None,
        max_depth=_max_depth(args.getlist("maxDepth")),
    )
    return json_response(f'{{"entities":[{",".join(texts)}],"cutoff":{jsonutil.dumps(cutoff)}}}')
