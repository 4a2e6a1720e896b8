"""Graph queries: pure functions of an :class:`~app.graph.model.EntityGraph`.

Every query returns plain data (copied out of the graph, so it can be serialised
after the graph's lock is released) plus the nodes and edges it covers, which is
what the exporters draw.

**Dependency direction.** "X depends on Y" is read from relations so that failure
propagates from Y to X: ``X dependsOn Y`` and ``X consumesApi Y`` point from X to
Y as stored, while ``X providesApi Y`` (the API depends on its provider) and
``X partOf Y`` (the system depends on its parts) count the other way round. Any
other relation type counts as written (``X ownedBy G``: X "depends on" G). A
reverse name selects its pair (``dependencyOf`` is ``dependsOn``).
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from app import jsonutil
from app.errors import InputError, NotFoundError
from app.model.refs import MalformedEntityRefError, parse_entity_ref

from .model import EntityGraph, forward_type

DEFAULT_DEPENDENCY_RELATIONS = ("dependsOn", "consumesApi", "providesApi", "partOf")
#: Forward relation types whose dependency runs from the edge's target to its source.
AGAINST_EDGE = frozenset({"providesApi", "partOf"})
#: Kinds that have no owner by design; everything else should have one.
UNOWNED_KINDS = frozenset({"user", "group", "location"})

MAX_DEPTH = 100
MAX_PATH_LENGTH = 20
MAX_PATHS = 1000
MAX_CYCLES = 1000
MAX_ITEMS = 100_000
#: Steps an all-paths search may take before it stops and says so.
PATH_SEARCH_BUDGET = 2_000_000
#: Seconds a cycle search may take before it stops and says so.
CYCLE_SEARCH_SECONDS = 10.0

Edge = tuple[str, str, str]  # (source, target, forward type), as stored


@dataclass
class Result:
    """A query's answer (``body``) and the part of the graph it covers."""

    body: dict[str, Any]
    nodes: list[str] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    _text: str | None = field(default=None, repr=False, compare=False)

    def json(self) -> str:
        """The body as JSON text, encoded once (cached results are served many times)."""
        if self._text is None:
            self._text = jsonutil.dumps(self.body)
        return self._text


# -- input --------------------------------------------------------------------------


