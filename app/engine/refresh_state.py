"""The processing side of the database: what providers and processing write.

Every operation is set-based: one statement per table per batch (chunked under the
databases' bound-variable limits), never a round trip per entity. The functions
take an open connection so callers decide the transaction; they return the
entity refs whose final form may have changed, for the stitcher.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app import jsonutil
from app.errors import ConflictError, serialize_error
from app.storage.bulk import delete_in, execute_many, insert_ignore_rows, insert_rows, select_in
from app.storage.database import Database
from app.storage.ids import new_entity_id
from app.storage.tables import (
    final_entities,
    refresh_state,
    refresh_state_references,
    search,
    stitch_queue,
)
from app.storage.util import chunked

from .changes import record_changes
from .orchestrator import ProcessingOutcome


@dataclass
class Claimed:
    """A refresh_state row claimed for processing."""

    entity_id: str
    entity_ref: str
    unprocessed: dict[str, Any]
    result_hash: str | None
    errors: str | None
    cache: dict[str, Any]
    processed_at: float | None
    has_processed: bool
    #: The claim's lease: ``next_update_at`` while this process works on the row.
    lease_until: float


@dataclass
class Unprocessed:
    """An entity offered by a provider or emitted by a parent, before processing."""

    ref: str
    #: None when only its text is kept (children emitted by a parent).
    entity: dict[str, Any] | None
    location_key: str | None
    hash: str = ""
    text: str = ""

    def __post_init__(self) -> None:
        if not self.text:
            self.text = jsonutil.dumps(self.entity)
        if not self.hash:
            # The text keeps the source's key order, so it is stable while the source is;
            # a reordered file only costs one needless reprocessing.
            self.hash = jsonutil.text_hash(self.text)


@dataclass
class UpsertResult:
    accepted: list[str] = field(default_factory=list)
    conflicts: list[BaseException] = field(default_factory=list)


def insert_ignore(db: Database, table: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING for the current dialect."""
    dialect = postgresql if db.is_postgres else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def queue_stitch(db: Database, conn: Connection, refs: Iterable[str], now: float) -> None:
    """Queue ``refs`` for stitching. A ref already queued keeps its place (its
    ``queued_at``) but loses its lease: whoever is stitching it computed from inputs this
    transaction changes, and must not store that (see :mod:`app.engine.stitcher`)."""
    # Sorted: concurrent transactions then lock queue rows in one order and cannot
    # deadlock on them (a set's order differs from process to process). On PostgreSQL
    # the update also locks the row: a stitcher's claim skips it until we commit, and a
    # stitcher holding it (storing its result) makes us wait, then we clear its lease.
    execute_many(
        conn,
        "INSERT INTO stitch_queue (entity_ref, queued_at) VALUES (?, ?) "
        "ON CONFLICT (entity_ref) DO UPDATE SET claimed_until = NULL",
        [(ref, now) for ref in sorted(set(refs))],
    )


def worth_stitching(db: Database, conn: Connection, refs: set[str]) -> set[str]:
    """``refs`` less those of entities not processed yet: a first processing queues its
    entity anyway, and the stitch then sees what this transaction wrote.

    That holds where writers take turns (SQLite: one write transaction at a time). On
    PostgreSQL the entity's processing may commit, and be stitched, between our look
    and our commit, and the stitch would miss our rows: there every ref is queued.
    """
    if db.is_postgres or not refs:
        return refs
    pending = select_in(
        conn,
        "SELECT entity_ref FROM refresh_state "
        "WHERE processed_entity IS NULL AND entity_ref IN ({in})",
        refs,
    )
    return refs.difference(row[0] for row in pending)


@dataclass
class _Known:
    """What an upsert needs to know of an existing row; kept current within a batch."""

    location_key: str | None
    unprocessed_hash: str


def _existing(conn: Connection, refs: Iterable[str]) -> dict[str, _Known]:
    return {
        ref: _Known(location_key, unprocessed_hash)
        for ref, unprocessed_hash, location_key in select_in(
            conn,
            "SELECT entity_ref, unprocessed_hash, location_key FROM refresh_state "
            "WHERE entity_ref IN ({in})",
            sorted(set(refs)),
        )
    }


