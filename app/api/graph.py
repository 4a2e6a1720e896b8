"""``/api/graph``: dependency, impact, path, cycle, ownership and centrality queries.

Answers are JSON by default; ``format`` exports the subgraph a query covers as
node-link JSON, Graphviz DOT, GraphML, Mermaid or SVG (SVG needs Graphviz on the
server). Entity refs may be written the way Backstage users do
(``payments-gateway``, ``component:payments-gateway``,
``Component:default/Payments-Gateway``). Errors use Backstage's envelope; every
query is bounded (depth, path length and count, export size).
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Response, current_app
from marshmallow import fields

from app import jsonutil
from app.api.blueprint import Blueprint, catalog
from app.api.errors import json_response
from app.api.params import QuerySchema, integer, one_of, split_csv, string, string_list
from app.graph.export import CONTENT_TYPES
from app.graph.queries import Result
from app.graph.service import GraphService, GraphSettings

blp = Blueprint(
    "graph",
    __name__,
    url_prefix="/api/graph",
    description="The entity graph: dependencies, impact, paths, cycles, ownership, exports",
)

EXPORT_FORMATS = ["json", "node-link", "dot", "graphml", "mermaid", "svg"]
_service_lock = threading.Lock()


def graph_service() -> GraphService:
    """This app's graph service, created on first use (the graph is built lazily too)."""
    service = current_app.extensions.get("graph")
    if service is None:
        with _service_lock:
            service = current_app.extensions.get("graph")
            if service is None:
                cat = catalog()
                service = GraphService(cat.db, GraphSettings.from_config(cat.config))
                current_app.extensions["graph"] = service
    return service


@blp.before_app_request
def warm_up() -> None:
    """On the app's first request (usually the readiness probe), build the graph in the
    background, so that the first graph query does not wait seconds for it.
    ``graph.warmup: false`` turns this off."""
    extensions = current_app.extensions
    if extensions.get("graph.warmup") is not None:
        return
    with _service_lock:
        if extensions.get("graph.warmup") is not None:
            return
        cat = catalog()
        config = getattr(cat, "config", None)
        enabled = hasattr(cat, "db") and (
            config is None or config.get("graph.warmup", True) is not False
        )
        extensions["graph.warmup"] = enabled
    if enabled:
        threading.Thread(target=graph_service().warm, name="graph-warmup", daemon=True).start()


def boolean(**kwargs: Any) -> fields.Boolean:
    return fields.Boolean(error_messages={"invalid": "must be boolean"}, **kwargs)


def _format() -> fields.String:
    return one_of(
        EXPORT_FORMATS,
        metadata={"description": "json (default): the answer; the others export its subgraph"},
    )


class EntityQuery(QuerySchema):
    entityRef = string(required=True, metadata={"description": "e.g. payments-gateway"})
    format = _format()


class RelatedQuery(EntityQuery):
    depth = integer(metadata={"description": "maximum hops (1-100); default: no limit"})
    relations = string_list(
        metadata={
            "description": "relation types (default dependsOn,consumesApi,providesApi,partOf)"
        }
    )
    kinds = string_list(metadata={"description": "only list entities of these kinds"})
    limit = integer(metadata={"description": "items to list (default 1000)"})


class PathQuery(QuerySchema):
    source = string(required=True, data_key="from")
    target = string(required=True, data_key="to")
    relations = string_list(metadata={"description": "relation types (default: dependencies)"})
    directed = boolean(metadata={"description": "follow the dependency direction (default true)"})
    format = _format()


class PathsQuery(PathQuery):
    maxLength = integer(metadata={"description": "longest path, in steps (1-20, default 8)"})
    maxPaths = integer(metadata={"description": "paths to list (1-1000, default 20)"})


class CyclesQuery(QuerySchema):
    relations = string_list(metadata={"description": "relation types (default dependsOn)"})
    limit = integer(metadata={"description": "cycles to list (default 100, at most 1000)"})
    maxLength = integer(metadata={"description": "longest cycle to look for (1-20)"})
    format = _format()


class OwnedQuery(EntityQuery):
    transitive = boolean(metadata={"description": "include what child groups own"})
    kinds = string_list()
    limit = integer()


class OrphansQuery(QuerySchema):
    kinds = string_list()
    format = _format()


class CentralQuery(QuerySchema):
    relations = string_list()
    kinds = string_list()
    limit = integer(metadata={"description": "entities to list (default 10, at most 100)"})
    sort = one_of(["dependents", "pagerank"])
    format = _format()


class SubgraphQuery(QuerySchema):
    rootEntityRefs = string_list(metadata={"description": "start here (default: whole graph)"})
    relations = string_list()
    kinds = string_list()
    depth = integer(metadata={"description": "hops from the roots (0-100, default 1)"})
    direction = one_of(["both", "out", "in"])
    format = _format()


class StatusQuery(QuerySchema):
    memory = boolean(metadata={"description": "also measure the graph's memory (slow)"})


def _list(args: dict[str, Any], name: str) -> list[str] | None:
    values = split_csv(args.get(name))
    return values or None


def _answer(result: Result, args: dict[str, Any]) -> Response:
    fmt = args.get("format") or "json"
    if fmt == "json":
        return json_response(result.json())
    export_format = "json" if fmt == "node-link" else fmt
    body = graph_service().render(result, export_format)
    return Response(body, status=200, content_type=CONTENT_TYPES[export_format])