def resolve_ref(graph: EntityGraph, text: str) -> str:
    """The canonical ref of an existing entity, from a ref written the way users do.

    ``payments-gateway``, ``component:payments-gateway`` and
    ``Component:default/Payments-Gateway`` all work; without a kind, every kind in
    the catalog is tried and more than one match is an error.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError("Entity reference must not be empty")
    try:
        parsed = parse_entity_ref(text.strip(), default_kind="*")
    except (MalformedEntityRefError, ValueError) as exc:
        raise InputError(f"Malformed entity reference {text!r}: {exc}") from exc
    namespace, name = parsed.namespace.lower(), parsed.name.lower()
    if parsed.kind != "*":
        ref = f"{parsed.kind.lower()}:{namespace}/{name}"
        if graph.has_entity(ref):
            return ref
        if ref in graph.g:
            count = graph.g.degree(ref)
            raise NotFoundError(
                f"No entity {ref} in the catalog ({count} relation(s) point at it, "
                "but it does not exist)"
            )
        raise NotFoundError(f"No entity {ref} in the catalog")
    candidates = sorted(
        ref
        for ref in (f"{kind}:{namespace}/{name}" for kind in graph.kinds())
        if graph.has_entity(ref)
    )
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise NotFoundError(f"No entity named {text!r} in namespace {namespace!r} of the catalog")
    raise InputError(
        f"Entity reference {text!r} is ambiguous, it matches {', '.join(candidates)}; "
        "add the kind, e.g. component:" + name
    )


def relation_types(
    graph: EntityGraph, names: Sequence[str] | None, default: Iterable[str]
) -> frozenset[str]:
    """Selected relation types as forward names; unknown names are a 400."""
    chosen = list(names) if names else list(default)
    known = graph.known_types()
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise InputError(
            f"Unknown relation type {unknown[0]!r}; known types are {', '.join(sorted(known))}"
        )
    return frozenset(forward_type(name) for name in chosen)


def check_depth(depth: int | None, minimum: int = 0) -> int | None:
    if depth is None:
        return None
    if depth < minimum or depth > MAX_DEPTH:
        raise InputError(f"depth must be between {minimum} and {MAX_DEPTH}, got {depth}")
    return depth


def check_range(name: str, value: int, low: int, high: int) -> int:
    if value < low or value > high:
        raise InputError(f"{name} must be between {low} and {high}, got {value}")
    return value


def kind_set(kinds: Sequence[str] | None) -> frozenset[str] | None:
    return frozenset(kind.lower() for kind in kinds) if kinds else None


# -- output helpers ---------------------------------------------------------------


def summary(graph: EntityGraph, ref: str) -> dict[str, Any]:
    """A node as the API shows it: its ref and the attributes the graph keeps."""
    data = graph.g.nodes[ref]
    return {"entityRef": ref, **data}


def edge_json(edge: Edge) -> dict[str, str]:
    return {"source": edge[0], "type": edge[2], "target": edge[1]}


# -- traversal ---------------------------------------------------------------------


class View:
    """Which stored edges count as "depends on" and in which direction."""

    def __init__(self, types: frozenset[str] | None, directed: bool = True):
        self.types = types
        self.directed = directed
        if types is None:
            self.along: frozenset[str] | None = None
            self.against: frozenset[str] = AGAINST_EDGE
        else:
            self.along = types - AGAINST_EDGE
            self.against = types & AGAINST_EDGE

    def counts(self, key: str) -> bool:
        return self.types is None or key in self.types

    def steps(self, graph: EntityGraph, node: str, reverse: bool) -> Iterator[tuple[str, Edge]]:
        """Neighbours one step along the view (``reverse``: towards dependents)."""
        g = graph.g
        succ, pred = g._succ, g._pred
        if not self.directed:
            for target, keyed in succ[node].items():
                for key in keyed:
                    if self.counts(key):
                        yield target, (node, target, key)
            for source, keyed in pred[node].items():
                for key in keyed:
                    if self.counts(key):
                        yield source, (source, node, key)
            return
        along = pred if reverse else succ
        against = succ if reverse else pred
        for other, keyed in along[node].items():
            for key in keyed:
                if key not in AGAINST_EDGE and (self.along is None or key in self.along):
                    yield other, ((other, node, key) if reverse else (node, other, key))
        if self.against:
            for other, keyed in against[node].items():
                for key in keyed:
                    if key in self.against:
                        yield other, ((node, other, key) if reverse else (other, node, key))


def reach(
    graph: EntityGraph,
    start: str,
    view: View,
    *,
    reverse: bool,
    max_depth: int | None,
) -> dict[str, tuple[int, str, Edge]]:
    """Breadth-first: every node reached → (depth, parent, the edge that reached it)."""
    g = graph.g
    succ, pred = g._succ, g._pred
    found: dict[str, tuple[int, str, Edge]] = {}
    seen = {start}
    frontier = [start]
    depth = 0
    # The common directed case, inlined: this loop is what the 20 ms budget is spent on.
    along_adj = pred if reverse else succ
    against_adj = succ if reverse else pred
    along_types = view.along
    against_types = view.against if view.directed else frozenset()
    while frontier and (max_depth is None or depth < max_depth):
        depth += 1
        following: list[str] = []
        for node in frontier:
            if not view.directed:
                for other, edge in view.steps(graph, node, reverse):
                    if other not in seen:
                        seen.add(other)
                        found[other] = (depth, node, edge)
                        following.append(other)
                continue
            for other, keyed in along_adj[node].items():
                if other in seen:
                    continue
                for key in keyed:
                    if key not in AGAINST_EDGE and (along_types is None or key in along_types):
                        seen.add(other)
                        edge = (other, node, key) if reverse else (node, other, key)
                        found[other] = (depth, node, edge)
                        following.append(other)
                        break
            if against_types:
                for other, keyed in against_adj[node].items():
                    if other in seen:
                        continue
                    for key in keyed:
                        if key in against_types:
                            seen.add(other)
                            edge = (node, other, key) if reverse else (other, node, key)
                            found[other] = (depth, node, edge)
                            following.append(other)
                            break
        frontier = following
    return found


def _items(
    graph: EntityGraph,
    found: dict[str, tuple[int, str, Edge]],
    kinds: frozenset[str] | None,
) -> list[tuple[int, str]]:
    """(depth, ref) of the nodes found, of ``kinds``; in no particular order."""
    if kinds is None:
        return [(depth, ref) for ref, (depth, _, _) in found.items()]
    nodes = graph.g._node
    return [
        (depth, ref) for ref, (depth, _, _) in found.items() if nodes[ref]["kind"].lower() in kinds
    ]


def related(
    graph: EntityGraph,
    ref: str,
    *,
    direction: str,
    types: frozenset[str],
    max_depth: int | None,
    kinds: frozenset[str] | None,
    limit: int,
) -> Result:
    """Transitive dependencies (``direction='dependencies'``) or dependents of ``ref``."""
    view = View(types)
    found = reach(graph, ref, view, reverse=direction == "dependents", max_depth=max_depth)
    return _related_result(graph, ref, view, found, direction, max_depth, kinds, limit)


def _related_result(
    graph: EntityGraph,
    ref: str,
    view: View,
    found: dict[str, tuple[int, str, Edge]],
    direction: str,
    max_depth: int | None,
    kinds: frozenset[str] | None,
    limit: int,
) -> Result:
    ordered = _items(graph, found, kinds)
    # Only the listed part is sorted: tens of thousands of dependents are common.
    shown = heapq.nsmallest(limit, ordered)
    items = []
    for depth, item in shown:
        _, _, edge = found[item]
        items.append({**summary(graph, item), "depth": depth, "via": edge_json(edge)})
    body = {
        "entity": summary(graph, ref),
        "direction": direction,
        "relations": sorted(view.types or ()),
        "maxDepth": max_depth,
        "totalItems": len(ordered),
        "truncated": len(ordered) > len(shown),
        "items": items,
    }
    nodes = [ref, *(item for _, item in shown)]
    return Result(body, nodes, _edges_among(graph, nodes, view))


def _edges_among(graph: EntityGraph, nodes: Iterable[str], view: View) -> list[Edge]:
    members = set(nodes)
    edges = []
    for node in members:
        for target, keyed in graph.g._succ[node].items():
            if target in members:
                for key in keyed:
                    if view.counts(key):
                        edges.append((node, target, key))
    edges.sort()
    return edges


def owner_of(graph: EntityGraph, ref: str) -> str | None:
    owners = sorted(target for target, keyed in graph.g._succ[ref].items() if "ownedBy" in keyed)
    return owners[0] if owners else None


def system_of(graph: EntityGraph, ref: str) -> str | None:
    if graph.g.nodes[ref]["kind"].lower() == "system":
        return ref
    systems = sorted(
        target
        for target, keyed in graph.g._succ[ref].items()
        if "partOf" in keyed and target.startswith("system:")
    )
    return systems[0] if systems else None


def contact(graph: EntityGraph, ref: str) -> dict[str, str] | None:
    data = graph.g.nodes[ref]
    found = {key: data[key] for key in ("email", "displayName") if key in data}
    return found or None


def impact(
    graph: EntityGraph,
    ref: str,
    *,
    types: frozenset[str],
    max_depth: int | None,
    kinds: frozenset[str] | None,
    limit: int,
) -> Result:
    """Everything that depends on ``ref``, directly or not, grouped by owner and system."""
    view = View(types)
    found = reach(graph, ref, view, reverse=True, max_depth=max_depth)
    result = _related_result(graph, ref, view, found, "dependents", max_depth, kinds, limit)
    refs = [item for _, item in sorted(_items(graph, found, kinds))]
    by_owner: dict[str | None, list[str]] = {}
    by_system: dict[str | None, list[str]] = {}
    for item in refs:
        by_owner.setdefault(owner_of(graph, item), []).append(item)
        by_system.setdefault(system_of(graph, item), []).append(item)

    def owner_group(owner: str | None, members: list[str]) -> dict[str, Any]:
        entry: dict[str, Any] = {"owner": None if owner is None else summary(graph, owner)}
        entry["contact"] = None if owner is None else contact(graph, owner)
        entry["count"] = len(members)
        entry["entityRefs"] = members
        return entry

    body = dict(result.body)
    body["byOwner"] = [
        owner_group(owner, members)
        for owner, members in sorted(by_owner.items(), key=lambda kv: (-len(kv[1]), kv[0] or ""))
    ]
    body["bySystem"] = [
        {"system": system, "count": len(members), "entityRefs": members}
        for system, members in sorted(by_system.items(), key=lambda kv: (-len(kv[1]), kv[0] or ""))
    ]
    return Result(body, result.nodes, result.edges)


# -- paths ---------------------------------------------------------------------------


def _distances_to(graph: EntityGraph, target: str, view: View, limit: int) -> dict[str, int]:
    """Hops from every node to ``target`` along the view (searching backwards), up to ``limit``."""
    distances = {target: 0}
    frontier = [target]
    for depth in range(1, limit + 1):
        following = []
        for node in frontier:
            for other, _ in view.steps(graph, node, reverse=True):
                if other not in distances:
                    distances[other] = depth
                    following.append(other)
        if not following:
            break
        frontier = following
    return distances


def _path_body(graph: EntityGraph, path: list[str], edges: list[Edge]) -> dict[str, Any]:
    return {
        "length": len(edges),
        "entities": [summary(graph, ref) for ref in path],
        "edges": [edge_json(edge) for edge in edges],
    }


def shortest_path(graph: EntityGraph, source: str, target: str, view: View) -> Result:
    """One shortest path along the view; 404 when there is none."""
    parents: dict[str, tuple[str, Edge] | None] = {source: None}
    queue = deque([source])
    while queue and target not in parents:
        node = queue.popleft()
        for other, edge in view.steps(graph, node, reverse=False):
            if other not in parents:
                parents[other] = (node, edge)
                queue.append(other)
    if target not in parents:
        raise NotFoundError(_no_path_message(source, target, view))
    path, edges = [target], []
    step = parents[target]
    while step is not None:
        node, edge = step
        path.append(node)
        edges.append(edge)
        step = parents[node]
    path.reverse()
    edges.reverse()
    body = {"from": source, "to": target, **_view_json(view), **_path_body(graph, path, edges)}
    return Result(body, path, edges)


def _view_json(view: View) -> dict[str, Any]:
    return {
        "relations": sorted(view.types) if view.types is not None else None,
        "directed": view.directed,
    }


def _no_path_message(source: str, target: str, view: View, max_length: int | None = None) -> str:
    how = "dependency path" if view.directed else "path"
    within = f" of at most {max_length} steps" if max_length is not None else ""
    types = ", ".join(sorted(view.types)) if view.types is not None else "any relation"
    return f"No {how}{within} from {source} to {target} over {types}"


def all_paths(
    graph: EntityGraph,
    source: str,
    target: str,
    view: View,
    *,
    max_length: int,
    max_paths: int,
) -> Result:
    """Simple paths, shortest first, pruned by the distance to ``target``; bounded work."""
    distances = _distances_to(graph, target, view, max_length)
    if source not in distances:
        raise NotFoundError(_no_path_message(source, target, view, max_length))
    found: list[tuple[list[str], list[Edge]]] = []
    budget = PATH_SEARCH_BUDGET
    exhausted = False
    path = [source]
    edges: list[Edge] = []
    on_path = {source}

    def search(node: str) -> bool:
        nonlocal budget
        for other, edge in view.steps(graph, node, reverse=False):
            budget -= 1
            if budget <= 0:
                return False
            if other in on_path:
                continue
            remaining = max_length - len(edges) - 1
            if distances.get(other, max_length + 1) > remaining:
                continue
            if other == target:
                found.append(([*path, other], [*edges, edge]))
                if len(found) >= max_paths:
                    return False
                continue
            path.append(other)
            edges.append(edge)
            on_path.add(other)
            keep_going = search(other)
            on_path.discard(other)
            edges.pop()
            path.pop()
            if not keep_going:
                return False
        return True

    if source == target:
        found.append(([source], []))
    else:
        exhausted = search(source)
    found.sort(key=lambda item: (len(item[1]), item[0]))
    paths = [_path_body(graph, nodes, path_edges) for nodes, path_edges in found]
    body = {
        "from": source,
        "to": target,
        **_view_json(view),
        "maxLength": max_length,
        "totalPaths": len(paths),
        "truncated": not exhausted and source != target,
        "paths": paths,
    }
    nodes = sorted({ref for nodes_, _ in found for ref in nodes_})
    all_edges = sorted({edge for _, path_edges in found for edge in path_edges})
    return Result(body, nodes, all_edges)


# -- cycles -------------------------------------------------------------------------


def dependency_digraph(graph: EntityGraph, view: View) -> nx.DiGraph:
    """The view as a plain DiGraph, edges pointing from dependent to dependency."""
    digraph = nx.DiGraph()
    for source, target, key in graph.g.edges(keys=True):
        if not view.counts(key):
            continue
        if key in AGAINST_EDGE:
            digraph.add_edge(target, source, type=key, stored=(source, target, key))
        else:
            digraph.add_edge(source, target, type=key, stored=(source, target, key))
    return digraph


def _rotate(cycle: list[str]) -> list[str]:
    start = cycle.index(min(cycle))
    return cycle[start:] + cycle[:start]


def cycles(graph: EntityGraph, view: View, *, limit: int, max_length: int | None) -> Result:
    """Dependency cycles (each from its smallest ref, in dependency order), bounded."""
    digraph = dependency_digraph(graph, view)
    cyclic: set[str] = set()
    for component in nx.strongly_connected_components(digraph):
        if len(component) > 1:
            cyclic |= component
    cyclic |= {node for node in digraph.nodes if digraph.has_edge(node, node)}
    core = digraph.subgraph(cyclic)
    found: list[list[str]] = []
    truncated = False
    deadline = time.monotonic() + CYCLE_SEARCH_SECONDS
    for cycle in nx.simple_cycles(core, length_bound=max_length):
        if len(found) >= limit or time.monotonic() > deadline:
            truncated = True
            break
        found.append(_rotate(list(cycle)))
    found.sort(key=lambda c: (len(c), c))
    edges: set[Edge] = set()
    for cycle in found:
        for index, node in enumerate(cycle):
            following = cycle[(index + 1) % len(cycle)]
            edges.add(digraph.edges[node, following]["stored"])
    body = {
        **_view_json(view),
        "maxLength": max_length,
        "totalCycles": len(found),
        "truncated": truncated,
        "cycles": found,
    }
    nodes = sorted({ref for cycle in found for ref in cycle})
    return Result(body, nodes, sorted(edges))


# -- ownership ----------------------------------------------------------------------


def _walk_up(graph: EntityGraph, group: str) -> list[str]:
    """``childOf`` from a group to its root; stops at a loop or after MAX_DEPTH hops."""
    chain: list[str] = []
    seen = {group}
    node = group
    for _ in range(MAX_DEPTH):
        parents = sorted(
            target for target, keyed in graph.g._succ[node].items() if "childOf" in keyed
        )
        if not parents or parents[0] in seen:
            break
        node = parents[0]
        seen.add(node)
        chain.append(node)
    return chain


def _members(graph: EntityGraph, group: str) -> list[str]:
    return sorted(source for source, keyed in graph.g._pred[group].items() if "memberOf" in keyed)


def ownership(graph: EntityGraph, ref: str) -> Result:
    """The owner of ``ref``, the owner's parent groups up to the root, and its members."""
    owners = sorted(target for target, keyed in graph.g._succ[ref].items() if "ownedBy" in keyed)
    body: dict[str, Any] = {"entity": summary(graph, ref), "owner": None}
    nodes = [ref]
    edges: list[Edge] = []
    if not owners:
        body.update({"ownerExists": False, "parents": [], "members": [], "contact": None})
        return Result(body, nodes, edges)
    owner = owners[0]
    exists = graph.has_entity(owner)
    parents = _walk_up(graph, owner) if exists else []
    members = _members(graph, owner) if exists else []
    body.update(
        {
            "owner": summary(graph, owner),
            "ownerExists": exists,
            "contact": contact(graph, owner) if exists else None,
            "parents": [
                {**summary(graph, parent), "contact": contact(graph, parent)} for parent in parents
            ],
            "members": [summary(graph, member) for member in members],
        }
    )
    if len(owners) > 1:
        body["otherOwners"] = owners[1:]
    nodes += [owner, *parents, *members]
    edges.append((ref, owner, "ownedBy"))
    chain = [owner, *parents]
    edges += [(child, parent, "childOf") for child, parent in zip(chain, chain[1:], strict=False)]
    edges += [(member, owner, "memberOf") for member in members]
    return Result(body, nodes, sorted(set(edges)))


