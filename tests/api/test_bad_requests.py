"""Malformed requests get 400 in Backstage's error shape, never a 500.

A list of known-bad inputs (with Backstage's messages where the reference backend was
checked), then a seeded random scan of many more, all over real HTTP to one server.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.conftest import ServerProcess, component, shared_server, write_yaml


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    files = tmp_path_factory.mktemp("catalog")
    path = write_yaml(files / "catalog-info.yaml", component("one"), component("two"))
    with shared_server(tmp_path_factory, [path]) as process:
        yield process


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def b64(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return base64.b64encode(text.encode()).decode()


def send(
    session: requests.Session,
    server: ServerProcess,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    content_type: str | None = "application/json",
) -> requests.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if method == "POST" and data is None:
        data = b""
    return session.request(
        method, server.catalog_url + path, data=data, headers=headers, timeout=30
    )


def assert_error(response: requests.Response, method: str, path: str, status: int = 400) -> str:
    """Backstage's error envelope; returns the message."""
    assert response.status_code == status, response.text
    assert response.reason == {400: "Bad Request", 404: "Not Found"}[status]
    body = response.json()
    assert set(body) == {"error", "request", "response"}
    assert body["error"]["name"] == {400: "InputError", 404: "NotFoundError"}[status]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["request"]["method"] == method
    assert body["request"]["url"].split("?")[0] == path.split("?")[0]
    assert body["response"] == {"statusCode": status}
    return body["error"]["message"]


def cursor_path(value: Any) -> str:
    return f"/entities/by-query?cursor={quote(b64(value))}"


CURSOR_BASE = {
    "orderFields": [{"field": "metadata.name", "order": "asc"}],
    "orderFieldValues": ["a", "b"],
}

