"""Stitching: the final entity the API serves, and its search rows.

For each queued ref the stitcher combines the processed entity, every relation row
whose source is that ref (rows emitted by *any* entity, which is how reverse
relations appear), the processing errors as ``status.items``, and the orphan
flag. ``metadata.uid`` is the refresh_state id; ``metadata.etag`` is a hash of the
result, so it changes whenever anything visible changes. Unchanged results are
not written, and a stitch batch takes a few statements whatever its size.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from app import jsonutil
from app.storage.bulk import delete_in, execute_many, insert_rows, select_in
from app.storage.database import Database
from app.storage.tables import (
    stitch_queue,
)

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


def stitch(db: Database, conn: Connection, refs: list[str], now: float) -> int:
    """Recompute and store the final entities of ``refs``; return how many changed."""
    sources, missing = _load_sources(conn, refs)
    previous: dict[str, str] = dict(
        select_in(  # type: ignore[arg-type]
            conn,
            "SELECT entity_id, hash FROM final_entities WHERE entity_id IN ({in})",
            [source.entity_id for source in sources],
        )
    )

    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    search_rows: list[tuple[Any, ...]] = []
    new_rows: dict[str, list[SearchRow]] = {}
    changed_ids: list[str] = []
    changed_refs: list[str] = []
    failed: list[tuple[StitchSource, BaseException]] = []
    for source in sources:
        digest = source.digest()
        if previous.get(source.entity_id) == digest:
            continue
        final = build_final_entity(source, digest)
        text = jsonutil.dumps(final)
        try:
            rows = build_search_rows(final)
        except Exception as exc:  # case-colliding keys: keep the previous version
            failed.append((source, exc))
            continue
        entity_id = source.entity_id
        if entity_id in previous:
            updates.append((digest, text, now, entity_id))
            new_rows[entity_id] = rows
        else:
            inserts.append((entity_id, source.entity_ref, digest, text, now))
            search_rows.extend((entity_id, key, value, original) for key, value, original in rows)
        changed_ids.append(entity_id)
        changed_refs.append(source.entity_ref)

    # An updated entity usually changes a few search rows (a new relation, a status);
    # rewrite only those: for an entity with thousands of relations that is the
    # difference between a few rows and the whole index of it.
    stale = _search_diff(conn, new_rows, search_rows)
    execute_many(
        conn,
        "DELETE FROM search WHERE entity_id = ? AND key = ? "
        "AND value IS NOT DISTINCT FROM ? AND original_value IS NOT DISTINCT FROM ?",
        stale,
    )
    insert_rows(
        conn,
        "final_entities",
        ("entity_id", "entity_ref", "hash", "final_entity", "last_updated_at"),
        inserts,
    )
    execute_many(
        conn,
        "UPDATE final_entities SET hash = ?, final_entity = ?, last_updated_at = ? "
        "WHERE entity_id = ?",
        updates,
    )
    insert_rows(conn, "search", ("entity_id", "key", "value", "original_value"), search_rows)
    for source, problem in failed:
        log.warning("Stitching %s failed: %s", source.entity_ref, problem)

    # Entities that lost their good version (or their row) disappear from reads.
    gone_rows = select_in(
        conn, "SELECT entity_id, entity_ref FROM final_entities WHERE entity_ref IN ({in})", missing
    )
    if gone_rows:
        ids_gone = [row[0] for row in gone_rows]
        delete_in(conn, "search", "entity_id", ids_gone)
        delete_in(conn, "final_entities", "entity_id", ids_gone)
        changed_ids.extend(ids_gone)
        changed_refs.extend(row[1] for row in gone_rows)

    record_changes(conn, changed_refs)
    return len(changed_ids)


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
    db: Database, conn: Connection, limit: int, queued_before: float | None = None
) -> list[str]:
    query = select(stitch_queue.c.entity_ref).order_by(stitch_queue.c.queued_at).limit(limit)
    if queued_before is not None:
        query = query.where(stitch_queue.c.queued_at <= queued_before)
    if db.is_postgres:
        query = query.with_for_update(skip_locked=True)
    refs = [row[0] for row in conn.execute(query)]
    delete_in(conn, "stitch_queue", "entity_ref", refs)
    return refs
