"""Stitching claims its queue rows: ``stitch_queue.claimed_until``.

A stitcher used to take its refs out of the queue and compute their final entities
inside the one write transaction that stored them, holding SQLite's only write lock
(and the processing loop) for the whole computation. Now it leases the rows, computes
outside any write transaction, and stores only the results whose lease is intact:
queueing a ref again clears its lease, so a result computed from older inputs is
dropped and the ref is stitched again (see ``app.engine.stitcher``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stitch_queue", sa.Column("claimed_until", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("stitch_queue") as batch:
        batch.drop_column("claimed_until")