# (method, path, body, expected message or fragment; None: any message)
BAD_GETS = [
    # query parameters
    ("/entities?limit=-1", "request/query/limit must be >= 0"),
    ("/entities?limit=abc", "request/query/limit must be integer"),
    ("/entities?limit=1.5", "request/query/limit must be integer"),
    ("/entities?limit=0", "Invalid limit, must be greater than zero"),
    ("/entities?limit=", "Empty value found for query parameter 'limit'"),
    ("/entities?offset=-1&limit=2", "request/query/offset must be >= 0"),
    ("/entities?offset=x", "request/query/offset must be integer"),
    ("/entities?bogus=1", "Unknown query parameter 'bogus'"),
    ("/entities?Filter=kind=component", "Unknown query parameter 'Filter'"),
    # filters
    (
        "/entities?filter==x",
        "Invalid filter, '=x' is not a valid statement "
        "(expected a string on the form a=b or a= or a)",
    ),
    ("/entities?filter=kind=a,=b", "Invalid filter, '=b' is not a valid statement"),
    ("/entities?filter=", "Empty value found for query parameter 'filter'"),
    ("/entity-facets?facet=kind&filter==x", "Invalid filter"),
    ("/entities/by-query?filter=%20=x", "Invalid filter"),
    # order
    ("/entities?order=bad", 'Invalid order parameter "bad", expected "<asc or desc>:<field name>"'),
    ("/entities?order=up:metadata.name", 'Invalid order parameter "up:metadata.name"'),
    ("/entities?order=asc:", 'Invalid order parameter "asc:"'),
    (
        "/entities/by-query?orderField=metadata.name,bad",
        "Invalid order field order, must be asc or desc",
    ),
    (
        "/entities/by-query?totalItems=maybe",
        "request/query/totalItems must be equal to one of the allowed values: include, exclude",
    ),
    # fields
    (
        "/entities?fields=metadata[0]",
        'Invalid field "metadata[0]", array type fields are not supported',
    ),
    ("/entities/by-query?fields=kind,spec.x[1]", 'Invalid field "spec.x[1]"'),
    # the after cursor of GET /entities
    ("/entities?after=xx", "Malformed after cursor, could not be parsed"),
    (f"/entities?after={b64('not json')}", "Malformed after cursor"),
    (f"/entities?after={b64([1])}", "Malformed after cursor"),
    (f"/entities?after={b64({'limit': 'a', 'offset': 0})}", "Malformed after cursor"),
    (f"/entities?after={b64({'limit': 2})}", "Malformed after cursor"),
    # by-query cursors
    ("/entities/by-query?cursor=", "Empty value found for query parameter 'cursor'"),
    ("/entities/by-query?cursor=!!!notbase64", "Malformed cursor: "),
    (cursor_path("notjson"), "Malformed cursor: "),
    (cursor_path([1]), "Malformed cursor: "),
    (cursor_path({}), "Malformed cursor: "),
    (
        cursor_path({"orderFields": "x", "orderFieldValues": ["a"]}),
        "Malformed cursor: ",
    ),
    (
        cursor_path({**CURSOR_BASE, "orderFields": [{"field": 1}]}),
        "Malformed cursor: ",
    ),
    (
        cursor_path({**CURSOR_BASE, "orderFields": [{"field": "a", "order": "up"}]}),
        "Malformed cursor: ",
    ),
    (
        cursor_path({**CURSOR_BASE, "orderFieldValues": [1, 2]}),
        "Malformed cursor: ",
    ),
    (
        cursor_path({**CURSOR_BASE, "totalItems": "many"}),
        "Malformed cursor: ",
    ),
    (
        cursor_path({**CURSOR_BASE, "query": [1]}),
        "Malformed cursor: ",
    ),
    (
        cursor_path({**CURSOR_BASE, "query": {"$foo": 1}}),
        "Invalid query",
    ),
    (
        cursor_path({**CURSOR_BASE, "fullTextFilter": "x"}),
        "Malformed cursor: ",
    ),
    (
        cursor_path({**CURSOR_BASE, "fullTextFilter": {"term": "x", "fields": [1]}}),
        "Malformed cursor: ",
    ),
    # NUL can match nothing (and PostgreSQL refuses it in a query)
    ("/entities?filter=kind=%00", "The request contains a NUL character"),
    ("/entities/by-query?orderField=%00&orderField==", "The request contains a NUL character"),
    ("/entity-facets?facet=ki%00nd", "The request contains a NUL character"),
    # facets
    ("/entity-facets", "request/query must have required property 'facet'"),
    ("/entity-facets?facet=", "Empty value found for query parameter 'facet'"),
    ("/entity-facets?facet=kind&bogus=1", "Unknown query parameter 'bogus'"),
]


@pytest.mark.parametrize(("path", "message"), BAD_GETS, ids=[p for p, _ in BAD_GETS])
def test_bad_query_parameters(session, server, path, message):
    response = send(session, server, "GET", path)
    assert message in assert_error(response, "GET", path)


DEEP_NOT: str = '{"$not":' * 5000 + '{"kind":"x"}' + "}" * 5000
DEEP_ALL: str = '{"$all":[' * 40 + "{}" + "]}" * 40

