"""Stitching: the final entity the API serves, and its search rows.

For each queued ref the stitcher combines the processed entity, every relation row
whose source is that ref (rows emitted by *any* entity, which is how reverse
relations appear), the processing errors as ``status.items``, and the orphan
flag. ``metadata.uid`` is the refresh_state id; ``metadata.etag`` is a hash of the
result, so it changes whenever anything visible changes. Unchanged results are
not written, and a stitch batch takes a few statements whatever its size.

A stitcher leases a batch of queued refs (``claim_stitch_batch``), computes their
final entities from a read transaction (``plan_stitch``), then stores, in a short
write transaction, the results of the refs it still holds (``held_stitch_claims``,
``apply_stitch``). Whatever changes an input of a ref also queues it again, which
clears its lease: a result computed from the older inputs is then dropped, and the
ref is stitched again. A stitcher that dies leaves its lease to run out.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from app import jsonutil
from app.storage.bulk import delete_in, execute_many, insert_rows, select_in
from app.storage.database import Database
from app.storage.tables import final_entities, stitch_queue

from .changes import record_changes
from .search_index import SearchRow, build_search_rows

log = logging.getLogger(__name__)

ANNOTATION_ORPHAN = "backstage.io/orphan"
ANNOTATION_VIEW_URL = "backstage.io/view-url"
ANNOTATION_EDIT_URL = "backstage.io/edit-url"
REJECTED_URL = "https://backstage.io/annotation-rejected-for-security-reasons"
PROCESSING_ERROR_TYPE = "backstage.io/catalog-processing"


# Part of every stitch digest: bump it when build_final_entity's output changes shape,
# so stored final entities are rebuilt on upgrade.
STITCH_VERSION = "1"


@dataclass
class StitchSource:
    entity_id: str
    entity_ref: str
    processed_text: str
    errors_text: str | None
    relations: list[tuple[str, str]]
    orphan: bool

    def digest(self) -> str:
        """A hash of every input of the final entity: equal digests, equal entities."""
        relations = "\x01".join(f"{t}\x02{r}" for t, r in sorted(set(self.relations)))
        parts = (
            STITCH_VERSION,
            self.entity_id,
            "1" if self.orphan else "0",
            self.processed_text,
            self.errors_text or "",
            relations,
        )
        return hashlib.sha1("\x00".join(parts).encode()).hexdigest()


def build_final_entity(source: StitchSource, digest: str) -> dict[str, Any]:
    """Pure: the stitched entity, with uid and etag (the digest, unless the source set one)."""
    entity = jsonutil.loads(source.processed_text)
    metadata = dict(entity.get("metadata") or {})
    annotations = dict(metadata.get("annotations") or {})
    if source.orphan:
        annotations[ANNOTATION_ORPHAN] = "true"
    for key in (ANNOTATION_VIEW_URL, ANNOTATION_EDIT_URL):
        value = annotations.get(key)
        if isinstance(value, str) and value.strip().lower().startswith("javascript:"):
            annotations[key] = REJECTED_URL
    if annotations or "annotations" in metadata:
        metadata["annotations"] = annotations
    metadata["uid"] = source.entity_id
    metadata["etag"] = metadata.get("etag") or digest

    final: dict[str, Any] = {**entity, "metadata": metadata}
    final["relations"] = [
        {"type": relation_type, "targetRef": target}
        for relation_type, target in sorted(set(source.relations))
    ]
    errors = jsonutil.loads(source.errors_text) if source.errors_text else []
    if errors:
        status = dict(final.get("status") or {})
        items = list(status.get("items") or [])
        for error in errors:
            items.append(
                {
                    "type": PROCESSING_ERROR_TYPE,
                    "level": "error",
                    "message": f"{error.get('name', 'Error')}: {error.get('message', '')}",
                    "error": error,
                }
            )
        status["items"] = items
        final["status"] = status
    return final


def _load_sources(conn: Connection, refs: list[str]) -> tuple[list[StitchSource], list[str]]:
    """The inputs for ``refs``; also the refs that have no row (or no good version)."""
    rows = {
        row[1]: row
        for row in select_in(
            conn,
            "SELECT entity_id, entity_ref, processed_entity, errors FROM refresh_state "
            "WHERE entity_ref IN ({in})",
            refs,
        )
    }
    present = sorted(rows)
    relation_map: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for source, relation_type, target in select_in(
        conn,
        "SELECT source_entity_ref, type, target_entity_ref FROM relations "
        "WHERE source_entity_ref IN ({in})",
        present,
    ):
        relation_map[source].append((relation_type, target))
    referenced = {
        row[0]
        for row in select_in(
            conn,
            "SELECT DISTINCT target_entity_ref FROM refresh_state_references "
            "WHERE target_entity_ref IN ({in})",
            present,
        )
    }
    sources: list[StitchSource] = []
    missing: list[str] = [ref for ref in refs if ref not in rows]
    for ref in present:
        entity_id, _, processed, errors = rows[ref]
        if processed is None:
            missing.append(ref)
            continue
        sources.append(
            StitchSource(
                entity_id=entity_id,
                entity_ref=ref,
                processed_text=processed,
                errors_text=errors,
                relations=relation_map.get(ref, []),
                orphan=ref not in referenced,
            )
        )
    return sources, missing


@dataclass
class StitchPlan:
    """What stitching some refs will write: computed from a read, stored by
    :func:`apply_stitch`."""

    #: (entity_id, entity_ref, hash, final_entity) of new ones (apply_stitch adds the time).
    inserts: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: (hash, final_entity, entity_id) of changed ones.
    updates: list[tuple[str, str, str]] = field(default_factory=list)
    search_inserts: list[tuple[Any, ...]] = field(default_factory=list)
    search_deletes: list[tuple[Any, ...]] = field(default_factory=list)
    #: Refs with no good version: their final entities, if any, are removed.
    missing: list[str] = field(default_factory=list)
    #: entity_id -> entity_ref of everything this plan writes.
    changed: dict[str, str] = field(default_factory=dict)

    def only(self, refs: set[str]) -> StitchPlan:
        """The part of this plan that concerns ``refs``."""
        ids = {entity_id for entity_id, ref in self.changed.items() if ref in refs}
        return StitchPlan(
            inserts=[row for row in self.inserts if row[0] in ids],
            updates=[row for row in self.updates if row[2] in ids],
            search_inserts=[row for row in self.search_inserts if row[0] in ids],
            search_deletes=[row for row in self.search_deletes if row[0] in ids],
            missing=[ref for ref in self.missing if ref in refs],
            changed={entity_id: ref for entity_id, ref in self.changed.items() if ref in refs},
        )


def plan_stitch(conn: Connection, refs: list[str]) -> StitchPlan:
    """Compute the final entities of ``refs`` from what ``conn`` reads; writes nothing."""
    sources, missing = _load_sources(conn, refs)
    previous: dict[str, str] = dict(
        select_in(  # type: ignore[arg-type]
            conn,
            "SELECT entity_id, hash FROM final_entities WHERE entity_id IN ({in})",
            [source.entity_id for source in sources],
        )
    )
    plan = StitchPlan(missing=missing)
    new_rows: dict[str, list[SearchRow]] = {}
    for source in sources:
        digest = source.digest()
        if previous.get(source.entity_id) == digest:
            continue
        final = build_final_entity(source, digest)
        text = jsonutil.dumps(final)
        try:
            rows = build_search_rows(final)
        except Exception as exc:  # case-colliding keys: keep the previous version
            log.warning("Stitching %s failed: %s", source.entity_ref, exc)
            continue
        entity_id = source.entity_id
        if entity_id in previous:
            plan.updates.append((digest, text, entity_id))
            new_rows[entity_id] = rows
        else:
            plan.inserts.append((entity_id, source.entity_ref, digest, text))
            plan.search_inserts.extend((entity_id, *row) for row in rows)
        plan.changed[entity_id] = source.entity_ref
    # An updated entity usually changes a few search rows (a new relation, a status);
    # rewrite only those: for an entity with thousands of relations that is the
    # difference between a few rows and the whole index of it.
    plan.search_deletes = _search_diff(conn, new_rows, plan.search_inserts)
    return plan


def apply_stitch(conn: Connection, plan: StitchPlan, now: float) -> int:
    """Store ``plan`` in the write transaction of ``conn``; return how many changed."""
    execute_many(
        conn,
        "DELETE FROM search WHERE entity_id = ? AND key = ? "
        "AND value IS NOT DISTINCT FROM ? AND original_value IS NOT DISTINCT FROM ?",
        plan.search_deletes,
    )
    insert_rows(
        conn,
        "final_entities",
        ("entity_id", "entity_ref", "hash", "final_entity", "last_updated_at"),
        [(*row, now) for row in plan.inserts],
    )
    execute_many(
        conn,
        "UPDATE final_entities SET hash = ?, final_entity = ?, last_updated_at = ? "
        "WHERE entity_id = ?",
        [(digest, text, now, entity_id) for digest, text, entity_id in plan.updates],
    )
    insert_rows(
        conn, "search", ("entity_id", "key", "value", "original_value"), plan.search_inserts
    )

    # Entities that lost their good version (or their row) disappear from reads.
    changed = dict(plan.changed)
    gone_rows = select_in(
        conn,
        "SELECT entity_id, entity_ref FROM final_entities WHERE entity_ref IN ({in})",
        plan.missing,
    )
    if gone_rows:
        ids_gone = [row[0] for row in gone_rows]
        delete_in(conn, "search", "entity_id", ids_gone)
        delete_in(conn, "final_entities", "entity_id", ids_gone)
        changed.update((row[0], row[1]) for row in gone_rows)
    record_changes(conn, list(changed.values()))
    return len(changed)


def stitch(db: Database, conn: Connection, refs: list[str], now: float) -> int:
    """Stitch ``refs`` now, inside the caller's write transaction; return how many
    changed. Their queue rows go too: a stitcher that leased them drops its result."""
    delete_in(conn, "stitch_queue", "entity_ref", refs)
    return apply_stitch(conn, plan_stitch(conn, refs), now)


def _search_diff(
    conn: Connection, new_rows: dict[str, list[SearchRow]], inserts: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """Rows of updated entities to delete; appends the rows to insert to ``inserts``."""
    old: dict[str, set[SearchRow]] = defaultdict(set)
    for entity_id, key, value, original in select_in(
        conn,
        "SELECT entity_id, key, value, original_value FROM search WHERE entity_id IN ({in})",
        list(new_rows),
    ):
        old[entity_id].add((key, value, original))
    stale: list[tuple[Any, ...]] = []
    for entity_id, rows in new_rows.items():
        before = old.get(entity_id, set())
        after = set(rows)
        stale.extend((entity_id, *row) for row in before - after)
        inserts.extend((entity_id, *row) for row in rows if row not in before)
    return stale


def claim_stitch_batch(
    db: Database,
    conn: Connection,
    limit: int,
    now: float,
    lease: float,
    queued_before: float | None = None,
) -> tuple[list[str], float]:
    """Lease up to ``limit`` queued refs for ``lease`` seconds; return them and the lease.

    ``queued_before``: only refs queued before then, and refs never stitched yet (a new
    entity is served at once; an entity stitched before, which many batches touch, such
    as a group that owns thousands, waits to be stitched once for all of them).
    """
    queue = stitch_queue
    query = (
        select(queue.c.entity_ref)
        .where(queue.c.claimed_until.is_(None) | (queue.c.claimed_until <= now))
        .order_by(queue.c.queued_at)
        .limit(limit)
    )
    if queued_before is not None:
        stitched = select(final_entities.c.entity_id).where(
            final_entities.c.entity_ref == queue.c.entity_ref
        )
        query = query.where((queue.c.queued_at <= queued_before) | ~stitched.exists())
    if db.is_postgres:
        query = query.with_for_update(skip_locked=True, of=queue)
    refs = [row[0] for row in conn.execute(query)]
    until = now + lease
    execute_many(
        conn,
        "UPDATE stitch_queue SET claimed_until = ? WHERE entity_ref = ?",
        [(until, ref) for ref in sorted(refs)],
    )
    return refs, until


def held_stitch_claims(db: Database, conn: Connection, refs: list[str], until: float) -> set[str]:
    """The refs of a claim that are still ours (nobody queued them again since), locked
    on PostgreSQL until the transaction ends; their queue rows are deleted."""
    lock = " FOR UPDATE" if db.is_postgres else ""
    held = {
        row[0]
        for row in select_in(
            conn,
            "SELECT entity_ref FROM stitch_queue WHERE claimed_until = ? "
            "AND entity_ref IN ({in}) ORDER BY entity_ref" + lock,
            sorted(refs),
            (until,),
        )
    }
    delete_in(conn, "stitch_queue", "entity_ref", sorted(held))
    return held


def release_stitch_claims(conn: Connection, refs: list[str], until: float) -> None:
    """Give up a claim (the stitching failed): the refs may be claimed again at once."""
    execute_many(
        conn,
        "UPDATE stitch_queue SET claimed_until = NULL WHERE entity_ref = ? AND claimed_until = ?",
        [(ref, until) for ref in sorted(refs)],
    )
