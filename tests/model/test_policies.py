"""Envelope check and default policies; every message below was returned verbatim by the
reference backend's ``POST /validate-entity`` (catalog-backend 4.0.0)."""

import copy
import json

import pytest

from app.errors import InputError, SchemaError, serialize_error
from app.model import apply_entity_policies, is_valid_url, validate_envelope

HINT = (
    "To learn more about catalog file format, visit: "
    "https://github.com/backstage/backstage/blob/master/docs/architecture-decisions/"
    "adr002-default-catalog-file-format.md"
)
NAME_RULE = (
    "a string that is sequences of [a-zA-Z0-9] separated by any of [-_.], "
    "at most 63 characters in total"
)


def component(**metadata):
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "x", **metadata},
        "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"},
    }


def with_root(**root):
    entity = component()
    entity.update(root)
    return entity


def policy_message(entity):
    with pytest.raises(InputError) as info:
        apply_entity_policies(entity)
    return info.value.message


@pytest.mark.parametrize(
    ("entity", "message"),
    [
        (
            component(name="Bad Name!"),
            'Policy check failed for component:default/bad name!; caused by Error: "metadata.name" '
            f'is not valid; expected {NAME_RULE} but found "Bad Name!". {HINT}',
        ),
        (
            component(name="a" * 64),
            f"Policy check failed for component:default/{'a' * 64}; caused by Error: "
            f'"metadata.name" is not valid; expected {NAME_RULE} but found "{"a" * 64}". {HINT}',
        ),
        (
            component(namespace="Bad_NS"),
            'Policy check failed for component:bad_ns/x; caused by Error: "metadata.namespace" '
            "is not valid; expected a string that is sequences of [a-z0-9] separated by [-], at "
            f'most 63 characters in total but found "Bad_NS". {HINT}',
        ),
        (
            component(namespace="Prod"),
            'Policy check failed for component:prod/x; caused by Error: "metadata.namespace" '
            "is not valid; expected a string that is sequences of [a-z0-9] separated by [-], at "
            f'most 63 characters in total but found "Prod". {HINT}',
        ),
        (
            component(tags=["Java"]),
            'Policy check failed for component:default/x; caused by Error: "tags.0" is not valid; '
            "expected a string that is sequences of [a-z0-9+#] separated by [-], at most 63 "
            f'characters in total but found "Java". {HINT}',
        ),
        (
            component(tags=[""]),
            "Policy check failed for component:default/x; caused by Error: Malformed envelope, "
            "/metadata/tags/0 must NOT have fewer than 1 characters",
        ),
        (
            component(labels={"a": "not ok!"}),
            'Policy check failed for component:default/x; caused by Error: "labels.a" is not '
            f'valid; expected {NAME_RULE} but found "not ok!". {HINT}',
        ),
        (
            component(labels={"a/b/c": "x"}),
            'Policy check failed for component:default/x; caused by Error: "labels.a/b/c" is not '
            f'valid; expected a valid prefix and/or suffix but found "a/b/c". {HINT}',
        ),
        (
            component(labels={"Example.com/x": "y"}),
            'Policy check failed for component:default/x; caused by Error: "labels.Example.com/x" '
            "is not valid; expected a valid prefix and/or suffix but found "
            f'"Example.com/x". {HINT}',
        ),
        (
            component(annotations={"Bad Key": "x"}),
            'Policy check failed for component:default/x; caused by Error: "annotations.Bad Key" '
            f'is not valid; expected a valid prefix and/or suffix but found "Bad Key". {HINT}',
        ),
        (
            component(annotations={"a/b/c": "y"}),
            'Policy check failed for component:default/x; caused by Error: "annotations.a/b/c" '
            f'is not valid; expected a valid prefix and/or suffix but found "a/b/c". {HINT}',
        ),
        (
            component(annotations={"a": 1}),
            "Policy check failed for component:default/x; caused by Error: Malformed envelope, "
            "/metadata/annotations/a must be string",
        ),
        (
            with_root(foo=1),
            "Policy check failed for component:default/x; caused by Error: Malformed envelope, "
            "<root> must NOT have additional properties",
        ),
        (
            with_root(relations=[]),
            "Policy check failed for component:default/x; caused by Error: Unknown field relations",
        ),
        (
            with_root(status={}),
            "Policy check failed for component:default/x; caused by Error: Unknown field status",
        ),
        (
            with_root(relations=[{"type": "bad type", "targetRef": "x"}]),
            "Policy check failed for component:default/x; caused by Error: Malformed envelope, "
            '/relations/0/type must match pattern "^\\w+$"',
        ),
        (
            component(links=[{"url": "not a url"}]),
            'Policy check failed for component:default/x; caused by Error: "links.0.url" is not '
            f'valid; expected a string that is a valid url but found "not a url". {HINT}',
        ),
        (
            component(links=[{"url": "https://exa mple.com"}]),
            'Policy check failed for component:default/x; caused by Error: "links.0.url" is not '
            "valid; expected a string that is a valid url but found "
            f'"https://exa mple.com". {HINT}',
        ),
        (
            component(links=[{"title": "t"}]),
            "Policy check failed for component:default/x; caused by Error: Malformed envelope, "
            "/metadata/links/0 must have required property 'url'",
        ),
        (
            component(links=[{"url": "https://a", "title": " "}]),
            'Policy check failed for component:default/x; caused by Error: "links.0.title" is not '
            f'valid; expected a non empty string but found " ". {HINT}',
        ),
        (
            component(links=[{"url": "https://a", "icon": "  "}]),
            'Policy check failed for component:default/x; caused by Error: "links.0.icon" is not '
            f'valid; expected a non empty string but found "  ". {HINT}',
        ),
        (
            component(title=""),
            "Policy check failed for component:default/x; caused by Error: Malformed envelope, "
            "/metadata/title must NOT have fewer than 1 characters",
        ),
        (
            component(uid=5),
            "Policy check failed for component:default/x; caused by Error: Malformed envelope, "
            "/metadata/uid must be string",
        ),
        (
            with_root(apiVersion="Backstage.io/v1"),
            'Policy check failed for component:default/x; caused by Error: "apiVersion" is not '
            f'valid; expected a valid prefix and/or suffix but found "Backstage.io/v1". {HINT}',
        ),
        (
            with_root(kind="1Component"),
            'Policy check failed for 1component:default/x; caused by Error: "kind" is not valid; '
            "expected a string that is a sequence of [a-zA-Z][a-z0-9A-Z], at most 63 characters "
            f'in total but found "1Component". {HINT}',
        ),
    ],
)
def test_policy_messages_match_the_reference_backend(entity, message):
    assert policy_message(entity) == message


