"""``app.client.GraphClient`` against a real server on the sample organisation."""

from __future__ import annotations

import json
from collections.abc import Iterator

import networkx as nx
import pytest

from app.client import EntityNotFound, GraphClient, GraphClientError, base_url
from tests.conftest import ServerProcess, free_port, fresh_database
from tests.graph.support import SAMPLE, serve

GATEWAY = "component:default/payments-gateway"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("client")
    with fresh_database(directory) as url, serve(url, directory, [SAMPLE]) as process:
        yield process


@pytest.fixture(scope="module")
def client(server) -> GraphClient:
    return GraphClient(server.catalog_url)


def test_base_url_accepts_the_forms_people_paste(monkeypatch):
    assert base_url("http://h:7007/") == "http://h:7007"
    assert base_url("http://h:7007/api/catalog") == "http://h:7007"
    assert base_url("http://h:7007/api/graph/") == "http://h:7007"
    monkeypatch.setenv("CATALOG_URL", "http://env:1234/api/catalog")
    assert base_url(None) == "http://env:1234"
    monkeypatch.delenv("CATALOG_URL")
    assert base_url(None) == "http://127.0.0.1:7007"


def test_queries(client):
    deps = client.dependencies("payments-gateway", depth=1, relations=["dependsOn"])
    assert {i["via"]["type"] for i in deps["items"]} == {"dependsOn"}
    assert GATEWAY in {
        i["entityRef"] for i in client.dependents("core-postgres", limit=200)["items"]
    }
    impact = client.impact("core-postgres", kinds=["Component"])
    assert sum(g["count"] for g in impact["byOwner"]) == impact["totalItems"]
    assert client.path("payouts-service", "settlement-batcher")["length"] == 2
    assert client.paths("payments-gateway", "core-postgres", max_length=3)["totalPaths"] >= 1
    assert len(client.cycles()["cycles"]) == 1
    assert client.ownership("payments-gateway")["owner"]["name"] == "team-processing"
    owned = client.owned("core-payments", transitive=True, kinds=["Component"])
    assert GATEWAY in {i["entityRef"] for i in owned["items"]}
    assert client.orphans() == {"unowned": [], "ownerMissing": []}
    top = client.most_depended_on(kinds=["Resource"], limit=1)
    assert top["items"][0]["entityRef"] == "resource:default/core-postgres"
    sub = client.subgraph(["payments-gateway"], depth=1, relations=["ownedBy"])
    assert {e["type"] for e in sub["edges"]} == {"ownedBy"}
    graph = client.catalog_graph([GATEWAY], max_depth=0)
    assert [e["metadata"]["name"] for e in graph["entities"]] == ["payments-gateway"]
    assert client.status()["entities"] > 100


def test_exports(client):
    node_link = client.export("dependencies", "node-link", entityRef="payments-gateway", depth=1)
    assert GATEWAY in nx.node_link_graph(json.loads(node_link))
    dot = client.export(fmt="dot", rootEntityRefs=["payments-gateway"], depth=1)
    assert dot.startswith(b"digraph catalog {")


def test_errors(client):
    with pytest.raises(EntityNotFound) as missing:
        client.dependencies("no-such-thing")
    assert missing.value.status == 404 and missing.value.name == "NotFoundError"
    with pytest.raises(EntityNotFound, match="No dependency path"):
        client.path("core-postgres", "payments-gateway")
    with pytest.raises(GraphClientError) as bad:
        client.dependencies("payments-gateway", depth=500)
    assert bad.value.status == 400 and "depth must be between 1 and 100" in bad.value.message
    unreachable = GraphClient(f"http://127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(GraphClientError) as down:
        unreachable.status()
    assert down.value.status == 0 and "Cannot reach" in down.value.message
