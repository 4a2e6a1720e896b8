"""The per-process graph, kept in step with the database by the catalog generation.

Every transaction that changes final entities bumps ``catalog_state.generation``
and logs the refs it touched (``app.engine.changes``). Each process (every
gunicorn worker, every instance behind a load balancer) holds its own graph and,
before answering a query, compares its generation with the database's: one
primary-key SELECT. When the database is ahead, the refs changed since are
replayed (their stitched entities re-read, their statements replaced); when the
change log no longer reaches back, or most of the catalog changed, the graph is
rebuilt. So every worker answers from the catalog as committed at the moment of
the query, without notifications or a shared cache.

Queries read under a shared lock; a refresh reads the database *outside* the lock
and only takes the exclusive lock to apply the (in-memory) changes, so readers
wait milliseconds, never for the database.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import SQLAlchemyError

from app import jsonutil
from app.engine.changes import changes_since, current_generation
from app.errors import ServiceUnavailableError
from app.storage.database import Database
from app.storage.tables import final_entities
from app.storage.util import chunked

from .model import EntityGraph

log = logging.getLogger(__name__)


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds back new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass
class RefreshStats:
    """What the last refreshes did; exposed by ``/api/graph/status`` and the benchmark."""

    builds: int = 0
    replays: int = 0
    replayed_refs: int = 0
    last_build_seconds: float = 0.0
    last_replay_seconds: float = 0.0
    last_check_at: float = 0.0
    errors: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def _load(conn: Connection, refs: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for batch in chunked(sorted(refs)):
        query = select(final_entities.c.entity_ref, final_entities.c.final_entity).where(
            final_entities.c.entity_ref.in_(batch)
        )
        for ref, text in conn.execute(query):
            found[ref] = jsonutil.loads(text)
    return found


def build_graph(conn: Connection) -> EntityGraph:
    """A graph of every final entity, at the generation read before reading them."""
    graph = EntityGraph()
    graph.generation = current_generation(conn)
    rows = conn.execution_options(yield_per=2000).execute(
        select(final_entities.c.entity_ref, final_entities.c.final_entity)
    )
    graph.add_entities((ref, jsonutil.loads(text)) for ref, text in rows)
    return graph


class GraphStore:
    """One process's graph of one catalog database."""

    #: Rebuild instead of replaying when more than this share of the nodes changed.
    REBUILD_RATIO = 0.3

    def __init__(self, db: Database) -> None:
        self.db = db
        self._graph: EntityGraph | None = None
        self._lock = ReadWriteLock()
        self._refreshing = threading.Lock()
        self.stats = RefreshStats()

    @contextmanager
    def snapshot(self, refresh: bool = True) -> Iterator[EntityGraph]:
        """The current graph, held still (shared lock) while the caller reads it."""
        if refresh:
            self.refresh()
        with self._lock.read():
            graph = self._graph
            if graph is None:
                raise ServiceUnavailableError("The entity graph is not built yet")
            yield graph

    @property
    def generation(self) -> int | None:
        return None if self._graph is None else self._graph.generation

    def refresh(self) -> None:
        """Catch up with the database; cheap when nothing changed (one SELECT)."""
        try:
            self._refresh()
        except SQLAlchemyError as exc:
            self.stats.errors += 1
            if self._graph is None:
                raise ServiceUnavailableError(
                    f"The entity graph could not be loaded from the database: {exc}"
                ) from exc
            log.warning(
                "Graph refresh failed, answering from generation %s: %s",
                self._graph.generation,
                exc,
            )

    def _refresh(self) -> None:
        self.stats.last_check_at = time.time()
        graph = self._graph
        if graph is not None:
            with self.db.engine.connect() as conn:
                if current_generation(conn) == graph.generation:
                    return
        with self._refreshing:
            graph = self._graph
            with self.db.engine.connect() as conn:
                if graph is None:
                    self._rebuild(conn)
                    return
                changes = changes_since(conn, graph.generation)
                if changes is None:
                    self._rebuild(conn)
                    return
                latest, refs = changes
                if latest == graph.generation:
                    return
                if len(refs) > max(1000, self.REBUILD_RATIO * graph.g.number_of_nodes()):
                    self._rebuild(conn)
                    return
                started = time.perf_counter()
                entities = _load(conn, list(refs))
            with self._lock.write():
                for ref in sorted(refs):
                    graph.set_entity(ref, entities.get(ref))
                graph.generation = latest
            seconds = time.perf_counter() - started
            self.stats.replays += 1
            self.stats.replayed_refs += len(refs)
            self.stats.last_replay_seconds = seconds
            self._remember("replay", seconds, len(refs), latest)

    def _rebuild(self, conn: Connection) -> None:
        started = time.perf_counter()
        graph = build_graph(conn)
        with self._lock.write():
            self._graph = graph
        # The graph is hundreds of thousands of long-lived dicts; without freezing them
        # every full garbage collection walks them all (0.3 s pauses at 50,000
        # entities). Unfreeze first so that a replaced graph can still be collected.
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        seconds = time.perf_counter() - started
        self.stats.builds += 1
        self.stats.last_build_seconds = seconds
        self._remember("build", seconds, graph.g.number_of_nodes(), graph.generation)
        log.info(
            "Built the entity graph: %d nodes, %d edges, generation %d, in %.2fs",
            graph.g.number_of_nodes(),
            graph.g.number_of_edges(),
            graph.generation,
            seconds,
        )

    def _remember(self, what: str, seconds: float, count: int, generation: int) -> None:
        self.stats.history.append(
            {"what": what, "seconds": round(seconds, 4), "refs": count, "generation": generation}
        )
        del self.stats.history[:-20]