def _referenced_elsewhere(
    conn: Connection, refs: list[str], source_key: str | None, source_ref: str | None
) -> set[str]:
    """Of ``refs``, those that some other source than the given one still references."""
    result: set[str] = set()
    for batch in chunked(refs):
        query = select(refresh_state_references.c.target_entity_ref).where(
            refresh_state_references.c.target_entity_ref.in_(batch)
        )
        if source_key is not None:
            query = query.where(
                (refresh_state_references.c.source_key.is_(None))
                | (refresh_state_references.c.source_key != source_key)
            )
        else:
            query = query.where(
                (refresh_state_references.c.source_entity_ref.is_(None))
                | (refresh_state_references.c.source_entity_ref != source_ref)
            )
        result.update(row[0] for row in conn.execute(query))
    return result


_REFRESH_STATE_INSERT = (
    "entity_id",
    "entity_ref",
    "unprocessed_entity",
    "unprocessed_hash",
    "location_key",
    "next_update_at",
    "last_discovery_at",
)


def upsert_unprocessed(
    conn: Connection,
    items: list[Unprocessed],
    now: float,
    *,
    source_key: str | None = None,
    source_ref: str | None = None,
    existing: dict[str, _Known] | None = None,
) -> UpsertResult:
    """Insert new entities and update changed ones, honouring location keys.

    A row owned by another location key is left alone and reported as a conflict,
    unless nothing else references it any more (the entity moved files), in which
    case the newcomer takes it over. ``existing`` may be shared by several calls in
    one transaction; it is kept in step with what each call writes.
    """
    result = UpsertResult()
    if existing is None:
        existing = _existing(conn, [item.ref for item in items])
    pending = items
    while pending:
        pending = _upsert_round(conn, pending, now, source_key, source_ref, existing, result)
    return result


def _upsert_round(
    conn: Connection,
    items: list[Unprocessed],
    now: float,
    source_key: str | None,
    source_ref: str | None,
    existing: dict[str, _Known],
    result: UpsertResult,
) -> list[Unprocessed]:
    """One pass of :func:`upsert_unprocessed`; returns the items another process
    inserted meanwhile (PostgreSQL only), to be classified again as existing rows."""
    inserts: list[tuple[Any, ...]] = []
    inserted: dict[str, Unprocessed] = {}
    updates: list[tuple[Any, ...]] = []
    contested: list[Unprocessed] = []
    for item in items:
        row = existing.get(item.ref)
        if row is None:
            inserts.append(
                (new_entity_id(), item.ref, item.text, item.hash, item.location_key, now, now)
            )
            inserted[item.ref] = item
            # A later parent in the same batch that emits this ref must see the new row
            # (and its location key), or it would insert the ref a second time.
            existing[item.ref] = _Known(item.location_key, item.hash)
        elif row.location_key not in (None, item.location_key):
            contested.append(item)
        else:
            if row.unprocessed_hash != item.hash or row.location_key != item.location_key:
                updates.append(_update_values(item, now))
                existing[item.ref] = _Known(item.location_key, item.hash)
            result.accepted.append(item.ref)

    if contested:
        busy = _referenced_elsewhere(conn, [i.ref for i in contested], source_key, source_ref)
        for item in contested:
            if item.ref in busy:
                owner = existing[item.ref].location_key
                result.conflicts.append(
                    ConflictError(
                        f"Detected conflicting entityRef {item.ref} already referenced by "
                        f"{owner} and now also {item.location_key}"
                    )
                )
            else:
                updates.append(_update_values(item, now))
                existing[item.ref] = _Known(item.location_key, item.hash)
                result.accepted.append(item.ref)

    execute_many(
        conn,
        "UPDATE refresh_state SET unprocessed_entity = ?, unprocessed_hash = ?, "
        "location_key = ?, next_update_at = ?, last_discovery_at = ? WHERE entity_ref = ?",
        updates,
    )
    lost: list[Unprocessed] = []
    if conn.dialect.name == "postgresql":
        # Another instance may insert the same ref between our read and our insert;
        # skip those rows instead of failing the batch, then treat them as existing.
        insert_ignore_rows(conn, "refresh_state", _REFRESH_STATE_INSERT, inserts)
        ours = {row[1]: row[0] for row in inserts}
        theirs = [
            ref
            for ref, entity_id in select_in(
                conn,
                "SELECT entity_ref, entity_id FROM refresh_state WHERE entity_ref IN ({in})",
                list(ours),
            )
            if entity_id != ours[ref]
        ]
        if theirs:
            existing.update(_existing(conn, theirs))
            lost = [inserted.pop(ref) for ref in theirs]
    else:
        # SQLite has one writer at a time (BEGIN IMMEDIATE): what we read still holds.
        insert_rows(conn, "refresh_state", _REFRESH_STATE_INSERT, inserts)
    result.accepted.extend(inserted)
    return lost


