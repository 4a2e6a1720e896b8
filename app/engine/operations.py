"""Engine operations behind the write API: delete by uid, refresh, dry runs, validation.

Each works on the same tables and pieces as the processing loop (the orchestrator,
the stitcher, the refresh state) and wakes the loop when it leaves work behind, so
the API's writes take effect within a poll interval.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from app.errors import InputError, NotFoundError, error_message, error_name, serialize_error
from app.model import entity_ref
from app.storage.tables import refresh_keys, refresh_state, refresh_state_references, relations

from . import refresh_state as rs
from .engine import CatalogEngine
from .orchestrator import ANNOTATION_LOCATION, ANNOTATION_ORIGIN_LOCATION, Orchestrator
from .stitcher import stitch
from .trust import TrustingOrchestrator

# Backstage's marker: a parent whose child was deleted must write its children again.
CHILD_WAS_DELETED = "child-was-deleted"
# How far up "who emitted whom" a refresh looks for a Location (Backstage's limit).
MAX_ANCESTOR_DEPTH = 32
# A dry run processes everything a location leads to, in the request; this bounds it.
MAX_DRY_RUN_ENTITIES = 10_000

_refs = refresh_state_references


def delete_entity_by_uid(engine: CatalogEngine, uid: str) -> bool:
    """Delete one entity now, as ``DELETE /entities/by-uid`` does in Backstage.

    Only the entity's own row goes (with its relations, refresh keys, final entity and
    its references to its children, who become orphans). Its parents are made due with
    their result hash discarded, so one that still emits the entity brings it back on
    its next processing, under a new uid. Returns False when no entity has that uid.
    """
    now = engine.clock()
    with engine.db.transaction() as conn:
        ref = conn.execute(
            select(refresh_state.c.entity_ref).where(refresh_state.c.entity_id == uid)
        ).scalar()
        if ref is None:
            return False
        parents = {
            row[0]
            for row in conn.execute(
                select(_refs.c.source_entity_ref).where(
                    _refs.c.target_entity_ref == ref, _refs.c.source_entity_ref.is_not(None)
                )
            )
        }
        children = {
            row[0]
            for row in conn.execute(
                select(_refs.c.target_entity_ref).where(_refs.c.source_entity_ref == ref)
            )
        }
        peers: set[str] = set()
        for row in conn.execute(
            select(relations.c.source_entity_ref, relations.c.target_entity_ref).where(
                relations.c.originating_entity_id == uid
            )
        ):
            peers.update((row.source_entity_ref, row.target_entity_ref))
        if parents:
            conn.execute(
                refresh_state.update()
                .where(refresh_state.c.entity_ref.in_(sorted(parents)))
                .values(result_hash=CHILD_WAS_DELETED, next_update_at=now)
            )
        conn.execute(delete(relations).where(relations.c.originating_entity_id == uid))
        conn.execute(delete(refresh_keys).where(refresh_keys.c.entity_id == uid))
        conn.execute(delete(_refs).where(_refs.c.source_entity_ref == ref))
        conn.execute(delete(refresh_state).where(refresh_state.c.entity_id == uid))
        # The entity disappears from reads in this same transaction; who pointed at it
        # or was emitted by it is re-stitched by the loop.
        stitch(engine.db, conn, [ref], now)
        rs.queue_stitch(engine.db, conn, (peers | children) - {ref}, now)
    engine._wake.set()
    return True


def refresh_entity(engine: CatalogEngine, ref_text: str) -> list[str]:
    """Make an entity and its nearest Location ancestor due now; return the refs scheduled.

    Re-processing the Location re-reads the file that defines the entity, which is
    what a user asking for a refresh wants. The errors are Backstage's: an entity
    nobody emitted is "not found".
    """
    ref = ref_text.lower()
    with engine.db.engine.connect() as conn:

        def parents_of(current: str) -> list[Any]:
            return list(
                conn.execute(
                    select(_refs.c.source_entity_ref)
                    .where(_refs.c.target_entity_ref == current)
                    .order_by(_refs.c.id)
                )
            )

        rows = parents_of(ref)
        if not rows:
            raise NotFoundError(f"Entity {ref} not found")
        location: str | None = None
        current = ref
        for _ in range(MAX_ANCESTOR_DEPTH):
            parent = next((row[0] for row in rows if row[0]), None)
            if parent is None:
                break
            if parent.startswith("location:"):
                location = parent
                break
            current = parent
            rows = parents_of(current)
            if not rows:
                raise NotFoundError(
                    f"Entity {ref_text} has a broken parent reference chain at {current}"
                )
        scheduled = [ref] if location is None else [location, ref]
        existing = {
            row[0]
            for row in conn.execute(
                select(refresh_state.c.entity_ref).where(refresh_state.c.entity_ref.in_(scheduled))
            )
        }
    for candidate in scheduled:
        if candidate not in existing:
            raise NotFoundError(f"Failed to schedule {candidate} for refresh")
    engine.schedule_now(scheduled)
    return scheduled


def _failure_message(errors: list[BaseException]) -> str:
    """How Backstage's dry run reports errors: ``String(error)`` of each, comma-joined."""
    return ", ".join(f"{error_name(e)}: {error_message(e)}" for e in errors)


def dry_run(orchestrator: Orchestrator, entity: dict[str, Any]) -> list[dict[str, Any]]:
    """Process ``entity`` and everything it leads to, in memory; return the processed entities.

    Nothing is read from or written to the database. Entities are taken last-in
    first-out like Backstage's dry run, so the first failure reported is the one
    Backstage reports. Any processing error fails the whole run with an InputError.
    """
    stack = [entity]
    done: list[dict[str, Any]] = []
    seen: set[str] = set()
    while stack:
        current = stack.pop()
        outcome = orchestrator.process(current)
        if not outcome.ok or outcome.errors or outcome.entity is None:
            raise InputError(_failure_message(outcome.errors) or "Processing failed")
        ref = entity_ref(outcome.entity)
        if ref in seen:
            raise InputError(f"Duplicate nested entity: {ref}")
        seen.add(ref)
        if len(seen) > MAX_DRY_RUN_ENTITIES:
            raise InputError(
                f"The location leads to more than {MAX_DRY_RUN_ENTITIES} entities; "
                "register it without dryRun"
            )
        stack.extend(child.entity for child in outcome.children)
        done.append(outcome.entity)
    return done


def validate_entity(
    orchestrator: TrustingOrchestrator, entity: dict[str, Any], location_ref: str
) -> list[dict[str, Any]]:
    """Run ``entity`` through the full pipeline as if read from ``location_ref``.

    Returns the serialised errors; empty means valid. The location annotations
    default to ``location_ref`` (the entity's own win, as in Backstage), and the
    processing is untrusted whatever they say: file reads stay within the allowed
    roots.
    """
    metadata = entity.get("metadata")
    if isinstance(metadata, dict):
        annotations = metadata.get("annotations")
        if annotations is None or isinstance(annotations, dict):
            entity = {
                **entity,
                "metadata": {
                    **metadata,
                    "annotations": {
                        ANNOTATION_LOCATION: location_ref,
                        ANNOTATION_ORIGIN_LOCATION: location_ref,
                        **(annotations or {}),
                    },
                },
            }
    outcome = orchestrator.process(entity, trusted=False)
    return [serialize_error(error) for error in outcome.errors]
