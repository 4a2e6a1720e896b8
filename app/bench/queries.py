"""What the benchmark asks a catalog: completeness checks and the latency mix.

Everything here speaks only the public REST API, so the same code measures our
server and Backstage's. The request list is drawn from the generated catalog with
a seeded RNG, so both servers get exactly the same requests (cursor pages aside:
cursors are server-made, so both walk the same query page by page instead).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from app.progress import Progress

from .synthetic import SyntheticCatalog

PAGE_SIZE = 50
REFS_PER_BATCH = 100
#: Seconds between completeness polls while ingesting (each poll costs the server CPU).
POLL_INTERVAL = 0.25
#: Seconds between the extra count polls that feed the ingest progress bar (terminal only).
PROGRESS_INTERVAL = 1.0
#: A query kind stops early after this long (a pathological plan must not stall the run).
MAX_SECONDS_PER_KIND = 120.0
#: The full listing is seconds at 100k entities: fewer samples of it.
MAX_LIST_ALL_REQUESTS = 10

#: Requests at most for the graph queries that compute over tens of thousands of entities.
MAX_HEAVY_GRAPH_REQUESTS = 50
#: Client-side walks at most (each one is many requests).
MAX_WALK_REQUESTS = 5
#: Refs per POST /entities/by-refs of the client-side walk.
WALK_BATCH = 500
#: A dependent of X, seen from X's relations: those depending on X (dependsOn,
#: consumesApi), the APIs X provides and the system or domain X is part of; the
#: graph API's default view, walked backwards.
WALK_RELATIONS = frozenset({"dependencyOf", "apiConsumedBy", "providesApi", "partOf"})

# (key, description) in the order the report shows them.
QUERY_KINDS = (
    (
        "http_floor",
        "GET /.backstage/health/v1/liveness: no catalog work at all, what any request "
        "costs through this client and the server's HTTP stack",
    ),
    ("by_name", "GET /entities/by-name (random entity)"),
    ("by_query", "GET /entities/by-query kind=component, 50, first page"),
    ("by_query_cursor", "GET /entities/by-query following nextCursor"),
    ("by_refs", "POST /entities/by-refs (100 random refs)"),
    ("facets", "GET /entity-facets kind, spec.type, metadata.tags"),
    ("owned_by", "GET /entities?filter=relations.ownedBy=<group>"),
    ("full_text", "GET /entities/by-query full-text on metadata.name"),
    ("list_all", "GET /entities?fields=kind,metadata.name (all)"),
    (
        "dependents_walk",
        "every dependent of the most depended-on resource, walked level by level "
        f"with POST /entities/by-refs ({WALK_BATCH} refs each): the catalog API's answer",
    ),
)
#: Kinds whose requests repeat (the same request, or a few dozen distinct ones), so
#: that a server caching answers (ours) mostly serves them from its cache.
REPEATED_KINDS = ("by_query", "facets", "full_text", "list_all", "graph_dependents")
# The graph API (ours only: Backstage has none); paths are relative to the server root.
GRAPH_KINDS = (
    (
        "graph_dependents",
        "GET /api/graph/dependents of the most depended-on resource "
        "(the same request each time: answered from the graph's cache after the first)",
    ),
    (
        "graph_dependents_uncached",
        "the same with a different limit each time (computed every time)",
    ),
    ("graph_dependencies", "GET /api/graph/dependencies of a random component"),
    (
        "graph_impact",
        "GET /api/graph/impact of the most depended-on resource (computed every time)",
    ),
    (
        "graph_path",
        "GET /api/graph/path from a random dependent component to that resource",
    ),
)


@dataclass
class Request:
    method: str
    path: str
    params: list[tuple[str, str]] = field(default_factory=list)
    body: Any = None
    #: ``path`` is relative to the server's root, not to the catalog's base URL.
    from_root: bool = False


def build_requests(catalog: SyntheticCatalog, count: int, seed: int) -> dict[str, list[Request]]:
    """The timed requests per query kind (the cursor walk is built while running)."""
    rng = random.Random(f"queries:{seed}:{catalog.entity_count}")
    refs = sorted(catalog.expected_refs)
    plan: dict[str, list[Request]] = {}

    def by_name() -> Request:
        kind, _, rest = rng.choice(refs).partition(":")
        namespace, _, name = rest.partition("/")
        return Request("GET", f"/entities/by-name/{kind}/{namespace}/{name}")

    page = [("filter", "kind=component"), ("limit", str(PAGE_SIZE))]
    page.append(("orderField", "metadata.name,asc"))
    liveness = Request("GET", "/.backstage/health/v1/liveness", from_root=True)
    plan["http_floor"] = [liveness for _ in range(count)]
    plan["by_name"] = [by_name() for _ in range(count)]
    plan["by_query"] = [Request("GET", "/entities/by-query", list(page)) for _ in range(count)]
    plan["by_refs"] = [
        Request(
            "POST",
            "/entities/by-refs",
            body={"entityRefs": rng.sample(refs, min(REFS_PER_BATCH, len(refs)))},
        )
        for _ in range(count)
    ]
    facets = [("facet", "kind"), ("facet", "spec.type"), ("facet", "metadata.tags")]
    plan["facets"] = [Request("GET", "/entity-facets", list(facets)) for _ in range(count)]
    plan["owned_by"] = [
        Request(
            "GET",
            "/entities",
            [("filter", f"relations.ownedBy={rng.choice(catalog.owner_groups)}")],
        )
        for _ in range(count)
    ]
    plan["full_text"] = [
        Request(
            "GET",
            "/entities/by-query",
            [
                ("fullTextFilterTerm", rng.choice(catalog.words)),
                ("fullTextFilterFields", "metadata.name"),
                ("orderField", "metadata.name,asc"),
                ("limit", str(PAGE_SIZE)),
            ],
        )
        for _ in range(count)
    ]
    plan["list_all"] = [
        Request("GET", "/entities", [("fields", "kind,metadata.name")])
        for _ in range(min(count, MAX_LIST_ALL_REQUESTS))
    ]
    if catalog.graph is not None:
        hub = catalog.graph.most_depended_on
        plan["dependents_walk"] = [
            Request("POST", "/entities/by-refs", body={"entityRef": hub})
            for _ in range(min(count, MAX_WALK_REQUESTS))
        ]
    return plan


def build_graph_requests(
    catalog: SyntheticCatalog, count: int, seed: int
) -> dict[str, list[Request]]:
    """The timed graph API requests per kind (paths relative to the server's root)."""
    targets = catalog.graph
    if targets is None:
        return {}
    rng = random.Random(f"graph:{seed}:{catalog.entity_count}")
    hub = targets.most_depended_on
    components = catalog.refs_by_kind.get("component", [])
    sources = targets.dependent_components or components
    heavy = min(count, MAX_HEAVY_GRAPH_REQUESTS)
    return {
        "graph_dependents": [
            Request("GET", "/api/graph/dependents", [("entityRef", hub)]) for _ in range(count)
        ],
        # The answer cache is keyed by the limit too: each of these is computed afresh.
        "graph_dependents_uncached": [
            Request("GET", "/api/graph/dependents", [("entityRef", hub), ("limit", str(1001 + i))])
            for i in range(heavy)
        ],
        "graph_dependencies": [
            Request("GET", "/api/graph/dependencies", [("entityRef", rng.choice(components))])
            for _ in range(count)
        ],
        "graph_impact": [
            Request("GET", "/api/graph/impact", [("entityRef", hub), ("limit", str(1001 + i))])
            for i in range(heavy)
        ],
        "graph_path": [
            Request("GET", "/api/graph/path", [("from", rng.choice(sources)), ("to", hub)])
            for _ in range(count)
        ],
    }


@dataclass
class Timing:
    samples_ms: list[float] = field(default_factory=list)
    errors: int = 0
    bytes: int = 0
    first_ms: float | None = None  # the untimed warm-up request (cold caches)
    found: int | None = None  # the client-side walk: dependents found
    distinct: int | None = None  # distinct requests among those timed
    # What the server says it spent (``Server-Timing: app;dur=``), where it says so.
    server_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.samples_ms)
        extra: dict[str, Any] = {}
        if self.server_ms:
            extra["server_median_ms"] = round(statistics.median(self.server_ms), 3)
        if self.first_ms is not None:
            extra["first_ms"] = round(self.first_ms, 3)
        if self.found is not None:
            extra["found"] = self.found
        if self.distinct is not None:
            extra["distinct_requests"] = self.distinct
        if not ordered:
            return {"count": 0, "errors": self.errors, **extra}
        p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
        return {
            **extra,
            "count": len(ordered),
            "errors": self.errors,
            "median_ms": round(statistics.median(ordered), 3),
            "p95_ms": round(p95, 3),
            "mean_ms": round(statistics.fmean(ordered), 3),
            "min_ms": round(ordered[0], 3),
            "max_ms": round(ordered[-1], 3),
            "mean_bytes": self.bytes // len(ordered),
        }


