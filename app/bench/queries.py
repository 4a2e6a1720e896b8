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

from .synthetic import SyntheticCatalog

PAGE_SIZE = 50
REFS_PER_BATCH = 100
#: Seconds between completeness polls while ingesting (each poll costs the server CPU).
POLL_INTERVAL = 0.25
#: A query kind stops early after this long (a pathological plan must not stall the run).
MAX_SECONDS_PER_KIND = 120.0
#: The full listing is seconds at 100k entities: fewer samples of it.
MAX_LIST_ALL_REQUESTS = 10

# (key, description) in the order the report shows them.
QUERY_KINDS = (
    ("by_name", "GET /entities/by-name (random entity)"),
    ("by_query", "GET /entities/by-query kind=component, 50, first page"),
    ("by_query_cursor", "GET /entities/by-query following nextCursor"),
    ("by_refs", "POST /entities/by-refs (100 random refs)"),
    ("facets", "GET /entity-facets kind, spec.type, metadata.tags"),
    ("owned_by", "GET /entities?filter=relations.ownedBy=<group>"),
    ("full_text", "GET /entities/by-query full-text on metadata.name"),
    ("list_all", "GET /entities?fields=kind,metadata.name (all)"),
)


@dataclass
class Request:
    method: str
    path: str
    params: list[tuple[str, str]] = field(default_factory=list)
    body: Any = None


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
    return plan


@dataclass
class Timing:
    samples_ms: list[float] = field(default_factory=list)
    errors: int = 0
    bytes: int = 0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.samples_ms)
        if not ordered:
            return {"count": 0, "errors": self.errors}
        p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
        return {
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
    return session.request(
        request.method, base + request.path, params=request.params, json=request.body, timeout=300
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
    return response


def run_queries(
    base: str, plan: dict[str, list[Request]], cursor_requests: int
) -> dict[str, dict[str, Any]]:
    """Send the plan over one keep-alive session, sequentially; a summary per kind."""
    results: dict[str, dict[str, Any]] = {}
    with requests.Session() as session:
        for key, _ in QUERY_KINDS:
            if key == "by_query_cursor":
                results[key] = _cursor_walk(session, base, cursor_requests).summary()
                continue
            requests_of_kind = plan[key]
            if requests_of_kind:  # one untimed request: connection and caches warm
                _send(session, base, requests_of_kind[0])
            timing = Timing()
            deadline = time.monotonic() + MAX_SECONDS_PER_KIND
            for request in requests_of_kind:
                _timed(session, base, request, timing)
                if time.monotonic() > deadline:
                    break
            results[key] = timing.summary()
    return results


def _cursor_walk(session: requests.Session, base: str, count: int) -> Timing:
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
            request = Request("GET", "/entities/by-query", [("cursor", cursor)])
            response = _timed(session, base, request, timing)
        if response is None or response.status_code != 200:
            cursor = None
            if timing.errors > count:
                break
            continue
        cursor = response.json().get("pageInfo", {}).get("nextCursor")
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


def sentinel_refs(catalog: SyntheticCatalog) -> list[str]:
    """A handful of refs whose completeness predicts the whole catalog's.

    The last entities written of each kind are processed last; the shared resources
    and the top groups collect the most reverse relations, so they are stitched last.
    Few on purpose: every poll takes CPU (and the GIL) from the server being timed.
    """
    chosen: list[str] = []
    for refs in catalog.refs_by_kind.values():
        chosen.extend(refs[-2:])
    chosen.extend(catalog.refs_by_kind.get("resource", [])[:3])
    chosen.extend(catalog.refs_by_kind.get("group", [])[:2])
    return sorted(set(chosen))


def wait_complete(
    base: str,
    catalog: SyntheticCatalog,
    started: float,
    *,
    alive: Callable[[], bool],
    timeout: float,
) -> Completion:
    """Poll until every expected entity and relation is served; times from ``started``.

    Cheap checks gate the expensive one: sentinel entities with their exact relation
    counts (by-refs), then the total (by-query), then the full listing with relations,
    whose request start time is taken as the moment the catalog was complete.
    """
    result = Completion()
    sentinels = sentinel_refs(catalog)
    deadline = started + timeout
    stage = 0
    with requests.Session() as session:
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError("the server exited during ingestion")
            result.polls += 1
            poll_start = time.monotonic()
            try:
                if stage == 0:
                    response = session.get(
                        base + "/entities/by-query", params={"limit": "1"}, timeout=60
                    )
                    if response.status_code == 200:
                        result.http_up_s = poll_start - started
                        stage = 1
                        continue
                elif stage == 1:
                    response = session.post(
                        base + "/entities/by-refs",
                        json={"entityRefs": sentinels, "fields": ["kind", "relations"]},
                        timeout=60,
                    )
                    items = response.json().get("items", []) if response.ok else []
                    if len(items) == len(sentinels) and all(
                        item is not None
                        and len(item.get("relations") or []) == catalog.relations_of.get(ref, 0)
                        for ref, item in zip(sentinels, items, strict=True)
                    ):
                        stage = 2
                        continue
                elif stage == 2:
                    response = session.get(
                        base + "/entities/by-query", params={"limit": "1"}, timeout=60
                    )
                    total = response.json().get("totalItems", 0) if response.ok else 0
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
