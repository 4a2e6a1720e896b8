"""The walk of Backstage's ``@backstage/plugin-catalog-graph-backend``, on our graph.

The plugin (``DefaultGraphService.fetchGraph``) walks level by level: fetch the
current refs with ``getEntitiesByRefs``, keep the ones found, collect the
``targetRef`` of their relations whose type is in ``relations`` and whose kind is
in ``kinds``, drop refs already visited, and go on while the depth allows. A
configured ``limitEntities`` truncates the level that would exceed it and sets
``cutoff``. The answer is the found entities in the order they were first found.

Here the same walk runs on the in-memory graph (relations of each entity rebuilt in
the stitched order, dangling targets known without a database round trip); only
the final entities are read from the database, in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from .model import EntityGraph, ref_parts


def walk(
    graph: EntityGraph,
    root_refs: Sequence[str],
    *,
    relations: Sequence[str] | None,
    kinds: Sequence[str] | None,
    max_depth: float,
    limit_entities: float,
) -> tuple[list[str], bool]:
    """(refs of the entities in the answer, in order; whether the limit cut the walk)."""
    relation_set = set(relations) if relations is not None else None
    kind_set = {kind.lower() for kind in kinds} if kinds is not None else None
    visited: set[str] = set()
    result: dict[str, None] = {}
    cutoff = False
    depth = 0
    to_fetch = list(root_refs)
    while depth <= max_depth:
        depth += 1
        visited.update(to_fetch)
        if limit_entities < len(result) + len(to_fetch):
            cutoff = True
            to_fetch = to_fetch[: max(0, int(limit_entities - len(result)))]
        found = [ref for ref in to_fetch if graph.has_entity(ref)]
        for ref in found:
            result.setdefault(ref, None)
        following: dict[str, None] = {}
        for ref in found:
            for rtype, target in graph.relations_of(ref):
                if relation_set is not None and rtype not in relation_set:
                    continue
                if kind_set is not None and ref_parts(target)[0].lower() not in kind_set:
                    continue
                following.setdefault(target, None)
        to_fetch = [ref for ref in following if ref not in visited]
        if not to_fetch:
            break
    return list(result), cutoff
