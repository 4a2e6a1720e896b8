"""Claims get a column of their own: ``refresh_state.claimed_until``.

A claim used to be only ``next_update_at`` pushed out by the lease, so anything that
made the row due again meanwhile (a parent emitting a changed version, a refresh)
let another process claim and process it while the first still worked on it, and
the slower of the two could then write an older result over a newer one. With the
lease in its own column, such a row stays with its claimant, which processes it
again right after writing (see ``app.engine.refresh_state.claim_due``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refresh_state", sa.Column("claimed_until", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("refresh_state") as batch:
        batch.drop_column("claimed_until")
