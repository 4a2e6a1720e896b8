"""Relations per kind (REFERENCE 4.5), checked against the reference backend's processors."""

import pytest

from app.model import (
    RELATION_PAIRS,
    REVERSE_RELATION,
    InvalidEntityRefError,
    MalformedEntityRefError,
    relations_for,
)


def entity(kind, spec, namespace=None, name="self", api_version="backstage.io/v1alpha1"):
    metadata = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}


def both(source, relation, target):
    """The forward row and its reverse, as the processor emits them."""
    return [(source, relation, target), (target, REVERSE_RELATION[relation], source)]


# kind, spec field, value, relation from self, expected target (self is in namespace "default")
ROWS = [
    ("Component", "owner", "team-a", "ownedBy", "group:default/team-a"),
    ("Component", "subcomponentOf", "parent", "partOf", "component:default/parent"),
    ("Component", "providesApis", ["api-a"], "providesApi", "api:default/api-a"),
    ("Component", "consumesApis", ["api-b"], "consumesApi", "api:default/api-b"),
    ("Component", "dependsOn", ["resource:db"], "dependsOn", "resource:default/db"),
    ("Component", "dependencyOf", ["component:app"], "dependencyOf", "component:default/app"),
    ("Component", "system", "sys", "partOf", "system:default/sys"),
    ("API", "owner", "team-a", "ownedBy", "group:default/team-a"),
    ("API", "system", "sys", "partOf", "system:default/sys"),
    ("Resource", "owner", "team-a", "ownedBy", "group:default/team-a"),
    ("Resource", "dependsOn", ["resource:other"], "dependsOn", "resource:default/other"),
    ("Resource", "dependencyOf", ["component:c"], "dependencyOf", "component:default/c"),
    ("Resource", "system", "sys", "partOf", "system:default/sys"),
    ("System", "owner", "team-a", "ownedBy", "group:default/team-a"),
    ("System", "domain", "dom", "partOf", "domain:default/dom"),
    ("Domain", "owner", "team-a", "ownedBy", "group:default/team-a"),
    ("Domain", "subdomainOf", "parent", "partOf", "domain:default/parent"),
    ("User", "memberOf", ["team-a"], "memberOf", "group:default/team-a"),
    ("Group", "parent", "org", "childOf", "group:default/org"),
    ("Group", "children", ["sub"], "parentOf", "group:default/sub"),
    ("Group", "members", ["bob"], "hasMember", "user:default/bob"),
]


@pytest.mark.parametrize(("kind", "field", "value", "relation", "target"), ROWS)
def test_reference_table_row(kind, field, value, relation, target):
    self_ref = f"{kind.lower()}:default/self"
    assert relations_for(entity(kind, {field: value})) == both(self_ref, relation, target)


@pytest.mark.parametrize(("kind", "field", "value", "relation", "target"), ROWS)
def test_default_namespace_is_the_entitys_own(kind, field, value, relation, target):
    self_ref = f"{kind.lower()}:dev/self"
    target = target.replace(":default/", ":dev/")
    assert relations_for(entity(kind, {field: value}, "dev")) == both(self_ref, relation, target)


def test_explicit_kind_and_namespace_win_and_refs_are_lowercased():
    spec = {
        "owner": "User:Other/Bob",
        "dependsOn": ["Resource:DB", "component:x/Y"],
        "providesApis": ["other/API-1"],
    }
    assert relations_for(entity("Component", spec, "dev", name="My-Svc")) == [
        *both("component:dev/my-svc", "ownedBy", "user:other/bob"),
        *both("component:dev/my-svc", "providesApi", "api:other/api-1"),
        *both("component:dev/my-svc", "dependsOn", "resource:dev/db"),
        *both("component:dev/my-svc", "dependsOn", "component:x/y"),
    ]


def test_emission_order_follows_the_processor_and_keeps_duplicates():
    spec = {
        "type": "service",
        "lifecycle": "production",
        "system": "s",
        "dependencyOf": ["component:a"],
        "dependsOn": ["resource:r", "resource:r"],
        "consumesApis": ["c"],
        "providesApis": ["p"],
        "subcomponentOf": "parent",
        "owner": "o",
    }
    types = [rel for _, rel, _ in relations_for(entity("Component", spec))]
    assert types == [
        "ownedBy",
        "ownerOf",
        "partOf",
        "hasPart",
        "providesApi",
        "apiProvidedBy",
        "consumesApi",
        "apiConsumedBy",
        "dependsOn",
        "dependencyOf",
        "dependsOn",
        "dependencyOf",
        "dependencyOf",
        "dependsOn",
        "partOf",
        "hasPart",
    ]


