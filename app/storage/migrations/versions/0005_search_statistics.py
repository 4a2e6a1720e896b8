"""PostgreSQL: statistics on how ``search.key`` and ``search.value`` go together.

The planner otherwise estimates ``key = 'kind' AND value = 'component'`` as the product
of two independent selectivities, which at 50,000 entities made it expect a few hundred
components instead of 20,000 and hash the whole list for every cursor page (250 ms
instead of 7). ANALYZE (autovacuum) fills them in. SQLite has no such statistics.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE STATISTICS IF NOT EXISTS search_key_value_stats (mcv, dependencies) "
            "ON key, value FROM search"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS search_key_value_stats")
