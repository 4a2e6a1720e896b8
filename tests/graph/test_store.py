"""The graph follows the database: built lazily, replayed by generation, rebuilt if needed."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.engine.changes import current_generation, prune_changes
from app.graph.store import GraphStore, build_graph
from app.storage.database import Database
from app.storage.tables import refresh_state
from tests.conftest import settle, write_yaml
from tests.graph.support import SAMPLE


def component(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name},
        "spec": {"type": "service", "lifecycle": "production", "owner": "team-a", **spec},
    }


def resource(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Resource",
        "metadata": {"name": name},
        "spec": {"type": "database", "owner": "team-a"},
    }


TEAM = {
    "apiVersion": "backstage.io/v1alpha1",
    "kind": "Group",
    "metadata": {"name": "team-a"},
    "spec": {"type": "team", "children": []},
}


def reprocess(catalog: Any) -> None:
    """Make every entity due and run the engine until it is idle again."""
    with catalog.db.engine.connect() as conn:
        refs = [row[0] for row in conn.execute(select(refresh_state.c.entity_ref))]
    catalog.engine.schedule_now(refs)
    settle(catalog)
    catalog.engine.cleanup_orphans()
    settle(catalog)


def edges(store: GraphStore) -> set[tuple[str, str, str, int]]:
    with store.snapshot() as graph:
        return {(u, v, k, d["by"]) for u, v, k, d in graph.g.edges(keys=True, data=True)}


def rebuilt_edges(db: Database) -> set[tuple[str, str, str, int]]:
    with db.engine.connect() as conn:
        graph = build_graph(conn)
    return {(u, v, k, d["by"]) for u, v, k, d in graph.g.edges(keys=True, data=True)}


def test_graph_mirrors_every_stitched_relation_of_the_sample(make_catalog):
    catalog = make_catalog([SAMPLE])
    settle(catalog)
    store = GraphStore(catalog.db)
    with catalog.db.engine.connect() as conn:
        texts = catalog.reader.by_refs(
            conn, [r[0] for r in conn.execute(select(refresh_state.c.entity_ref))]
        )
    with store.snapshot() as graph:
        assert graph.entity_count() == len(texts)
        for ref, text in texts.items():
            expected = sorted((r["type"], r["targetRef"]) for r in json.loads(text)["relations"])
            assert graph.relations_of(ref) == expected, ref


def test_changes_are_replayed_not_rebuilt(make_catalog, tmp_path: Path):
    path = write_yaml(
        tmp_path / "catalog.yaml",
        TEAM,
        component("web", dependsOn=["component:api"]),
        component("api", dependsOn=["resource:db"]),
        resource("db"),
    )
    catalog = make_catalog([path], catalog={"orphanStrategy": "delete"})
    settle(catalog)
    store = GraphStore(catalog.db)
    with store.snapshot() as graph:
        assert graph.g.has_edge("component:default/api", "resource:default/db", "dependsOn")
    assert store.stats.builds == 1

    # api stops using db and starts using a cache owned by a team that does not exist.
    write_yaml(
        path,
        TEAM,
        component("web", dependsOn=["component:api"]),
        component("api", dependsOn=["resource:cache"]),
        resource("db"),
        {**resource("cache"), "spec": {"type": "cache", "owner": "ghosts"}},
    )
    reprocess(catalog)
    with store.snapshot() as graph:
        assert not graph.g.has_edge("component:default/api", "resource:default/db", "dependsOn")
        assert graph.g.has_edge("component:default/api", "resource:default/cache", "dependsOn")
        assert graph.g.nodes["group:default/ghosts"]["missing"] is True
        generation = graph.generation
    with catalog.db.engine.connect() as conn:
        assert generation == current_generation(conn)
    assert store.stats.builds == 1 and store.stats.replays >= 1
    assert edges(store) == rebuilt_edges(catalog.db)

    # web disappears from the file; with orphan deletion it leaves the catalog too.
    write_yaml(path, TEAM, component("api", dependsOn=["resource:cache"]), resource("db"))
    reprocess(catalog)
    assert edges(store) == rebuilt_edges(catalog.db)
    with store.snapshot() as graph:
        assert "component:default/web" not in graph.g
        assert graph.has_entity("component:default/api")


def test_two_processes_answer_from_the_same_generation(make_catalog, tmp_path: Path):
    """Two stores on two engines (as two workers or instances) both catch up on reads."""
    path = write_yaml(tmp_path / "catalog.yaml", TEAM, component("web"), resource("db"))
    catalog = make_catalog([path])
    settle(catalog)
    first, second = GraphStore(catalog.db), GraphStore(Database(catalog.db.url))
    try:
        assert edges(first) == edges(second)
        write_yaml(path, TEAM, component("web", dependsOn=["resource:db"]), resource("db"))
        reprocess(catalog)
        expected = ("component:default/web", "resource:default/db", "dependsOn", 3)
        assert expected in edges(first)
        assert expected in edges(second)
        assert first.generation == second.generation
    finally:
        second.db.dispose()


def test_a_pruned_change_log_means_a_rebuild(make_catalog, tmp_path: Path):
    path = write_yaml(tmp_path / "catalog.yaml", TEAM, component("web"), resource("db"))
    catalog = make_catalog([path])
    settle(catalog)
    store = GraphStore(catalog.db)
    edges(store)
    write_yaml(path, TEAM, component("web", dependsOn=["resource:db"]), resource("db"))
    reprocess(catalog)
    with catalog.db.transaction() as conn:
        prune_changes(conn, keep_rows=0)
    write_yaml(
        path, TEAM, component("web", dependsOn=["resource:db"]), resource("db"), resource("more")
    )
    reprocess(catalog)
    assert edges(store) == rebuilt_edges(catalog.db)
    assert store.stats.builds == 2


def test_readers_never_see_a_half_applied_refresh(make_catalog, tmp_path: Path):
    """Queries in other threads run while refreshes apply; each sees a whole generation."""
    path = write_yaml(tmp_path / "catalog.yaml", TEAM, component("web"), resource("db"))
    catalog = make_catalog([path])
    settle(catalog)
    store = GraphStore(catalog.db)
    edges(store)
    problems: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            with store.snapshot() as graph:
                for _, _, data in graph.g.edges(data=True):
                    if data["by"] not in (1, 2, 3):
                        problems.append(str(data))

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    try:
        for index in range(3):
            names = [f"db{n}" for n in range(index + 2)]
            web = component("web", dependsOn=[f"resource:{n}" for n in names])
            write_yaml(path, TEAM, web, *[resource(n) for n in names])
            reprocess(catalog)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert problems == []
    assert edges(store) == rebuilt_edges(catalog.db)
