"""Exports: node-link JSON, DOT, GraphML and Mermaid carry the same nodes and edges; SVG."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import networkx as nx
import pytest

from app.errors import InputError, NotImplementedYetError
from app.graph import export
from app.graph.service import GraphService, GraphSettings
from app.storage.database import Database
from tests.conftest import fresh_database
from tests.graph.support import SAMPLE, ingest

GATEWAY = "component:default/payments-gateway"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphService]:
    directory = tmp_path_factory.mktemp("sample")
    with fresh_database(directory) as url:
        ingest(url, [SAMPLE])
        db = Database(url)
        try:
            yield GraphService(db, GraphSettings(export_node_limit=60))
        finally:
            db.dispose()


@pytest.fixture(scope="module")
def result(service):
    return service.subgraph(["payments-gateway"], depth=1)


def expected(result) -> tuple[set[str], set[tuple[str, str, str]]]:
    return set(result.nodes), set(result.edges)


def test_node_link_json_reads_back_into_networkx(service, result):
    data = json.loads(service.render(result, "json"))
    graph = nx.node_link_graph(data)
    assert set(graph.nodes) == expected(result)[0]
    assert set(graph.edges(keys=True)) == expected(result)[1]
    assert graph.nodes[GATEWAY]["kind"] == "Component"


def test_graphml_reads_back_into_networkx(service, result):
    graph = nx.parse_graphml(service.render(result, "graphml"), force_multigraph=True)
    assert set(graph.nodes) == expected(result)[0]
    assert {(u, v, d["type"]) for u, v, d in graph.edges(data=True)} == expected(result)[1]
    assert graph.nodes[GATEWAY]["title"] == "Payments Gateway"


def test_dot_has_every_node_and_labelled_edge(service, result):
    text = service.render(result, "dot")
    assert text.startswith("digraph catalog {") and text.rstrip().endswith("}")
    for ref in result.nodes:
        assert f'"{ref}" [' in text
    for source, target, key in result.edges:
        assert f'"{source}" -> "{target}" [label="{key}"];' in text
    if shutil.which("dot"):  # Graphviz itself accepts it
        subprocess.run(["dot", "-Tplain"], input=text.encode(), check=True, capture_output=True)


def test_mermaid_flowchart(service, result):
    text = service.render(result, "mermaid")
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    nodes = [line for line in lines[1:] if "-->" not in line]
    edges = [line for line in lines[1:] if "-->" in line]
    assert len(nodes) == len(result.nodes) and len(edges) == len(result.edges)
    assert all(re.fullmatch(r'  n\d+\["[^"]*"\]', line) for line in nodes)
    assert any("|dependsOn|" in line for line in edges)


def test_labels_are_escaped(service):
    from app.graph.model import EntityGraph

    graph = EntityGraph()
    ref = "component:default/tricky"
    graph.set_entity(
        ref, {"kind": "Component", "metadata": {"name": "tricky", "title": 'say "hi" <b>&\\'}}
    )
    dot = export.render(graph, [ref], [], "dot")
    assert 'label="say \\"hi\\" <b>&\\\\\\nComponent"' in str(dot)
    mermaid = str(export.render(graph, [ref], [], "mermaid"))
    assert '"' not in mermaid.split('["', 1)[1].rsplit('"]', 1)[0]
    ET.fromstring(str(export.render(graph, [ref], [], "graphml")).encode())


def test_svg_where_graphviz_is_installed(service, result):
    if shutil.which("dot") is None:
        with pytest.raises(NotImplementedYetError, match="Graphviz"):
            service.render(result, "svg")
        return
    svg = service.render(result, "svg")
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert b"Payments Gateway" in svg


def test_svg_without_graphviz_is_a_clear_501(service, result, monkeypatch):
    monkeypatch.setattr(export.shutil, "which", lambda name: None)
    with pytest.raises(NotImplementedYetError) as caught:
        service.render(result, "svg")
    assert caught.value.status == 501 and "use format=dot" in caught.value.message


def test_exports_are_bounded(service):
    big = service.subgraph(["payments-gateway"], depth=2, direction="out")
    assert len(big.nodes) <= 60
    dependents = service.dependents("core-postgres", limit=1000)
    assert len(dependents.nodes) > 60
    with pytest.raises(InputError, match="more than the limit of 60"):
        service.render(dependents, "dot")
    with pytest.raises(InputError, match="Unknown format"):
        service.render(big, "png")


def test_every_query_can_be_exported(service):
    for result in (
        service.dependencies("payments-gateway"),
        service.impact("ledger-db"),
        service.path("payouts-service", "settlement-batcher"),
        service.paths("payouts-service", "settlement-batcher"),
        service.cycles(),
        service.ownership("payments-gateway"),
        service.owned("team-processing"),
        service.orphans(),
        service.most_depended_on(),
    ):
        graph = nx.node_link_graph(json.loads(service.render(result, "json")))
        assert set(graph.nodes) == set(result.nodes)