def _send(session: requests.Session, base: str, request: Request) -> requests.Response:
    prefix = graph_root(base) if request.from_root else base
    return session.request(
        request.method, prefix + request.path, params=request.params, json=request.body, timeout=300
    )


def _timed(session: requests.Session, base: str, request: Request, timing: Timing) -> Any:
    start = time.perf_counter()
    response = _send(session, base, request)
    body = response.content  # the whole body is part of the latency
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        timing.errors += 1
        return None
    timing.samples_ms.append(elapsed)
    timing.bytes += len(body)
    server = server_duration_ms(response.headers.get("Server-Timing", ""))
    if server is not None:
        timing.server_ms.append(server)
    return response


def server_duration_ms(header: str) -> float | None:
    """The ``app`` metric's ``dur`` of a ``Server-Timing`` header, if there is one."""
    for metric in header.split(","):
        name, _, params = metric.strip().partition(";")
        if name.strip() != "app":
            continue
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur":
                try:
                    return float(value)
                except ValueError:
                    return None
    return None


def run_queries(
    base: str,
    plan: dict[str, list[Request]],
    cursor_requests: int,
    *,
    kinds: tuple[tuple[str, str], ...] = QUERY_KINDS,
    label: str = "",
) -> dict[str, dict[str, Any]]:
    """Send the plan over one keep-alive session, sequentially; a summary per kind.

    Kinds missing from the plan are skipped. ``label`` prefixes the progress bars
    (drawn on a terminal only).
    """
    results: dict[str, dict[str, Any]] = {}
    with requests.Session() as session:
        for key, _ in kinds:
            if key == "by_query_cursor":
                with Progress(f"{label}{key}", unit="requests") as bar:
                    results[key] = _cursor_walk(session, base, cursor_requests, bar).summary()
                continue
            requests_of_kind = plan.get(key)
            if requests_of_kind is None:
                continue
            with Progress(f"{label}{key}", unit="requests") as bar:
                if key == "dependents_walk":
                    results[key] = _walks(session, base, requests_of_kind, bar).summary()
                    continue
                timing = Timing()
                if requests_of_kind:  # one untimed request: connection and caches warm
                    started = time.perf_counter()
                    _send(session, base, requests_of_kind[0])
                    timing.first_ms = (time.perf_counter() - started) * 1000
                deadline = time.monotonic() + MAX_SECONDS_PER_KIND
                sent: set[str] = set()
                for index, request in enumerate(requests_of_kind):
                    sent.add(repr((request.method, request.path, request.params, request.body)))
                    timing.distinct = len(sent)
                    _timed(session, base, request, timing)
                    bar.update(index + 1, len(requests_of_kind))
                    if time.monotonic() > deadline:
                        break
            results[key] = timing.summary()
    return results


