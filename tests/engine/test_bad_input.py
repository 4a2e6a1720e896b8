"""Bad input never stops the catalog: each problem becomes an error where Backstage shows it.

An entity-level problem lands in that entity's ``status.items`` (or, if the entity never
processed successfully, it is not served and the error stays in its processing state and
the log); a problem reading a Location's target lands on that Location. Whatever the
problem, everything else is ingested. Every test runs on SQLite and PostgreSQL alike
(``CATALOG_TEST_DATABASE``).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.conftest import (
    component,
    final_entities_by_ref,
    generated_location_ref,
    location,
    processing_errors,
    reprocess,
    settle,
    status_messages,
    write_yaml,
)

PROCESSING = "backstage.io/catalog-processing"


def error_items(entity: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in (entity.get("status") or {}).get("items") or []]


def assert_processing_error(item: dict[str, Any], name: str, fragment: str) -> None:
    """One ``status.items`` entry in Backstage's shape."""
    assert item["type"] == PROCESSING
    assert item["level"] == "error"
    assert item["error"]["name"] == name
    assert fragment in item["error"]["message"]
    assert item["message"] == f"{name}: {item['error']['message']}"


# -- unreadable files ------------------------------------------------------------------


def test_malformed_yaml_fails_only_that_file(make_catalog, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: [unclosed\n"
    )
    write_yaml(tmp_path / "good.yaml", component("good"))
    write_yaml(tmp_path / "root.yaml", location("root", "./broken.yaml", "./good.yaml"))
    catalog = make_catalog([tmp_path / "root.yaml"])
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    assert "component:default/good" in entities
    assert not [ref for ref in entities if ref.startswith("component:") and "good" not in ref]
    [item] = error_items(entities["location:default/root"])
    assert_processing_error(item, "Error", f"YAML error at file:{broken}")
    # The generated Location of the configured file is not blamed for its child's file.
    assert status_messages(entities[generated_location_ref(tmp_path / "root.yaml")]) == []


def test_a_document_that_is_not_an_object_is_reported_and_its_siblings_load(make_catalog, tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\n"
        "metadata: {name: first}\nspec: {type: service, lifecycle: production, owner: a}\n"
        "---\n- just\n- a list\n"
        "---\nplain text\n"
        "---\napiVersion: backstage.io/v1alpha1\nkind: Component\n"
        "metadata: {name: last}\nspec: {type: service, lifecycle: production, owner: a}\n"
    )
    catalog = make_catalog([path])
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    assert {"component:default/first", "component:default/last"} <= set(entities)
    items = error_items(entities[generated_location_ref(path)])
    assert [item["error"]["message"] for item in items] == [
        "Expected object at root, got object",
        "Expected object at root, got string",
    ]


# -- entities that fail processing ---------------------------------------------------

# (name of the case, the bad entity, the error's name, a fragment of its message)
INVALID_ENTITIES = [
    (
        "bad-name",
        {**component("x"), "metadata": {"name": "Not A Name!"}},
        "InputError",
        '"metadata.name" is not valid',
    ),
    (
        "schema-violation",
        component("bad-entity", lifecycle=None),
        "InputError",
        # The reference backend's exact message (POST /validate-entity).
        "Processor BuiltinKindsEntityProcessor threw an error while validating the entity "
        "component:default/bad-entity; caused by TypeError: /spec must have required property "
        "'lifecycle' - missingProperty: lifecycle",
    ),
    (
        "wrong-type",
        component("bad-entity", providesApis="not-a-list"),
        "InputError",
        "caused by TypeError: /spec/providesApis must be array - type: array",
    ),
    (
        "foreign-root-field",
        {**component("bad-entity"), "extra": True},
        "InputError",
        "Policy check failed for component:default/bad-entity; caused by Error: Malformed "
        "envelope, <root> must NOT have additional properties",
    ),
    (
        "ref-without-required-kind",
        component("bad-entity", dependsOn=["db"]),
        "InputError",
        "Processor BuiltinKindsEntityProcessor threw an error while postprocessing; caused by "
        'Error: Entity reference "db" had missing or empty kind (e.g. did not start with '
        '"component:" or similar)',
    ),
    (
        "missing-text-placeholder",
        component("bad-entity", definition={"$text": "./missing.txt"}),
        "InputError",
        "Placeholder $text could not read location ./missing.txt",
    ),
]


def ref_of(entity: dict[str, Any]) -> str:
    metadata = entity["metadata"]
    return f"{entity['kind']}:{metadata.get('namespace', 'default')}/{metadata['name']}".lower()


@pytest.mark.parametrize(
    ("bad", "name", "fragment"),
    [case[1:] for case in INVALID_ENTITIES],
    ids=[case[0] for case in INVALID_ENTITIES],
)
def test_an_invalid_entity_is_not_served_and_its_siblings_are(
    make_catalog, tmp_path, caplog, bad, name, fragment
):
    caplog.set_level(logging.WARNING)
    path = write_yaml(tmp_path / "catalog-info.yaml", component("before"), bad, component("after"))
    catalog = make_catalog([path])
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    assert {"component:default/before", "component:default/after"} <= set(entities)
    # Never processed successfully: not served at all, as in Backstage...
    assert ref_of(bad) not in entities
    # ... and the error is kept with its processing state, and logged.
    [error] = processing_errors(catalog)[ref_of(bad)]
    assert error["name"] == name
    assert fragment in error["message"]
    assert any(fragment in record.getMessage() for record in caplog.records)
    # Its siblings and its Location are clean.
    assert all(status_messages(entity) == [] for entity in entities.values())


@pytest.mark.parametrize(
    ("bad", "name", "fragment"),
    [case[1:] for case in INVALID_ENTITIES if case[0] != "bad-name"],
    ids=[case[0] for case in INVALID_ENTITIES if case[0] != "bad-name"],
)
def test_an_entity_that_turns_invalid_keeps_its_last_good_version(
    make_catalog, tmp_path, bad, name, fragment
):
    path = write_yaml(tmp_path / "catalog-info.yaml", component("bad-entity"), component("other"))
    catalog = make_catalog([path])
    settle(catalog)
    good = final_entities_by_ref(catalog)["component:default/bad-entity"]
    assert "status" not in good

    write_yaml(path, bad, component("other", lifecycle="deprecated"))
    reprocess(catalog)

    entities = final_entities_by_ref(catalog)
    kept = entities["component:default/bad-entity"]
    assert kept["spec"] == good["spec"]
    assert kept["metadata"]["uid"] == good["metadata"]["uid"]
    assert kept["metadata"]["etag"] != good["metadata"]["etag"]  # the status changed
    [item] = error_items(kept)
    assert_processing_error(item, name, fragment)
    # The rest of the file was processed normally.
    assert entities["component:default/other"]["spec"]["lifecycle"] == "deprecated"

    # Fixing the file clears the error.
    write_yaml(path, component("bad-entity", lifecycle="deprecated"), component("other"))
    reprocess(catalog)
    fixed = final_entities_by_ref(catalog)["component:default/bad-entity"]
    assert "status" not in fixed
    assert fixed["spec"]["lifecycle"] == "deprecated"


def test_an_unknown_kind_fails_only_that_entity(make_catalog, tmp_path):
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "gadget"},
        "spec": {},
    }
    path = write_yaml(tmp_path / "catalog-info.yaml", widget, component("fine"))
    catalog = make_catalog(
        [path], catalog={"rules": [{"allow": ["Component", "Widget", "Location"]}]}
    )
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    assert "component:default/fine" in entities
    assert "widget:default/gadget" not in entities
    [error] = processing_errors(catalog)["widget:default/gadget"]
    assert error["name"] == "InputError"
    assert "No processor recognized the entity widget:default/gadget as valid" in error["message"]


