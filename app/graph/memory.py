"""How much memory the graph takes: a deep size of its networkx structures.

``sys.getsizeof`` of every dict, string and number reachable from the graph's node,
successor and predecessor maps, each object counted once (networkx shares the
key dicts and edge attribute dicts between ``_succ`` and ``_pred``, and the refs
are interned). Small ints and ``True``/``False`` are shared by the interpreter and
cost nothing extra. The benchmark reports this figure.
"""

from __future__ import annotations

import sys
from typing import Any

from .model import EntityGraph


def deep_size(root: Any) -> int:
    seen: set[int] = set()
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, bool):
            continue
        seen.add(id(obj))
        if isinstance(obj, int) and -5 <= obj <= 256:
            continue
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
    return total


def graph_memory_bytes(graph: EntityGraph) -> int:
    """Bytes held by the graph (nodes, attributes, adjacency, edge data, bookkeeping)."""
    g = graph.g
    return deep_size([g._node, g._succ, g._pred, g.graph, graph.type_counts])
