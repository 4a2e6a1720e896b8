"""Registered locations remember the ref of their generated Location entity.

Backstage stores ``location_entity_ref`` with each row: the entity is named after
the *original* ``type:target``, so ``PUT /locations/{id}`` keeps the entity (and its
name) while the target changes. Rows from before this migration get the ref their
current ``type:target`` gives, which is what it was for them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("locations", sa.Column("location_entity_ref", sa.Text))
    locations = sa.table(
        "locations",
        sa.column("id", sa.String),
        sa.column("type", sa.Text),
        sa.column("target", sa.Text),
        sa.column("location_entity_ref", sa.Text),
    )
    conn = op.get_bind()
    for row in conn.execute(sa.select(locations.c.id, locations.c.type, locations.c.target)):
        digest = hashlib.sha1(f"{row.type}:{row.target}".encode()).hexdigest()
        conn.execute(
            locations.update()
            .where(locations.c.id == row.id)
            .values(location_entity_ref=f"location:default/generated-{digest}")
        )


def downgrade() -> None:
    with op.batch_alter_table("locations") as batch:
        batch.drop_column("location_entity_ref")
