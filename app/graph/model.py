"""The entity graph: a networkx ``MultiDiGraph`` of every entity and relation.

Storage rules (the rest of ``app.graph`` relies on them):

* **Nodes** are canonical refs (``component:default/payments-gateway``) with a few
  small attributes (see :func:`node_attributes`): enough to group, label and export,
  never the whole entity. A ref that relations point at but that has no entity is
  a node too, with ``missing=True``: "owned by a group that does not exist" has to
  be representable.
* **Edges** are stored once per relation pair, in the pair's *forward* direction
  (``RELATION_PAIRS``): ``A ownedBy G`` is the edge ``A -> G`` with key
  ``ownedBy``; the ``G ownerOf A`` a stitched Group also carries is the same edge.
  Relation types outside the pairs (custom processors) are stored as written.
* Each edge remembers **who states it** (``by``: :data:`SOURCE` if the source
  entity's ``relations`` list it, :data:`TARGET` if the target's list the reverse;
  the attribute dicts are shared, treat them as read-only).
  Replaying one changed entity then only touches the statements it made, and the
  relations array of any entity can be rebuilt exactly from the graph (the
  catalog-graph endpoint needs that order).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import networkx as nx

from app.model.refs import parse_entity_ref
from app.model.relations import RELATION_PAIRS, REVERSE_RELATION

#: ``by`` bits: which end's stitched entity lists the relation.
SOURCE = 1
TARGET = 2

# Edge attribute dicts, one per ``by`` value, shared by every edge: networkx would
# otherwise keep a dict per edge (a quarter of the graph's memory). Never mutated;
# a change of ``by`` swaps the edge's dict.
_EDGE_DATA: dict[int, dict[str, int]] = {bits: {"by": bits} for bits in range(4)}
_NOBODY = _EDGE_DATA[0]

FORWARD_TYPES: frozenset[str] = frozenset(forward for forward, _ in RELATION_PAIRS)
_TO_FORWARD: dict[str, str] = {reverse: forward for forward, reverse in RELATION_PAIRS}
BUILTIN_TYPES: frozenset[str] = frozenset(REVERSE_RELATION)

# Kinds whose profile (email, display name) is kept: owners' contacts.
_PROFILE_KINDS = ("group", "user")


def forward_type(relation_type: str) -> str:
    """The pair's forward name for either name of a built-in pair; custom types as is."""
    return _TO_FORWARD.get(relation_type, relation_type)


def ref_parts(ref: str) -> tuple[str, str, str]:
    """``kind:namespace/name`` split (canonical refs only; relations always are)."""
    kind, _, rest = ref.partition(":")
    namespace, _, name = rest.partition("/")
    if not name:
        parsed = parse_entity_ref(ref, default_kind="unknown")
        return parsed.kind, parsed.namespace, parsed.name
    return kind, namespace, name


