"""Readiness follows the engine: 503 with a reason until everything is processed and stitched.

The app runs in-process here (Flask's test client), so each step of the engine can be
taken by hand between two readiness checks; nothing is timed.
"""

from __future__ import annotations

import shutil

from app import create_app
from app.catalog import Catalog
from app.config import AppConfig
from tests.conftest import catalog_config, component, location, settle, write_yaml

READINESS = "/.backstage/health/v1/readiness"
LIVENESS = "/.backstage/health/v1/liveness"


def test_readiness_waits_for_every_entity_to_be_processed_and_stitched(database_url, tmp_path):
    write_yaml(tmp_path / "components.yaml", component("a"), component("b"))
    root = write_yaml(tmp_path / "root.yaml", location("root", "./components.yaml"))
    config = AppConfig(catalog_config(database_url, [root]))
    catalog = Catalog.from_config(config)
    try:
        client = create_app(config, catalog=catalog, start=False).test_client()

        def readiness() -> tuple[int, dict]:
            response = client.get(READINESS)
            assert client.get(LIVENESS).status_code == 200
            return response.status_code, response.get_json()

        status, body = readiness()
        assert status == 503
        assert body == {
            "status": "error",
            "message": "The catalog is not ready: entity providers are not connected yet",
        }

        catalog.engine.connect_providers()
        status, body = readiness()
        assert status == 503
        assert body["message"] == (
            "The catalog is not ready: 1 entities not processed yet, 0 waiting to be stitched"
        )

        # The configured location is processed: its child appears, unprocessed, and the
        # location waits to be stitched.
        assert catalog.engine.process_batch() == 1
        status, body = readiness()
        assert status == 503
        assert "1 entities not processed yet" in body["message"]
        assert "waiting to be stitched" in body["message"]

        settle(catalog)
        response = client.get(READINESS)
        assert response.status == "200 OK"
        assert response.get_json() == {"status": "ok"}
    finally:
        catalog.stop()


def test_not_ready_is_a_503_with_nodes_reason_phrase(database_url, tmp_path):
    config = AppConfig(catalog_config(database_url, []))
    catalog = Catalog.from_config(config)
    try:
        client = create_app(config, catalog=catalog, start=False).test_client()
        response = client.get(READINESS)
        assert response.status == "503 Service Unavailable"
        catalog.engine.connect_providers()
        assert client.get(READINESS).status_code == 200  # an empty catalog is ready at once
    finally:
        catalog.stop()


def test_an_unreachable_database_is_a_reason_not_a_500(tmp_path):
    # Its own SQLite file, in a folder that then disappears: every new connection fails.
    folder = tmp_path / "db"
    folder.mkdir()
    config = AppConfig(catalog_config(f"sqlite:///{folder / 'catalog.sqlite'}", []))
    catalog = Catalog.from_config(config)
    try:
        client = create_app(config, catalog=catalog, start=False).test_client()
        catalog.engine.connect_providers()
        assert client.get(READINESS).status_code == 200
        catalog.db.dispose()
        shutil.rmtree(folder)
        response = client.get(READINESS)
        assert response.status_code == 503
        assert response.get_json() == {
            "status": "error",
            "message": "The catalog is not ready: the database is unreachable (OperationalError)",
        }
        assert client.get(LIVENESS).status_code == 200
    finally:
        catalog.stop()
