"""The catalog's tables (SQLAlchemy Core).

Two halves, as in Backstage: the processing side (``refresh_state`` and the edges
the engine writes while processing) and the read side (``final_entities`` and
``search``) that the API serves from. Alembic migrations under
``app/storage/migrations`` create exactly these tables; a test keeps them equal.

Times are epoch seconds as floats: the same type on SQLite and PostgreSQL, and
cheap to compare in the claim query.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)

metadata = MetaData()

# One row per entity known to the engine, processed or not. ``entity_id`` becomes
# ``metadata.uid`` and stays stable while the row lives.
refresh_state = Table(
    "refresh_state",
    metadata,
    Column("entity_id", String(36), primary_key=True),
    Column("entity_ref", Text, nullable=False, unique=True),
    Column("unprocessed_entity", Text, nullable=False),
    Column("unprocessed_hash", String(40), nullable=False),
    Column("processed_entity", Text),
    Column("result_hash", String(40)),
    Column("cache", Text),
    Column("errors", Text),
    Column("location_key", Text),
    Column("next_update_at", Float, nullable=False),
    Column("last_discovery_at", Float, nullable=False),
    # Set once the entity has been through the processors, successfully or not;
    # readiness waits until no row lacks it.
    Column("processed_at", Float),
    # While a process works on the row: until when its claim holds (None: unclaimed).
    # Nobody else claims the row before then, even if it comes due meanwhile.
    Column("claimed_until", Float),
    Index("refresh_state_next_update_at_idx", "next_update_at"),
    # Readiness counts the entities never processed; without this the count reads
    # every row (and rows carry whole entities).
    Index(
        "refresh_state_unprocessed_idx",
        "entity_id",
        sqlite_where=text("processed_at IS NULL"),
        postgresql_where=text("processed_at IS NULL"),
    ),
)

# "Who emitted whom": from a provider (source_key) or a parent entity
# (source_entity_ref) to a child. Drives ancestry, orphans and cascading deletes.
refresh_state_references = Table(
    "refresh_state_references",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source_key", Text),
    Column("source_entity_ref", Text),
    Column("target_entity_ref", Text, nullable=False),
    Index("refresh_state_references_source_key_idx", "source_key"),
    Index("refresh_state_references_source_entity_ref_idx", "source_entity_ref"),
    Index("refresh_state_references_target_entity_ref_idx", "target_entity_ref"),
)

# Relation rows, both directions, owned by the entity whose processing emitted them.
relations = Table(
    "relations",
    metadata,
    Column("originating_entity_id", String(36), nullable=False),
    Column("source_entity_ref", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("target_entity_ref", Text, nullable=False),
    Index("relations_originating_entity_id_idx", "originating_entity_id"),
    Index("relations_source_entity_ref_idx", "source_entity_ref"),
)
# ``relations.<type> = <ref>`` filters and facets (see app.storage.filters).
Index("relations_type_target_idx", func.lower(relations.c.type), relations.c.target_entity_ref)

# Refresh keys (e.g. ``file:/path``) that reschedule the entities that read them.
refresh_keys = Table(
    "refresh_keys",
    metadata,
    Column("entity_id", String(36), nullable=False),
    Column("key", Text, nullable=False),
    Index("refresh_keys_entity_id_idx", "entity_id"),
    Index("refresh_keys_key_idx", "key"),
)

# Stitched entities: the only thing reads see. ``final_entity`` is the exact JSON text
# served, so listing endpoints can splice rows without re-encoding them.
final_entities = Table(
    "final_entities",
    metadata,
    Column("entity_id", String(36), primary_key=True),
    Column("entity_ref", Text, nullable=False, unique=True),
    Column("hash", String(40), nullable=False),
    Column("final_entity", Text, nullable=False),
    Column("last_updated_at", Float, nullable=False),
)

# Flattened, lowercased index of final entities for filters, ordering and facets.
search = Table(
    "search",
    metadata,
    Column("entity_id", String(36), nullable=False),
    Column("key", Text, nullable=False),
    Column("value", Text),
    Column("original_value", Text),
    # Covering for filters, ordered pages and counts: the table is never read.
    Index("search_key_value_entity_idx", "key", "value", "entity_id"),
    Index("search_entity_id_idx", "entity_id"),
)

# Entity refs whose final form must be recomputed. A queue in the database so that
# any process may stitch what another one processed. A stitcher leases the rows it
# works on (``claimed_until``); queueing a ref again clears its lease.
stitch_queue = Table(
    "stitch_queue",
    metadata,
    Column("entity_ref", Text, primary_key=True),
    Column("queued_at", Float, nullable=False),
    Column("claimed_until", Float),
)

# Locations registered through the API.
locations = Table(
    "locations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("type", Text, nullable=False),
    Column("target", Text, nullable=False),
    # The generated Location entity's ref, fixed at registration (see migration 0002).
    Column("location_entity_ref", Text),
    UniqueConstraint("type", "target", name="locations_type_target_key"),
)

# Small shared counters, e.g. the catalog generation that read models poll.
catalog_state = Table(
    "catalog_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)

# Which final entities changed (written or deleted) at which generation, so read
# models such as the graph catch up incrementally instead of rebuilding.
entity_changes = Table(
    "entity_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("generation", Integer, nullable=False),
    Column("entity_ref", Text, nullable=False),
    Index("entity_changes_generation_idx", "generation"),
)