def owned(
    graph: EntityGraph, group: str, *, transitive: bool, kinds: frozenset[str] | None, limit: int
) -> Result:
    """What ``group`` owns; with ``transitive``, also what its child groups own."""
    groups = [group]
    depth_of = {group: 0}
    edges: list[Edge] = []
    if transitive:
        queue = deque([group])
        while queue:
            node = queue.popleft()
            if depth_of[node] >= MAX_DEPTH:
                continue
            for child, keyed in sorted(graph.g._pred[node].items()):
                if "childOf" in keyed and child not in depth_of:
                    depth_of[child] = depth_of[node] + 1
                    groups.append(child)
                    edges.append((child, node, "childOf"))
                    queue.append(child)
    rows: list[tuple[int, str, str]] = []
    for owner in groups:
        for item, keyed in graph.g._pred[owner].items():
            if "ownedBy" in keyed and (
                kinds is None or graph.g.nodes[item]["kind"].lower() in kinds
            ):
                rows.append((depth_of[owner], item, owner))
    rows.sort()
    shown = rows[:limit]
    body = {
        "group": summary(graph, group),
        "transitive": transitive,
        "groups": [{**summary(graph, g), "depth": depth_of[g]} for g in groups],
        "totalItems": len(rows),
        "truncated": len(rows) > len(shown),
        "items": [
            {**summary(graph, item), "owner": owner, "depth": depth} for depth, item, owner in shown
        ],
    }
    edges += [(item, owner, "ownedBy") for _, item, owner in shown]
    nodes = list(dict.fromkeys([*groups, *(item for _, item, _ in shown)]))
    return Result(body, nodes, sorted(edges))


