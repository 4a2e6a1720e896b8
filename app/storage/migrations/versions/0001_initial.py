"""The initial catalog schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refresh_state",
        sa.Column("entity_id", sa.String(36), primary_key=True),
        sa.Column("entity_ref", sa.Text, nullable=False, unique=True),
        sa.Column("unprocessed_entity", sa.Text, nullable=False),
        sa.Column("unprocessed_hash", sa.String(40), nullable=False),
        sa.Column("processed_entity", sa.Text),
        sa.Column("result_hash", sa.String(40)),
        sa.Column("cache", sa.Text),
        sa.Column("errors", sa.Text),
        sa.Column("location_key", sa.Text),
        sa.Column("next_update_at", sa.Float, nullable=False),
        sa.Column("last_discovery_at", sa.Float, nullable=False),
        sa.Column("processed_at", sa.Float),
    )
    op.create_index("refresh_state_next_update_at_idx", "refresh_state", ["next_update_at"])

    op.create_table(
        "refresh_state_references",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source_key", sa.Text),
        sa.Column("source_entity_ref", sa.Text),
        sa.Column("target_entity_ref", sa.Text, nullable=False),
    )
    op.create_index(
        "refresh_state_references_source_key_idx", "refresh_state_references", ["source_key"]
    )
    op.create_index(
        "refresh_state_references_source_entity_ref_idx",
        "refresh_state_references",
        ["source_entity_ref"],
    )
    op.create_index(
        "refresh_state_references_target_entity_ref_idx",
        "refresh_state_references",
        ["target_entity_ref"],
    )

    op.create_table(
        "relations",
        sa.Column("originating_entity_id", sa.String(36), nullable=False),
        sa.Column("source_entity_ref", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("target_entity_ref", sa.Text, nullable=False),
    )
    op.create_index("relations_originating_entity_id_idx", "relations", ["originating_entity_id"])
    op.create_index("relations_source_entity_ref_idx", "relations", ["source_entity_ref"])

    op.create_table(
        "refresh_keys",
        sa.Column("entity_id", sa.String(36), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
    )
    op.create_index("refresh_keys_entity_id_idx", "refresh_keys", ["entity_id"])
    op.create_index("refresh_keys_key_idx", "refresh_keys", ["key"])

    op.create_table(
        "final_entities",
        sa.Column("entity_id", sa.String(36), primary_key=True),
        sa.Column("entity_ref", sa.Text, nullable=False, unique=True),
        sa.Column("hash", sa.String(40), nullable=False),
        sa.Column("final_entity", sa.Text, nullable=False),
        sa.Column("last_updated_at", sa.Float, nullable=False),
    )

    op.create_table(
        "search",
        sa.Column("entity_id", sa.String(36), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", sa.Text),
        sa.Column("original_value", sa.Text),
    )
    op.create_index("search_key_value_idx", "search", ["key", "value"])
    op.create_index("search_entity_id_idx", "search", ["entity_id"])

    op.create_table(
        "stitch_queue",
        sa.Column("entity_ref", sa.Text, primary_key=True),
        sa.Column("queued_at", sa.Float, nullable=False),
    )

    op.create_table(
        "locations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.UniqueConstraint("type", "target", name="locations_type_target_key"),
    )

    catalog_state = op.create_table(
        "catalog_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )
    op.bulk_insert(catalog_state, [{"key": "generation", "value": 0}])

    op.create_table(
        "entity_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("entity_ref", sa.Text, nullable=False),
    )
    op.create_index("entity_changes_generation_idx", "entity_changes", ["generation"])


def downgrade() -> None:
    for table in (
        "entity_changes",
        "catalog_state",
        "locations",
        "stitch_queue",
        "search",
        "final_entities",
        "refresh_keys",
        "relations",
        "refresh_state_references",
        "refresh_state",
    ):
        op.drop_table(table)