def _update_values(item: Unprocessed, now: float) -> tuple[Any, ...]:
    return (item.text, item.hash, item.location_key, now, now, item.ref)


def replace_references(
    conn: Connection,
    targets: Iterable[str],
    *,
    source_key: str | None = None,
    source_ref: str | None = None,
) -> tuple[set[str], set[str]]:
    """Make the source's references exactly ``targets``; return (added, removed)."""
    column = (
        refresh_state_references.c.source_key
        if source_key is not None
        else refresh_state_references.c.source_entity_ref
    )
    source = source_key if source_key is not None else source_ref
    current = {
        row[0]
        for row in conn.execute(
            select(refresh_state_references.c.target_entity_ref).where(column == source)
        )
    }
    wanted = set(targets)
    added = wanted - current
    removed = current - wanted
    for batch in chunked(sorted(removed)):
        conn.execute(
            delete(refresh_state_references).where(
                and_(column == source, refresh_state_references.c.target_entity_ref.in_(batch))
            )
        )
    insert_rows(
        conn,
        "refresh_state_references",
        ("source_key", "source_entity_ref", "target_entity_ref"),
        [(source_key, source_ref, ref) for ref in sorted(added)],
    )
    return added, removed


def delete_entities(conn: Connection, refs: Iterable[str]) -> tuple[set[str], set[str]]:
    """Delete the unreferenced ones among ``refs`` and, recursively, their orphaned children.

    Returns (deleted refs, refs to re-stitch because relations to them went away).
    """
    refs = set(refs)
    still_referenced = _referenced(conn, refs)
    level = refs - still_referenced
    deleted: set[str] = set()
    restitch: set[str] = set()
    while level:
        ids: list[str] = []
        for batch in chunked(sorted(level)):
            ids.extend(
                row[0]
                for row in conn.execute(
                    select(refresh_state.c.entity_id).where(refresh_state.c.entity_ref.in_(batch))
                )
            )
        children: set[str] = set()
        for batch in chunked(sorted(level)):
            children.update(
                row[0]
                for row in conn.execute(
                    select(refresh_state_references.c.target_entity_ref).where(
                        refresh_state_references.c.source_entity_ref.in_(batch)
                    )
                )
            )
            conn.execute(
                delete(refresh_state_references).where(
                    refresh_state_references.c.source_entity_ref.in_(batch)
                )
            )
            conn.execute(
                delete(refresh_state_references).where(
                    refresh_state_references.c.target_entity_ref.in_(batch)
                )
            )
        restitch |= _drop_emitted(conn, ids)
        for batch in chunked(ids):
            conn.execute(delete(search).where(search.c.entity_id.in_(batch)))
            conn.execute(delete(final_entities).where(final_entities.c.entity_id.in_(batch)))
            conn.execute(delete(refresh_state).where(refresh_state.c.entity_id.in_(batch)))
        deleted |= level
        record_changes(conn, level)
        # Children nothing else references go too; the others just lose a parent.
        level = children - deleted - _referenced(conn, children)
        restitch |= children
    return deleted, restitch - deleted


def _referenced(conn: Connection, refs: set[str]) -> set[str]:
    result: set[str] = set()
    for batch in chunked(sorted(refs)):
        result.update(
            row[0]
            for row in conn.execute(
                select(refresh_state_references.c.target_entity_ref)
                .where(refresh_state_references.c.target_entity_ref.in_(batch))
                .distinct()
            )
        )
    return result


