"""Bad input to the write API: Backstage's status codes and error shapes, and no side effects.

One server for the module, with a configured catalog and one registered location. Every
case sends one bad request and checks the status, the reason phrase, the error envelope
(``{error: {name, message}, request: {method, url}, response: {statusCode}}``, or
``{errors: [...]}`` for an invalid entity) and that neither the entities (etags
included) nor the registered locations changed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.api.test_locations import component, entity, group, location_entity, wait_for
from tests.conftest import ServerProcess, shared_server, write_yaml

ZERO_UUID = "00000000-0000-0000-0000-000000000000"
ZOD_UNKNOWN_KEY = """Malformed request: [
  {
    "code": "unrecognized_keys",
    "keys": [
      "foo",
      "bar"
    ],
    "path": [],
    "message": "Unrecognized key(s) in object: 'foo', 'bar'"
  }
]"""
ZOD_PRESENCE = """Malformed request: [
  {
    "code": "invalid_union",
    "unionErrors": [
      {
        "issues": [
          {
            "received": "maybe",
            "code": "invalid_literal",
            "expected": "required",
            "path": [
              "presence"
            ],
            "message": "Invalid literal value, expected \\"required\\""
          }
        ],
        "name": "ZodError"
      },
      {
        "issues": [
          {
            "received": "maybe",
            "code": "invalid_literal",
            "expected": "optional",
            "path": [
              "presence"
            ],
            "message": "Invalid literal value, expected \\"optional\\""
          }
        ],
        "name": "ZodError"
      }
    ],
    "path": [
      "presence"
    ],
    "message": "Invalid input"
  }
]"""


class Tree:
    def __init__(self, root: Path):
        self.root = root
        self.allowed = root / "registered"
        self.outside = root / "outside"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    tree = Tree(tmp_path_factory.mktemp("bad-input"))
    write_yaml(tree.root / "all.yaml", location_entity("root", "./team.yaml"))
    write_yaml(tree.root / "team.yaml", group("team-a"), component("base-service"))
    write_yaml(tree.allowed / "one.yaml", component("one-service"))
    write_yaml(tree.allowed / "two.yaml", component("two-service"))
    write_yaml(tree.outside / "secret.yaml", component("secret-service"))
    os.symlink(tree.outside / "secret.yaml", tree.allowed / "link.yaml")
    return tree


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tree: Tree) -> Iterator[ServerProcess]:
    with shared_server(
        tmp_path_factory,
        [tree.root / "all.yaml"],
        catalog={"allowedFileRoots": [str(tree.allowed)]},
        backend={"reading": {"allow": [{"host": "127.0.0.1:9"}], "timeout": {"seconds": 3}}},
    ) as server:
        base = server.catalog_url
        requests.post(
            f"{base}/locations", json={"type": "file", "target": str(tree.allowed / "one.yaml")}
        )
        wait_for(lambda: entity(base, "component:default/one-service"))
        yield server


@pytest.fixture(scope="module")
def location_id(server: ServerProcess) -> str:
    return str(requests.get(f"{server.catalog_url}/locations").json()[0]["data"]["id"])


def snapshot(base: str) -> Any:
    entities = requests.get(f"{base}/entities").json()
    return (
        sorted((e["kind"], e["metadata"]["name"], e["metadata"]["etag"]) for e in entities),
        requests.get(f"{base}/locations").json(),
    )


def wait_stable(base: str, quiet: float = 1.0) -> None:
    """Until processing and stitching after a registration have finished."""
    last, since = snapshot(base), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.2)
        current = snapshot(base)
        if current != last:
            last, since = current, time.monotonic()


def send(base: str, method: str, path: str, body: Any = None, content_type: str | None = None):
    headers = {}
    data: bytes | None = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = content_type or "application/json"
    elif content_type:
        headers["Content-Type"] = content_type
    return requests.request(method, f"{base}{path}", data=data, headers=headers, timeout=30)


def check(
    server: ServerProcess,
    method: str,
    path: str,
    body: Any,
    status: int,
    message: str,
    content_type: str | None = None,
) -> None:
    base = server.catalog_url
    before = snapshot(base)
    response = send(base, method, path, body, content_type)
    reasons = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict"}
    assert (response.status_code, response.reason) == (status, reasons[status]), response.text
    assert response.headers["Content-Type"].startswith("application/json")
    names = {400: "InputError", 403: "NotAllowedError", 404: "NotFoundError", 409: "ConflictError"}
    assert response.json() == {
        "error": {"name": names[status], "message": message},
        "request": {"method": method, "url": path},
        "response": {"statusCode": status},
    }
    assert snapshot(base) == before


def not_allowed_file(target: str) -> str:
    return (
        f"Error: Unable to read file, Reading from '{target}' is not allowed. You may need to "
        "add a folder that contains it to the configured list of allowed file roots at "
        "'catalog.allowedFileRoots'"
    )


def test_bad_bodies_for_post_locations(server, tree: Tree):
    target = str(tree.allowed / "two.yaml")
    good = json.dumps({"type": "file", "target": target}).encode()
    cases: list[tuple[Any, str | None, str]] = [
        (good, "text/plain", "unsupported media type text/plain"),
        (
            good,
            "application/x-www-form-urlencoded",
            "unsupported media type application/x-www-form-urlencoded",
        ),
        (b"", None, "request/body must have required property 'target'"),
        (b"[]", None, "request/body must be object"),
        (b'"a string"', None, "request/body must be object"),
        ({}, None, "request/body must have required property 'target'"),
        ({"target": target}, None, "request/body must have required property 'type'"),
        ({"type": 1, "target": target}, None, "request/body/type must be string"),
        ({"type": "file", "target": target, "foo": 1, "bar": 2}, None, ZOD_UNKNOWN_KEY),
        ({"type": "file", "target": target, "presence": "maybe"}, None, ZOD_PRESENCE),
        (
            {"type": "ftp", "target": target},
            None,
            'Registered locations must be of an allowed type ["url","file"]',
        ),
    ]
    for body, content_type, message in cases:
        for path in ("/locations", "/locations?dryRun=true"):
            check(server, "POST", path, body, 400, message, content_type)
    # Without any Content-Type header.
    base = server.catalog_url
    before = snapshot(base)
    response = requests.post(f"{base}/locations", data=good)
    assert response.json()["error"]["message"] == "unsupported media type undefined"
    assert snapshot(base) == before


def test_bad_query_parameters(server, tree: Tree):
    body = {"type": "file", "target": str(tree.allowed / "two.yaml")}
    check(
        server,
        "POST",
        "/locations?onConflict=bogus",
        body,
        400,
        "request/query/onConflict must be equal to one of the allowed values: refresh, reject",
    )
    check(server, "POST", "/locations?x=1", body, 400, "Unknown query parameter 'x'")
    check(server, "GET", "/locations?x=1", None, 400, "Unknown query parameter 'x'")


def test_targets_outside_the_allowed_roots(server, tree: Tree):
    secret = str(tree.outside / "secret.yaml")
    escape = f"{tree.allowed}/../outside/secret.yaml"
    for target in (
        "/etc/passwd",
        secret,
        escape,  # a `..` path
        str(tree.allowed / "link.yaml"),  # a link inside, to a file outside
        str(tree.root / "*" / "*.yaml"),  # a glob reaching outside
        "registered/one.yaml",  # relative: resolved against the server's directory
    ):
        for path in ("/locations", "/locations?dryRun=true"):
            check(
                server,
                "POST",
                path,
                {"type": "file", "target": target},
                400,
                not_allowed_file(target),
            )
    check(
        server,
        "POST",
        "/locations",
        {"type": "file", "target": ""},
        400,
        "TypeError: Unable to parse location ref 'file:', expected '<type>:<target>', "
        "e.g. 'url:https://host/path'",
    )
    assert entity(server.catalog_url, "component:default/secret-service") is None


def test_urls_outside_the_allowed_hosts(server):
    for target, detail in (
        ("http://example.com/catalog-info.yaml", None),
        ("http://127.0.0.1:10/catalog-info.yaml", None),  # allowed host, other port
        ("file:///etc/passwd", None),
        ("not a url", "Invalid URL"),
    ):
        message = detail or (
            f"Reading from '{target}' is not allowed. You may need to configure an integration "
            "for the target host, or add it to the configured list of allowed hosts at "
            "'backend.reading.allow'"
        )
        for path in ("/locations", "/locations?dryRun=true"):
            check(
                server,
                "POST",
                path,
                {"type": "url", "target": target},
                400,
                f"Error: Unable to read url, {message}",
            )


def test_unreachable_url_in_a_dry_run(server):
    target = "http://127.0.0.1:9/catalog-info.yaml"  # allowed, nothing listens there
    base = server.catalog_url
    before = snapshot(base)
    response = send(base, "POST", "/locations?dryRun=true", {"type": "url", "target": target})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(
        f"Error: Unable to read url, Unable to read {target}, "
    )
    assert snapshot(base) == before


def test_bad_updates(server, tree: Tree, location_id: str):
    path = f"/locations/{location_id}"
    target = str(tree.allowed / "two.yaml")
    check(
        server,
        "PUT",
        path,
        {"type": "file", "target": target, "presence": "optional"},
        400,
        "request/body must NOT have additional properties",
    )
    check(
        server,
        "PUT",
        path,
        {"type": "file"},
        400,
        "request/body must have required property 'target'",
    )
    check(server, "PUT", path, {}, 400, "request/body must have required property 'type'")
    check(server, "PUT", path, b"x", 400, "unsupported media type text/plain", "text/plain")
    check(
        server,
        "PUT",
        path,
        {"type": "file", "target": str(tree.outside / "secret.yaml")},
        400,
        not_allowed_file(str(tree.outside / "secret.yaml")),
    )
    other = requests.post(
        f"{server.catalog_url}/locations", json={"type": "file", "target": target}
    )
    wait_for(lambda: entity(server.catalog_url, "component:default/two-service"))
    wait_stable(server.catalog_url)
    try:
        check(
            server,
            "PUT",
            path,
            {"type": "file", "target": target},
            409,
            f"Location file:{target} already exists",
        )
    finally:
        requests.delete(f"{server.catalog_url}/locations/{other.json()['location']['id']}")
        wait_stable(server.catalog_url)
    check(
        server,
        "PUT",
        f"/locations/{ZERO_UUID}",
        {"type": "file", "target": target},
        404,
        f"Found no location with ID {ZERO_UUID}",
    )
    check(
        server,
        "DELETE",
        f"/locations/{ZERO_UUID}",
        None,
        404,
        f"Found no location with ID {ZERO_UUID}",
    )
    check(
        server,
        "POST",
        "/locations",
        {"type": "file", "target": str(tree.allowed / "one.yaml")},
        409,
        f"Location file:{tree.allowed / 'one.yaml'} already exists",
    )


def test_bad_refresh_requests(server):
    check(
        server, "POST", "/refresh", {}, 400, "request/body must have required property 'entityRef'"
    )
    check(
        server,
        "POST",
        "/refresh",
        {"entityRef": "component:default/one-service", "x": 1},
        400,
        "request/body must NOT have additional properties",
    )
    check(
        server, "POST", "/refresh", {"entityRef": 5}, 400, "request/body/entityRef must be string"
    )
    check(server, "POST", "/refresh", b"[]", 400, "request/body must be object")
    check(
        server,
        "POST",
        "/refresh",
        {"entityRef": "one-service"},
        404,
        "Entity one-service not found",
    )


def test_bad_validate_entity_requests(server):
    check(
        server,
        "POST",
        "/validate-entity",
        {},
        400,
        "request/body must have required property 'location'",
    )
    check(
        server,
        "POST",
        "/validate-entity",
        {"location": "url:https://x/y", "entity": "x"},
        400,
        "request/body/entity must be object",
    )
    check(
        server,
        "POST",
        "/validate-entity",
        {"location": 5, "entity": {}},
        400,
        "request/body/location must be string",
    )
    check(
        server,
        "POST",
        "/validate-entity",
        b"x",
        400,
        "unsupported media type text/plain",
        "text/plain",
    )
    # A malformed entity is a 400 with {errors}, not the error envelope.
    base = server.catalog_url
    before = snapshot(base)
    response = send(
        base,
        "POST",
        "/validate-entity",
        {
            "location": "url:https://example.com/catalog-info.yaml",
            "entity": {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {}},
        },
    )
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "name": "TypeError",
                "message": "/metadata must have required property 'name' - missingProperty: name",
            }
        ]
    }
    assert snapshot(base) == before


def test_bad_analyze_location_requests(server):
    check(
        server,
        "POST",
        "/analyze-location",
        {},
        400,
        "request/body must have required property 'location'",
    )
    check(
        server,
        "POST",
        "/analyze-location",
        {"location": {"type": "url"}},
        400,
        "request/body/location must have required property 'target'",
    )
    check(
        server,
        "POST",
        "/analyze-location",
        {"location": {"type": "url", "target": "https://x/y", "foo": 1}},
        400,
        "request/body/location must NOT have additional properties",
    )
    check(
        server,
        "POST",
        "/analyze-location",
        {"location": "x"},
        400,
        "request/body/location must be object",
    )
    check(
        server,
        "POST",
        "/analyze-location",
        {"location": {"type": "url", "target": "nope"}},
        400,
        "The given location.target is not a URL",
    )


def test_bad_location_queries(server):
    check(
        server,
        "POST",
        "/locations/by-query",
        b"{}",
        400,
        "unsupported media type text/plain",
        "text/plain",
    )
    check(
        server,
        "POST",
        "/locations/by-query",
        {"query": "x"},
        400,
        "request/body/query must be object",
    )
    check(
        server,
        "POST",
        "/locations/by-query",
        {"limit": 0},
        400,
        "Limit must be a positive integer >= 1",
    )


def test_nul_characters_are_refused(server, tree: Tree, location_id: str):
    """PostgreSQL cannot store NUL: a 400, not a database error."""
    message = "The request body contains a NUL character"
    target = f"{tree.allowed}/one\x00.yaml"
    check(server, "POST", "/locations", {"type": "file", "target": target}, 400, message)
    check(
        server, "PUT", f"/locations/{location_id}", {"type": "file", "target": target}, 400, message
    )
    check(server, "POST", "/refresh", {"entityRef": "component:default/a\x00"}, 400, message)
    check(server, "POST", "/locations/by-query", {"query": {"target": "\x00"}}, 400, message)
    check(
        server,
        "POST",
        "/analyze-location",
        {"location": {"type": "url", "target": "https://x/\x00"}},
        400,
        message,
    )
