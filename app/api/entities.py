"""``/entities`` endpoints: list, paginated query, by name, uid and refs, ancestry."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

from flask import Response, request

from app import jsonutil
from app.api.blueprint import Blueprint, catalog
from app.api.cache import cached
from app.api.cursors import (
    QueryCursor,
    decode_after_cursor,
    decode_query_cursor,
    encode_after_cursor,
)
from app.api.errors import json_response
from app.api.fields import parse_fields, project
from app.api.filter_params import parse_filter_params, parse_predicate
from app.api.limits import check_page_size, check_ref_count
from app.api.params import split_csv
from app.api.schemas import (
    AncestryResponse,
    ByRefsBody,
    ByRefsQuery,
    ByRefsResponse,
    EntitiesQuery,
    EntitySchema,
    NoQuery,
    ProjectedEntitySchema,
    QueryEntitiesBody,
    QueryEntitiesQuery,
    QueryEntitiesResponse,
)
from app.errors import InputError, NotFoundError
from app.storage.entities import FullText, OrderField
from app.storage.filters import AllOf, Filter, to_predicate

blp = Blueprint(
    "entities", __name__, url_prefix="/api/catalog", description="Entities of the catalog"
)

DEFAULT_QUERY_LIMIT = 200
_ORDER_PATTERN = re.compile(r"^(asc|desc):(.+)$")


def _encode_param(value: str) -> str:
    """URLSearchParams' encoding, which Backstage uses to build Link headers."""
    return quote_plus(value, safe="*").replace("~", "%7E")


def _render(texts: Iterator[str] | list[str], fields: list[list[str]] | None) -> Iterator[str]:
    """Entities as JSON texts, projected if asked (stored text is spliced otherwise)."""
    for text in texts:
        if fields is None:
            yield text
        else:
            yield jsonutil.dumps(project(jsonutil.loads(text), fields))


def _json_array(texts: Iterator[str]) -> Iterator[str]:
    yield "["
    first = True
    for text in texts:
        if not first:
            yield ","
        first = False
        yield text
    yield "]"