def claim_due(
    db: Database,
    conn: Connection,
    limit: int,
    now: float,
    lease: float,
) -> list[Claimed]:
    """Claim up to ``limit`` due rows by leasing them for ``lease`` seconds.

    While leased (``claimed_until``), nobody else claims them, even when they come due
    again meanwhile (a parent emitted a new version, a refresh): so no entity is
    processed by two processes at once, and the later version is processed after the
    claimant wrote. If this process dies, the rows come due again when the lease
    ends. :func:`release_claims` ends the lease after the write.
    """
    query = (
        select(
            refresh_state.c.entity_id,
            refresh_state.c.entity_ref,
            refresh_state.c.unprocessed_entity,
            refresh_state.c.result_hash,
            refresh_state.c.errors,
            refresh_state.c.cache,
            refresh_state.c.processed_at,
            refresh_state.c.processed_entity.is_not(None).label("has_processed"),
        )
        .where(refresh_state.c.next_update_at <= now)
        .where(refresh_state.c.claimed_until.is_(None) | (refresh_state.c.claimed_until <= now))
        .order_by(refresh_state.c.next_update_at)
        .limit(limit)
    )
    if db.is_postgres:
        query = query.with_for_update(skip_locked=True, of=refresh_state)
    rows = conn.execute(query).all()
    if not rows:
        return []
    lease_until = now + lease
    # next_update_at moves with the lease: it tells release_claims whether anyone asked
    # for the row meanwhile, and keeps leased rows out of the "due" counts.
    execute_many(
        conn,
        "UPDATE refresh_state SET next_update_at = ?, claimed_until = ? WHERE entity_id = ?",
        [(lease_until, lease_until, row.entity_id) for row in sorted(rows, key=_entity_id)],
    )
    return [
        Claimed(
            entity_id=row.entity_id,
            entity_ref=row.entity_ref,
            unprocessed=jsonutil.loads(row.unprocessed_entity),
            result_hash=row.result_hash,
            errors=row.errors,
            cache=jsonutil.loads(row.cache) if row.cache else {},
            processed_at=row.processed_at,
            has_processed=bool(row.has_processed),
            lease_until=lease_until,
        )
        for row in rows
    ]


def result_hash_of(
    outcome: ProcessingOutcome, children: list[Unprocessed], entity_text: str
) -> str:
    """A hash of everything a processing result stores; ``entity_text`` is the entity as
    stored. Processors build entities in a fixed key order, so hashing that text (not a
    key-sorted copy) spares a second serialisation; a reordering would only cost one
    needless write."""
    rest = jsonutil.stable_dumps(
        {
            "relations": sorted(outcome.relations),
            "children": [(c.ref, c.hash, c.location_key) for c in children],
            "errors": [serialize_error(e) for e in outcome.errors],
            "refreshKeys": outcome.refresh_keys,
            "failed": sorted(outcome.failed_locations),
            "cache": outcome.cache,
        }
    )
    return jsonutil.text_hash(f"{entity_text}\x00{rest}")


def _entity_id(row: Any) -> str:
    return str(row.entity_id)


def held_claims(db: Database, conn: Connection, claimed: list[Claimed]) -> list[Claimed]:
    """The rows of ``claimed`` whose claim is still ours, locked until the transaction
    ends on PostgreSQL (so nobody takes them over before our write commits).

    A claim is lost when its lease ran out and another process claimed the row: that
    process's result is the newer one, and ours must not overwrite it.
    """
    if not claimed:
        return []
    lock = " FOR UPDATE" if db.is_postgres else ""
    leases: dict[float, list[str]] = {}
    for row in claimed:
        leases.setdefault(row.lease_until, []).append(row.entity_id)
    ours: set[str] = set()
    for lease, ids in leases.items():
        ours.update(
            found[0]
            for found in select_in(
                conn,
                "SELECT entity_id FROM refresh_state WHERE claimed_until = ? "
                "AND entity_id IN ({in}) ORDER BY entity_id" + lock,
                sorted(ids),
                (lease,),
            )
        )
    return [row for row in claimed if row.entity_id in ours]


