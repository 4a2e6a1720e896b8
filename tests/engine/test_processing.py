"""The processing engine end to end: files in, stitched entities out (REFERENCE section 6).

Each test builds a catalog from real files in ``tmp_path``, runs the engine in-process
until it settles and reads what it stored, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from app.engine.changes import current_generation
from app.storage.tables import final_entities, refresh_state, relations, search
from tests.conftest import (
    component,
    final_entities_by_ref,
    force_due,
    generated_location_ref,
    group,
    location,
    processing_errors,
    reprocess,
    settle,
    status_messages,
    write_yaml,
)


def user(name: str, *member_of: str) -> dict[str, Any]:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "User",
        "metadata": {"name": name},
        "spec": {"memberOf": list(member_of)},
    }


def resource(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Resource",
        "metadata": {"name": name},
        "spec": {"type": "database", "owner": "team-a", **spec},
    }


def relation_pairs(entity: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["type"], r["targetRef"]) for r in entity["relations"]]


# -- relations -------------------------------------------------------------------------


def test_relations_appear_in_both_directions(make_catalog, tmp_path):
    path = write_yaml(
        tmp_path / "catalog-info.yaml",
        component("web", dependsOn=["resource:db"], system="shop"),
        resource("db"),
        group("team-a"),
        {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "System",
            "metadata": {"name": "shop"},
            "spec": {"owner": "team-a"},
        },
    )
    catalog = make_catalog([path])
    settle(catalog)
    entities = final_entities_by_ref(catalog)

    assert relation_pairs(entities["component:default/web"]) == [
        ("dependsOn", "resource:default/db"),
        ("ownedBy", "group:default/team-a"),
        ("partOf", "system:default/shop"),
    ]
    assert relation_pairs(entities["resource:default/db"]) == [
        ("dependencyOf", "component:default/web"),
        ("ownedBy", "group:default/team-a"),
    ]
    assert relation_pairs(entities["group:default/team-a"]) == [
        ("ownerOf", "component:default/web"),
        ("ownerOf", "resource:default/db"),
        ("ownerOf", "system:default/shop"),
    ]
    assert relation_pairs(entities["system:default/shop"]) == [
        ("hasPart", "component:default/web"),
        ("ownedBy", "group:default/team-a"),
    ]


def test_a_reverse_relation_appears_when_its_target_is_ingested_later(make_catalog, tmp_path):
    write_yaml(tmp_path / "components.yaml", component("web"))
    root = write_yaml(tmp_path / "root.yaml", location("root", "./components.yaml"))
    catalog = make_catalog([root])
    settle(catalog)
    web = final_entities_by_ref(catalog)["component:default/web"]
    # A relation to an entity that does not exist still shows on its source.
    assert relation_pairs(web) == [("ownedBy", "group:default/team-a")]
    assert "group:default/team-a" not in final_entities_by_ref(catalog)

    write_yaml(tmp_path / "groups.yaml", group("team-a"))
    write_yaml(root, location("root", "./components.yaml", "./groups.yaml"))
    reprocess(catalog)

    entities = final_entities_by_ref(catalog)
    assert relation_pairs(entities["group:default/team-a"]) == [
        ("ownerOf", "component:default/web")
    ]
    # Nothing about the component changed, so neither did its etag.
    assert entities["component:default/web"]["metadata"]["etag"] == web["metadata"]["etag"]


def test_group_members_and_user_member_of_are_one_relation(make_catalog, tmp_path):
    path = write_yaml(
        tmp_path / "org.yaml",
        group("team-a", members=["alice"]),
        user("alice", "team-a"),
        user("bob", "team-a"),
        user("carol"),
        group("team-b", members=["carol"]),
    )
    catalog = make_catalog([path])
    settle(catalog)
    entities = final_entities_by_ref(catalog)

    assert relation_pairs(entities["group:default/team-a"]) == [
        ("hasMember", "user:default/alice"),
        ("hasMember", "user:default/bob"),
    ]
    assert relation_pairs(entities["user:default/carol"]) == [("memberOf", "group:default/team-b")]


def test_relation_targets_default_to_the_entitys_own_namespace(make_catalog, tmp_path):
    path = write_yaml(
        tmp_path / "catalog-info.yaml",
        component("web", namespace="shop", providesApis=["Orders"], dependsOn=["Resource:DB"]),
    )
    catalog = make_catalog([path])
    settle(catalog)

    assert relation_pairs(final_entities_by_ref(catalog)["component:shop/web"]) == [
        ("dependsOn", "resource:shop/db"),
        ("ownedBy", "group:shop/team-a"),
        ("providesApi", "api:shop/orders"),
    ]


def test_relation_carrying_spec_arrays_come_back_sorted(make_catalog, tmp_path):
    path = write_yaml(
        tmp_path / "catalog-info.yaml",
        component(
            "web",
            dependsOn=["resource:zeta", "component:alpha", "resource:beta"],
            providesApis=["c-api", "a-api", "b-api"],
            consumesApis=["z-api", "y-api"],
            tags_are_not_sorted=["b", "a"],
        ),
        group("org", children=["team-b", "team-a"]),
        user("alice", "team-b", "team-a"),
    )
    catalog = make_catalog([path])
    settle(catalog)
    entities = final_entities_by_ref(catalog)

    spec = entities["component:default/web"]["spec"]
    assert spec["dependsOn"] == ["component:alpha", "resource:beta", "resource:zeta"]
    assert spec["providesApis"] == ["a-api", "b-api", "c-api"]
    assert spec["consumesApis"] == ["y-api", "z-api"]
    assert spec["tags_are_not_sorted"] == ["b", "a"]
    assert entities["group:default/org"]["spec"]["children"] == ["team-a", "team-b"]
    assert entities["user:default/alice"]["spec"]["memberOf"] == ["team-a", "team-b"]


# -- uid and etag ----------------------------------------------------------------------


def test_uid_is_stable_and_etag_follows_every_visible_change(make_catalog, tmp_path):
    path = write_yaml(tmp_path / "catalog-info.yaml", component("web"), group("team-a"))
    catalog = make_catalog([path])
    settle(catalog)
    first = final_entities_by_ref(catalog)

    # Reprocessing an unchanged file changes nothing at all.
    reprocess(catalog)
    assert final_entities_by_ref(catalog) == first

    # A new reverse relation changes the group's etag but not its uid.
    write_yaml(path, component("web"), group("team-a"), component("api-server"))
    reprocess(catalog)
    second = final_entities_by_ref(catalog)
    team, web = second["group:default/team-a"], second["component:default/web"]
    assert team["metadata"]["uid"] == first["group:default/team-a"]["metadata"]["uid"]
    assert team["metadata"]["etag"] != first["group:default/team-a"]["metadata"]["etag"]
    assert ("ownerOf", "component:default/api-server") in relation_pairs(team)
    assert web == first["component:default/web"]

    # A change of the entity itself changes its etag, not its uid.
    write_yaml(path, component("web", lifecycle="deprecated"), group("team-a"))
    reprocess(catalog)
    third = final_entities_by_ref(catalog)["component:default/web"]
    assert third["metadata"]["uid"] == web["metadata"]["uid"]
    assert third["metadata"]["etag"] != web["metadata"]["etag"]


def test_a_supplied_etag_is_kept_and_a_supplied_uid_is_replaced(make_catalog, tmp_path):
    entity = component("web")
    entity["metadata"].update({"uid": "my-own-uid", "etag": "my-own-etag"})
    path = write_yaml(tmp_path / "catalog-info.yaml", entity)
    catalog = make_catalog([path])
    settle(catalog)

    web = final_entities_by_ref(catalog)["component:default/web"]
    assert web["metadata"]["etag"] == "my-own-etag"
    assert web["metadata"]["uid"] != "my-own-uid"
    with catalog.db.engine.connect() as conn:
        uid = conn.execute(
            select(refresh_state.c.entity_id).where(
                refresh_state.c.entity_ref == "component:default/web"
            )
        ).scalar_one()
    assert web["metadata"]["uid"] == uid


def test_unchanged_reprocessing_writes_nothing(make_catalog, tmp_path):
    (tmp_path / "api.txt").write_text("openapi: 3.0.0\n")
    api = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "API",
        "metadata": {"name": "orders"},
        "spec": {
            "type": "openapi",
            "lifecycle": "production",
            "owner": "team-a",
            "definition": {"$text": "./api.txt"},
        },
    }
    write_yaml(tmp_path / "a.yaml", component("web", providesApis=["orders"]), api)
    write_yaml(tmp_path / "org.yaml", group("team-a"), user("alice", "team-a"))
    root = write_yaml(tmp_path / "root.yaml", location("root", "./a.yaml", "./org.yaml"))
    catalog = make_catalog([root])
    settle(catalog)

    def snapshot() -> tuple[Any, ...]:
        with catalog.db.engine.connect() as conn:
            finals = conn.execute(
                select(
                    final_entities.c.entity_ref,
                    final_entities.c.hash,
                    final_entities.c.last_updated_at,
                ).order_by(final_entities.c.entity_ref)
            ).all()
            states = conn.execute(
                select(
                    refresh_state.c.entity_ref,
                    refresh_state.c.result_hash,
                    refresh_state.c.processed_entity,
                ).order_by(refresh_state.c.entity_ref)
            ).all()
            return finals, states, current_generation(conn)

    before = snapshot()
    force_due(catalog)
    settle(catalog)
    assert snapshot() == before
    reprocess(catalog)
    assert snapshot() == before


# -- orphans and removals ----------------------------------------------------------------


def test_an_entity_removed_from_its_file_becomes_an_orphan(make_catalog, tmp_path):
    path = write_yaml(tmp_path / "catalog-info.yaml", component("kept"), component("dropped"))
    catalog = make_catalog([path])
    settle(catalog)
    uid = final_entities_by_ref(catalog)["component:default/dropped"]["metadata"]["uid"]

    write_yaml(path, component("kept"))
    reprocess(catalog)

    entities = final_entities_by_ref(catalog)
    dropped = entities["component:default/dropped"]
    assert dropped["metadata"]["annotations"]["backstage.io/orphan"] == "true"
    assert dropped["metadata"]["uid"] == uid
    assert (
        "backstage.io/orphan" not in entities["component:default/kept"]["metadata"]["annotations"]
    )
    # Orphans are findable through the search index, as the UI does.
    with catalog.db.engine.connect() as conn:
        orphan_ids = {
            row[0]
            for row in conn.execute(
                select(search.c.entity_id).where(
                    search.c.key == "metadata.annotations.backstage.io/orphan",
                    search.c.value == "true",
                )
            )
        }
    assert orphan_ids == {uid}

    # Back in the file: adopted again, the flag goes.
    write_yaml(path, component("kept"), component("dropped"))
    reprocess(catalog)
    back = final_entities_by_ref(catalog)["component:default/dropped"]
    assert "backstage.io/orphan" not in back["metadata"]["annotations"]
    assert back["metadata"]["uid"] == uid


def test_orphan_strategy_delete_removes_orphans(make_catalog, tmp_path):
    path = write_yaml(
        tmp_path / "catalog-info.yaml", component("kept"), component("dropped"), group("team-a")
    )
    catalog = make_catalog([path], catalog={"orphanStrategy": "delete"})
    settle(catalog)
    assert ("ownerOf", "component:default/dropped") in relation_pairs(
        final_entities_by_ref(catalog)["group:default/team-a"]
    )

    write_yaml(path, component("kept"), group("team-a"))
    reprocess(catalog)
    assert catalog.engine.cleanup_orphans() == 1
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    assert "component:default/dropped" not in entities
    assert "component:default/kept" in entities
    # The relation peers were re-stitched without the deleted entity.
    assert relation_pairs(entities["group:default/team-a"]) == [
        ("ownerOf", "component:default/kept")
    ]
    with catalog.db.engine.connect() as conn:
        assert (
            conn.execute(
                select(relations.c.target_entity_ref).where(
                    relations.c.source_entity_ref == "component:default/dropped"
                )
            ).all()
            == []
        )


def test_a_location_removed_from_the_config_deletes_its_entities(make_catalog, tmp_path):
    kept = write_yaml(tmp_path / "kept.yaml", component("stays"), group("team-a"))
    write_yaml(tmp_path / "nested" / "deep.yaml", component("deep"))
    removed = write_yaml(
        tmp_path / "removed.yaml", component("goes"), location("inner", "./nested/deep.yaml")
    )
    catalog = make_catalog([kept, removed])
    settle(catalog)
    before = final_entities_by_ref(catalog)
    assert {"component:default/goes", "component:default/deep", "location:default/inner"} <= set(
        before
    )
    catalog.stop()

    # A restart with a config that no longer lists removed.yaml.
    restarted = make_catalog([kept])
    settle(restarted)

    after = final_entities_by_ref(restarted)
    gone = {
        "component:default/goes",
        "component:default/deep",
        "location:default/inner",
        generated_location_ref(removed),
    }
    assert not gone & set(after)  # deleted eagerly, not orphaned
    assert (
        after["component:default/stays"]["metadata"]["uid"]
        == (before["component:default/stays"]["metadata"]["uid"])
    )
    assert relation_pairs(after["group:default/team-a"]) == [("ownerOf", "component:default/stays")]
    with restarted.db.engine.connect() as conn:
        refs = {row[0] for row in conn.execute(select(refresh_state.c.entity_ref))}
    assert not gone & refs


# -- Locations: globs, nesting, ancestry, rules --------------------------------------------


def test_glob_targets_read_every_matching_file(make_catalog, tmp_path):
    write_yaml(tmp_path / "components" / "a.yaml", component("a"))
    write_yaml(tmp_path / "components" / "b.yaml", component("b"))
    write_yaml(tmp_path / "components" / "deeper" / "c.yaml", component("c"))
    (tmp_path / "components" / "notes.txt").write_text("not yaml: [")
    write_yaml(tmp_path / "apis" / "d.yaml", component("d"))
    root = write_yaml(
        tmp_path / "root.yaml", location("root", "./components/*.yaml", "./apis/**/*.yaml")
    )
    catalog = make_catalog([root])
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    names = {ref for ref in entities if ref.startswith("component:")}
    assert names == {"component:default/a", "component:default/b", "component:default/d"}
    a = entities["component:default/a"]["metadata"]["annotations"]
    assert a["backstage.io/managed-by-location"] == f"file:{tmp_path / 'components' / 'a.yaml'}"
    assert status_messages(entities["location:default/root"]) == []

    # A glob that matches nothing is not an error.
    write_yaml(root, location("root", "./nothing/*.yaml"))
    reprocess(catalog)
    assert status_messages(final_entities_by_ref(catalog)["location:default/root"]) == []


def test_nested_locations_and_ancestry(make_catalog, tmp_path):
    write_yaml(tmp_path / "teams" / "web" / "catalog-info.yaml", component("web"))
    write_yaml(tmp_path / "teams" / "all.yaml", location("teams", "./web/catalog-info.yaml"))
    root = write_yaml(tmp_path / "root.yaml", location("root", "./teams/all.yaml"))
    catalog = make_catalog([root])
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    annotations = entities["component:default/web"]["metadata"]["annotations"]
    assert annotations["backstage.io/managed-by-location"] == (
        f"file:{tmp_path / 'teams' / 'web' / 'catalog-info.yaml'}"
    )
    assert annotations["backstage.io/managed-by-origin-location"] == f"file:{root}"

    with catalog.reader.connect() as conn:
        chain = catalog.reader.ancestry(conn, "component:default/web")
    assert chain is not None
    generated = generated_location_ref(root)
    assert [(json.loads(text)["metadata"]["name"], parents) for text, parents in chain] == [
        ("web", ["location:default/teams"]),
        ("teams", ["location:default/root"]),
        ("root", [generated]),
        (generated.split("/")[-1], []),
    ]


def test_rules_per_location(make_catalog, tmp_path):
    people = write_yaml(
        tmp_path / "people.yaml",
        user("alice"),
        component("from-people"),
        location("more-people", "./more/people.yaml"),
    )
    write_yaml(tmp_path / "more" / "people.yaml", user("bob"))
    services = write_yaml(tmp_path / "services.yaml", component("svc"), user("mallory"))
    catalog = make_catalog(
        [{"type": "file", "target": str(people), "rules": [{"allow": ["User"]}]}, services],
        catalog={"rules": [{"allow": ["Component", "Location"]}]},
    )
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    # people.yaml may add Users (its own rule) besides what every location may add.
    assert {"user:default/alice", "component:default/from-people"} <= set(entities)
    # The rule follows the origin location into nested Locations.
    assert "user:default/bob" in entities
    # services.yaml only has the global rules.
    assert "component:default/svc" in entities
    assert "user:default/mallory" not in entities
    [message] = status_messages(entities[generated_location_ref(services)])
    assert message.startswith("NotAllowedError: Entity user:default/mallory at file:")


def test_rules_matching_locations_by_target_and_pattern(make_catalog, tmp_path):
    trusted = write_yaml(tmp_path / "trusted" / "org.yaml", group("team-a"), component("t"))
    other = write_yaml(tmp_path / "other" / "org.yaml", group("team-b"), component("o"))
    catalog = make_catalog(
        [trusted, other],
        catalog={
            "rules": [
                {"allow": ["Component"]},
                {"allow": ["Group"], "locations": [{"type": "file", "pattern": "*/trusted/*"}]},
            ]
        },
    )
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    assert {"group:default/team-a", "component:default/t", "component:default/o"} <= set(entities)
    assert "group:default/team-b" not in entities


# -- placeholders -------------------------------------------------------------------------


def placeholder_component(**spec: Any) -> dict[str, Any]:
    return component("placeholders", **spec)


def test_placeholders_resolve_relative_and_absolute(make_catalog, tmp_path):
    (tmp_path / "shared").mkdir()
    absolute = tmp_path / "shared" / "absolute.txt"
    absolute.write_text("absolute text")
    (tmp_path / "service" / "docs").mkdir(parents=True)
    (tmp_path / "service" / "docs" / "readme.md").write_text("# Readme\n")
    (tmp_path / "service" / "data.json").write_text('{"port": 8080, "tls": true}')
    (tmp_path / "service" / "values.yaml").write_text("replicas: 3\nregion: eu\n")
    (tmp_path / "up.txt").write_text("from the parent folder")
    path = write_yaml(
        tmp_path / "service" / "catalog-info.yaml",
        placeholder_component(
            readme={"$text": "./docs/readme.md"},
            absolute={"$text": str(absolute)},
            parent={"$text": "../up.txt"},
            config={"$json": "./data.json"},
            values={"$yaml": "values.yaml"},
            listed=[{"$text": "./docs/readme.md"}, "plain"],
            schema={"$ref": "#/definitions/thing"},
            notAPlaceholder={"$text": "./docs/readme.md", "other": 1},
        ),
    )
    catalog = make_catalog([path])
    settle(catalog)

    spec = final_entities_by_ref(catalog)["component:default/placeholders"]["spec"]
    assert spec["readme"] == "# Readme\n"
    assert spec["absolute"] == "absolute text"
    assert spec["parent"] == "from the parent folder"
    assert spec["config"] == {"port": 8080, "tls": True}
    assert spec["values"] == {"replicas": 3, "region": "eu"}
    assert spec["listed"] == ["# Readme\n", "plain"]
    # Unknown $keys (JSON schema refs) and objects with more keys are left alone.
    assert spec["schema"] == {"$ref": "#/definitions/thing"}
    assert spec["notAPlaceholder"] == {"$text": "./docs/readme.md", "other": 1}


def test_a_changed_placeholder_file_is_picked_up_through_its_refresh_key(make_catalog, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("first")
    path = write_yaml(
        tmp_path / "catalog-info.yaml", placeholder_component(text={"$text": "./text.txt"})
    )
    catalog = make_catalog([path])
    settle(catalog)
    assert final_entities_by_ref(catalog)["component:default/placeholders"]["spec"]["text"] == (
        "first"
    )

    text.write_text("second")
    catalog.engine.refresh_keys([f"file:{text}"])
    settle(catalog)
    assert final_entities_by_ref(catalog)["component:default/placeholders"]["spec"]["text"] == (
        "second"
    )


def test_placeholder_errors(make_catalog, tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "two.yaml").write_text("a: 1\n---\nb: 2\n")
    path = write_yaml(
        tmp_path / "catalog-info.yaml",
        component("bad-json", config={"$json": "./bad.json"}),
        component("two-docs", values={"$yaml": "./two.yaml"}),
        component("missing", text={"$text": "./missing.txt"}),
        component("not-a-string", text={"$text": 42}),
        component("fine"),
    )
    catalog = make_catalog([path])
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    assert "component:default/fine" in entities
    errors = processing_errors(catalog)
    expected = {
        "component:default/bad-json": "Placeholder $json failed to parse JSON data",
        "component:default/two-docs": (
            "Placeholder $yaml expected to find exactly one document of data, found 2"
        ),
        "component:default/missing": (
            f"Placeholder $text could not read location ./missing.txt, NotFoundError: "
            f"file {tmp_path / 'missing.txt'} does not exist"
        ),
        "component:default/not-a-string": (
            "Placeholder $text expected a string value parameter, in the form of an absolute "
            "URL or a relative path"
        ),
    }
    for ref, fragment in expected.items():
        assert ref not in entities
        [error] = errors[ref]
        assert error["name"] == "InputError"
        assert error["message"].startswith(
            "Processor PlaceholderProcessor threw an error while preprocessing; caused by Error: "
        )
        assert fragment in error["message"], ref
