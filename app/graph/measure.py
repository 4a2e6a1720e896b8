"""Figures for the benchmark: graph build time and memory, query latency, update visibility.

``app.bench`` calls these; each measures one thing against a real database or a
running server and returns plain numbers (seconds, milliseconds, bytes):

* :func:`graph_figures`: build the graph from a catalog database, its size and memory;
* :func:`http_latency`: repeated GETs of one graph query over one keep-alive
  connection (the first, cold answer reported apart from the median);
* :func:`update_visibility`: commit a change to one entity the way the stitcher
  does (final entity + generation + change log) and time until a running server's
  graph query shows it.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
import urllib.parse
from typing import Any

from sqlalchemy import select, update

from app.engine.changes import record_changes
from app.storage.database import Database
from app.storage.tables import final_entities

from .memory import graph_memory_bytes
from .store import build_graph


def graph_figures(database_url: str) -> dict[str, Any]:
    """Build the graph of a catalog database: seconds, nodes, edges, bytes."""
    db = Database(database_url)
    try:
        started = time.perf_counter()
        with db.engine.connect() as conn:
            graph = build_graph(conn)
        seconds = time.perf_counter() - started
        return {
            "buildSeconds": round(seconds, 3),
            "nodes": graph.g.number_of_nodes(),
            "entities": graph.entity_count(),
            "edges": graph.g.number_of_edges(),
            "memoryBytes": graph_memory_bytes(graph),
        }
    finally:
        db.dispose()


def http_latency(
    base_url: str, path: str, params: dict[str, Any], requests: int = 200
) -> dict[str, Any]:
    """Milliseconds per GET of ``path`` (e.g. ``/api/graph/dependents``) on one connection."""
    parsed = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(
        parsed.hostname or "127.0.0.1", parsed.port, timeout=120
    )
    target = f"{path}?{urllib.parse.urlencode(params, doseq=True)}"
    timings: list[float] = []
    size = 0
    try:
        for _ in range(requests + 1):
            started = time.perf_counter()
            connection.request("GET", target)
            response = connection.getresponse()
            body = response.read()
            timings.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise RuntimeError(f"GET {target}: {response.status} {body[:300]!r}")
            size = len(body)
    finally:
        connection.close()
    warm = sorted(timings[1:])
    return {
        "requests": requests,
        "coldMs": round(timings[0], 2),
        "medianMs": round(statistics.median(warm), 2),
        "p95Ms": round(warm[int(0.95 * (len(warm) - 1))], 2),
        "bytes": size,
    }


def update_visibility(
    base_url: str,
    database_url: str,
    source: str,
    target: str,
    *,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Seconds from committing "``source`` dependsOn ``target``" to the graph answering with it.

    The change is written like the stitcher writes one: both final entities, in one
    transaction that advances the generation and logs the two refs. It is undone
    afterwards (the same way), so the catalog is left as it was.
    """
    db = Database(database_url)
    query = urllib.parse.urlencode({"entityRef": source, "depth": 1, "relations": "dependsOn"})
    parsed = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=60)

    def visible() -> bool:
        connection.request("GET", f"/api/graph/dependencies?{query}")
        body = json.loads(connection.getresponse().read())
        return any(item["entityRef"] == target for item in body.get("items", []))

    def relate(add: bool) -> None:
        with db.transaction() as conn:
            for ref, relation, other in (
                (source, "dependsOn", target),
                (target, "dependencyOf", source),
            ):
                text = conn.execute(
                    select(final_entities.c.final_entity).where(final_entities.c.entity_ref == ref)
                ).scalar_one()
                entity = json.loads(text)
                item = {"type": relation, "targetRef": other}
                relations = [r for r in entity.get("relations", []) if r != item]
                entity["relations"] = [*relations, item] if add else relations
                conn.execute(
                    update(final_entities)
                    .where(final_entities.c.entity_ref == ref)
                    .values(final_entity=json.dumps(entity))
                )
            record_changes(conn, [source, target])

    try:
        if visible():
            raise RuntimeError(f"{source} already depends on {target}")
        relate(True)
        committed = time.perf_counter()
        deadline = committed + timeout
        polls = 0
        while not visible():
            polls += 1
            if time.perf_counter() > deadline:
                raise TimeoutError(f"change not visible after {timeout}s")
        seconds = time.perf_counter() - committed
        relate(False)
        return {"seconds": round(seconds, 4), "polls": polls + 1}
    finally:
        connection.close()
        db.dispose()