def release_claims(
    conn: Connection,
    claimed: list[Claimed],
    now: float,
    interval: tuple[float, float] | None,
) -> None:
    """End our claims: each row is due next after the processing interval, or
    ``interval=None`` and ``now`` for a retry. A row whose ``next_update_at`` changed
    meanwhile (a new version, a refresh) keeps that and is processed again at once."""
    low, high = interval if interval is not None else (0.0, 0.0)
    execute_many(
        conn,
        "UPDATE refresh_state SET next_update_at = CASE WHEN next_update_at = ? THEN ? "
        "ELSE next_update_at END, claimed_until = NULL "
        "WHERE entity_id = ? AND claimed_until = ?",
        [
            (row.lease_until, now + random.uniform(low, high), row.entity_id, row.lease_until)
            for row in sorted(claimed, key=_entity_id)
        ],
    )


def schedule_next(
    conn: Connection, claimed: list[Claimed], now: float, interval: tuple[float, float] | None
) -> None:
    """Replace the claims' leases with the next processing times (never, without an
    interval). A row asked for meanwhile keeps its time (see :func:`release_claims`)."""
    release_claims(conn, claimed, now, interval if interval is not None else (10**9, 10**9))


@dataclass
class PreparedResult:
    """A processing outcome with the texts and hash its write needs, computed before the
    write transaction (so that they do not hold SQLite's one write lock)."""

    claimed: Claimed
    outcome: ProcessingOutcome
    #: The hash of the whole result (None for a failed entity).
    digest: str | None = None
    children: list[Unprocessed] = field(default_factory=list)
    entity_text: str | None = None
    #: The outcome's errors as stored (None: no errors).
    errors_text: str | None = None
    cache_text: str | None = None

    @property
    def unchanged(self) -> bool:
        return self.digest is not None and self.digest == self.claimed.result_hash


def _errors_text(errors: list[BaseException]) -> str | None:
    return jsonutil.dumps([serialize_error(e) for e in errors]) if errors else None


def prepare_results(results: list[tuple[Claimed, ProcessingOutcome]]) -> list[PreparedResult]:
    prepared: list[PreparedResult] = []
    for claimed, outcome in results:
        if not outcome.ok:
            errors = jsonutil.dumps([serialize_error(e) for e in outcome.errors])
            prepared.append(PreparedResult(claimed, outcome, errors_text=errors))
            continue
        children = [Unprocessed(c.ref, None, c.location_key, text=c.text) for c in outcome.children]
        entity_text = jsonutil.dumps(outcome.entity)
        result = PreparedResult(
            claimed,
            outcome,
            digest=result_hash_of(outcome, children, entity_text),
            children=children,
        )
        if not result.unchanged:
            result.entity_text = entity_text
            result.errors_text = _errors_text(outcome.errors)
            result.cache_text = jsonutil.dumps(outcome.cache) if outcome.cache else None
        prepared.append(result)
    return prepared


