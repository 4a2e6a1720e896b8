"""Entity and location refs; expectations checked against catalog-model 1.10.3 (the real code)."""

import pytest

from app.errors import error_name, serialize_error
from app.model import (
    EntityName,
    InvalidEntityRefError,
    LocationRefError,
    MalformedEntityRefError,
    entity_ref,
    parse_entity_ref,
    parse_location_ref,
    ref_of,
    stringify_entity_ref,
    stringify_location_ref,
)
from app.model.refs import js_json


@pytest.mark.parametrize(
    ("ref", "kwargs", "expected"),
    [
        ("k:n/x", {}, ("k", "n", "x")),
        ("K:N/X", {}, ("K", "N", "X")),  # case is kept
        ("k:name", {}, ("k", "default", "name")),
        ("name", {"default_kind": "Group"}, ("Group", "default", "name")),
        ("ns/name", {"default_kind": "Group"}, ("Group", "ns", "name")),
        ("name", {"default_kind": "Group", "default_namespace": "dev"}, ("Group", "dev", "name")),
        ("k:name", {"default_kind": "Group", "default_namespace": "dev"}, ("k", "dev", "name")),
        ("name", {"default_kind": "Group", "default_namespace": ""}, ("Group", "default", "name")),
        # '/' before ':' means the colon is part of the name
        ("a/b:c", {"default_kind": "Group"}, ("Group", "a", "b:c")),
        ("a:b:c", {}, ("a", "default", "b:c")),
        ("a:b/c/d", {}, ("a", "b", "c/d")),
        ({"kind": "K", "name": "n"}, {}, ("K", "default", "n")),
        ({"kind": "K", "namespace": None, "name": "n"}, {}, ("K", "default", "n")),
        ({"name": "n"}, {"default_kind": "Group", "default_namespace": "x"}, ("Group", "x", "n")),
    ],
)
def test_parse_entity_ref(ref, kwargs, expected):
    assert parse_entity_ref(ref, **kwargs) == EntityName(*expected)


@pytest.mark.parametrize(
    ("ref", "kwargs", "error", "message"),
    [
        ("", {}, InvalidEntityRefError, "Entity reference must not be empty"),
        (None, {}, InvalidEntityRefError, "Entity reference must not be empty"),
        (
            "a",
            {},
            InvalidEntityRefError,
            'Entity reference "a" had missing or empty kind (e.g. did not start with '
            '"component:" or similar)',
        ),
        (
            "ns/name",
            {"default_kind": ""},
            InvalidEntityRefError,
            'Entity reference "ns/name" had missing or empty kind (e.g. did not start with '
            '"component:" or similar)',
        ),
        (
            ":x",
            {},
            MalformedEntityRefError,
            'Entity reference ":x" was not on the form [<kind>:][<namespace>/]<name>',
        ),
        (
            "x:",
            {"default_kind": "Group"},
            MalformedEntityRefError,
            'Entity reference "x:" was not on the form [<kind>:][<namespace>/]<name>',
        ),
        (
            "/x",
            {"default_kind": "Group"},
            MalformedEntityRefError,
            'Entity reference "/x" was not on the form [<kind>:][<namespace>/]<name>',
        ),
        (
            "k:/x",
            {},
            MalformedEntityRefError,
            'Entity reference "k:/x" was not on the form [<kind>:][<namespace>/]<name>',
        ),
        (
            "x/",
            {"default_kind": "Group"},
            MalformedEntityRefError,
            'Entity reference "x/" was not on the form [<kind>:][<namespace>/]<name>',
        ),
        (
            {"kind": "K"},
            {},
            InvalidEntityRefError,
            'Entity reference {"kind":"K"} had missing or empty name',
        ),
        (
            {"kind": "K", "namespace": "", "name": "n"},
            {},
            InvalidEntityRefError,
            'Entity reference {"kind":"K","namespace":"","name":"n"} had missing or empty '
            "namespace",
        ),
        (
            {"kind": "", "name": "n"},
            {"default_kind": "Group"},
            InvalidEntityRefError,
            'Entity reference {"kind":"","name":"n"} had missing or empty kind (e.g. did not '
            'start with "component:" or similar)',
        ),
        (
            'a"b',
            {},
            InvalidEntityRefError,
            'Entity reference "a\\"b" had missing or empty kind (e.g. did not start with '
            '"component:" or similar)',
        ),
    ],
)
def test_parse_entity_ref_errors(ref, kwargs, error, message):
    with pytest.raises(error) as info:
        parse_entity_ref(ref, **kwargs)
    assert str(info.value) == message


