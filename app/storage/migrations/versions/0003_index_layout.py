"""Index layout for fast reads and writes.

* ``search (key, value, entity_id)`` replaces ``(key, value)``: filters, ordered
  pages and counts read the index alone.
* Relations are no longer copied into ``search``: ``relations.<type>`` keys are
  answered from the relations table, through an index on ``(lower(type), target)``.
* A partial index on the entities never processed, which readiness counts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM search WHERE key LIKE 'relations.%'")
    op.drop_index("search_key_value_idx", table_name="search")
    op.create_index("search_key_value_entity_idx", "search", ["key", "value", "entity_id"])
    op.create_index(
        "relations_type_target_idx",
        "relations",
        [sa.text("lower(type)"), "target_entity_ref"],
    )
    op.create_index(
        "refresh_state_unprocessed_idx",
        "refresh_state",
        ["entity_id"],
        sqlite_where=sa.text("processed_at IS NULL"),
        postgresql_where=sa.text("processed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("refresh_state_unprocessed_idx", table_name="refresh_state")
    op.drop_index("relations_type_target_idx", table_name="relations")
    op.drop_index("search_key_value_entity_idx", table_name="search")
    op.create_index("search_key_value_idx", "search", ["key", "value"])
    # Relation rows come back into search as entities are stitched again.
    op.execute("UPDATE final_entities SET hash = ''")