BAD_BODIES: list[tuple[str, str, Any, str | None]] = [
    # shape of the body
    ("/entities/by-query", "json", "[1]", "request/body must be object"),
    ("/entities/by-query", "json", '"text"', "request/body must be object"),
    ("/entities/by-query", "json", "1", "request/body must be object"),
    ("/entities/by-query", "json", "null", "request/body must be object"),
    ("/entities/by-query", "json", "{bad", "Malformed request body"),
    ("/entities/by-query", "json", "\xff\xfe", "Malformed request body"),
    ("/entities/by-query", "json", '{"query": ' + DEEP_NOT + "}", None),
    (
        "/entities/by-query",
        "json",
        '{"fields": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "Malformed request body",
    ),
    # wrong types
    ("/entities/by-query", "json", {"limit": "x"}, "request/body/limit must be integer"),
    ("/entities/by-query", "json", {"limit": -1}, "request/body/limit must be >= 0"),
    ("/entities/by-query", "json", {"limit": True}, "request/body/limit must be integer"),
    ("/entities/by-query", "json", {"offset": -5}, "request/body/offset must be >= 0"),
    ("/entities/by-query", "json", {"orderBy": "x"}, "request/body/orderBy must be array"),
    (
        "/entities/by-query",
        "json",
        {"orderBy": [{"order": "asc"}]},
        "request/body/orderBy/0 must have required property 'field'",
    ),
    (
        "/entities/by-query",
        "json",
        {"orderBy": [{"field": "a", "order": "up"}]},
        "request/body/orderBy/0/order must be equal to one of the allowed values: asc, desc",
    ),
    (
        "/entities/by-query",
        "json",
        {"orderField": ["metadata.name,up"]},
        "Invalid order field order",
    ),
    (
        "/entities/by-query",
        "json",
        {"fullTextFilter": "x"},
        "request/body/fullTextFilter must be object",
    ),
    (
        "/entities/by-query",
        "json",
        {"fullTextFilter": {"term": "x", "fields": "metadata.name"}},
        "request/body/fullTextFilter/fields must be array",
    ),
    ("/entities/by-query", "json", {"fields": "kind"}, "request/body/fields must be array"),
    ("/entities/by-query", "json", {"fields": [1]}, "request/body/fields/0 must be string"),
    ("/entities/by-query", "json", {"fields": ["metadata[0]"]}, 'Invalid field "metadata[0]"'),
    (
        "/entities/by-query",
        "json",
        {"totalItems": "x"},
        "request/body/totalItems must be equal to one of the allowed values: include, exclude",
    ),
    ("/entities/by-query", "json", {"cursor": ""}, "Cursor cannot be empty"),
    ("/entities/by-query", "json", {"cursor": 5}, "request/body/cursor must be string"),
    ("/entities/by-query", "json", {"cursor": "!!!"}, "Malformed cursor"),
    (
        "/entities/by-query",
        "json",
        {"cursor": b64("[" * 100_000 + "]" * 100_000)},
        "Malformed cursor",
    ),
    ("/entities/by-query", "json", {"query": [1]}, "request/body/query must be object"),
    (
        "/entities/by-query",
        "json",
        {"query": "kind=component"},
        "request/body/query must be object",
    ),
    # invalid predicates
    ("/entities/by-query", "json", {"query": {"$foo": 1}}, "Invalid query"),
    (
        "/entities/by-query",
        "json",
        {"query": {"kind": {"$regex": "x"}}},
        'Invalid query: Invalid filter predicate value for field "kind"',
    ),
    ("/entities/by-query", "json", {"query": {"kind": {"$in": "x"}}}, "Invalid query"),
    ("/entities/by-query", "json", {"query": {"kind": {"$in": [{}]}}}, "Invalid query"),
    ("/entities/by-query", "json", {"query": {"kind": {"$exists": "yes"}}}, "Invalid query"),
    ("/entities/by-query", "json", {"query": {"kind": {"$hasPrefix": 1}}}, "Invalid query"),
    ("/entities/by-query", "json", {"query": {"kind": None}}, "Invalid query"),
    ("/entities/by-query", "json", {"query": {"kind": ["a"]}}, "Invalid query"),
    ("/entities/by-query", "json", {"query": {"$all": {}}}, "Invalid query"),
    ("/entities/by-query", "json", {"query": {"$any": "x"}}, "Invalid query"),
    ("/entities/by-query", "json", {"query": {"$all": [1]}}, "Invalid query"),
    ("/entities/by-query", "json", {"query": {"$not": []}}, "Invalid query"),
    (
        "/entities/by-query",
        "json",
        {"query": {"$not": {"kind": "x"}, "kind": "y"}},
        "Invalid query",
    ),
    ("/entities/by-query", "json", '{"query": ' + DEEP_ALL + "}", "Invalid query"),
    # by-refs
    ("/entities/by-refs", "json", {}, "request/body must have required property 'entityRefs'"),
    ("/entities/by-refs", "json", {"entityRefs": "x"}, "request/body/entityRefs must be array"),
    ("/entities/by-refs", "json", {"entityRefs": [1]}, "request/body/entityRefs/0 must be string"),
    (
        "/entities/by-refs",
        "json",
        {"entityRefs": [], "fields": "kind"},
        "request/body/fields must be array",
    ),
    ("/entities/by-refs", "json", {"entityRefs": [], "query": {"$foo": 1}}, "Invalid query"),
    (
        "/entities/by-refs",
        "json",
        {"entityRefs": [], "query": 1},
        "request/body/query must be object",
    ),
    ("/entities/by-refs?filter==x", "json", {"entityRefs": []}, "Invalid filter"),
    (
        "/entities/by-refs?fields=kind",
        "json",
        {"entityRefs": []},
        "Unknown query parameter 'fields'",
    ),
    ("/entities/by-refs", "json", "[]", "request/body must be object"),
    # facets
    ("/entity-facets", "json", {}, "request/body must have required property 'facets'"),
    ("/entity-facets", "json", {"facets": "kind"}, "request/body/facets must be array"),
    ("/entity-facets", "json", {"facets": [1]}, "request/body/facets/0 must be string"),
    ("/entity-facets", "json", {"facets": []}, "Missing or empty facets parameter"),
    (
        "/entity-facets",
        "json",
        {"facets": ["kind"], "query": {"kind": {"$in": 1}}},
        "Invalid query",
    ),
    # NUL characters
    ("/entities/by-query", "json", {"query": {"kind": "a\u0000"}}, "NUL character"),
    ("/entities/by-refs", "json", {"entityRefs": ["component:default/\u0000"]}, "NUL character"),
    ("/entity-facets", "json", {"facets": ["kind\u0000"]}, "NUL character"),
    # content types
    ("/entities/by-query", "text/plain", "{}", "unsupported media type text/plain"),
    (
        "/entities/by-refs",
        "application/x-www-form-urlencoded",
        "entityRefs=a",
        "unsupported media type",
    ),
    ("/entity-facets", "text/html", '{"facets": ["kind"]}', "unsupported media type text/html"),
    ("/entities/by-query", None, '{"limit": 1}', "unsupported media type"),
]