def test_a_disallowed_kind_is_dropped_with_an_error_on_its_location(make_catalog, tmp_path):
    user = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "User",
        "metadata": {"name": "jane"},
        "spec": {"memberOf": []},
    }
    path = write_yaml(tmp_path / "catalog-info.yaml", component("allowed"), user)
    catalog = make_catalog([path], catalog={"rules": [{"allow": ["Component", "Location"]}]})
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    assert "component:default/allowed" in entities
    assert "user:default/jane" not in entities
    assert "user:default/jane" not in processing_errors(catalog)  # never even stored
    [item] = error_items(entities[generated_location_ref(path)])
    assert_processing_error(
        item, "NotAllowedError", "Entity user:default/jane at file:" + str(path)
    )
    assert "is not of an allowed kind for that location" in item["message"]


# -- Location targets ------------------------------------------------------------------


def test_a_missing_required_target_is_an_error_on_its_location(make_catalog, tmp_path):
    write_yaml(tmp_path / "present.yaml", component("present"))
    write_yaml(tmp_path / "root.yaml", location("root", "./absent.yaml", "./present.yaml"))
    catalog = make_catalog([tmp_path / "root.yaml"])
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    assert "component:default/present" in entities
    [item] = error_items(entities["location:default/root"])
    assert_processing_error(item, "NotFoundError", f"{tmp_path / 'absent.yaml'} does not exist")


