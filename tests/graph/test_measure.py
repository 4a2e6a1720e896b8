"""The benchmark's graph figures, measured on the sample organisation."""

from __future__ import annotations

from pathlib import Path

import requests

from app.graph.measure import graph_figures, http_latency, update_visibility
from tests.conftest import fresh_database
from tests.graph.support import SAMPLE, serve


def test_figures_latency_and_update_visibility(tmp_path: Path):
    with fresh_database(tmp_path) as url, serve(url, tmp_path, [SAMPLE]) as server:
        figures = graph_figures(url)
        assert figures["entities"] > 100 and figures["edges"] > figures["entities"]
        assert 100_000 < figures["memoryBytes"] < 50_000_000

        latency = http_latency(
            server.base, "/api/graph/dependents", {"entityRef": "resource:core-postgres"}, 20
        )
        assert latency["requests"] == 20 and 0 < latency["medianMs"] <= latency["p95Ms"]

        source, target = "component:default/payments-gateway", "resource:default/ledger-db"
        visibility = update_visibility(server.base, url, source, target)
        assert visibility["seconds"] < 1.0
        # Undone: the catalog is as it was, and the graph follows that too.
        body = requests.get(
            f"{server.base}/api/graph/dependencies",
            params={"entityRef": source, "depth": 1},
            timeout=30,
        ).json()
        assert target not in {item["entityRef"] for item in body["items"]}
