"""Small helpers for set-based SQL over large inputs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

# SQLite's default limit on bound variables is 32,766 (999 before 3.32); PostgreSQL's
# is 65,535. Chunks of 500 keep every IN list and multi-row statement well below both.
CHUNK = 500


def chunked(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def unique(items: Sequence[T]) -> list[T]:
    return list(dict.fromkeys(items))