def _related(direction: str, args: dict[str, Any]) -> Response:
    service = graph_service()
    result = service.related(
        args["entityRef"],
        direction,
        depth=args.get("depth"),
        relations=_list(args, "relations"),
        kinds=_list(args, "kinds"),
        limit=args.get("limit"),
    )
    return _answer(result, args)


@blp.route("/dependencies")
@blp.arguments(RelatedQuery, location="query", as_kwargs=True)
@blp.response(200)
def dependencies(**args: Any) -> Response:
    """What the entity depends on, transitively (``items`` by depth, each with its ``via`` edge)."""
    return _related("dependencies", args)


@blp.route("/dependents")
@blp.arguments(RelatedQuery, location="query", as_kwargs=True)
@blp.response(200)
def dependents(**args: Any) -> Response:
    """What depends on the entity, transitively."""
    return _related("dependents", args)


@blp.route("/impact")
@blp.arguments(RelatedQuery, location="query", as_kwargs=True)
@blp.response(200)
def impact(**args: Any) -> Response:
    """The dependents, grouped ``byOwner`` (with each owner's contact) and ``bySystem``."""
    result = graph_service().impact(
        args["entityRef"],
        depth=args.get("depth"),
        relations=_list(args, "relations"),
        kinds=_list(args, "kinds"),
        limit=args.get("limit"),
    )
    return _answer(result, args)


@blp.route("/path")
@blp.arguments(PathQuery, location="query", as_kwargs=True)
@blp.response(200)
def path(**args: Any) -> Response:
    """One shortest path ``from`` → ``to``; 404 when they are not connected."""
    result = graph_service().path(
        args["source"],
        args["target"],
        relations=_list(args, "relations"),
        directed=args.get("directed", True),
    )
    return _answer(result, args)


@blp.route("/paths")
@blp.arguments(PathsQuery, location="query", as_kwargs=True)
@blp.response(200)
def paths(**args: Any) -> Response:
    """Simple paths ``from`` → ``to``, shortest first, bounded by length and count."""
    result = graph_service().paths(
        args["source"],
        args["target"],
        relations=_list(args, "relations"),
        directed=args.get("directed", True),
        max_length=args.get("maxLength"),
        max_paths=args.get("maxPaths"),
    )
    return _answer(result, args)


@blp.route("/cycles")
@blp.arguments(CyclesQuery, location="query", as_kwargs=True)
@blp.response(200)
def cycles(**args: Any) -> Response:
    """Dependency cycles, each a list of refs in dependency order."""
    result = graph_service().cycles(
        relations=_list(args, "relations"),
        limit=args.get("limit"),
        max_length=args.get("maxLength"),
    )
    return _answer(result, args)


@blp.route("/ownership")
@blp.arguments(EntityQuery, location="query", as_kwargs=True)
@blp.response(200)
def ownership(**args: Any) -> Response:
    """The entity's owner with contact, the owner's parent groups to the root, its members."""
    return _answer(graph_service().ownership(args["entityRef"]), args)


@blp.route("/owned")
@blp.arguments(OwnedQuery, location="query", as_kwargs=True)
@blp.response(200)
def owned(**args: Any) -> Response:
    """What a group (or user) owns; ``transitive`` adds what its child groups own."""
    result = graph_service().owned(
        args["entityRef"],
        transitive=args.get("transitive", False),
        kinds=_list(args, "kinds"),
        limit=args.get("limit"),
    )
    return _answer(result, args)


@blp.route("/orphans")
@blp.arguments(OrphansQuery, location="query", as_kwargs=True)
@blp.response(200)
def orphans(**args: Any) -> Response:
    """Entities without an owner, and entities whose owner does not exist."""
    return _answer(graph_service().orphans(kinds=_list(args, "kinds")), args)


@blp.route("/most-depended-on")
@blp.arguments(CentralQuery, location="query", as_kwargs=True)
@blp.response(200)
def most_depended_on(**args: Any) -> Response:
    """Single points of failure: direct dependents, transitive dependents and PageRank."""
    result = graph_service().most_depended_on(
        relations=_list(args, "relations"),
        kinds=_list(args, "kinds"),
        limit=args.get("limit"),
        sort=args.get("sort") or "dependents",
    )
    return _answer(result, args)


@blp.route("/subgraph")
@blp.arguments(SubgraphQuery, location="query", as_kwargs=True)
@blp.response(200)
def subgraph(**args: Any) -> Response:
    """Entities within ``depth`` hops of the roots and the relations among them."""
    result = graph_service().subgraph(
        split_csv(args.get("rootEntityRefs")),
        relations=_list(args, "relations"),
        kinds=_list(args, "kinds"),
        depth=args.get("depth"),
        direction=args.get("direction") or "both",
    )
    return _answer(result, args)


@blp.route("/status")
@blp.arguments(StatusQuery, location="query", as_kwargs=True)
@blp.response(200)
def status(**args: Any) -> Response:
    """The graph's generation, size and refresh statistics (``memory=true``: its bytes)."""
    return json_response(jsonutil.dumps(graph_service().status(memory=args.get("memory", False))))