@pytest.mark.parametrize(
    ("path", "content_type", "body", "message"),
    BAD_BODIES,
    ids=[f"{p}-{i}" for i, (p, *_rest) in enumerate(BAD_BODIES)],
)
def test_bad_bodies(session, server, path, content_type, body, message):
    raw = (
        body.encode("utf-8", "surrogateescape")
        if isinstance(body, str)
        else json.dumps(body).encode()
    )
    if isinstance(body, str) and body == "\xff\xfe":
        raw = b"\xff\xfe"
    response = send(
        session,
        server,
        "POST",
        path,
        raw=raw,
        content_type=None
        if content_type is None
        else ("application/json" if content_type == "json" else content_type),
    )
    text = assert_error(response, "POST", path)
    if message is not None:
        assert message in text


def test_nul_in_a_path_is_a_bad_request(session, server):
    for path in ("/entities/by-name/component/default/%00", "/entities/by-uid/%00"):
        assert "NUL character" in assert_error(send(session, server, "GET", path), "GET", path)


def test_huge_numbers_are_not_server_errors(session, server):
    # JavaScript clients may send any number; the databases hold 64-bit integers. Offsets
    # are served; a page larger than catalog.limits.pageSize is a 400 naming the limit.
    huge = 10**30
    assert send(session, server, "GET", f"/entities?offset={huge}&limit=1").json() == []
    response = send(session, server, "POST", "/entities/by-query", {"offset": huge})
    assert response.status_code == 200
    assert response.json()["totalItems"] == 3
    after = b64({"limit": huge, "offset": huge})
    for method, path, body in (
        ("GET", f"/entities?limit={huge}", None),
        ("GET", f"/entities/by-query?limit={huge}", None),
        ("GET", f"/entities?after={after}", None),
        ("POST", "/entities/by-query", {"limit": huge}),
    ):
        response = send(session, server, method, path, body)
        assert response.status_code == 400, path
        assert "catalog.limits.pageSize" in response.json()["error"]["message"]