def test_ref_error_names_on_the_wire():
    """parseEntityRef throws a plain Error for missing parts and a TypeError for bad forms."""
    with pytest.raises(InvalidEntityRefError) as missing:
        parse_entity_ref("a")
    with pytest.raises(MalformedEntityRefError) as malformed:
        parse_entity_ref("group:")
    assert serialize_error(missing.value) == {
        "name": "Error",
        "message": 'Entity reference "a" had missing or empty kind (e.g. did not start with '
        '"component:" or similar)',
    }
    assert error_name(malformed.value) == "TypeError"
    assert isinstance(missing.value, ValueError)
    assert isinstance(malformed.value, ValueError)


def test_stringify_and_ref_of_are_canonical_lowercase():
    assert (
        stringify_entity_ref("Component", "Default", "My-Service") == "component:default/my-service"
    )
    assert ref_of(EntityName("API", "NS", "X")) == "api:ns/x"
    assert ref_of({"kind": "Group", "name": "Team-A"}) == "group:default/team-a"
    assert ref_of({"kind": "Group", "namespace": "Dev", "name": "A"}) == "group:dev/a"
    entity = {"kind": "User", "metadata": {"name": "Bob"}}
    assert ref_of(entity) == entity_ref(entity) == "user:default/bob"
    assert entity_ref({"kind": "User", "metadata": {"name": "b", "namespace": "x"}}) == "user:x/b"


def test_js_json_matches_json_stringify():
    assert js_json({"a": [1, 1.0, 1.5, None, True], "b": 'é\n"\\'}) == (
        '{"a":[1,1,1.5,null,true],"b":"é\\n\\"\\\\"}'
    )


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("url:https://x", ("url", "https://x")),
        (" url : https://x ", ("url", "https://x")),
        ("file:/a/b", ("file", "/a/b")),
        ("a:b:c", ("a", "b:c")),
        ("\ufeffurl:x\ufeff", ("url", "x")),  # JavaScript's trim() strips U+FEFF
        ("url:\x1cx", ("url", "\x1cx")),  # ... but not U+001C, unlike str.strip()
    ],
)
def test_parse_location_ref(ref, expected):
    assert parse_location_ref(ref) == expected


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            "catalog-info.yaml",
            "Unable to parse location ref 'catalog-info.yaml', expected '<type>:<target>', "
            "e.g. 'url:https://host/path'",
        ),
        (
            ":x",
            "Unable to parse location ref ':x', expected '<type>:<target>', "
            "e.g. 'url:https://host/path'",
        ),
        (
            "url: ",
            "Unable to parse location ref 'url: ', expected '<type>:<target>', "
            "e.g. 'url:https://host/path'",
        ),
        (
            "https://x",
            "Invalid location ref 'https://x', please prefix it with 'url:', e.g. 'url:https://x'",
        ),
        (
            "url:javascript:alert(1)",
            "Invalid location ref 'url:javascript:alert(1)', target is a javascript: URL",
        ),
        (
            "url: \x01JAVA\tSCRIPT:x",
            "Invalid location ref 'url: \x01JAVA\tSCRIPT:x', target is a javascript: URL",
        ),
        (5, "Unable to parse location ref '5', unexpected argument number"),
        (None, "Unable to parse location ref 'null', unexpected argument object"),
        ({"a": 1}, "Unable to parse location ref '[object Object]', unexpected argument object"),
    ],
)
def test_parse_location_ref_errors(ref, message):
    with pytest.raises(LocationRefError) as info:
        parse_location_ref(ref)
    assert str(info.value) == message
    assert error_name(info.value) == "TypeError"


def test_stringify_location_ref():
    assert stringify_location_ref("url", "https://x/y.yaml") == "url:https://x/y.yaml"
    for (type_, target), message in [
        (("", "x"), "Unable to stringify location ref, empty type"),
        (("url", ""), "Unable to stringify location ref, empty target"),
        (
            ("url", "java\nscript:x"),
            "Invalid location ref 'url:java\nscript:x', target is a javascript: URL",
        ),
    ]:
        with pytest.raises(LocationRefError) as info:
            stringify_location_ref(type_, target)
        assert str(info.value) == message