def graph_root(base: str) -> str:
    """The server's root URL, from a catalog base URL (``.../api/catalog``)."""
    base = base.rstrip("/")
    suffix = "/api/catalog"
    return base[: -len(suffix)] if base.endswith(suffix) else base


def has_graph_api(root: str) -> bool:
    """Whether the server answers ``/api/graph`` (ours does, Backstage does not)."""
    try:
        return requests.get(root + "/api/graph/status", timeout=60).status_code == 200
    except requests.RequestException:
        return False


def walk_dependents(session: requests.Session, base: str, ref: str) -> tuple[int, int, int]:
    """Every transitive dependent of ``ref`` through the catalog API alone.

    Breadth-first, one POST /entities/by-refs per level (batches of ``WALK_BATCH``),
    following ``WALK_RELATIONS``: what a client of a catalog without a graph API
    (Backstage's) must do. Returns (dependents found, requests, bytes read).
    """
    seen = {ref.lower()}
    frontier = [ref.lower()]
    sent = size = 0
    while frontier:
        following: list[str] = []
        for start in range(0, len(frontier), WALK_BATCH):
            batch = frontier[start : start + WALK_BATCH]
            response = session.post(
                base + "/entities/by-refs",
                json={"entityRefs": batch, "fields": ["relations"]},
                timeout=300,
            )
            sent += 1
            size += len(response.content)
            response.raise_for_status()
            for item in response.json().get("items", []):
                for relation in (item or {}).get("relations") or []:
                    if relation.get("type") not in WALK_RELATIONS:
                        continue
                    target = str(relation.get("targetRef", "")).lower()
                    if target and target not in seen:
                        seen.add(target)
                        following.append(target)
        frontier = following
    return len(seen) - 1, sent, size