def orphans(graph: EntityGraph, *, kinds: frozenset[str] | None) -> Result:
    """Entities with no owner, and entities whose owner does not exist."""
    unowned: list[str] = []
    dangling: list[tuple[str, str]] = []
    for ref, data in graph.g.nodes(data=True):
        if data.get("missing"):
            continue
        kind = data["kind"].lower()
        if kind in UNOWNED_KINDS or (kinds is not None and kind not in kinds):
            continue
        owners = [t for t, keyed in graph.g._succ[ref].items() if "ownedBy" in keyed]
        if not owners:
            unowned.append(ref)
        for owner in owners:
            if not graph.has_entity(owner):
                dangling.append((ref, owner))
    unowned.sort()
    dangling.sort()
    body = {
        "unowned": [summary(graph, ref) for ref in unowned],
        "ownerMissing": [{**summary(graph, ref), "owner": owner} for ref, owner in dangling],
    }
    nodes = sorted({*unowned, *(r for r, _ in dangling), *(o for _, o in dangling)})
    edges = [(ref, owner, "ownedBy") for ref, owner in dangling]
    return Result(body, nodes, edges)


# -- centrality ----------------------------------------------------------------------


def pagerank(graph: EntityGraph, view: View, damping: float = 0.85) -> dict[str, float]:
    """PageRank over "depends on" edges: rank flows to what many (important) things need.

    Pure Python power iteration (networkx's own needs SciPy); about a second at 50,000
    entities, so callers cache it per generation.
    """
    nodes = list(graph.g.nodes)
    index = {ref: i for i, ref in enumerate(nodes)}
    count = len(nodes)
    if count == 0:
        return {}
    out: list[list[int]] = [[] for _ in range(count)]
    for source, target, key in graph.g.edges(keys=True):
        if not view.counts(key):
            continue
        if key in AGAINST_EDGE:
            source, target = target, source
        out[index[source]].append(index[target])
    rank = [1.0 / count] * count
    for _ in range(100):
        incoming = [0.0] * count
        dangling = 0.0
        for i, targets in enumerate(out):
            if targets:
                share = rank[i] / len(targets)
                for j in targets:
                    incoming[j] += share
            else:
                dangling += rank[i]
        base = (1.0 - damping) / count + damping * dangling / count
        new = [base + damping * value for value in incoming]
        change = sum(abs(a - b) for a, b in zip(new, rank, strict=True))
        rank = new
        if change < count * 1e-10:
            break
    return {ref: rank[i] for ref, i in index.items()}