def test_group_and_user_lists():
    group = entity(
        "Group", {"type": "team", "parent": "org", "children": ["a", "b"], "members": ["u"]}
    )
    assert relations_for(group) == [
        *both("group:default/self", "childOf", "group:default/org"),
        *both("group:default/self", "parentOf", "group:default/a"),
        *both("group:default/self", "parentOf", "group:default/b"),
        *both("group:default/self", "hasMember", "user:default/u"),
    ]
    assert relations_for(entity("User", {"memberOf": []})) == []


def test_template_owner_is_a_group_by_default():
    template = entity(
        "Template",
        {"type": "service", "owner": "team-a", "steps": []},
        api_version="scaffolder.backstage.io/v1beta3",
    )
    assert relations_for(template) == both(
        "template:default/self", "ownedBy", "group:default/team-a"
    )
    template["apiVersion"] = "scaffolder.backstage.io/v1beta2"
    assert relations_for(template) == []


def test_only_builtin_kinds_emit_relations():
    assert relations_for(entity("Widget", {"owner": "team-a"})) == []
    assert relations_for(entity("component", {"owner": "team-a"})) == []  # kind is case-sensitive
    # The reference backend has no catalog model layers, so AiResource emits nothing.
    assert relations_for(entity("AiResource", {"type": "skill", "owner": "team-a"})) == []
    assert relations_for(entity("Location", {"target": "x"})) == []


def test_falsy_and_scalar_fields():
    assert relations_for(entity("Component", {"owner": "", "system": None})) == []
    # dependencyOf is not in the schema; a single string works like a one-item list.
    assert relations_for(entity("Component", {"dependencyOf": "resource:db"})) == both(
        "component:default/self", "dependencyOf", "resource:default/db"
    )
    assert relations_for(
        entity("Component", {"dependencyOf": {"kind": "Resource", "name": "db"}})
    ) == both("component:default/self", "dependencyOf", "resource:default/db")


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        # Verified with POST /validate-entity on the reference backend, which reports
        # "Processor BuiltinKindsEntityProcessor threw an error while postprocessing;
        # caused by Error: <message>".
        (
            {"dependsOn": ["artists-db"]},
            InvalidEntityRefError,
            'Entity reference "artists-db" had missing or empty kind (e.g. did not start with '
            '"component:" or similar)',
        ),
        ({"dependencyOf": [""]}, InvalidEntityRefError, "Entity reference must not be empty"),
        (
            {"owner": "group:"},
            MalformedEntityRefError,
            'Entity reference "group:" was not on the form [<kind>:][<namespace>/]<name>',
        ),
        (
            {"dependencyOf": [["a"]]},
            InvalidEntityRefError,
            'Entity reference ["a"] had missing or empty kind (e.g. did not start with '
            '"component:" or similar)',
        ),
        (
            {"dependencyOf": 5},
            InvalidEntityRefError,
            "Entity reference 5 had missing or empty kind (e.g. did not start with "
            '"component:" or similar)',
        ),
    ],
)
def test_bad_refs_raise_backstages_errors(spec, error, message):
    with pytest.raises(error) as info:
        relations_for(entity("Component", spec))
    assert str(info.value) == message


def test_relation_pairs():
    assert RELATION_PAIRS == [
        ("ownedBy", "ownerOf"),
        ("providesApi", "apiProvidedBy"),
        ("consumesApi", "apiConsumedBy"),
        ("dependsOn", "dependencyOf"),
        ("partOf", "hasPart"),
        ("memberOf", "hasMember"),
        ("childOf", "parentOf"),
    ]
    assert len(REVERSE_RELATION) == 14
    for forward, reverse in RELATION_PAIRS:
        assert REVERSE_RELATION[forward] == reverse
        assert REVERSE_RELATION[reverse] == forward


def test_caches_do_not_leak_between_namespaces():
    first = relations_for(entity("Component", {"owner": "team-a"}, "one"))
    second = relations_for(entity("Component", {"owner": "team-a"}, "two"))
    assert first[0][2] == "group:one/team-a"
    assert second[0][2] == "group:two/team-a"
