"""Drawing a query's subgraph: node-link JSON, Graphviz DOT, GraphML, Mermaid and SVG.

All formats carry the same nodes (with the attributes the graph keeps) and edges
(labelled with the relation type, in the pair's forward direction). SVG is DOT
rendered by Graphviz's ``dot``, which must be installed where this runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

import networkx as nx

from app.errors import InputError, NotImplementedYetError, ServiceUnavailableError

from .model import EntityGraph
from .queries import Edge

FORMATS = ("json", "dot", "graphml", "mermaid", "svg")
CONTENT_TYPES = {
    "json": "application/json",
    "dot": "text/vnd.graphviz; charset=utf-8",
    "graphml": "application/graphml+xml; charset=utf-8",
    "mermaid": "text/plain; charset=utf-8",
    "svg": "image/svg+xml",
}
#: Seconds Graphviz may spend on one drawing.
DOT_TIMEOUT = 30.0

# Fill colours per kind, as the catalog-graph UI tells kinds apart.
_COLOURS = {
    "component": "#dbeafe",
    "api": "#dcfce7",
    "resource": "#fef3c7",
    "system": "#ede9fe",
    "domain": "#fce7f3",
    "group": "#e0f2fe",
    "user": "#f1f5f9",
    "template": "#f5f5f4",
    "location": "#f5f5f4",
}


def export_graph(
    graph: EntityGraph, nodes: Sequence[str], edges: Sequence[Edge]
) -> nx.MultiDiGraph:
    """A standalone copy of the subgraph: node attributes, edges keyed by relation type."""
    out = nx.MultiDiGraph()
    for ref in nodes:
        out.add_node(ref, **graph.g.nodes[ref])
    for source, target, key in edges:
        out.add_edge(source, target, key=key, type=key)
    return out


def check_size(nodes: Sequence[str], limit: int) -> None:
    if len(nodes) > limit:
        raise InputError(
            f"The graph to export has {len(nodes)} entities, more than the limit of {limit}; "
            "narrow it down (fewer roots, a smaller depth, relation or kind filters)"
        )


def render(
    graph: EntityGraph, nodes: Sequence[str], edges: Sequence[Edge], fmt: str
) -> str | bytes:
    sub = export_graph(graph, nodes, edges)
    if fmt == "json":
        return to_node_link(sub)
    if fmt == "dot":
        return to_dot(sub)
    if fmt == "graphml":
        return to_graphml(sub)
    if fmt == "mermaid":
        return to_mermaid(sub)
    if fmt == "svg":
        return to_svg(to_dot(sub))
    raise InputError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def to_node_link(sub: nx.MultiDiGraph) -> str:
    """networkx's node-link form; ``nx.node_link_graph`` reads it back."""
    data = nx.node_link_data(sub, edges="edges")
    for edge in data["edges"]:
        edge.pop("type", None)  # the key already is the relation type
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _label(ref: str, data: dict[str, Any]) -> str:
    name = data.get("title") or data.get("name") or ref
    kind = data.get("kind") or ""
    namespace = data.get("namespace") or "default"
    head = f"{kind}" if namespace == "default" else f"{kind} ({namespace})"
    if data.get("missing"):
        head += ", missing"
    return f"{name}\n{head}"


def to_dot(sub: nx.MultiDiGraph) -> str:
    lines = [
        "digraph catalog {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=8, color="#64748b"];',
    ]
    for ref, data in sub.nodes(data=True):
        colour = _COLOURS.get(str(data.get("kind", "")).lower(), "#ffffff")
        attrs = [f"label={_dot_quote(_label(ref, data))}", f'fillcolor="{colour}"']
        if data.get("missing"):
            attrs.append('style="rounded,dashed"')
        lines.append(f"  {_dot_quote(ref)} [{', '.join(attrs)}];")
    for source, target, key in sub.edges(keys=True):
        lines.append(f"  {_dot_quote(source)} -> {_dot_quote(target)} [label={_dot_quote(key)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_graphml(sub: nx.MultiDiGraph) -> str:
    return "\n".join(nx.generate_graphml(sub, named_key_ids=True)) + "\n"


def _mermaid_text(text: str) -> str:
    return (
        text.replace("&", "#amp;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("\n", "<br/>")
    )


def to_mermaid(sub: nx.MultiDiGraph) -> str:
    """A ``flowchart`` with generated ids (refs contain ``:`` and ``/``) and quoted labels."""
    ids = {ref: f"n{index}" for index, ref in enumerate(sub.nodes)}
    lines = ["flowchart LR"]
    for ref, data in sub.nodes(data=True):
        label = _mermaid_text(_label(ref, data))
        shape = f'(["{label}"])' if data.get("missing") else f'["{label}"]'
        lines.append(f"  {ids[ref]}{shape}")
    for source, target, key in sub.edges(keys=True):
        lines.append(f"  {ids[source]} -->|{_mermaid_text(key)}| {ids[target]}")
    return "\n".join(lines) + "\n"


def graphviz_available() -> bool:
    return shutil.which("dot") is not None


def to_svg(dot_text: str) -> bytes:
    executable = shutil.which("dot")
    if executable is None:
        raise NotImplementedYetError(
            "SVG export needs Graphviz ('dot'), which is not installed here; "
            "use format=dot and render it elsewhere"
        )
    try:
        done = subprocess.run(
            [executable, "-Tsvg"],
            input=dot_text.encode(),
            capture_output=True,
            timeout=DOT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceUnavailableError(
            f"Graphviz took more than {DOT_TIMEOUT:.0f}s to draw the graph; export fewer entities"
        ) from exc
    if done.returncode != 0:
        raise ServiceUnavailableError(
            f"Graphviz failed: {done.stderr.decode(errors='replace').strip()[:500]}"
        )
    return done.stdout