def _walks(session: requests.Session, base: str, plan: list[Request], bar: Progress) -> Timing:
    timing = Timing()
    deadline = time.monotonic() + MAX_SECONDS_PER_KIND
    for index, request in enumerate(plan):
        started = time.perf_counter()
        try:
            found, _, size = walk_dependents(session, base, request.body["entityRef"])
        except requests.RequestException:
            timing.errors += 1
            continue
        timing.samples_ms.append((time.perf_counter() - started) * 1000)
        timing.bytes += size
        timing.found = found
        bar.update(index + 1, len(plan))
        if time.monotonic() > deadline:
            break
    return timing


def _cursor_walk(
    session: requests.Session, base: str, count: int, bar: Progress | None = None
) -> Timing:
    """Time ``count`` nextCursor pages of the by-query listing, restarting at the end."""
    first = Request(
        "GET",
        "/entities/by-query",
        [
            ("filter", "kind=component"),
            ("limit", str(PAGE_SIZE)),
            ("orderField", "metadata.name,asc"),
        ],
    )
    timing = Timing()
    cursor: str | None = None
    deadline = time.monotonic() + MAX_SECONDS_PER_KIND
    while len(timing.samples_ms) + timing.errors < count and time.monotonic() < deadline:
        if cursor is None:
            response = _send(session, base, first)  # the first page is not a cursor page
        else:
            # A cursor carries no limit (REFERENCE, Errata): send it again, as the client
            # does; without it the page would be the default 200 items.
            request = Request(
                "GET", "/entities/by-query", [("cursor", cursor), ("limit", str(PAGE_SIZE))]
            )
            response = _timed(session, base, request, timing)
        if response is None or response.status_code != 200:
            cursor = None
            if timing.errors > count:
                break
            continue
        cursor = response.json().get("pageInfo", {}).get("nextCursor")
        if bar is not None:
            bar.update(len(timing.samples_ms) + timing.errors, count)
    return timing


# -- is the catalog complete? -------------------------------------------------------


@dataclass
class Completion:
    http_up_s: float | None = None
    entities_s: float | None = None  # all entities served
    complete_s: float | None = None  # and every relation (the ingest figure)
    verified_s: float | None = None  # when the verifying listing had been read
    entities: int = 0
    relations: int = 0
    missing_refs: int = 0
    polls: int = 0


def sentinel_refs(catalog: SyntheticCatalog) -> tuple[list[str], list[str]]:
    """Two handfuls of refs whose completeness predicts the whole catalog's.

    First the last entities written of each kind, processed last and small to serve;
    then the hubs (the shared resources, the top groups), which collect the most
    reverse relations and so are stitched last, but carry tens of thousands of them at
    100,000 entities: serialising those every poll would take CPU (and the GIL) from
    the server being timed, so they are asked for only once the small ones are done.
    """
    last: list[str] = []
    for refs in catalog.refs_by_kind.values():
        last.extend(refs[-2:])
    hubs = catalog.refs_by_kind.get("resource", [])[:3] + catalog.refs_by_kind.get("group", [])[:2]
    return sorted(set(last) - set(hubs)), sorted(set(hubs))