def test_policy_error_shape():
    with pytest.raises(InputError) as info:
        apply_entity_policies(component(name="Bad Name!"))
    body = serialize_error(info.value)
    assert body["name"] == "InputError"
    assert body["cause"]["name"] == "Error"
    assert body["message"].endswith("; caused by Error: " + body["cause"]["message"])


def test_schema_errors_come_first_in_ajv_order():
    """SchemaValidEntityPolicy runs first and reports ajv's first error (keys in JS order)."""
    assert policy_message(component(annotations={"b": 1, "1": 2})) == (
        "Policy check failed for component:default/x; caused by Error: Malformed envelope, "
        "/metadata/annotations/1 must be string"
    )
    assert policy_message(with_root(spec=[])) == (
        "Policy check failed for component:default/x; caused by Error: Malformed envelope, "
        "/spec must be object"
    )
    status = {"items": [{"type": "t", "level": "fatal", "message": "m"}]}
    assert policy_message(with_root(status=status)) == (
        "Policy check failed for component:default/x; caused by Error: Malformed envelope, "
        "/status/items/0/level must be equal to one of the allowed values"
    )


def test_valid_entities_pass_and_allowed_forms():
    entity = component(
        tags=["a:b", "c++", "c#"],
        labels={"a": "", "example.com/tier": "Gold.1"},
        annotations={"backstage.io/techdocs-ref": "dir:.", "x": ""},
        links=[{"url": "mailto:a@b.c"}, {"url": "https://a", "title": "T", "icon": "i"}],
    )
    assert apply_entity_policies(entity)["metadata"]["namespace"] == "default"


