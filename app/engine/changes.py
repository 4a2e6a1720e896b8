"""The catalog generation and its change log.

Every transaction that changes final entities advances ``catalog_state.generation``
and records the refs it touched in ``entity_changes``. Read models in any process
(the dependency graph) compare their generation with the database's and replay
only the refs changed since, instead of rebuilding.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, func, select, update

from app.storage.bulk import insert_rows
from app.storage.tables import catalog_state, entity_changes


def record_changes(conn: Connection, refs: Iterable[str]) -> int | None:
    """Advance the generation and log ``refs`` under it; None if there is nothing to log."""
    unique = sorted(set(refs))
    if not unique:
        return None
    generation = conn.execute(
        update(catalog_state)
        .where(catalog_state.c.key == "generation")
        .values(value=catalog_state.c.value + 1)
        .returning(catalog_state.c.value)
    ).scalar_one()
    insert_rows(
        conn, "entity_changes", ("generation", "entity_ref"), [(generation, r) for r in unique]
    )
    return int(generation)


def current_generation(conn: Connection) -> int:
    value = conn.execute(
        select(catalog_state.c.value).where(catalog_state.c.key == "generation")
    ).scalar()
    return int(value or 0)


def changes_since(conn: Connection, generation: int) -> tuple[int, set[str]] | None:
    """(latest generation, refs changed after ``generation``), or None if the log was pruned."""
    oldest = conn.execute(
        select(entity_changes.c.generation).order_by(entity_changes.c.id).limit(1)
    ).scalar()
    latest = current_generation(conn)
    if latest == generation:
        return latest, set()
    if oldest is None or oldest > generation + 1:
        return None
    refs = {
        row[0]
        for row in conn.execute(
            select(entity_changes.c.entity_ref).where(entity_changes.c.generation > generation)
        )
    }
    return latest, refs


def prune_changes(conn: Connection, keep_rows: int = 200_000) -> None:
    """Keep the newest ``keep_rows`` changes; a reader further behind rebuilds."""
    newest = conn.execute(select(func.max(entity_changes.c.id))).scalar()
    if newest is not None and newest > keep_rows:
        conn.execute(delete(entity_changes).where(entity_changes.c.id <= newest - keep_rows))
