"""The ``locations`` table: migration 0002 and the location query semantics."""

from __future__ import annotations

import hashlib

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import select

from app.storage import locations as table
from app.storage.database import MIGRATIONS_DIR, Database
from app.storage.tables import locations


def test_migration_0002_names_the_entities_of_existing_rows(database_url):
    db = Database(database_url)
    try:
        cfg = AlembicConfig(str(MIGRATIONS_DIR / "alembic.ini"))
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
            conn.exec_driver_sql(
                "INSERT INTO locations (id, type, target) VALUES ('a', 'url', 'https://x/y.yaml')"
            )
        db.migrate()
        with db.engine.connect() as conn:
            row = conn.execute(select(locations)).one()
            assert row.location_entity_ref == table.location_entity_ref("url", "https://x/y.yaml")
            digest = hashlib.sha1(b"url:https://x/y.yaml").hexdigest()
            assert row.location_entity_ref == f"location:default/generated-{digest}"
            assert table.get_location(conn, "a").to_json() == {
                "id": "a",
                "type": "url",
                "target": "https://x/y.yaml",
                "entityRef": f"location:default/generated-{digest}",
            }
    finally:
        db.dispose()


def test_location_predicates(database_url):
    db = Database(database_url)
    db.migrate()
    try:
        with db.engine.begin() as conn:
            a = table.insert_location(conn, "url", "https://example.com/A.yaml")
            b = table.insert_location(conn, "file", "/srv/b_%.yaml")

            def targets(query):
                rows, total = table.query_locations(conn, query, after_id=None, limit=10)
                assert total == len(rows)
                return sorted(row.target for row in rows)

            assert targets(None) == sorted([a.target, b.target])
            assert targets({"target": "HTTPS://EXAMPLE.COM/a.yaml"}) == [a.target]
            assert targets({"Type": {"$in": ["FILE"]}}) == [b.target]
            assert targets({"id": {"$in": [a.id.upper()]}}) == []  # ids compare exactly
            assert targets({"target": {"$hasPrefix": "/srv/b_%"}}) == [b.target]
            assert targets({"target": {"$hasPrefix": "/srv/b_x"}}) == []  # _ and % are literal
            assert targets({"$any": [{"type": "url"}, {"type": "file"}]}) == sorted(
                [a.target, b.target]
            )
            assert targets({"$any": []}) == []
            assert targets({"$not": {"type": "url"}}) == [b.target]
            assert targets({"entityRef": {"$exists": True}}) == sorted([a.target, b.target])
            assert targets({"entityRef": {"$exists": False}}) == []
            page, total = table.query_locations(conn, None, after_id=min(a.id, b.id), limit=10)
            assert [row.id for row in page] == [max(a.id, b.id)] and total == 2
    finally:
        db.dispose()