def missing_attributes(ref: str) -> dict[str, Any]:
    kind, namespace, name = ref_parts(ref)
    return {"kind": kind, "namespace": namespace, "name": name, "missing": True}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def node_attributes(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The few entity fields the graph keeps per node; empty ones are left out."""
    metadata = entity.get("metadata") or {}
    spec = entity.get("spec") or {}
    if not isinstance(spec, Mapping):
        spec = {}
    kind = str(entity.get("kind") or "")
    attrs: dict[str, Any] = {
        "kind": kind,
        "namespace": _text(metadata.get("namespace")) or "default",
        "name": str(metadata.get("name") or ""),
    }
    for key, value in (
        ("title", metadata.get("title")),
        ("type", spec.get("type")),
        ("lifecycle", spec.get("lifecycle")),
    ):
        if _text(value):
            attrs[key] = value
    if kind.lower() in _PROFILE_KINDS:
        profile = spec.get("profile")
        if isinstance(profile, Mapping):
            for key in ("email", "displayName"):
                if _text(profile.get(key)):
                    attrs[key] = profile[key]
    return attrs


def entity_relations(entity: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(type, targetRef)`` of a stitched entity's relations, skipping malformed items."""
    result = []
    for item in entity.get("relations") or ():
        if isinstance(item, Mapping):
            rtype, target = item.get("type"), item.get("targetRef")
            if isinstance(rtype, str) and isinstance(target, str) and rtype and target:
                result.append((rtype, target))
    return result


class EntityGraph:
    """The graph plus the bookkeeping that keeps it in step, entity by entity."""

    def __init__(self) -> None:
        self.g: nx.MultiDiGraph = nx.MultiDiGraph()
        #: The catalog generation this graph reflects (see ``app.engine.changes``).
        self.generation = 0
        #: Edge count per relation type; lets queries reject unknown types quickly.
        self.type_counts: dict[str, int] = {}
        #: Lowercase kinds of the entities seen; resolving ``name`` tries each.
        self._kinds: set[str] = set()

    # -- reading ------------------------------------------------------------

    def has_entity(self, ref: str) -> bool:
        data = self.g.nodes.get(ref)
        return data is not None and not data.get("missing")

    def entity_count(self) -> int:
        return sum(1 for _, data in self.g.nodes(data=True) if not data.get("missing"))

    def relations_of(self, ref: str) -> list[tuple[str, str]]:
        """The ``(type, targetRef)`` list the stitched entity carries, sorted like the stitcher."""
        result: list[tuple[str, str]] = []
        for target, keyed in self.g.succ[ref].items():
            for rtype, data in keyed.items():
                if data["by"] & SOURCE:
                    result.append((rtype, target))
        for source, keyed in self.g.pred[ref].items():
            for rtype, data in keyed.items():
                if data["by"] & TARGET:
                    result.append((REVERSE_RELATION.get(rtype, rtype), source))
        result.sort()
        return result

    def kinds(self) -> set[str]:
        return self._kinds

    def known_types(self) -> set[str]:
        return set(BUILTIN_TYPES) | {t for t, n in self.type_counts.items() if n > 0}

    # -- writing ------------------------------------------------------------

    def set_entity(self, ref: str, entity: Mapping[str, Any] | None) -> None:
        """Make the graph reflect ``ref``'s current stitched entity (None: it is gone)."""
        ref = sys.intern(ref)
        touched = self._retract(ref)
        if entity is None:
            if self.g.has_node(ref):
                if self.g.degree(ref) > 0:
                    self.g.nodes[ref].clear()
                    self.g.nodes[ref].update(missing_attributes(ref))
                else:
                    self.g.remove_node(ref)
        else:
            attrs = node_attributes(entity)
            self._kinds.add(attrs["kind"].lower())
            if self.g.has_node(ref):
                data = self.g.nodes[ref]
                data.clear()
                data.update(attrs)
            else:
                self.g.add_node(ref, **attrs)
            self._state(ref, entity_relations(entity))
        for other in touched:
            self._drop_if_orphaned_placeholder(other)

    def add_entities(self, items: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Bulk load into an empty graph (a full build)."""
        for ref, entity in items:
            ref = sys.intern(ref)
            attrs = node_attributes(entity)
            self._kinds.add(attrs["kind"].lower())
            data = self.g.nodes.get(ref)
            if data is None:
                self.g.add_node(ref, **attrs)
            else:  # was a placeholder for an earlier relation target
                data.clear()
                data.update(attrs)
            self._state(ref, entity_relations(entity))

    def _state(self, ref: str, relations: Iterable[tuple[str, str]]) -> None:
        """Record the relations ``ref``'s entity lists, each as a forward edge."""
        g = self.g
        for rtype, target in relations:
            # Interned: a popular target's ref appears in thousands of entities' JSON.
            target = sys.intern(target)
            forward = _TO_FORWARD.get(rtype)
            if forward is not None:  # a reverse name: the edge runs target -> ref
                source, dest, key, bit = target, ref, forward, TARGET
            else:
                source, dest, key, bit = ref, target, sys.intern(rtype), SOURCE
            other = dest if source == ref else source
            if other not in g:
                g.add_node(other, **missing_attributes(other))
            keyed = g._succ[source].get(dest)
            data = keyed.get(key) if keyed is not None else None
            if data is None:
                g.add_edge(source, dest, key=key)
                g._succ[source][dest][key] = _EDGE_DATA[bit]
                self.type_counts[key] = self.type_counts.get(key, 0) + 1
            else:
                keyed[key] = _EDGE_DATA[data["by"] | bit]

    def _retract(self, ref: str) -> set[str]:
        """Withdraw every statement ``ref``'s entity made; returns the neighbours touched."""
        g = self.g
        if ref not in g:
            return set()
        touched: set[str] = set()
        doomed: list[tuple[str, str, str]] = []
        for target, keyed in g._succ[ref].items():
            for key, data in keyed.items():
                if data["by"] & SOURCE:
                    keyed[key] = _EDGE_DATA[data["by"] & ~SOURCE]
                    if keyed[key] is _NOBODY:
                        doomed.append((ref, target, key))
        for source, keyed in g._pred[ref].items():
            for key, data in keyed.items():
                if data["by"] & TARGET:
                    keyed[key] = _EDGE_DATA[data["by"] & ~TARGET]
                    if keyed[key] is _NOBODY:
                        doomed.append((source, ref, key))
        for source, target, key in doomed:
            if g.has_edge(source, target, key):  # a self-loop is listed twice
                g.remove_edge(source, target, key)
                self.type_counts[key] -= 1
            touched.add(target if source == ref else source)
        touched.discard(ref)
        return touched

    def _drop_if_orphaned_placeholder(self, ref: str) -> None:
        data = self.g.nodes.get(ref)
        if data is not None and data.get("missing") and self.g.degree(ref) == 0:
            self.g.remove_node(ref)

    # -- iteration helpers ----------------------------------------------------

    def edges_of_types(self, types: frozenset[str] | None) -> Iterator[tuple[str, str, str]]:
        for source, target, key in self.g.edges(keys=True):
            if types is None or key in types:
                yield source, target, key