# -- a broad random scan ---------------------------------------------------------------------

GET_PATHS = ["/entities", "/entities/by-query", "/entity-facets"]
POST_PATHS = ["/entities/by-query", "/entities/by-refs", "/entity-facets"]
PARAM_NAMES = [
    "filter",
    "fields",
    "order",
    "offset",
    "limit",
    "after",
    "cursor",
    "orderField",
    "fullTextFilterTerm",
    "fullTextFilterFields",
    "totalItems",
    "facet",
    "x",
    "",
]
BODY_KEYS = [
    "query",
    "limit",
    "offset",
    "orderBy",
    "orderField",
    "fullTextFilter",
    "fields",
    "totalItems",
    "cursor",
    "entityRefs",
    "facets",
    "$all",
    "extra",
]
STRINGS = [
    "",
    " ",
    "=",
    ",",
    "kind",
    "kind=component",
    "=x",
    "a=b=c",
    ",,,",
    "asc:",
    "desc:kind",
    "metadata[0]",
    "metadata.name,asc",
    "metadata.name,sideways",
    "include",
    "exclude",
    "-1",
    "0",
    "1",
    "1.5",
    "1e400",
    "99999999999999999999999",
    "NaN",
    "null",
    "true",
    "%",
    "%%%",
    "\\",
    "'",
    '"',
    "\u00e9",
    "\u0000",
    "\U0001f600",
    "$all",
    "!!!",
    "a" * 300,
]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(10 if depth < 4 else 6)
    if choice == 0:
        return rng.choice(STRINGS)
    if choice == 1:
        return rng.choice([0, -1, 1, 2**31, 2**64, 10**30, -(10**30), 1.5, -0.0])
    if choice == 2:
        return rng.choice([True, False, None])
    if choice == 3:
        return rng.choice(["component:default/one", "x", "", "kind:", ":/"])
    if choice == 4:
        return {rng.choice(["kind", "metadata.name", "$not"]): rng.choice(STRINGS)}
    if choice == 5:
        return b64(rng.choice([{}, [], "x", CURSOR_BASE, {**CURSOR_BASE, "query": {"kind": "x"}}]))
    if choice in (6, 7):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = BODY_KEYS + ["kind", "$any", "$not", "$in", "$exists", "$hasPrefix", "$contains"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def random_query_string(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randrange(1, 5)):
        name = rng.choice(PARAM_NAMES)
        value = rng.choice(STRINGS) if rng.random() < 0.8 else b64(random_json(rng))
        parts.append(f"{quote(name)}={quote(value, safe='=,:')}")
    return "&".join(parts)


def test_random_malformed_requests_never_cause_server_errors(session, server):
    rng = random.Random(20261127)
    problems = []
    for _ in range(400):
        if rng.random() < 0.5:
            path = f"{rng.choice(GET_PATHS)}?{random_query_string(rng)}"
            response = send(session, server, "GET", path)
            method = "GET"
        else:
            path = rng.choice(POST_PATHS)
            if rng.random() < 0.3:
                path += f"?{random_query_string(rng)}"
            body = random_json(rng)
            if rng.random() < 0.2:
                raw = json.dumps(body)[: rng.randrange(1, 40)].encode()  # truncated JSON
            else:
                raw = json.dumps(body).encode()
            response = send(session, server, "POST", path, raw=raw)
            method = "POST"
        if response.status_code >= 500:
            problems.append((method, path, response.status_code, response.text[:200]))
            continue
        if response.status_code >= 400:
            assert_error(response, method, path, response.status_code)
    assert problems == []
