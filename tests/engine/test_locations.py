"""The location service and the ``DefaultLocationStore`` provider, without HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from app.catalog import Catalog
from app.config import AppConfig
from app.errors import ConflictError, InputError, NotFoundError
from app.storage.tables import locations
from entity_providers.location_store import DefaultLocationStore
from tests.conftest import (
    catalog_config,
    component,
    final_entities_by_ref,
    location,
    processing_errors,
    settle,
    write_yaml,
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write_yaml(tmp_path / "all.yaml", location("root", "./config.yaml"))
    (tmp_path / "definition.txt").write_text("the definition\n")
    api = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "API",
        "metadata": {"name": "config-api"},
        "spec": {
            "type": "openapi",
            "lifecycle": "production",
            "owner": "team-a",
            "definition": {"$text": "./definition.txt"},
        },
    }
    write_yaml(tmp_path / "config.yaml", api)
    registered = tmp_path / "registered"
    write_yaml(registered / "one.yaml", component("one"))
    write_yaml(
        registered / "leaky.yaml",
        {
            **api,
            "metadata": {"name": "leaky-api"},
            "spec": {**api["spec"], "definition": {"$text": "../definition.txt"}},
        },
        location("reach-out", str(tmp_path / "config.yaml")),
    )
    return tmp_path


@pytest.fixture
def catalog(make_catalog, tree: Path) -> Catalog:
    return make_catalog(  # type: ignore[no-any-return]
        [tree / "all.yaml"], catalog={"allowedFileRoots": [str(tree / "registered")]}
    )


def test_register_update_delete(catalog: Catalog, tree: Path):
    service = catalog.locations
    one = str(tree / "registered" / "one.yaml")
    created = service.create("file", one)
    settle(catalog)
    entities = final_entities_by_ref(catalog)
    assert "component:default/one" in entities
    generated = entities[created["location"]["entityRef"]]
    assert generated["spec"] == {"type": "file", "target": one}

    with pytest.raises(ConflictError, match=f"Location file:{one} already exists"):
        service.create("file", one)
    with pytest.raises(InputError, match=r'allowed type \["url","file"\]'):
        service.create("git", one)
    with pytest.raises(NotFoundError, match="Found no location with ID nope"):
        service.update("nope", "file", str(tree / "registered" / "leaky.yaml"))
    # The conflict is reported first, as in Backstage.
    with pytest.raises(ConflictError):
        service.update("nope", "file", one)

    leaky = str(tree / "registered" / "leaky.yaml")
    row = service.update(created["location"]["id"], "file", leaky)
    assert row.entity_ref == created["location"]["entityRef"]
    settle(catalog)
    one_entity = final_entities_by_ref(catalog)["component:default/one"]
    assert one_entity["metadata"]["annotations"]["backstage.io/orphan"] == "true"
    service.delete(row.id)
    entities = final_entities_by_ref(catalog)
    assert created["location"]["entityRef"] not in entities
    assert "location:default/reach-out" not in entities  # emitted by that location only
    assert "component:default/one" in entities  # an orphan already, not its child any more
    with pytest.raises(NotFoundError):
        service.delete(row.id)


def test_configured_locations_are_trusted_registered_ones_are_not(catalog: Catalog, tree: Path):
    catalog.locations.create("file", str(tree / "registered" / "leaky.yaml"))
    settle(catalog)
    entities = final_entities_by_ref(catalog)
    # Deliberately better than Backstage: relative placeholders resolve in file locations.
    assert entities["api:default/config-api"]["spec"]["definition"] == "the definition\n"
    # A registered file cannot read outside catalog.allowedFileRoots, by placeholder...
    assert "api:default/leaky-api" not in entities
    errors = processing_errors(catalog)
    assert any("catalog.allowedFileRoots" in str(e) for e in errors["api:default/leaky-api"])
    # ... or by a Location entity of its own.
    reach_out = entities["location:default/reach-out"]
    assert "catalog.allowedFileRoots" in reach_out["status"]["items"][0]["message"]


def test_registrations_made_before_the_provider_connects_are_not_lost(database_url, tree: Path):
    config = AppConfig(
        catalog_config(
            database_url,
            [tree / "all.yaml"],
            {"catalog": {"allowedFileRoots": [str(tree / "registered")]}},
        )
    )
    catalog = Catalog.from_config(config)
    try:
        # The API may take requests before the engine thread connected the providers.
        created = catalog.locations.create("file", str(tree / "registered" / "one.yaml"))
        store = next(p for p in catalog.engine.providers if isinstance(p, DefaultLocationStore))
        assert not store.connected
        catalog.engine.connect_providers()
        settle(catalog)
        entities = final_entities_by_ref(catalog)
        assert created["location"]["entityRef"] in entities
        assert "component:default/one" in entities
    finally:
        catalog.stop()


def test_a_restart_reconnects_and_forgets_rows_deleted_meanwhile(make_catalog, tree: Path):
    first = make_catalog(
        [tree / "all.yaml"], catalog={"allowedFileRoots": [str(tree / "registered")]}
    )
    created = first.locations.create("file", str(tree / "registered" / "one.yaml"))
    settle(first)
    with first.db.engine.begin() as conn:
        conn.execute(locations.delete())
    second = make_catalog(
        [tree / "all.yaml"], catalog={"allowedFileRoots": [str(tree / "registered")]}
    )
    settle(second)
    entities = final_entities_by_ref(second)
    assert created["location"]["entityRef"] not in entities
    assert "component:default/one" not in entities
    with second.db.engine.connect() as conn:
        assert conn.execute(select(locations)).all() == []