def test_a_missing_optional_target_is_silent(make_catalog, tmp_path):
    write_yaml(tmp_path / "present.yaml", component("present"))
    write_yaml(
        tmp_path / "root.yaml",
        location("root", "./absent.yaml", "./present.yaml", presence="optional"),
    )
    catalog = make_catalog([tmp_path / "root.yaml"])
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    assert "component:default/present" in entities
    assert all(status_messages(entity) == [] for entity in entities.values())


def test_a_missing_configured_location_is_an_error_on_its_generated_location(
    make_catalog, tmp_path
):
    good = write_yaml(tmp_path / "good.yaml", component("good"))
    absent = tmp_path / "absent.yaml"
    catalog = make_catalog([absent, good])
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    assert "component:default/good" in entities
    [item] = error_items(entities[generated_location_ref(absent)])
    assert_processing_error(item, "NotFoundError", f"{absent} does not exist")
    assert status_messages(entities[generated_location_ref(good)]) == []

    # An optional configured location may be absent.
    catalog = make_catalog([{"type": "file", "target": str(absent), "presence": "optional"}, good])
    settle(catalog)
    entities = final_entities_by_ref(catalog)
    optional = generated_location_ref(absent)
    assert entities[optional]["spec"]["presence"] == "optional"
    assert status_messages(entities[optional]) == []


# -- the same entity from two places -----------------------------------------------------


def test_a_duplicate_from_a_second_location_is_a_conflict_on_that_location(make_catalog, tmp_path):
    first = write_yaml(
        tmp_path / "first.yaml", component("shared", lifecycle="production"), component("one")
    )
    second = write_yaml(
        tmp_path / "second.yaml", component("shared", lifecycle="experimental"), component("two")
    )
    catalog = make_catalog([first, second])
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    assert {"component:default/one", "component:default/two"} <= set(entities)
    shared = entities["component:default/shared"]
    assert shared["spec"]["lifecycle"] == "production"
    assert shared["metadata"]["annotations"]["backstage.io/managed-by-location"] == f"file:{first}"
    assert status_messages(shared) == []
    assert status_messages(entities[generated_location_ref(first)]) == []
    [item] = error_items(entities[generated_location_ref(second)])
    assert_processing_error(
        item,
        "ConflictError",
        f"Detected conflicting entityRef component:default/shared already referenced by "
        f"file:{first} and now also file:{second}",
    )

    # It stays that way when everything is processed again.
    reprocess(catalog)
    entities = final_entities_by_ref(catalog)
    assert entities["component:default/shared"]["spec"]["lifecycle"] == "production"
    assert len(error_items(entities[generated_location_ref(second)])) == 1


def test_a_duplicate_introduced_later_does_not_take_the_entity_over(make_catalog, tmp_path):
    first = write_yaml(tmp_path / "first.yaml", component("shared"))
    second = write_yaml(tmp_path / "second.yaml", component("two"))
    catalog = make_catalog([first, second])
    settle(catalog)
    uid = final_entities_by_ref(catalog)["component:default/shared"]["metadata"]["uid"]

    write_yaml(second, component("two"), component("shared", lifecycle="experimental"))
    reprocess(catalog)

    entities = final_entities_by_ref(catalog)
    shared = entities["component:default/shared"]
    assert shared["metadata"]["uid"] == uid
    assert shared["spec"]["lifecycle"] == "production"
    [item] = error_items(entities[generated_location_ref(second)])
    assert item["error"]["name"] == "ConflictError"


def test_the_same_entity_twice_in_one_file_the_later_copy_wins(make_catalog, tmp_path):
    path = write_yaml(
        tmp_path / "catalog-info.yaml",
        component("twice", lifecycle="experimental"),
        component("twice", lifecycle="production"),
    )
    catalog = make_catalog([path])
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    assert entities["component:default/twice"]["spec"]["lifecycle"] == "production"
    assert all(status_messages(entity) == [] for entity in entities.values())


# -- files that break after they were good ---------------------------------------------