def most_depended_on(
    graph: EntityGraph,
    view: View,
    *,
    limit: int,
    kinds: frozenset[str] | None,
    sort: str,
    ranks: dict[str, float],
) -> Result:
    """Entities by direct dependents (in-degree) or PageRank, with transitive counts."""
    rows: list[tuple[str, int, float]] = []
    for ref, data in graph.g.nodes(data=True):
        if kinds is not None and data["kind"].lower() not in kinds:
            continue
        direct = {other for other, _ in view.steps(graph, ref, reverse=True)}
        direct.discard(ref)
        if direct or sort == "pagerank":
            rows.append((ref, len(direct), ranks.get(ref, 0.0)))
    if sort == "pagerank":
        rows.sort(key=lambda row: (-row[2], -row[1], row[0]))
    else:
        rows.sort(key=lambda row: (-row[1], -row[2], row[0]))
    items = []
    for ref, count, rank in rows[:limit]:
        dependents = reach(graph, ref, view, reverse=True, max_depth=None)
        items.append(
            {
                **summary(graph, ref),
                "dependents": count,
                "transitiveDependents": len(dependents),
                "pagerank": round(rank, 8),
            }
        )
    body = {**_view_json(view), "sort": sort, "items": items}
    nodes = [item["entityRef"] for item in items]
    return Result(body, nodes, _edges_among(graph, nodes, view))


