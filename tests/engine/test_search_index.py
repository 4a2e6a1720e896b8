"""The ``search`` rows of a final entity, by Backstage's rules (REFERENCE 3.4)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from app.engine.search_index import MAX_KEY_LENGTH, MAX_VALUE_LENGTH, build_search_rows
from app.errors import InputError
from app.storage.tables import final_entities, search
from tests.conftest import component, final_entities_by_ref, reprocess, settle, write_yaml


def entity(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": "Web-Site",
            "namespace": "default",
            "uid": "0000-uid",
            "etag": "an-etag",
        },
        "spec": {"type": "service"},
    }
    base.update(overrides)
    return base


def rows_of(data: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    return build_search_rows(data)


def values(data: dict[str, Any], key: str) -> list[str | None]:
    return [value for k, value, _ in rows_of(data) if k == key]


def keys(data: dict[str, Any]) -> set[str]:
    return {k for k, _, _ in rows_of(data)}


def test_nested_objects_flatten_to_dotted_lowercased_keys():
    data = entity(spec={"profile": {"displayName": "Jane DOE", "Email": "Jane@Example.com"}})
    rows = rows_of(data)
    assert ("spec.profile.displayname", "jane doe", "Jane DOE") in rows
    assert ("spec.profile.email", "jane@example.com", "Jane@Example.com") in rows
    assert ("apiversion", "backstage.io/v1alpha1", "backstage.io/v1alpha1") in rows
    assert ("kind", "component", "Component") in rows


def test_annotation_keys_keep_their_dots_and_slashes():
    data = entity()
    data["metadata"]["annotations"] = {"Backstage.io/Managed-By-Location": "file:/A/B.yaml"}
    assert (
        "metadata.annotations.backstage.io/managed-by-location",
        "file:/a/b.yaml",
        "file:/A/B.yaml",
    ) in rows_of(data)


def test_array_items_share_the_key_and_strings_add_item_rows():
    data = entity(spec={"type": "service", "items": ["Java", "go", "JAVA"]})
    data["metadata"]["tags"] = ["java", "data"]
    rows = rows_of(data)
    assert values(data, "metadata.tags") == ["java", "data"]
    assert ("metadata.tags.java", "true", "true") in rows
    assert ("metadata.tags.data", "true", "true") in rows
    # Item rows are deduplicated case-insensitively.
    assert [k for k, _, _ in rows if k == "spec.items.java"] == ["spec.items.java"]
    assert ("spec.items.go", "true", "true") in rows
    assert "java" in values(data, "spec.items")


def test_objects_and_numbers_inside_arrays():
    data = entity(spec={"targets": [{"x": 1}, {"x": 2, "Y": True}], "ports": [80, 443]})
    assert values(data, "spec.targets.x") == ["1", "2"]
    assert values(data, "spec.targets.y") == ["true"]
    assert values(data, "spec.ports") == ["80", "443"]
    # Only string items get an item row.
    assert "spec.ports.80" not in keys(data)


def test_scalars_are_stringified_and_nulls_kept():
    data = entity(spec={"replicas": 3, "ratio": 1.5, "whole": 2.0, "on": False, "nothing": None})
    rows = rows_of(data)
    assert ("spec.replicas", "3", "3") in rows
    assert ("spec.ratio", "1.5", "1.5") in rows
    assert ("spec.whole", "2", "2") in rows
    assert ("spec.on", "false", "false") in rows
    assert ("spec.nothing", None, None) in rows


def test_identity_rows_are_explicit_and_server_fields_skipped():
    data = entity(
        relations=[
            {"type": "ownedBy", "targetRef": "group:default/team-a"},
            {"type": "partOf", "targetRef": "system:default/shop"},
        ],
        status={"items": [{"type": "x", "level": "error", "message": "boom"}]},
        attachments={"foo": "bar"},
    )
    rows = rows_of(data)
    assert ("metadata.name", "web-site", "Web-Site") in rows
    assert ("metadata.namespace", "default", "default") in rows
    assert ("metadata.uid", "0000-uid", "0000-uid") in rows
    # Relations are answered from the relations table (see test_relation_filters_...).
    assert not [k for k, _, _ in rows if k.startswith("relations.")]
    all_keys = keys(data)
    assert not {k for k in all_keys if k.startswith(("status", "attachments"))}
    assert "metadata.etag" not in all_keys
    assert not {k for k in all_keys if k.startswith("relations.") and k.count(".") > 1}
    # One row each, not one from the walk and one explicit.
    assert len([k for k, _, _ in rows if k == "metadata.name"]) == 1
    assert len([k for k, _, _ in rows if k == "metadata.uid"]) == 1


def test_missing_namespace_indexes_as_default():
    data = entity()
    del data["metadata"]["namespace"]
    assert "default" in values(data, "metadata.namespace")


def test_keys_over_200_characters_are_dropped():
    at_limit = "k" * (MAX_KEY_LENGTH - len("spec."))
    over = "k" * (MAX_KEY_LENGTH - len("spec.") + 1)
    data = entity(spec={at_limit: "kept", over: "dropped"})
    assert MAX_KEY_LENGTH == 200
    assert values(data, f"spec.{at_limit}") == ["kept"]
    assert f"spec.{over}" not in keys(data)


def test_values_over_200_characters_become_null_but_the_key_stays():
    data = entity(spec={"fits": "v" * MAX_VALUE_LENGTH, "long": "V" * (MAX_VALUE_LENGTH + 1)})
    rows = rows_of(data)
    assert MAX_VALUE_LENGTH == 200
    assert ("spec.fits", "v" * 200, "v" * 200) in rows
    assert ("spec.long", None, None) in rows


def test_keys_that_differ_only_in_case_are_rejected():
    data = entity(spec={"foo": 1, "Foo": 2})
    with pytest.raises(InputError, match="Entity has duplicate keys that vary only in casing"):
        build_search_rows(data)


# -- in the database -------------------------------------------------------------------


def test_stored_search_rows_are_those_of_the_final_entity(make_catalog, tmp_path):
    web = component("Web", providesApis=["orders"])
    web["metadata"]["tags"] = ["python"]
    web["metadata"]["description"] = "D" * 300
    path = write_yaml(tmp_path / "catalog-info.yaml", web)
    catalog = make_catalog([path])
    settle(catalog)

    final = final_entities_by_ref(catalog)["component:default/web"]
    with catalog.db.engine.connect() as conn:
        stored = conn.execute(
            select(search.c.key, search.c.value, search.c.original_value).where(
                search.c.entity_id == final["metadata"]["uid"]
            )
        ).all()
    assert sorted(stored, key=repr) == sorted(build_search_rows(final), key=repr)
    assert ("metadata.description", None, None) in stored
    assert ("metadata.tags.python", "true", "true") in stored


def test_relation_filters_facets_and_ordering_use_the_relations_table(make_catalog, tmp_path):
    from app.storage.entities import EntityReader, OrderField
    from app.storage.filters import FieldIn, FieldPrefix, Not

    web = component("Web", providesApis=["orders"], owner="team-a")
    shop = component("shop", owner="team-b")
    lone = component("lone", owner="team-a")
    path = write_yaml(tmp_path / "catalog-info.yaml", web, shop, lone)
    catalog = make_catalog([path])
    settle(catalog)
    reader = EntityReader(catalog.db)

    def names(node):
        with reader.connect() as conn:
            return sorted(
                json.loads(text)["metadata"]["name"] for text in reader.stream_all(conn, node)
            )

    assert names(FieldIn("relations.providesapi", ("api:default/orders",))) == ["Web"]
    assert names(FieldIn("relations.ownedby", ("group:default/team-a",))) == ["Web", "lone"]
    assert names(FieldIn("relations.providesapi", None)) == ["Web"]
    assert names(FieldPrefix("relations.ownedby", "group:default/team-")) == ["Web", "lone", "shop"]
    assert "Web" not in names(Not(FieldIn("relations.providesapi", None)))
    with reader.connect() as conn:
        facets = reader.facets(conn, ["relations.ownedBy"], None)["relations.ownedBy"]
        assert sorted((f["value"], f["count"]) for f in facets) == [
            ("group:default/team-a", 2),
            ("group:default/team-b", 1),
        ]
        order = OrderField("relations.ownedby", "desc")
        rows, more = reader.query_page(conn, FieldIn("kind", ("component",)), order, None, limit=10)
    assert [json.loads(r.text)["metadata"]["name"] for r in rows][0] == "shop"
    assert not more


def test_a_case_colliding_update_keeps_the_previous_version(make_catalog, tmp_path):
    path = write_yaml(tmp_path / "catalog-info.yaml", component("web"), component("other"))
    catalog = make_catalog([path])
    settle(catalog)
    before = final_entities_by_ref(catalog)

    write_yaml(
        path,
        component("web", owner="team-b", extra=1, EXTRA=2),
        component("other", lifecycle="deprecated"),
        component("never", x=1, X=2),
    )
    reprocess(catalog)

    after = final_entities_by_ref(catalog)
    assert after["component:default/web"] == before["component:default/web"]
    assert "component:default/never" not in after
    assert after["component:default/other"]["spec"]["lifecycle"] == "deprecated"
    with catalog.db.engine.connect() as conn:
        stored = {
            row[0]
            for row in conn.execute(
                select(final_entities.c.entity_ref).where(
                    final_entities.c.entity_ref.like("component:%")
                )
            )
        }
    assert stored == {"component:default/web", "component:default/other"}
    assert catalog.is_ready() == (True, "ok")


def test_nul_characters_are_left_out_of_the_index():
    # PostgreSQL text cannot hold NUL; the index drops it, the entity keeps it.
    data = entity(spec={"note": "a\0b", "we\0ird": "x"})
    rows = rows_of(data)
    assert ("spec.note", "ab", "ab") in rows
    assert ("spec.weird", "x", "x") in rows
