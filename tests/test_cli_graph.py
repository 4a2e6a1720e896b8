"""The graph commands of ``catalog``, run as scripts run them: subprocesses, exit codes, --json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest

from tests.conftest import ServerProcess, free_port, fresh_database
from tests.graph.support import SAMPLE, serve

GATEWAY = "component:default/payments-gateway"
CATALOG = shutil.which("catalog", path=str(Path(sys.executable).parent)) or "catalog"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    directory = tmp_path_factory.mktemp("cli")
    with fresh_database(directory) as url, serve(url, directory, [SAMPLE]) as process:
        yield process, url


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CATALOG_")}
    environment.update(env or {})
    return subprocess.run(
        [CATALOG, *args], capture_output=True, text=True, timeout=120, env=environment
    )


@pytest.fixture(params=["url", "database"])
def where(request, server) -> list[str]:
    """Each command runs once against the server and once directly on its database."""
    process, url = server
    return ["--url", process.base] if request.param == "url" else ["--database-url", url]


def test_owner(where):
    done = run("owner", "payments-gateway", *where)
    assert done.returncode == 0, done.stderr
    assert "group:default/team-processing (Processing Team)" in done.stdout
    assert (
        "group:default/core-payments > group:default/engineering > group:default/acme-payments"
        in done.stdout
    )
    body = json.loads(run("owner", "Component:default/Payments-Gateway", "--json", *where).stdout)
    assert body["owner"]["entityRef"] == "group:default/team-processing"


def test_owns(where):
    direct = json.loads(run("owns", "core-payments", "--json", *where).stdout)
    everything = json.loads(run("owns", "core-payments", "--transitive", "--json", *where).stdout)
    assert everything["totalItems"] > direct["totalItems"]
    table = run("owns", "team-processing", *where).stdout
    assert table.splitlines()[0].startswith("13 entities owned by group:default/team-processing")
    assert "ENTITY" in table and GATEWAY in table


def test_deps_and_dependents(where):
    deps = run("deps", "component:payments-gateway", "--depth", "1", *where)
    assert deps.returncode == 0, deps.stderr
    assert "resource:default/core-postgres" in deps.stdout
    assert deps.stdout.splitlines()[2].split() == ["DEPTH", "ENTITY", "KIND", "VIA"]
    body = json.loads(
        run(
            "dependents", "core-postgres", "--json", "--kind", "Component", "--limit", "3", *where
        ).stdout
    )
    assert len(body["items"]) == 3 and body["truncated"]
    limited = run("dependents", "core-postgres", "--limit", "3", *where).stdout
    assert "showing 3 of" in limited


def test_impact(where):
    done = run("impact", "core-postgres", *where)
    assert done.returncode == 0, done.stderr
    assert "By owner:" in done.stdout and "team-processing@acmepayments.example" in done.stdout
    assert "By system:" in done.stdout


def test_path(where):
    shortest = run("path", "payouts-service", "settlement-batcher", *where)
    assert shortest.stdout.strip() == (
        "2: component:default/payouts-service --dependsOn--> component:default/bank-connector"
        " --dependsOn--> component:default/settlement-batcher"
    )
    every = json.loads(
        run(
            "path",
            "payments-gateway",
            "core-postgres",
            "--all",
            "--max-length",
            "3",
            "--json",
            *where,
        ).stdout
    )
    assert every["totalPaths"] >= 1
    related = run("path", "core-postgres", "payments-gateway", "--undirected", *where)
    assert "<--dependsOn--" in related.stdout


def test_cycles(where):
    done = run("cycles", *where)
    assert done.stdout.strip() == (
        "component:default/bank-connector -> component:default/settlement-batcher -> "
        "component:default/payouts-service -> component:default/bank-connector"
    )
    assert json.loads(run("cycles", "--json", *where).stdout)["totalCycles"] == 1


@pytest.mark.parametrize("fmt", ["dot", "graphml", "mermaid", "json"])
def test_graph_export(where, fmt, tmp_path):
    out = tmp_path / f"graph.{fmt}"
    done = run(
        "graph",
        "export",
        "--format",
        fmt,
        "--root",
        "payments-gateway",
        "--depth",
        "1",
        "--output",
        str(out),
        *where,
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    if fmt == "json":
        assert GATEWAY in nx.node_link_graph(json.loads(text))
    elif fmt == "graphml":
        assert GATEWAY in nx.parse_graphml(text, force_multigraph=True)
    elif fmt == "dot":
        assert text.startswith("digraph catalog {")
    else:
        assert text.startswith("flowchart LR")
    whole = run("graph", "export", "--format", "mermaid", *where)
    assert whole.returncode == 0 and whole.stdout.count("-->") > 300


def test_graph_export_svg(where):
    done = subprocess.run(
        [CATALOG, "graph", "export", "--format", "svg", "--root", "payments-gateway", *where],
        capture_output=True,
        timeout=120,
    )
    if shutil.which("dot"):
        assert done.returncode == 0 and b"<svg" in done.stdout
    else:
        assert done.returncode == 1 and b"Graphviz" in done.stderr


def test_other_graph_commands(where):
    assert "core-postgres" in run("graph", "central", "--kind", "Resource", *where).stdout
    assert "Without an owner:" in run("graph", "orphans", *where).stdout
    status = json.loads(run("graph", "status", "--json", *where).stdout)
    assert status["entities"] > 100


def test_exit_status_1_for_unknown_entities(where):
    done = run("owner", "no-such-thing", *where)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "NotFoundError: No entity named 'no-such-thing'" in done.stderr
    nopath = run("path", "core-postgres", "payments-gateway", *where)
    assert nopath.returncode == 1 and "No dependency path" in nopath.stderr


def test_exit_status_2_for_usage_errors(where):
    assert run("deps", *where).returncode == 2  # missing REF
    assert run("deps", "payments-gateway", "--depth", "-1", *where).returncode == 2
    bad = run("deps", "payments-gateway", "--relation", "bogus", *where)
    assert bad.returncode == 2 and "Unknown relation type 'bogus'" in bad.stderr
    assert run("graph", "export", "--format", "png", *where).returncode == 2
    malformed = run("owner", "component:", *where)
    assert malformed.returncode == 2 and "Malformed" in malformed.stderr


def test_catalog_url_from_the_environment(server):
    process, _ = server
    done = run("owner", "payments-gateway", "--json", env={"CATALOG_URL": process.catalog_url})
    assert done.returncode == 0 and json.loads(done.stdout)["owner"]["name"] == "team-processing"


def test_url_and_database_url_together_is_a_usage_error(server):
    process, url = server
    done = run("owner", "x", "--url", process.base, "--database-url", url)
    assert done.returncode == 2 and "not both" in done.stderr


def test_unreachable_server_is_exit_1():
    done = run("cycles", "--url", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1 and "Cannot reach" in done.stderr
