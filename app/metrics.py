"""Prometheus metrics: what the catalog is doing, served at ``/metrics``.

Three sources:

* counters and histograms updated as things happen: request latency by route and
  status, entities processed and failed, processing and stitch batch durations
  (:class:`MeteredEngine` times the engine's batches without changing the engine);
* values read when Prometheus scrapes (:class:`CatalogCollector`): the processing
  queue (entities due now, and how long the oldest has waited), the stitch queue,
  the number of entities, the catalog generation, and this process's graph
  (generation, build and replay times);
* with several gunicorn workers, ``catalog serve`` points ``PROMETHEUS_MULTIPROC_DIR``
  at a fresh folder before the workers start, so counters and histograms are summed
  over every worker whichever one answers the scrape (prometheus_client's multiprocess
  mode). Scrape-time values come from the database and the answering worker.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from app.engine.changes import current_generation
from app.engine.engine import CatalogEngine
from app.storage.tables import final_entities, refresh_state, stitch_queue

log = logging.getLogger(__name__)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REQUEST_SECONDS = Histogram(
    "catalog_http_request_duration_seconds",
    "Time to answer an HTTP request, by route (URL rule), method and status",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PROCESSED = Counter("catalog_entities_processed", "Entities run through the processors")
FAILED = Counter(
    "catalog_entities_failed", "Entities whose processing failed (their errors are in status)"
)
STITCHED = Counter("catalog_entities_stitched", "Entities stitched into their final form")
PROCESS_SECONDS = Histogram(
    "catalog_processing_batch_duration_seconds",
    "Time to claim, process and write one batch of due entities",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
STITCH_SECONDS = Histogram(
    "catalog_stitch_batch_duration_seconds",
    "Time to stitch one batch of queued entities",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class MeteredEngine(CatalogEngine):
    """The engine, with its batches counted and timed (only batches that did work)."""

    def process_batch(self) -> int:
        processed, failed = self.stats.processed, self.stats.failed
        started = time.perf_counter()
        count = super().process_batch()
        if count:
            PROCESS_SECONDS.observe(time.perf_counter() - started)
            PROCESSED.inc(max(0, self.stats.processed - processed))
            FAILED.inc(max(0, self.stats.failed - failed))
        return count

    def stitch_done(self, changed: int, seconds: float) -> None:
        STITCH_SECONDS.observe(seconds)
        STITCHED.inc(max(0, changed))


class CatalogCollector(Collector):
    """Values read at scrape time from the database and this process's graph."""

    def __init__(self, catalog: Any, graph: Any = None):
        self.catalog = catalog
        #: Returns this process's GraphService, or None while no graph query built one.
        self.graph = graph

    def collect(self) -> Iterator[Metric]:
        yield from self._database()
        yield from self._graph()

    def _database(self) -> Iterator[Metric]:
        db = getattr(self.catalog, "db", None)
        if db is None:
            return
        up = GaugeMetricFamily("catalog_database_up", "1 when the database answered this scrape")
        now = time.time()
        try:
            with db.engine.connect() as conn:
                due, oldest_due = conn.execute(
                    select(func.count(), func.min(refresh_state.c.next_update_at)).where(
                        refresh_state.c.next_update_at <= now
                    )
                ).one()
                queued, oldest_queued = conn.execute(
                    select(func.count(), func.min(stitch_queue.c.queued_at))
                ).one()
                entities = conn.execute(select(func.count()).select_from(final_entities)).scalar()
                generation = current_generation(conn)
        except SQLAlchemyError as exc:
            log.warning("Metrics: the database did not answer: %s", exc.__class__.__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield _gauge(
            "catalog_processing_queue_depth", "Entities due for processing now", int(due or 0)
        )
        yield _gauge(
            "catalog_processing_queue_lag_seconds",
            "How long the longest-waiting due entity has been due (0 when none is)",
            max(0.0, now - oldest_due) if oldest_due is not None else 0.0,
        )
        yield _gauge(
            "catalog_stitch_queue_depth", "Entities waiting to be stitched", int(queued or 0)
        )
        yield _gauge(
            "catalog_stitch_queue_lag_seconds",
            "How long the oldest entity in the stitch queue has waited (0 when empty)",
            max(0.0, now - oldest_queued) if oldest_queued is not None else 0.0,
        )
        yield _gauge("catalog_entities", "Entities served (stitched)", int(entities or 0))
        yield _gauge(
            "catalog_generation",
            "The catalog generation: bumped by every write of served entities",
            generation,
        )

    def _graph(self) -> Iterator[Metric]:
        service = self.graph() if self.graph is not None else None
        store = getattr(service, "store", None)
        if store is None:
            return
        generation = store.generation
        if generation is not None:
            yield _gauge(
                "catalog_graph_generation",
                "The catalog generation this process's entity graph reflects",
                generation,
            )
        stats = store.stats
        yield _gauge(
            "catalog_graph_build_seconds",
            "Duration of this process's last full graph build",
            stats.last_build_seconds,
        )
        yield _gauge(
            "catalog_graph_replay_seconds",
            "Duration of this process's last incremental graph update",
            stats.last_replay_seconds,
        )
        builds = CounterMetricFamily("catalog_graph_builds", "Full graph builds in this process")
        builds.add_metric([], stats.builds)
        yield builds
        replays = CounterMetricFamily(
            "catalog_graph_replays", "Incremental graph updates in this process"
        )
        replays.add_metric([], stats.replays)
        yield replays


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def scrape_registry(collector: CatalogCollector) -> CollectorRegistry:
    """A registry of one app's scrape-time values (apart from the process-wide metrics,
    so that several apps in one process, as in tests, do not clash)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def exposition(scrape: CollectorRegistry) -> bytes:
    """The text exposition of the process's (or every worker's) metrics and ``scrape``."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    # The folder goes when the server shuts down; a worker still answering then falls
    # back to its own figures.
    if directory and os.path.isdir(directory):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return body + generate_latest(scrape)


def mark_worker_dead(pid: int) -> None:
    """gunicorn's ``child_exit``: drop a dead worker's live gauges (multiprocess mode)."""
    if os.environ.get(MULTIPROCESS_ENV):
        multiprocess.mark_process_dead(pid)