def _complete(
    session: requests.Session, base: str, catalog: SyntheticCatalog, refs: list[str]
) -> bool:
    """Whether every ref of ``refs`` is served with all its relations."""
    if not refs:
        return True
    response = session.post(
        base + "/entities/by-refs",
        json={"entityRefs": refs, "fields": ["kind", "relations"]},
        timeout=60,
    )
    items = response.json().get("items", []) if response.ok else []
    return len(items) == len(refs) and all(
        item is not None and len(item.get("relations") or []) == catalog.relations_of.get(ref, 0)
        for ref, item in zip(refs, items, strict=True)
    )


def wait_complete(
    base: str,
    catalog: SyntheticCatalog,
    started: float,
    *,
    alive: Callable[[], bool],
    timeout: float,
    progress: Callable[[int, int, str], None] | None = None,
) -> Completion:
    """Poll until every expected entity and relation is served; times from ``started``.

    Cheap checks gate the expensive one: sentinel entities with their exact relation
    counts (by-refs; the small ones, then the hubs, see :func:`sentinel_refs`), then the
    total (by-query), then the full listing with relations,
    whose request start time is taken as the moment the catalog was complete.

    ``progress(served, expected, note)``, when given (a progress bar on a terminal),
    is told the count of served entities; that costs one more count request per
    ``PROGRESS_INTERVAL`` while the cheap checks run.
    """
    result = Completion()
    last_written, hubs = sentinel_refs(catalog)
    deadline = started + timeout
    stage = 0
    expected = catalog.expected_entities
    counted_at = 0.0
    with requests.Session() as session:
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError("the server exited during ingestion")
            result.polls += 1
            poll_start = time.monotonic()
            try:
                count_due = poll_start - counted_at >= PROGRESS_INTERVAL
                if progress is not None and stage == 1 and count_due:
                    counted_at = poll_start
                    response = session.get(
                        base + "/entities/by-query", params={"limit": "1"}, timeout=60
                    )
                    if response.ok:
                        progress(response.json().get("totalItems", 0), expected, "served")
                if stage == 0:
                    response = session.get(
                        base + "/entities/by-query", params={"limit": "1"}, timeout=60
                    )
                    if response.status_code == 200:
                        result.http_up_s = poll_start - started
                        stage = 1
                        continue
                elif stage == 1:
                    if _complete(session, base, catalog, last_written) and _complete(
                        session, base, catalog, hubs
                    ):
                        stage = 2
                        continue
                elif stage == 2:
                    response = session.get(
                        base + "/entities/by-query", params={"limit": "1"}, timeout=60
                    )
                    total = response.json().get("totalItems", 0) if response.ok else 0
                    if progress is not None:
                        progress(total, expected, "served")
                    if total == catalog.expected_entities:
                        if result.entities_s is None:
                            result.entities_s = poll_start - started
                        stage = 3
                        continue
                else:
                    response = session.get(
                        base + "/entities",
                        params={"fields": "kind,metadata.namespace,metadata.name,relations"},
                        timeout=600,
                    )
                    if response.ok:
                        entities = response.json()
                        served = {
                            f"{e['kind']}:{e['metadata'].get('namespace', 'default')}/"
                            f"{e['metadata']['name']}".lower()
                            for e in entities
                        }
                        result.entities = len(entities)
                        result.relations = sum(len(e.get("relations") or []) for e in entities)
                        result.missing_refs = len(catalog.expected_refs - served)
                        if progress is not None:
                            progress(
                                result.entities,
                                expected,
                                f"relations {result.relations}/{catalog.expected_relations}",
                            )
                        if (
                            result.entities == catalog.expected_entities
                            and result.relations == catalog.expected_relations
                            and result.missing_refs == 0
                        ):
                            result.complete_s = poll_start - started
                            result.verified_s = time.monotonic() - started
                            return result
                    stage = 1  # not there yet: back to the cheap checks
            except requests.RequestException:
                pass
            time.sleep(max(0.0, POLL_INTERVAL - (time.monotonic() - poll_start)))
    return result
