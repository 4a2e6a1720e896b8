"""Migration 0005: PostgreSQL's planner knows how search keys and values go together."""

from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import text

from app.storage.database import MIGRATIONS_DIR, Database


def _statistics(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT stxname FROM pg_statistic_ext WHERE stxname = 'search_key_value_stats'"
                )
            )
        ]


def test_search_statistics_come_and_go_with_the_migration(database_url):
    db = Database(database_url)
    db.migrate()
    try:
        if not db.is_postgres:
            return  # a no-op on SQLite: migrating to head above is the test
        assert _statistics(db) == ["search_key_value_stats"]
        cfg = AlembicConfig(str(MIGRATIONS_DIR / "alembic.ini"))
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
        assert _statistics(db) == []
        db.migrate()
        assert _statistics(db) == ["search_key_value_stats"]
    finally:
        db.dispose()