def test_a_file_with_a_syntax_error_keeps_its_entities_as_they_were(make_catalog, tmp_path):
    broken = write_yaml(tmp_path / "a.yaml", component("a1"), component("a2"))
    other = write_yaml(tmp_path / "b.yaml", component("b1"))
    write_yaml(tmp_path / "root.yaml", location("root", "./a.yaml", "./b.yaml"))
    catalog = make_catalog([tmp_path / "root.yaml"])
    settle(catalog)
    before = final_entities_by_ref(catalog)

    broken.write_text("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: [oops\n")
    write_yaml(other, component("b1", lifecycle="deprecated"), component("b2"))
    reprocess(catalog)

    entities = final_entities_by_ref(catalog)
    for ref in ("component:default/a1", "component:default/a2"):
        # Not orphaned, not changed: the last good version, same uid.
        assert entities[ref] == before[ref]
        assert "backstage.io/orphan" not in entities[ref]["metadata"]["annotations"]
    # The other target of the same Location was processed normally.
    assert entities["component:default/b1"]["spec"]["lifecycle"] == "deprecated"
    assert "component:default/b2" in entities
    [item] = error_items(entities["location:default/root"])
    assert_processing_error(item, "Error", f"YAML error at file:{broken}")

    # Repaired: the error goes and the file's current content is served.
    write_yaml(broken, component("a1", lifecycle="deprecated"))
    reprocess(catalog)
    entities = final_entities_by_ref(catalog)
    assert status_messages(entities["location:default/root"]) == []
    assert entities["component:default/a1"]["spec"]["lifecycle"] == "deprecated"
    assert entities["component:default/a2"]["metadata"]["annotations"]["backstage.io/orphan"] == (
        "true"
    )


def test_a_deleted_target_keeps_its_entities_with_the_error_on_the_location(make_catalog, tmp_path):
    gone = write_yaml(tmp_path / "a.yaml", component("a1"))
    write_yaml(tmp_path / "b.yaml", component("b1"))
    write_yaml(tmp_path / "root.yaml", location("root", "./a.yaml", "./b.yaml"))
    catalog = make_catalog([tmp_path / "root.yaml"])
    settle(catalog)
    before = final_entities_by_ref(catalog)["component:default/a1"]

    gone.unlink()
    reprocess(catalog)

    entities = final_entities_by_ref(catalog)
    assert entities["component:default/a1"] == before
    [item] = error_items(entities["location:default/root"])
    assert_processing_error(item, "NotFoundError", f"{gone} does not exist")


def test_a_broken_placeholder_after_a_good_one_keeps_the_last_good_definition(
    make_catalog, tmp_path
):
    definition = tmp_path / "api.txt"
    definition.write_text("openapi: 3.0.0\n")
    api = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "API",
        "metadata": {"name": "documented"},
        "spec": {
            "type": "openapi",
            "lifecycle": "production",
            "owner": "team-a",
            "definition": {"$text": "./api.txt"},
        },
    }
    path = write_yaml(tmp_path / "catalog-info.yaml", api)
    catalog = make_catalog([path])
    settle(catalog)
    assert final_entities_by_ref(catalog)["api:default/documented"]["spec"]["definition"] == (
        "openapi: 3.0.0\n"
    )

    definition.unlink()
    reprocess(catalog)

    kept = final_entities_by_ref(catalog)["api:default/documented"]
    assert kept["spec"]["definition"] == "openapi: 3.0.0\n"
    [item] = error_items(kept)
    assert_processing_error(
        item, "InputError", f"could not read location ./api.txt, NotFoundError: file {definition}"
    )


# -- characters no database column can hold -----------------------------------------------


def test_nul_characters_fail_only_what_contains_them(make_catalog, tmp_path):
    # YAML's "\0" escape is a NUL character, which PostgreSQL text cannot store.
    path = tmp_path / "catalog-info.yaml"
    path.write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\n"
        'metadata: {name: described, description: "before\\0after"}\n'
        "spec: {type: service, lifecycle: production, owner: team-a}\n"
        "---\napiVersion: backstage.io/v1alpha1\nkind: Component\n"
        'metadata: {name: "bad\\0name"}\n'
        "spec: {type: service, lifecycle: production, owner: team-a}\n"
        "---\napiVersion: backstage.io/v1alpha1\nkind: Component\n"
        "metadata: {name: bad-owner}\n"
        'spec: {type: service, lifecycle: production, owner: "team\\0a"}\n'
        "---\napiVersion: backstage.io/v1alpha1\nkind: Component\n"
        "metadata: {name: fine}\n"
        "spec: {type: service, lifecycle: production, owner: team-a}\n"
    )
    catalog = make_catalog([path])
    settle(catalog)

    entities = final_entities_by_ref(catalog)
    assert "component:default/fine" in entities
    # A NUL in a plain value is served as is (it is only left out of the search index).
    assert entities["component:default/described"]["metadata"]["description"] == "before\0after"
    # A NUL in a ref or a relation fails that entity, with an error where Backstage shows it.
    assert "component:default/bad-owner" not in entities
    [error] = processing_errors(catalog)["component:default/bad-owner"]
    assert "contains a NUL character" in error["message"]
    [item] = error_items(entities[generated_location_ref(path)])
    assert_processing_error(item, "InputError", "contains a NUL character")
    assert catalog.is_ready() == (True, "ok")