# -- subgraphs ----------------------------------------------------------------------


def subgraph(
    graph: EntityGraph,
    roots: list[str],
    *,
    types: frozenset[str] | None,
    kinds: frozenset[str] | None,
    max_depth: int,
    direction: str,
    max_nodes: int,
) -> Result:
    """Nodes within ``max_depth`` relation hops of the roots, and the edges among them.

    ``direction`` follows stored edges (``out``: ``A ownedBy G`` leads from A to G),
    against them (``in``), or both. Only nodes of ``kinds`` are entered (roots
    always are). Without roots: the whole graph (of ``kinds``). Raises a 400 as
    soon as more than ``max_nodes`` are reached.
    """
    g = graph.g
    if not roots:
        return _whole(graph, types=types, kinds=kinds, max_nodes=max_nodes)
    depth_of = {root: 0 for root in roots}
    frontier = list(dict.fromkeys(roots))
    for depth in range(1, max_depth + 1):
        following = []
        for node in frontier:
            neighbours: list[str] = []
            if direction in ("out", "both"):
                neighbours += [
                    t for t, keyed in g._succ[node].items() if types is None or types & keyed.keys()
                ]
            if direction in ("in", "both"):
                neighbours += [
                    s for s, keyed in g._pred[node].items() if types is None or types & keyed.keys()
                ]
            for other in neighbours:
                if other in depth_of:
                    continue
                if kinds is not None and g.nodes[other]["kind"].lower() not in kinds:
                    continue
                depth_of[other] = depth
                following.append(other)
                if len(depth_of) > max_nodes:
                    raise InputError(
                        f"The subgraph has more than {max_nodes} entities; narrow it down "
                        "with fewer roots, a smaller depth, or relation and kind filters"
                    )
        if not following:
            break
        frontier = following
    nodes = sorted(depth_of, key=lambda ref: (depth_of[ref], ref))
    view = View(types, directed=False)
    edges = _edges_among(graph, nodes, view)
    body = {
        "rootEntityRefs": list(dict.fromkeys(roots)),
        "relations": sorted(types) if types is not None else None,
        "kinds": sorted(kinds) if kinds is not None else None,
        "maxDepth": max_depth,
        "direction": direction,
        "nodes": [{**summary(graph, ref), "depth": depth_of[ref]} for ref in nodes],
        "edges": [edge_json(edge) for edge in edges],
    }
    return Result(body, nodes, edges)


def _whole(
    graph: EntityGraph,
    *,
    types: frozenset[str] | None,
    kinds: frozenset[str] | None,
    max_nodes: int,
) -> Result:
    nodes = sorted(
        ref
        for ref, data in graph.g.nodes(data=True)
        if kinds is None or data["kind"].lower() in kinds
    )
    if len(nodes) > max_nodes:
        raise InputError(
            f"The graph has {len(nodes)} entities, more than the limit of {max_nodes}; "
            "export a part of it (roots and a depth, relation or kind filters)"
        )
    edges = _edges_among(graph, nodes, View(types, directed=False))
    body = {
        "rootEntityRefs": [],
        "relations": sorted(types) if types is not None else None,
        "kinds": sorted(kinds) if kinds is not None else None,
        "maxDepth": None,
        "direction": "both",
        "nodes": [summary(graph, ref) for ref in nodes],
        "edges": [edge_json(edge) for edge in edges],
    }
    return Result(body, nodes, edges)
