"""``/api/graph`` and ``/api/catalog-graph`` over real HTTP, on the sample organisation."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest
import requests

from app.openapi import generate_spec
from tests.conftest import ServerProcess, fresh_database, write_yaml
from tests.graph.support import SAMPLE, serve

GATEWAY = "component:default/payments-gateway"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("graph-api")
    with (
        fresh_database(directory) as url,
        serve(url, directory, [SAMPLE], graph={"exportNodeLimit": 120}) as process,
    ):
        yield process


def get(server: ServerProcess, path: str, **params) -> requests.Response:
    return requests.get(f"{server.base}/api/graph/{path}", params=params, timeout=60)


def ok(server: ServerProcess, path: str, **params) -> dict:
    response = get(server, path, **params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def test_dependencies_and_dependents(server):
    deps = ok(server, "dependencies", entityRef="Component:default/Payments-Gateway", depth=1)
    assert deps["entity"]["entityRef"] == GATEWAY
    assert "resource:default/core-postgres" in {i["entityRef"] for i in deps["items"]}
    dependents = ok(server, "dependents", entityRef="core-postgres", kinds="Component", limit=500)
    assert GATEWAY in {i["entityRef"] for i in dependents["items"]}
    assert {i["kind"] for i in dependents["items"]} == {"Component"}
    several = ok(server, "dependencies", entityRef=GATEWAY, relations=["dependsOn", "consumesApi"])
    assert several["relations"] == ["consumesApi", "dependsOn"]
    comma = ok(server, "dependencies", entityRef=GATEWAY, relations="dependsOn,consumesApi")
    assert comma == several


def test_impact(server):
    body = ok(server, "impact", entityRef="resource:core-postgres")
    owners = {g["owner"]["entityRef"]: g for g in body["byOwner"] if g["owner"]}
    assert owners["group:default/team-processing"]["contact"]["email"].endswith(".example")
    assert body["bySystem"][0]["count"] >= body["bySystem"][-1]["count"]


def test_paths_and_cycles(server):
    path = ok(server, "path", **{"from": "payouts-service", "to": "settlement-batcher"})
    assert path["length"] == 2
    paths = ok(
        server,
        "paths",
        **{"from": "payments-gateway", "to": "core-postgres", "maxLength": 3, "maxPaths": 5},
    )
    assert 1 <= paths["totalPaths"] <= 5
    cycles = ok(server, "cycles")
    assert cycles["cycles"] == [
        [
            "component:default/bank-connector",
            "component:default/settlement-batcher",
            "component:default/payouts-service",
        ]
    ]


def test_ownership_queries(server):
    owner = ok(server, "ownership", entityRef="payments-gateway")
    assert owner["owner"]["entityRef"] == "group:default/team-processing"
    assert owner["parents"][-1]["entityRef"] == "group:default/acme-payments"
    owned = ok(server, "owned", entityRef="group:core-payments", transitive="true")
    assert GATEWAY in {i["entityRef"] for i in owned["items"]}
    assert ok(server, "orphans") == {"unowned": [], "ownerMissing": []}


def test_most_depended_on_and_subgraph(server):
    central = ok(server, "most-depended-on", kinds="Resource", limit=3)
    assert central["items"][0]["entityRef"] == "resource:default/core-postgres"
    sub = ok(server, "subgraph", rootEntityRefs="payments-gateway", depth=1, direction="out")
    assert {n["entityRef"] for n in sub["nodes"]} >= {GATEWAY, "resource:default/core-postgres"}


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("node-link", "application/json"),
        ("dot", "text/vnd.graphviz"),
        ("graphml", "application/graphml+xml"),
        ("mermaid", "text/plain"),
    ],
)
def test_exports(server, fmt, content_type):
    response = get(server, "dependencies", entityRef="payments-gateway", depth=1, format=fmt)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith(content_type)
    if fmt == "node-link":
        graph = nx.node_link_graph(response.json())
        assert GATEWAY in graph and graph.number_of_edges() > 0
    elif fmt == "graphml":
        assert GATEWAY in nx.parse_graphml(response.text, force_multigraph=True)
    else:
        assert GATEWAY in response.text or "Payments Gateway" in response.text


def test_svg_export(server):
    response = get(server, "subgraph", rootEntityRefs="payments-gateway", format="svg")
    if shutil.which("dot"):
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "image/svg+xml"
        assert b"<svg" in response.content
    else:
        assert response.status_code == 501
        assert response.json()["error"]["name"] == "NotImplementedError"


@pytest.mark.parametrize(
    ("path", "params", "status", "name", "message"),
    [
        ("dependencies", {"entityRef": "nope"}, 404, "NotFoundError", "No entity named 'nope'"),
        ("dependencies", {"entityRef": "component:"}, 400, "InputError", "Malformed entity"),
        (
            "dependencies",
            {},
            400,
            "InputError",
            "request/query must have required property 'entityRef'",
        ),
        (
            "dependencies",
            {"entityRef": GATEWAY, "depth": "-1"},
            400,
            "InputError",
            "depth must be between 1 and 100, got -1",
        ),
        (
            "dependencies",
            {"entityRef": GATEWAY, "depth": "99999999999"},
            400,
            "InputError",
            "depth must be between 1 and 100",
        ),
        (
            "dependencies",
            {"entityRef": GATEWAY, "depth": "deep"},
            400,
            "InputError",
            "request/query/depth must be integer",
        ),
        (
            "dependencies",
            {"entityRef": GATEWAY, "relations": "dependsOnn"},
            400,
            "InputError",
            "Unknown relation type 'dependsOnn'",
        ),
        (
            "dependencies",
            {"entityRef": GATEWAY, "format": "png"},
            400,
            "InputError",
            "request/query/format must be equal to one of the allowed values",
        ),
        (
            "dependencies",
            {"entityRef": GATEWAY, "colour": "red"},
            400,
            "InputError",
            "Unknown query parameter 'colour'",
        ),
        (
            "path",
            {"from": "core-postgres", "to": "payments-gateway"},
            404,
            "NotFoundError",
            "No dependency path",
        ),
        (
            "paths",
            {"from": GATEWAY, "to": "core-postgres", "maxPaths": "100000"},
            400,
            "InputError",
            "maxPaths must be between 1 and 1000",
        ),
        ("subgraph", {"format": "dot"}, 400, "InputError", "more than the limit of 120"),
        (
            "subgraph",
            {"rootEntityRefs": GATEWAY, "depth": "100"},
            400,
            "InputError",
            "more than 120 entities",
        ),
        (
            "owned",
            {"entityRef": "team-processing", "transitive": "maybe"},
            400,
            "InputError",
            "request/query/transitive must be boolean",
        ),
    ],
)
def test_bad_input_gets_backstage_errors(server, path, params, status, name, message):
    started = time.monotonic()
    response = get(server, path, **params)
    assert time.monotonic() - started < 10
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["name"] == name
    assert message in body["error"]["message"]
    assert body["response"] == {"statusCode": status}
    assert body["request"]["method"] == "GET"
    assert body["request"]["url"].startswith(f"/{path}")


def test_catalog_graph_endpoint(server):
    response = requests.get(
        f"{server.base}/api/catalog-graph/graph",
        params=[("rootEntityRefs", GATEWAY), ("maxDepth", "1"), ("relations", "ownedBy")],
        timeout=30,
    )
    body = response.json()
    assert response.status_code == 200
    assert [e["metadata"]["name"] for e in body["entities"]] == [
        "payments-gateway",
        "team-processing",
    ]
    assert body["cutoff"] is False
    bad = requests.get(
        f"{server.base}/api/catalog-graph/graph",
        params={"rootEntityRefs": GATEWAY, "maxDepth": "-3"},
        timeout=30,
    )
    assert bad.status_code == 400
    assert bad.json()["request"]["url"].startswith("/graph?")


def test_status(server):
    body = ok(server, "status", memory="true")
    assert body["entities"] > 100 and body["edges"] > body["entities"]
    assert body["memoryBytes"] > 0 and body["generation"] > 0


def test_the_spec_documents_the_graph_api():
    paths = generate_spec()["paths"]
    for path in (
        "dependencies",
        "dependents",
        "impact",
        "path",
        "paths",
        "cycles",
        "ownership",
        "owned",
        "orphans",
        "most-depended-on",
        "subgraph",
        "status",
    ):
        assert f"/api/graph/{path}" in paths, path
    params = {p["name"] for p in paths["/api/catalog-graph/graph"]["get"]["parameters"]}
    assert params == {"rootEntityRefs", "relations", "kinds", "maxDepth"}


def test_changes_reach_every_worker_within_a_second(tmp_path: Path):
    """Two gunicorn workers, each with its own graph, follow a change to a catalog file."""
    team = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Group",
        "metadata": {"name": "team-a"},
        "spec": {"type": "team", "children": []},
    }

    def component(depends: list[str]) -> dict:
        return {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "web"},
            "spec": {
                "type": "service",
                "lifecycle": "production",
                "owner": "team-a",
                "dependsOn": depends,
            },
        }

    def resource(name: str) -> dict:
        return {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Resource",
            "metadata": {"name": name},
            "spec": {"type": "database", "owner": "team-a"},
        }

    path = write_yaml(
        tmp_path / "catalog.yaml",
        team,
        component(["resource:db"]),
        resource("db"),
        resource("cache"),
    )
    with (
        fresh_database(tmp_path) as url,
        serve(
            url,
            tmp_path,
            [path],
            extra_args=["--workers", "2", "--threads", "4"],
            catalog={"processingInterval": {"hours": 0, "seconds": 1}},
        ) as srv,
    ):

        def dependencies() -> set[str]:
            body = ok(srv, "dependencies", entityRef="web")
            return {item["entityRef"] for item in body["items"]}

        assert all(dependencies() == {"resource:default/db"} for _ in range(10))
        write_yaml(
            path,
            team,
            component(["resource:db", "resource:cache"]),
            resource("db"),
            resource("cache"),
        )
        # The moment the catalog API serves the change, it is committed: from then on,
        # every worker's graph answers with it (each query checks the generation).
        entity_url = f"{srv.catalog_url}/entities/by-name/component/default/web"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            relations = requests.get(entity_url, timeout=10).json()["relations"]
            if {"type": "dependsOn", "targetRef": "resource:default/cache"} in relations:
                break
            time.sleep(0.02)
        committed = time.monotonic()
        expected = {"resource:default/db", "resource:default/cache"}
        assert dependencies() == expected
        assert time.monotonic() - committed < 1.0
        # Whichever worker answers, it answers from the new generation.
        assert [dependencies() for _ in range(20)] == [expected] * 20
        answers = {json.dumps(ok(srv, "status")["generation"]) for _ in range(10)}
        assert len(answers) == 1
