"""Engine operations behind the write API, on real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app.engine import operations
from app.errors import InputError, NotFoundError
from app.storage.tables import final_entities, refresh_state
from tests.conftest import (
    component,
    final_entities_by_ref,
    generated_location_ref,
    group,
    location,
    settle,
    write_yaml,
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write_yaml(tmp_path / "all.yaml", location("root", "./team.yaml", "./nested.yaml"))
    write_yaml(tmp_path / "team.yaml", group("team-a"))
    write_yaml(tmp_path / "nested.yaml", location("nested", "./leaf.yaml"))
    write_yaml(tmp_path / "leaf.yaml", component("leaf"), component("other-leaf"))
    return tmp_path


def row(catalog, ref: str) -> Any:
    with catalog.db.engine.connect() as conn:
        return conn.execute(select(refresh_state).where(refresh_state.c.entity_ref == ref)).first()


def test_delete_by_uid_removes_at_once_and_the_parent_brings_it_back(make_catalog, tree):
    catalog = make_catalog([tree / "all.yaml"])
    settle(catalog)
    before = final_entities_by_ref(catalog)["component:default/leaf"]
    uid = before["metadata"]["uid"]

    assert operations.delete_entity_by_uid(catalog.engine, uid) is True
    assert "component:default/leaf" not in final_entities_by_ref(catalog)
    parent = row(catalog, "location:default/nested")
    assert parent.result_hash == operations.CHILD_WAS_DELETED
    assert parent.next_update_at <= catalog.engine.clock()

    settle(catalog)
    after = final_entities_by_ref(catalog)["component:default/leaf"]
    assert after["metadata"]["uid"] != uid
    assert {k: v for k, v in after.items() if k != "metadata"} == {
        k: v for k, v in before.items() if k != "metadata"
    }
    assert operations.delete_entity_by_uid(catalog.engine, "no-such-uid") is False


def test_deleting_a_parent_orphans_its_children_until_it_is_back(make_catalog, tree):
    catalog = make_catalog([tree / "all.yaml"])
    settle(catalog)
    nested = final_entities_by_ref(catalog)["location:default/nested"]
    operations.delete_entity_by_uid(catalog.engine, nested["metadata"]["uid"])
    # Stitch only (nothing processed yet): the children are orphans for a moment.
    while catalog.engine.stitch_batch():
        pass
    leaf = final_entities_by_ref(catalog)["component:default/leaf"]
    assert leaf["metadata"]["annotations"]["backstage.io/orphan"] == "true"
    settle(catalog)
    entities = final_entities_by_ref(catalog)
    assert entities["location:default/nested"]["metadata"]["uid"] != nested["metadata"]["uid"]
    assert (
        "backstage.io/orphan" not in entities["component:default/leaf"]["metadata"]["annotations"]
    )


def test_refresh_schedules_the_entity_and_its_nearest_location(make_catalog, tree):
    catalog = make_catalog([tree / "all.yaml"])
    settle(catalog)
    now = catalog.engine.clock()
    scheduled = operations.refresh_entity(catalog.engine, "Component:Default/Leaf")
    assert scheduled == ["location:default/nested", "component:default/leaf"]
    for ref in scheduled:
        assert row(catalog, ref).next_update_at <= catalog.engine.clock()
    # Not the Locations further up: the file that defines the entity is enough.
    assert row(catalog, "location:default/root").next_update_at > now
    # A provider's own entity has no Location above it.
    generated = generated_location_ref(tree / "all.yaml")
    assert operations.refresh_entity(catalog.engine, generated) == [generated]
    with pytest.raises(NotFoundError, match="Entity component:default/nope not found"):
        operations.refresh_entity(catalog.engine, "component:default/nope")


def test_dry_run_processes_depth_first_from_the_last_child(make_catalog, tree):
    catalog = make_catalog([tree / "all.yaml"])
    write_yaml(tree / "bad.yaml", component("First Bad"), component("second-bad", type=5))
    entity = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Location",
        "metadata": {
            "name": "dry",
            "namespace": "default",
            "annotations": {
                "backstage.io/managed-by-location": f"file:{tree / 'all.yaml'}",
                "backstage.io/managed-by-origin-location": f"file:{tree / 'all.yaml'}",
            },
        },
        "spec": {"type": "file", "target": str(tree / "all.yaml")},
    }
    with catalog.db.engine.connect() as conn:
        rows_before = conn.execute(select(func.count()).select_from(refresh_state)).scalar_one()
    names = sorted(e["metadata"]["name"] for e in operations.dry_run(catalog.orchestrator, entity))
    assert names == ["dry", "leaf", "nested", "other-leaf", "root", "team-a"]
    with catalog.db.engine.connect() as conn:
        assert (
            conn.execute(select(func.count()).select_from(refresh_state)).scalar_one()
            == rows_before
        )
        assert conn.execute(select(func.count()).select_from(final_entities)).scalar_one() == 0

    # Of two broken siblings, the one emitted last is processed, and reported, first.
    broken = {**entity, "spec": {"type": "file", "target": str(tree / "bad.yaml")}}
    with pytest.raises(InputError) as caught:
        operations.dry_run(catalog.orchestrator, broken)
    assert str(caught.value).startswith(
        "InputError: Processor BuiltinKindsEntityProcessor threw an error while validating the "
        "entity component:default/second-bad"
    )
    # The same entity reached twice, through two different Locations.
    write_yaml(tree / "twice.yaml", location("twice", "./nested.yaml", "./leaf-again.yaml"))
    write_yaml(tree / "leaf-again.yaml", component("leaf"))
    again = {**entity, "spec": {"type": "file", "target": str(tree / "twice.yaml")}}
    with pytest.raises(InputError, match="Duplicate nested entity: component:default/leaf"):
        operations.dry_run(catalog.orchestrator, again)


def test_a_delete_waits_for_a_writer_in_another_process(make_catalog, tree, database_url):
    """SQLite: a write API call takes the write lock before it reads. Begun as a plain
    read, it could not become a write once another process (the stitching process, say)
    had committed meanwhile: "database is locked", a 500, whatever the busy timeout."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only: its one write lock across processes")
    catalog = make_catalog([tree / "all.yaml"])
    settle(catalog)
    uid = final_entities_by_ref(catalog)["component:default/leaf"]["metadata"]["uid"]

    path = make_url(database_url).database
    other = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute(
        "UPDATE refresh_state SET next_update_at = next_update_at + 1 "
        "WHERE entity_ref = 'component:default/other-leaf'"
    )
    committer = threading.Timer(0.5, other.execute, ("COMMIT",))
    committer.start()
    try:
        assert operations.delete_entity_by_uid(catalog.engine, uid) is True
    finally:
        committer.join()
        other.close()
    assert "component:default/leaf" not in final_entities_by_ref(catalog)
