"""The graph queries as one service: validation, snapshot, caching, export.

The HTTP API (``app.api.graph``) and the CLI working directly on a database both
go through :class:`GraphService`, so they accept the same input, enforce the same
bounds and give the same answers; ``app.client`` gives the same answers over HTTP.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from app import jsonutil
from app.errors import InputError
from app.storage.database import Database
from app.storage.tables import final_entities
from app.storage.util import chunked

from . import catalog_graph, export, queries
from .memory import graph_memory_bytes
from .model import EntityGraph
from .queries import DEFAULT_DEPENDENCY_RELATIONS, Result, View
from .store import GraphStore

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 1000
DEFAULT_EXPORT_NODE_LIMIT = 5000
DEFAULT_CATALOG_GRAPH_LIMIT = 10_000
DIRECTIONS = ("both", "out", "in")
CYCLE_RELATIONS = ("dependsOn",)


@dataclass(frozen=True)
class GraphSettings:
    """Bounds, from ``graph.*`` and ``catalogGraph.*`` in app-config."""

    export_node_limit: int = DEFAULT_EXPORT_NODE_LIMIT
    catalog_graph_max_depth: float = math.inf
    catalog_graph_limit_entities: float = DEFAULT_CATALOG_GRAPH_LIMIT

    @classmethod
    def from_config(cls, config: Any) -> GraphSettings:
        get = getattr(config, "get", None)
        if get is None:
            return cls()

        def number(path: str, default: float) -> float:
            value = get(path)
            if value is None:
                return default
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InputError(f"{path} must be a non-negative number")
            return value

        return cls(
            export_node_limit=int(number("graph.exportNodeLimit", DEFAULT_EXPORT_NODE_LIMIT)),
            catalog_graph_max_depth=number("catalogGraph.maxDepth", math.inf),
            catalog_graph_limit_entities=number(
                "catalogGraph.limitEntities", DEFAULT_CATALOG_GRAPH_LIMIT
            ),
        )


class _Cache:
    """Recent answers, keyed by generation among the rest, so a change invalidates them.

    Transitive queries on a large catalog visit tens of thousands of nodes (about
    0.1 s at 50,000 entities); dashboards and scripts repeat them while the catalog
    stands still, and then get them in a millisecond.
    """

    def __init__(self, size: int = 64) -> None:
        self._entries: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    #: Answers covering more nodes than this are not kept (a few MB at most each).
    MAX_NODES = 5000

    def get_or_compute(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = compute()
        if isinstance(value, Result) and len(value.nodes) > self.MAX_NODES:
            return value
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value


class GraphService:
    def __init__(self, db: Database, settings: GraphSettings | None = None) -> None:
        self.db = db
        self.store = GraphStore(db)
        self.settings = settings or GraphSettings()
        self._cache = _Cache()

    def warm(self) -> None:
        """Build (or catch up) the graph now; errors are left for the next query to report."""
        try:
            self.store.refresh()
        except Exception:  # noqa: BLE001 - a background convenience, never fatal
            log.debug("Graph warm-up failed", exc_info=True)

    # -- helpers --------------------------------------------------------------

    def _types(
        self, graph: EntityGraph, names: Sequence[str] | None, default: Sequence[str]
    ) -> frozenset[str]:
        return queries.relation_types(graph, names, default)

    def _limit(
        self, limit: int | None, default: int = DEFAULT_LIMIT, maximum: int = queries.MAX_ITEMS
    ) -> int:
        if limit is None:
            return default
        return queries.check_range("limit", limit, 1, maximum)

    # -- queries ----------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        with self.store.snapshot() as graph:
            return queries.resolve_ref(graph, ref)

    def related(
        self,
        ref: str,
        direction: str,
        *,
        depth: int | None = None,
        relations: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> Result:
        max_depth = queries.check_depth(depth, minimum=1)
        count = self._limit(limit)
        with self.store.snapshot() as graph:
            entity = queries.resolve_ref(graph, ref)
            types = self._types(graph, relations, DEFAULT_DEPENDENCY_RELATIONS)
            kind_filter = queries.kind_set(kinds)
            key = (direction, graph.generation, entity, types, max_depth, kind_filter, count)
            result: Result = self._cache.get_or_compute(
                key,
                lambda: queries.related(
                    graph,
                    entity,
                    direction=direction,
                    types=types,
                    max_depth=max_depth,
                    kinds=kind_filter,
                    limit=count,
                ),
            )
            return result

    def dependencies(self, ref: str, **options: Any) -> Result:
        return self.related(ref, "dependencies", **options)

    def dependents(self, ref: str, **options: Any) -> Result:
        return self.related(ref, "dependents", **options)

    def impact(
        self,
        ref: str,
        *,
        depth: int | None = None,
        relations: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> Result:
        max_depth = queries.check_depth(depth, minimum=1)
        count = self._limit(limit)
        with self.store.snapshot() as graph:
            entity = queries.resolve_ref(graph, ref)
            types = self._types(graph, relations, DEFAULT_DEPENDENCY_RELATIONS)
            kind_filter = queries.kind_set(kinds)
            key = ("impact", graph.generation, entity, types, max_depth, kind_filter, count)
            result: Result = self._cache.get_or_compute(
                key,
                lambda: queries.impact(
                    graph, entity, types=types, max_depth=max_depth, kinds=kind_filter, limit=count
                ),
            )
            return result

    def _view(
        self,
        graph: EntityGraph,
        relations: Sequence[str] | None,
        directed: bool,
        default: Sequence[str] = DEFAULT_DEPENDENCY_RELATIONS,
    ) -> View:
        if relations:
            types: frozenset[str] | None = self._types(graph, relations, ())
        elif directed:
            types = frozenset(default)
        else:
            types = None
        return View(types, directed=directed)

    def path(
        self,
        source: str,
        target: str,
        *,
        relations: Sequence[str] | None = None,
        directed: bool = True,
    ) -> Result:
        with self.store.snapshot() as graph:
            start = queries.resolve_ref(graph, source)
            end = queries.resolve_ref(graph, target)
            view = self._view(graph, relations, directed)
            return queries.shortest_path(graph, start, end, view)

    def paths(
        self,
        source: str,
        target: str,
        *,
        relations: Sequence[str] | None = None,
        directed: bool = True,
        max_length: int | None = None,
        max_paths: int | None = None,
    ) -> Result:
        length = queries.check_range(
            "maxLength", 8 if max_length is None else max_length, 1, queries.MAX_PATH_LENGTH
        )
        count = queries.check_range(
            "maxPaths", 20 if max_paths is None else max_paths, 1, queries.MAX_PATHS
        )
        with self.store.snapshot() as graph:
            start = queries.resolve_ref(graph, source)
            end = queries.resolve_ref(graph, target)
            view = self._view(graph, relations, directed)
            return queries.all_paths(graph, start, end, view, max_length=length, max_paths=count)

    def cycles(
        self,
        *,
        relations: Sequence[str] | None = None,
        limit: int | None = None,
        max_length: int | None = None,
    ) -> Result:
        count = self._limit(limit, default=100, maximum=queries.MAX_CYCLES)
        length = (
            None
            if max_length is None
            else queries.check_range("maxLength", max_length, 1, queries.MAX_PATH_LENGTH)
        )
        with self.store.snapshot() as graph:
            # Only dependsOn by default: through partOf a system "depends on" its parts,
            # so a part consuming its parent's API would count as a cycle.
            view = self._view(graph, relations, True, default=CYCLE_RELATIONS)
            key = ("cycles", graph.generation, view.types, count, length)
            result: Result = self._cache.get_or_compute(
                key, lambda: queries.cycles(graph, view, limit=count, max_length=length)
            )
            return result

    def ownership(self, ref: str) -> Result:
        with self.store.snapshot() as graph:
            return queries.ownership(graph, queries.resolve_ref(graph, ref))

    def owned(
        self,
        ref: str,
        *,
        transitive: bool = False,
        kinds: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> Result:
        count = self._limit(limit)
        with self.store.snapshot() as graph:
            group = queries.resolve_ref(graph, ref)
            return queries.owned(
                graph, group, transitive=transitive, kinds=queries.kind_set(kinds), limit=count
            )

    def orphans(self, *, kinds: Sequence[str] | None = None) -> Result:
        with self.store.snapshot() as graph:
            return queries.orphans(graph, kinds=queries.kind_set(kinds))

    def most_depended_on(
        self,
        *,
        relations: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        limit: int | None = None,
        sort: str | None = None,
    ) -> Result:
        count = self._limit(limit, default=10, maximum=100)
        sort = sort or "dependents"
        if sort not in ("dependents", "pagerank"):
            raise InputError(f"sort must be one of dependents, pagerank, got {sort!r}")
        with self.store.snapshot() as graph:
            view = self._view(graph, relations, True)
            kind_filter = queries.kind_set(kinds)
            ranks = self._cache.get_or_compute(
                ("pagerank", graph.generation, view.types), lambda: queries.pagerank(graph, view)
            )
            key = ("central", graph.generation, view.types, kind_filter, count, sort)
            result: Result = self._cache.get_or_compute(
                key,
                lambda: queries.most_depended_on(
                    graph, view, limit=count, kinds=kind_filter, sort=sort, ranks=ranks
                ),
            )
            return result

    def subgraph(
        self,
        roots: Sequence[str] | None,
        *,
        relations: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        depth: int | None = None,
        direction: str = "both",
    ) -> Result:
        if direction not in DIRECTIONS:
            raise InputError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        max_depth = queries.check_depth(1 if depth is None else depth)
        assert max_depth is not None
        with self.store.snapshot() as graph:
            resolved = [queries.resolve_ref(graph, root) for root in roots or ()]
            types = self._types(graph, relations, ()) if relations else None
            return queries.subgraph(
                graph,
                resolved,
                types=types,
                kinds=queries.kind_set(kinds),
                max_depth=max_depth,
                direction=direction,
                max_nodes=self.settings.export_node_limit,
            )

    def render(self, result: Result, fmt: str) -> str | bytes:
        """The result's subgraph in an export format (``json`` is node-link)."""
        if fmt not in export.FORMATS:
            raise InputError(f"Unknown format {fmt!r}; use one of {', '.join(export.FORMATS)}")
        export.check_size(result.nodes, self.settings.export_node_limit)
        with self.store.snapshot(refresh=False) as graph:
            nodes = [ref for ref in result.nodes if ref in graph.g]
            edges = [e for e in result.edges if e[0] in graph.g and e[1] in graph.g]
            return export.render(graph, nodes, edges, fmt)

    # -- Backstage catalog-graph --------------------------------------------------

    def catalog_graph(
        self,
        root_refs: Sequence[str],
        *,
        relations: Sequence[str] | None,
        kinds: Sequence[str] | None,
        max_depth: float | None,
    ) -> tuple[list[str], bool]:
        """The plugin's answer: final entity JSON texts in walk order, and ``cutoff``."""
        depth = self.settings.catalog_graph_max_depth
        if max_depth is not None:
            depth = min(depth, max_depth)
        with self.store.snapshot() as graph:
            refs, cutoff = catalog_graph.walk(
                graph,
                root_refs,
                relations=relations,
                kinds=kinds,
                max_depth=depth,
                limit_entities=self.settings.catalog_graph_limit_entities,
            )
        texts = self._entity_texts(refs)
        return [texts[ref] for ref in refs if ref in texts], cutoff

    def _entity_texts(self, refs: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self.db.engine.connect() as conn:
            for batch in chunked(refs):
                query = select(final_entities.c.entity_ref, final_entities.c.final_entity).where(
                    final_entities.c.entity_ref.in_(batch)
                )
                found.update({ref: text for ref, text in conn.execute(query)})
        return found

    # -- status -------------------------------------------------------------------

    def status(self, *, memory: bool = False) -> dict[str, Any]:
        with self.store.snapshot() as graph:
            body: dict[str, Any] = {
                "generation": graph.generation,
                "nodes": graph.g.number_of_nodes(),
                "entities": graph.entity_count(),
                "edges": graph.g.number_of_edges(),
                "edgesByType": {k: v for k, v in sorted(graph.type_counts.items()) if v},
            }
            if memory:
                body["memoryBytes"] = graph_memory_bytes(graph)
        stats = self.store.stats
        body["refresh"] = {
            "builds": stats.builds,
            "replays": stats.replays,
            "replayedRefs": stats.replayed_refs,
            "lastBuildSeconds": round(stats.last_build_seconds, 4),
            "lastReplaySeconds": round(stats.last_replay_seconds, 4),
            "errors": stats.errors,
        }
        return body


def dumps(body: Any) -> str:
    return jsonutil.dumps(body)
