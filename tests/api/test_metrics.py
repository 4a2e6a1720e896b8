"""``/metrics``: Prometheus text with request latency by route, the processing and stitch
queues, entities processed and failed, stitch time and the graph's generation."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.catalog import Catalog
from app.config import AppConfig
from tests.conftest import (
    catalog_config,
    component,
    settle,
    shared_server,
    wait_for,
    write_yaml,
)

BY_NAME = "/api/catalog/entities/by-name/<kind>/<namespace>/<name>"


def samples(text: str) -> list[Any]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    found = [
        s.value
        for s in samples(text)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert found, f"no sample {name}{labels}"
    return sum(found)


def broken() -> dict[str, Any]:
    entity = component("broken")
    del entity["spec"]["owner"]  # fails kind validation: counted as failed
    return entity


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    files = tmp_path_factory.mktemp("catalog")
    path = write_yaml(files / "all.yaml", component("alpha"), component("beta"), broken())
    with shared_server(tmp_path_factory, [path]) as running:
        yield running


def test_request_latency_is_recorded_by_route_and_status(server):
    for name in ("alpha", "beta", "nope"):
        requests.get(f"{server.catalog_url}/entities/by-name/component/default/{name}")
    requests.get(f"{server.catalog_url}/no/such/route/{time.time()}")
    text = requests.get(f"{server.base}/metrics").text
    histogram = "catalog_http_request_duration_seconds_count"
    assert value(text, histogram, method="GET", route=BY_NAME, status="200") >= 2
    assert value(text, histogram, method="GET", route=BY_NAME, status="404") >= 1
    # Raw paths never become labels: unknown routes share one series.
    assert value(text, histogram, route="unmatched", status="404") >= 1
    assert not [s for s in samples(text) if "/no/such/route" in str(s.labels)]
    assert value(text, "catalog_http_request_duration_seconds_bucket", route=BY_NAME, le="+Inf")


def test_processing_and_stitching_are_counted_and_timed(server):
    # The stitching process reports its batches a moment after committing them, so
    # readiness may come first.
    def scrape() -> str | None:
        text = requests.get(f"{server.base}/metrics").text
        return text if value(text, "catalog_entities_stitched_total") >= 3 else None

    text = wait_for(scrape, timeout=10)
    assert value(text, "catalog_entities_processed_total") >= 4
    assert value(text, "catalog_entities_failed_total") >= 1  # the broken component
    assert value(text, "catalog_entities_stitched_total") >= 3
    assert value(text, "catalog_processing_batch_duration_seconds_count") >= 1
    assert value(text, "catalog_stitch_batch_duration_seconds_count") >= 1
    assert value(text, "catalog_stitch_batch_duration_seconds_sum") > 0
    assert value(text, "catalog_database_up") == 1
    assert value(text, "catalog_entities") == 3  # alpha, beta and the generated Location
    assert value(text, "catalog_processing_queue_depth") == 0
    assert value(text, "catalog_stitch_queue_depth") == 0


def test_the_graph_generation_and_build_time(server):
    assert requests.get(f"{server.base}/api/graph/status").status_code == 200
    text = requests.get(f"{server.base}/metrics").text
    assert value(text, "catalog_graph_generation") == value(text, "catalog_generation") > 0
    assert value(text, "catalog_graph_builds_total") >= 1
    assert value(text, "catalog_graph_build_seconds") > 0
    assert (
        requests.get(f"{server.base}/metrics")
        .headers["Content-Type"]
        .startswith("text/plain; version=0.0.4")
    )


def test_queue_depth_and_lag_while_work_is_due(database_url, tmp_path):
    path = write_yaml(tmp_path / "c.yaml", *(component(f"q{i}") for i in range(5)))
    config = AppConfig(catalog_config(database_url, [path]))
    catalog = Catalog.from_config(config)
    try:
        client = create_app(config, catalog=catalog, start=False).test_client()
        catalog.engine.connect_providers()
        time.sleep(0.05)
        text = client.get("/metrics").get_data(as_text=True)
        assert value(text, "catalog_processing_queue_depth") == 1  # the configured location
        assert value(text, "catalog_processing_queue_lag_seconds") > 0
        catalog.engine.process_batch()
        text = client.get("/metrics").get_data(as_text=True)
        assert value(text, "catalog_processing_queue_depth") == 5  # its five children
        assert value(text, "catalog_stitch_queue_depth") >= 1
        settle(catalog)
        text = client.get("/metrics").get_data(as_text=True)
        assert value(text, "catalog_processing_queue_depth") == 0
        assert value(text, "catalog_processing_queue_lag_seconds") == 0
        assert value(text, "catalog_stitch_queue_lag_seconds") == 0
        assert value(text, "catalog_entities") == 6
    finally:
        catalog.stop()


def test_several_workers_report_their_sum(start_server, database_url, tmp_path):
    path = write_yaml(tmp_path / "c.yaml", component("w1"), component("w2"))
    # Ingested (and migrated) first: two workers creating the schema of one SQLite file at
    # the same moment is a race of its own, not what this test is about.
    ingest = subprocess.run(
        [
            *(sys.executable, "-m", "app.cli", "ingest"),
            *("--database-url", database_url, "--location", str(path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ingest.returncode == 0, ingest.stderr
    server = start_server([path], extra_args=["--workers", "2", "--threads", "2"])
    for _ in range(30):
        requests.get(f"{server.catalog_url}/entities/by-name/component/default/w1")
    # Whichever worker answers, the counts cover both.
    for _ in range(4):
        text = requests.get(f"{server.base}/metrics").text
        count = value(
            text,
            "catalog_http_request_duration_seconds_count",
            route=BY_NAME,
            status="200",
        )
        assert count == 30