def write_results(conn: Connection, results: list[PreparedResult], now: float) -> set[str]:
    """Persist a batch of prepared processing outcomes; return the refs to stitch."""
    stitch: set[str] = set()
    processed_marks: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    changed: list[PreparedResult] = []

    for result in results:
        claimed = result.claimed
        if not result.outcome.ok:
            if result.errors_text != claimed.errors or claimed.processed_at is None:
                failures.append(
                    {"b_id": claimed.entity_id, "b_errors": result.errors_text, "b_now": now}
                )
                if claimed.has_processed:
                    stitch.add(claimed.entity_ref)
            continue
        if result.unchanged:
            if claimed.processed_at is None:
                processed_marks.append({"b_id": claimed.entity_id, "b_now": now})
            continue
        changed.append(result)

    if failures:
        conn.execute(
            update(refresh_state)
            .where(refresh_state.c.entity_id == bindparam("b_id"))
            .values(errors=bindparam("b_errors"), processed_at=bindparam("b_now")),
            failures,
        )
    if processed_marks:
        conn.execute(
            update(refresh_state)
            .where(refresh_state.c.entity_id == bindparam("b_id"))
            .values(processed_at=bindparam("b_now")),
            processed_marks,
        )
    if not changed:
        return stitch

    stitch |= _drop_emitted(conn, [result.claimed.entity_id for result in changed])

    relation_rows: list[tuple[str, str, str, str]] = []
    key_rows: list[tuple[str, str]] = []
    for result in changed:
        entity_id = result.claimed.entity_id
        stitch.add(result.claimed.entity_ref)
        for source, relation_type, target in result.outcome.relations:
            relation_rows.append((entity_id, source, relation_type, target))
            stitch.add(source)
        for key in result.outcome.refresh_keys:
            key_rows.append((entity_id, key))
    insert_rows(
        conn,
        "relations",
        ("originating_entity_id", "source_entity_ref", "type", "target_entity_ref"),
        relation_rows,
    )
    insert_rows(conn, "refresh_keys", ("entity_id", "key"), key_rows)

    # Children of the whole batch: one lookup, then an upsert per parent (for conflicts).
    all_children = [child for result in changed for child in result.children]
    existing = _existing(conn, [child.ref for child in all_children]) if all_children else {}
    updates: list[dict[str, Any]] = []
    for result in changed:
        claimed, outcome = result.claimed, result.outcome
        errors_text = result.errors_text
        if result.children or claimed.has_processed:
            upserted = upsert_unprocessed(
                conn, result.children, now, source_ref=claimed.entity_ref, existing=existing
            )
            if upserted.conflicts:
                errors_text = _errors_text(list(outcome.errors) + upserted.conflicts)
            targets = set(upserted.accepted)
            if outcome.failed_locations:
                targets |= _children_from(conn, claimed.entity_ref, outcome.failed_locations)
            added, removed = replace_references(conn, targets, source_ref=claimed.entity_ref)
            # Adopted or abandoned children change their orphan status.
            stitch |= added | removed
        updates.append(
            {
                "b_id": claimed.entity_id,
                "b_entity": result.entity_text,
                "b_hash": result.digest,
                "b_errors": errors_text,
                "b_cache": result.cache_text,
                "b_now": now,
            }
        )
    conn.execute(
        update(refresh_state)
        .where(refresh_state.c.entity_id == bindparam("b_id"))
        .values(
            processed_entity=bindparam("b_entity"),
            result_hash=bindparam("b_hash"),
            errors=bindparam("b_errors"),
            cache=bindparam("b_cache"),
            processed_at=bindparam("b_now"),
        ),
        updates,
    )
    return stitch


def _drop_emitted(conn: Connection, entity_ids: list[str]) -> set[str]:
    """Delete the relations and refresh keys these entities emitted; return the refs on
    the source side of those relations (their final entities lose the rows)."""
    sources = {
        row[0]
        for row in select_in(
            conn,
            "SELECT DISTINCT source_entity_ref FROM relations "
            "WHERE originating_entity_id IN ({in})",
            entity_ids,
        )
    }
    delete_in(conn, "relations", "originating_entity_id", entity_ids)
    delete_in(conn, "refresh_keys", "entity_id", entity_ids)
    return sources


def _children_from(conn: Connection, parent_ref: str, location_keys: set[str]) -> set[str]:
    """The current children of ``parent_ref`` that came from the given locations."""
    query = (
        select(refresh_state.c.entity_ref)
        .select_from(
            refresh_state_references.join(
                refresh_state,
                refresh_state.c.entity_ref == refresh_state_references.c.target_entity_ref,
            )
        )
        .where(refresh_state_references.c.source_entity_ref == parent_ref)
        .where(refresh_state.c.location_key.in_(sorted(location_keys)))
    )
    return {row[0] for row in conn.execute(query)}


def count_pending(conn: Connection) -> tuple[int, int]:
    """(entities never processed yet, entities waiting to be stitched)."""
    unprocessed = conn.execute(
        select(func.count())
        .select_from(refresh_state)
        .where(refresh_state.c.processed_at.is_(None))
    ).scalar_one()
    queued = conn.execute(select(func.count()).select_from(stitch_queue)).scalar_one()
    return int(unprocessed), int(queued)
