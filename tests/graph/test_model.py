"""The graph's storage rules: forward edges, who states them, placeholders, replays."""

from __future__ import annotations

from typing import Any

from app.graph.model import SOURCE, TARGET, EntityGraph


def entity(kind: str, name: str, relations: list[tuple[str, str]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
        "relations": [{"type": t, "targetRef": r} for t, r in relations],
    }


A = "component:default/a"
B = "component:default/b"
G = "group:default/g"
DB = "resource:default/db"


def stitched() -> dict[str, dict[str, Any]]:
    """A consistent catalog: each relation on both ends, as the stitcher writes them."""
    return {
        A: entity("Component", "a", [("ownedBy", G), ("dependsOn", DB), ("dependsOn", B)]),
        B: entity("Component", "b", [("dependencyOf", A), ("ownedBy", G)], type="service"),
        G: entity(
            "Group",
            "g",
            [("ownerOf", A), ("ownerOf", B)],
            profile={"email": "g@example.com", "displayName": "G"},
            children=[],
        ),
        DB: entity("Resource", "db", [("dependencyOf", A)]),
    }


def build(entities: dict[str, dict[str, Any]]) -> EntityGraph:
    graph = EntityGraph()
    graph.add_entities(entities.items())
    return graph


def snapshot(graph: EntityGraph) -> tuple[dict[str, Any], set[tuple[str, str, str, int]]]:
    nodes = {ref: dict(data) for ref, data in graph.g.nodes(data=True)}
    edges = {(u, v, k, d["by"]) for u, v, k, d in graph.g.edges(keys=True, data=True)}
    return nodes, edges


def test_edges_are_stored_once_in_the_forward_direction():
    graph = build(stitched())
    edges = set(graph.g.edges(keys=True))
    assert edges == {
        (A, G, "ownedBy"),
        (A, DB, "dependsOn"),
        (A, B, "dependsOn"),
        (B, G, "ownedBy"),
    }
    # Both ends state these relations.
    assert graph.g.edges[A, G, "ownedBy"]["by"] == SOURCE | TARGET
    assert graph.g.edges[A, B, "dependsOn"]["by"] == SOURCE | TARGET


def test_node_attributes_are_small():
    graph = build(stitched())
    assert graph.g.nodes[B] == {
        "kind": "Component",
        "namespace": "default",
        "name": "b",
        "type": "service",
    }
    assert graph.g.nodes[G]["email"] == "g@example.com"
    assert "relations" not in graph.g.nodes[A] and "spec" not in graph.g.nodes[A]


def test_relations_of_rebuilds_each_entitys_relations_exactly():
    entities = stitched()
    graph = build(entities)
    for ref, item in entities.items():
        expected = sorted((r["type"], r["targetRef"]) for r in item["relations"])
        assert graph.relations_of(ref) == expected


def test_a_relation_to_a_missing_entity_is_a_placeholder_node():
    graph = build({A: entity("Component", "a", [("ownedBy", "group:default/ghosts")])})
    assert graph.g.nodes["group:default/ghosts"] == {
        "kind": "group",
        "namespace": "default",
        "name": "ghosts",
        "missing": True,
    }
    assert not graph.has_entity("group:default/ghosts")
    assert graph.entity_count() == 1


def test_replaying_a_change_equals_building_from_scratch():
    entities = stitched()
    graph = build(entities)
    # A drops its dependency on B; B is re-stitched without the reverse relation.
    entities[A] = entity("Component", "a", [("ownedBy", G), ("dependsOn", DB)])
    entities[B] = entity("Component", "b", [("ownedBy", G)], type="service")
    graph.set_entity(A, entities[A])
    graph.set_entity(B, entities[B])
    assert snapshot(graph) == snapshot(build(entities))


def test_one_side_replayed_keeps_the_edge_the_other_side_still_states():
    graph = build(stitched())
    graph.set_entity(A, entity("Component", "a", [("ownedBy", G), ("dependsOn", DB)]))
    # B has not been re-stitched yet: it still says dependencyOf A.
    assert graph.g.edges[A, B, "dependsOn"]["by"] == TARGET
    graph.set_entity(B, entity("Component", "b", [("ownedBy", G)]))
    assert not graph.g.has_edge(A, B, "dependsOn")


def test_a_deleted_entity_others_point_at_becomes_a_placeholder():
    entities = stitched()
    graph = build(entities)
    graph.set_entity(G, None)
    assert graph.g.nodes[G]["missing"] is True
    assert graph.g.edges[A, G, "ownedBy"]["by"] == SOURCE
    # Once nothing points at it any more, the placeholder goes too.
    graph.set_entity(A, entity("Component", "a", [("dependsOn", DB), ("dependsOn", B)]))
    graph.set_entity(B, entity("Component", "b", [("dependencyOf", A)]))
    assert G not in graph.g


def test_deleting_an_entity_nothing_points_at_removes_it():
    graph = build(stitched())
    graph.set_entity(DB, None)  # A still says dependsOn DB
    assert graph.g.nodes[DB]["missing"] is True
    graph.set_entity(A, entity("Component", "a", [("ownedBy", G)]))
    assert DB not in graph.g
    assert graph.type_counts["dependsOn"] == 1  # A -> B, which B still states


def test_self_relations_and_custom_types():
    graph = build(
        {
            A: entity(
                "Component",
                "a",
                [("dependsOn", A), ("dependencyOf", A), ("watchedBy", "user:default/u")],
            )
        }
    )
    assert graph.g.edges[A, A, "dependsOn"]["by"] == SOURCE | TARGET
    assert graph.g.has_edge(A, "user:default/u", "watchedBy")
    assert "watchedBy" in graph.known_types()
    graph.set_entity(A, entity("Component", "a", []))
    assert graph.g.number_of_edges() == 0
    assert list(graph.g.nodes) == [A]


def test_malformed_relations_are_ignored():
    item = entity("Component", "a", [("dependsOn", DB)])
    item["relations"] += [{"type": "dependsOn"}, "junk", {"type": 3, "targetRef": B}]
    graph = build({A: item})
    assert set(graph.g.edges(keys=True)) == {(A, DB, "dependsOn")}
