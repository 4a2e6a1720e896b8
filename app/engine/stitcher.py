"""Stitching: the final entity the API serves, and its search rows.

For each queued ref the stitcher combines the processed entity, every relation row
whose source is that ref (rows emitted by *any* entity, which is how reverse
relations appear), the processing errors as ``status.items``, and the orphan
flag. ``metadata.uid`` is the refresh_state id; ``metadata.etag`` is a hash of the
result, so it changes whenever anything visible changes. Unchanged results are
not written, and a stitch batch takes a few statements whatever its size.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from app import jsonutil
from app.storage.database import Database
from app.storage.tables import (
    final_entities,
    refresh_state,
    refresh_state_references,
    relations,
    search,
    stitch_queue,
)
from app.storage.util import chunked

from .changes import record_changes
from .search_index import build_search_rows

log = logging.getLogger(__name__)

ANNOTATION_ORPHAN = "backstage.io/orphan"
ANNOTATION_VIEW_URL = "backstage.io/view-url"
ANNOTATION_EDIT_URL = "backstage.io/edit-url"
REJECTED_URL = "https://backstage.io/annotation-rejected-for-security-reasons"
PROCESSING_ERROR_TYPE = "backstage.io/catalog-processing"


@dataclass
class StitchSource:
    entity_id: str
    entity_ref: str
    processed: dict[str, Any]
    errors: list[dict[str, Any]]
    relations: list[tuple[str, str]]
    orphan: bool


def build_final_entity(source: StitchSource) -> dict[str, Any]:
    """Pure: the stitched entity, with uid and etag."""
    entity = source.processed
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
    supplied_etag = metadata.pop("etag", None)

    final: dict[str, Any] = {**entity, "metadata": metadata}
    final["relations"] = [
        {"type": relation_type, "targetRef": target}
        for relation_type, target in sorted(set(source.relations))
    ]
    if source.errors:
        status = dict(final.get("status") or {})
        items = list(status.get("items") or [])
        for error in source.errors:
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
    metadata["etag"] = supplied_etag if supplied_etag else jsonutil.stable_hash(final)
    return final


def _load_sources(conn: Connection, refs: list[str]) -> tuple[list[StitchSource], list[str]]:
    """The inputs for ``refs``; also the refs that have no row (or no good version)."""
    rows: dict[str, Any] = {}
    row: Any
    for batch in chunked(refs):
        for row in conn.execute(
            select(
                refresh_state.c.entity_id,
                refresh_state.c.entity_ref,
                refresh_state.c.processed_entity,
                refresh_state.c.errors,
            ).where(refresh_state.c.entity_ref.in_(batch))
        ):
            rows[row.entity_ref] = row
    relation_map: dict[str, list[tuple[str, str]]] = defaultdict(list)
    referenced: set[str] = set()
    present = sorted(rows)
    for batch in chunked(present):
        for row in conn.execute(
            select(
                relations.c.source_entity_ref, relations.c.type, relations.c.target_entity_ref
            ).where(relations.c.source_entity_ref.in_(batch))
        ):
            relation_map[row.source_entity_ref].append((row.type, row.target_entity_ref))
        referenced.update(
            row[0]
            for row in conn.execute(
                select(refresh_state_references.c.target_entity_ref)
                .where(refresh_state_references.c.target_entity_ref.in_(batch))
                .distinct()
            )
        )
    sources: list[StitchSource] = []
    missing: list[str] = [ref for ref in refs if ref not in rows]
    for ref in present:
        row = rows[ref]
        if row.processed_entity is None:
            missing.append(ref)
            continue
        sources.append(
            StitchSource(
                entity_id=row.entity_id,
                entity_ref=ref,
                processed=jsonutil.loads(row.processed_entity),
                errors=jsonutil.loads(row.errors) if row.errors else [],
                relations=relation_map.get(ref, []),
                orphan=ref not in referenced,
            )
        )
    return sources, missing


def stitch(db: Database, conn: Connection, refs: list[str], now: float) -> int:
    """Recompute and store the final entities of ``refs``; return how many changed."""
    sources, missing = _load_sources(conn, refs)
    previous: dict[str, str] = {}
    ids = [source.entity_id for source in sources]
    for batch in chunked(ids):
        for row in conn.execute(
            select(final_entities.c.entity_id, final_entities.c.hash).where(
                final_entities.c.entity_id.in_(batch)
            )
        ):
            previous[row.entity_id] = row.hash

    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    search_rows: list[dict[str, Any]] = []
    changed_ids: list[str] = []
    changed_refs: list[str] = []
    failed: list[tuple[StitchSource, BaseException]] = []
    for source in sources:
        final = build_final_entity(source)
        text = jsonutil.dumps(final)
        digest = jsonutil.text_hash(text)
        if previous.get(source.entity_id) == digest:
            continue
        try:
            rows = build_search_rows(final)
        except Exception as exc:  # case-colliding keys: keep the previous version
            failed.append((source, exc))
            continue
        values = {
            "entity_id": source.entity_id,
            "entity_ref": source.entity_ref,
            "hash": digest,
            "final_entity": text,
            "last_updated_at": now,
        }
        (updates if source.entity_id in previous else inserts).append(values)
        changed_ids.append(source.entity_id)
        changed_refs.append(source.entity_ref)
        search_rows.extend(
            {"entity_id": source.entity_id, "key": key, "value": value, "original_value": original}
            for key, value, original in rows
        )

    for batch in chunked(changed_ids):
        conn.execute(delete(search).where(search.c.entity_id.in_(batch)))
    for chunk in chunked(inserts):
        conn.execute(final_entities.insert(), chunk)
    if updates:
        conn.execute(
            update(final_entities)
            .where(final_entities.c.entity_id == bindparam("b_id"))
            .values(
                hash=bindparam("b_hash"),
                final_entity=bindparam("b_text"),
                last_updated_at=bindparam("b_now"),
            ),
            [
                {
                    "b_id": v["entity_id"],
                    "b_hash": v["hash"],
                    "b_text": v["final_entity"],
                    "b_now": now,
                }
                for v in updates
            ],
        )
    for chunk in chunked(search_rows, 2000):
        conn.execute(search.insert(), chunk)
    for source, problem in failed:
        log.warning("Stitching %s failed: %s", source.entity_ref, problem)

    # Entities that lost their good version (or their row) disappear from reads.
    gone = [ref for ref in missing if ref]
    for batch in chunked(gone):
        gone_rows = conn.execute(
            select(final_entities.c.entity_id, final_entities.c.entity_ref).where(
                final_entities.c.entity_ref.in_(batch)
            )
        ).all()
        if gone_rows:
            ids_gone = [row.entity_id for row in gone_rows]
            conn.execute(delete(search).where(search.c.entity_id.in_(ids_gone)))
            conn.execute(delete(final_entities).where(final_entities.c.entity_id.in_(ids_gone)))
            changed_ids.extend(ids_gone)
            changed_refs.extend(row.entity_ref for row in gone_rows)

    record_changes(conn, changed_refs)
    return len(changed_ids)


def claim_stitch_batch(db: Database, conn: Connection, limit: int) -> list[str]:
    query = select(stitch_queue.c.entity_ref).order_by(stitch_queue.c.queued_at).limit(limit)
    if db.is_postgres:
        query = query.with_for_update(skip_locked=True)
    refs = [row[0] for row in conn.execute(query)]
    for batch in chunked(refs):
        conn.execute(delete(stitch_queue).where(stitch_queue.c.entity_ref.in_(batch)))
    return refs