def test_default_namespace_is_filled_without_mutating_the_input():
    entity = component(title="T")
    before = copy.deepcopy(entity)
    result = apply_entity_policies(entity)
    assert entity == before
    # lodash.merge({metadata: {namespace}}, entity): metadata first, namespace first in it.
    assert json.dumps(result) == json.dumps(
        {
            "metadata": {"namespace": "default", "name": "x", "title": "T"},
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "spec": before["spec"],
        }
    )
    with_namespace = component(namespace="prod")
    assert apply_entity_policies(with_namespace) is with_namespace


@pytest.mark.parametrize(
    ("entity", "message"),
    [
        (
            {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {}},
            "/metadata must have required property 'name' - missingProperty: name",
        ),
        (
            {"apiVersion": "backstage.io/v1alpha1", "metadata": {"name": "x"}},
            "<root> must have required property 'kind' - missingProperty: kind",
        ),
        (
            {"kind": "Component", "metadata": {"name": "x"}},
            "<root> must have required property 'apiVersion' - missingProperty: apiVersion",
        ),
        (
            {"apiVersion": "backstage.io/v1alpha1", "kind": "Component"},
            "<root> must have required property 'metadata' - missingProperty: metadata",
        ),
        (
            {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": 5}},
            "/metadata/name must be string - type: string",
        ),
        (
            component(namespace=""),
            "/metadata/namespace must NOT have fewer than 1 characters - limit: 1",
        ),
        ([], "<root> must be object - type: object"),
    ],
)
def test_validate_envelope_messages(entity, message):
    with pytest.raises(SchemaError) as info:
        validate_envelope(entity)
    assert str(info.value) == message
    assert serialize_error(info.value) == {"name": "TypeError", "message": message}


def test_validate_envelope_accepts_foreign_fields():
    entity = with_root(foo=1, spec=None)
    assert validate_envelope(entity) is entity


# Each answer is what Node's ``new URL(x)`` (used by isValidUrl) said.
URL_CASES = {
    "https://example.com": True,
    "not a url": False,
    "http://": False,
    "http:": False,
    "http:foo": True,
    "http:\\\\foo": True,
    "https://exa mple.com": False,
    "https://example.com:99999": False,
    "https://example.com:65535": True,
    "https://example.com:": True,
    "https://example.com:8a": False,
    "http://[::1]": True,
    "http://[::1": False,
    "http://[1:2:3:4:5:6:7:8:9]": False,
    "http://[::ffff:1.2.3.4]": True,
    "http://[::ffff:1.2.3.04]": False,
    "http://[fe80::1%25eth0]": False,
    "http://1.2.3.256": False,
    "http://999999999999": False,
    "http://4294967295": True,
    "http://0x": True,
    "http://1.2.3.0x1g": True,
    "http://1.2.3.09": False,
    "http://a..b": True,
    "http://a%20b": False,
    "http://user@": False,
    "http://@host": True,
    "http://ex_ample.com": True,
    "http://a^b": False,
    "http://é.com": True,
    "http://xn--nxasmq6b.com": True,
    "http://xn--.com": False,
    "http://a\u200db.com": False,
    "http://\u00ad/": False,
    "mailto:x@y": True,
    "urn:isbn:123": True,
    "a:": True,
    "1a:b": False,
    "foo://": True,
    "foo://:80": False,
    "foo://h:99999": False,
    "foo://a b": False,
    "foo://a%20b": True,
    "javascript:alert(1)": True,
    "file:foo": True,
    "file://ho st/x": False,
    "file://C:/x": True,
    "  https://example.com  ": True,
    "ht\ntp://example.com": True,
    "git+ssh://git@github.com/x.git": True,
}


@pytest.mark.parametrize(("url", "valid"), URL_CASES.items())
def test_is_valid_url_matches_node(url, valid):
    assert is_valid_url(url) is valid