def _combine(*nodes: Filter | None) -> Filter | None:
    present = [node for node in nodes if node is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return AllOf(tuple(present))


# -- GET /entities ------------------------------------------------------------------


@blp.route("/entities")
@blp.arguments(EntitiesQuery, location="query", as_kwargs=True)
@blp.response(200, ProjectedEntitySchema(many=True))
@cached
def list_entities(**args: Any) -> Response:
    """All entities matching the filters; paginated when limit, offset or after is given."""
    node = parse_filter_params(args.get("filter") or [])
    fields = parse_fields(split_csv(args.get("fields")))
    orders = []
    for text in args.get("order") or []:
        match = _ORDER_PATTERN.match(text)
        if not match:
            raise InputError(
                f'Invalid order parameter "{text}", expected "<asc or desc>:<field name>"'
            )
        orders.append(OrderField(match.group(2).lower(), match.group(1)))
    limit, offset, after = args.get("limit"), args.get("offset"), args.get("after")
    if limit == 0:
        raise InputError("Invalid limit, must be greater than zero")
    reader = catalog().reader

    if limit is None and offset is None and after is None:
        order = orders[0] if orders else None

        def stream() -> Iterator[str]:
            with reader.connect() as conn:
                yield from _json_array(_render(reader.stream_all(conn, node, order), fields))

        return Response(stream(), mimetype="application/json")

    if after is not None:
        limit, offset = decode_after_cursor(after)
    check_page_size(limit)
    offset = offset or 0
    page_limit = limit if limit is not None else 10**9
    with reader.connect() as conn:
        texts, more = reader.list_page(conn, node, orders, offset, page_limit)
    response = json_response("".join(_json_array(_render(texts, fields))))
    if more and limit is not None:
        params = [
            (key, value)
            for key, value in request.args.items(multi=True)
            if key not in ("offset", "after")
        ]
        params.append(("after", encode_after_cursor(limit, offset + limit)))
        query = "&".join(f"{_encode_param(k)}={_encode_param(v)}" for k, v in params)
        response.headers["Link"] = f'</entities?{query}>; rel="next"'
    return response


# -- /entities/by-query -------------------------------------------------------------


def _parse_order_field(text: str) -> dict[str, str]:
    field, sep, order = text.partition(",")
    if sep and order not in ("asc", "desc"):
        raise InputError("Invalid order field order, must be asc or desc")
    return {"field": field, "order": order} if sep else {"field": field}


def _run_query(
    *,
    node: Filter | None,
    order_fields: list[dict[str, str]],
    full_text: dict[str, Any] | None,
    limit: int | None,
    offset: int,
    total_mode: str,
    fields: list[list[str]] | None,
    cursor: QueryCursor | None,
) -> Response:
    limit = DEFAULT_QUERY_LIMIT if limit is None else limit
    check_page_size(limit)
    if cursor is not None:
        node = parse_predicate(cursor.query) if cursor.query is not None else None
        order_fields = cursor.order_fields
        full_text = cursor.full_text
    primary = order_fields[0] if order_fields else {"field": "metadata.uid"}
    order = OrderField(primary["field"].lower(), primary.get("order") or "asc")
    term = ((full_text or {}).get("term") or "").strip().lower()
    text_filter = (
        FullText(term, tuple(f.lower() for f in (full_text or {}).get("fields") or []))
        if term
        else None
    )
    reader = catalog().reader
    with reader.connect() as conn:
        if cursor is None:
            total = reader.count(conn, node, order, text_filter) if total_mode == "include" else 0
        else:
            total = cursor.total_items
        if limit == 0:
            rows, more = [], False
        elif cursor is None:
            rows, more = reader.query_page(
                conn, node, order, text_filter, limit=limit, offset=offset, matches=total
            )
        else:
            last = cursor.order_field_values
            rows, more = reader.query_page(
                conn,
                node,
                order,
                text_filter,
                limit=limit,
                after=(last[0], last[-1]),
                backwards=cursor.is_previous,
                matches=total,
            )

    page_info: dict[str, str] = {}
    if rows and limit > 0:
        query_json = to_predicate(node) if node is not None else None
        first_values = (
            cursor.first_sort_field_values
            if cursor is not None and cursor.first_sort_field_values is not None
            else [rows[0].sort_value, rows[0].entity_id]
        )
        base: dict[str, Any] = {
            "order_fields": order_fields,
            "first_sort_field_values": first_values,
            "total_items": total,
            "query": query_json,
            "full_text": full_text if full_text is not None else {"term": ""},
        }
        backwards = cursor is not None and cursor.is_previous
        if more or backwards:
            page_info["nextCursor"] = QueryCursor(
                order_field_values=[rows[-1].sort_value, rows[-1].entity_id],
                is_previous=False,
                **base,
            ).encode()
        first_key = [rows[0].sort_value, rows[0].entity_id]
        if cursor is not None and first_key != first_values:
            page_info["prevCursor"] = QueryCursor(
                order_field_values=first_key, is_previous=True, **base
            ).encode()

    items = ",".join(_render([row.text for row in rows], fields))
    body = f'{{"items":[{items}],"totalItems":{total},"pageInfo":{jsonutil.dumps(page_info)}}}'
    return json_response(body)


@blp.route("/entities/by-query", methods=["GET"])
@blp.arguments(QueryEntitiesQuery, location="query", as_kwargs=True)
@blp.response(200, QueryEntitiesResponse)
@cached
def query_entities(**args: Any) -> Response:
    """A page of entities, with cursors to move forwards and backwards."""
    fields = parse_fields(split_csv(args.get("fields")))
    cursor = decode_query_cursor(args["cursor"]) if "cursor" in args else None
    full_text = None
    if args.get("fullTextFilterTerm") is not None:
        full_text = {"term": args["fullTextFilterTerm"]}
        field_names = split_csv(args.get("fullTextFilterFields"))
        if field_names:
            full_text["fields"] = field_names
    return _run_query(
        node=parse_filter_params(args.get("filter") or []),
        order_fields=[_parse_order_field(text) for text in args.get("orderField") or []],
        full_text=full_text,
        limit=args.get("limit"),
        offset=args.get("offset") or 0,
        total_mode=args.get("totalItems") or "include",
        fields=fields,
        cursor=cursor,
    )


@blp.route("/entities/by-query", methods=["POST"])
@blp.arguments(QueryEntitiesBody, location="json", as_kwargs=True)
@blp.response(200, QueryEntitiesResponse)
@cached
def query_entities_by_predicate(**body: Any) -> Response:
    """Like the GET form, with a ``FilterPredicate`` query in the body."""
    fields = parse_fields(body.get("fields") or [])
    cursor = decode_query_cursor(body["cursor"]) if "cursor" in body else None
    node = parse_predicate(body["query"]) if body.get("query") is not None else None
    order_fields: list[dict[str, str]] = [
        {"field": item["field"], **({"order": item["order"]} if item.get("order") else {})}
        for item in body.get("orderBy") or []
    ]
    order_fields += [_parse_order_field(text) for text in body.get("orderField") or []]
    return _run_query(
        node=node,
        order_fields=order_fields,
        full_text=body.get("fullTextFilter"),
        limit=body.get("limit"),
        offset=body.get("offset") or 0,
        total_mode=body.get("totalItems") or "include",
        fields=fields,
        cursor=cursor,
    )


# -- single entities ----------------------------------------------------------------


@blp.route("/entities/by-uid/<uid>", methods=["GET"])
@blp.arguments(NoQuery, location="query")
@blp.response(200, EntitySchema)
def get_by_uid(_query: dict[str, Any], uid: str) -> Response:
    reader = catalog().reader
    with reader.connect() as conn:
        text = reader.by_uid(conn, uid)
    if text is None:
        raise NotFoundError(f"No entity with uid {uid}")
    return json_response(text)


@blp.route("/entities/by-name/<kind>/<namespace>/<name>", methods=["GET"])
@blp.arguments(NoQuery, location="query")
@blp.response(200, EntitySchema)
def get_by_name(_query: dict[str, Any], kind: str, namespace: str, name: str) -> Response:
    reader = catalog().reader
    ref = f"{kind}:{namespace}/{name}".lower()
    with reader.connect() as conn:
        text = reader.by_ref(conn, ref)
    if text is None:
        raise NotFoundError(
            f"No entity named '{name}' found, with kind '{kind}' in namespace '{namespace}'"
        )
    return json_response(text)


@blp.route("/entities/by-name/<kind>/<namespace>/<name>/ancestry", methods=["GET"])
@blp.arguments(NoQuery, location="query")
@blp.response(200, AncestryResponse)
def get_ancestry(_query: dict[str, Any], kind: str, namespace: str, name: str) -> Response:
    """The entity and every entity that emitted it, up to its provider."""
    reader = catalog().reader
    ref = f"{kind}:{namespace}/{name}".lower()
    with reader.connect() as conn:
        items = reader.ancestry(conn, ref)
    if items is None:
        raise NotFoundError(f"No such entity {ref}")
    parts = [
        f'{{"entity":{text},"parentEntityRefs":{jsonutil.dumps(parents)}}}'
        for text, parents in items
    ]
    return json_response(f'{{"rootEntityRef":{jsonutil.dumps(ref)},"items":[{",".join(parts)}]}}')


@blp.route("/entities/by-refs", methods=["POST"])
@blp.arguments(ByRefsQuery, location="query", as_kwargs=True)
@blp.arguments(ByRefsBody, location="json", as_kwargs=True)
@blp.response(200, ByRefsResponse)
def get_by_refs(**args: Any) -> Response:
    """Entities by canonical ref, in request order; null where not found or filtered out."""
    refs: list[str] = args["entityRefs"]
    check_ref_count(refs)
    fields = parse_fields(args.get("fields") or [])
    node = _combine(
        parse_filter_params(args.get("filter") or []),
        parse_predicate(args["query"]) if args.get("query") is not None else None,
    )
    reader = catalog().reader
    with reader.connect() as conn:
        found = reader.by_refs(conn, refs, node)
    items = []
    for ref in refs:
        text = found.get(ref)
        items.append("null" if text is None else next(_render([text], fields)))
    return json_response(f'{{"items":[{",".join(items)}]}}')
