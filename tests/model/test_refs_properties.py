"""Properties of entity and location refs, over generated input (Hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.model import (
    EntityName,
    InvalidEntityRefError,
    LocationRefError,
    MalformedEntityRefError,
    parse_entity_ref,
    parse_location_ref,
    ref_of,
    stringify_entity_ref,
    stringify_location_ref,
)
from app.model.refs import JS_WHITESPACE

PROPERTY = settings(max_examples=300, deadline=None, database=None)

# What each part may hold so that the printed ref parses back into the same parts: a kind
# has neither ":" nor "/", a namespace no "/" (the first "/" ends it), a name anything.
kinds = st.text(st.characters(exclude_characters=":/", codec="utf-8"), min_size=1)
namespaces = st.text(st.characters(exclude_characters="/", codec="utf-8"), min_size=1)
names = st.text(st.characters(codec="utf-8"), min_size=1)


@PROPERTY
@given(kinds, namespaces, names)
def test_a_printed_ref_parses_back_to_its_lowercased_parts(kind, namespace, name):
    text = stringify_entity_ref(kind, namespace, name)
    assert text == text.lower()
    assert parse_entity_ref(text) == EntityName(kind.lower(), namespace.lower(), name.lower())


@PROPERTY
@given(kinds, namespaces, names)
def test_canonical_refs_are_a_fixed_point(kind, namespace, name):
    canonical = stringify_entity_ref(kind, namespace, name)
    assert ref_of(parse_entity_ref(canonical)) == canonical
    assert ref_of({"kind": kind, "namespace": namespace, "name": name}) == canonical
    assert ref_of({"kind": kind, "metadata": {"namespace": namespace, "name": name}}) == canonical


@PROPERTY
@given(st.text(), st.one_of(st.none(), kinds), st.one_of(st.none(), namespaces))
def test_parsing_any_text_either_succeeds_or_raises_backstages_errors(text, kind, namespace):
    try:
        parsed = parse_entity_ref(text, default_kind=kind, default_namespace=namespace)
    except (InvalidEntityRefError, MalformedEntityRefError):
        return
    assert all(isinstance(part, str) and part for part in parsed)
    # Whatever parsed prints to a ref that parses to the same (lowercased) parts.
    again = parse_entity_ref(ref_of(parsed))
    assert again == EntityName(*(part.lower() for part in parsed))


@PROPERTY
@given(
    st.text(st.characters(exclude_characters=":" + JS_WHITESPACE), min_size=1).filter(
        lambda t: t not in ("http", "https")
    ),
    st.text(min_size=1).filter(lambda t: t.strip(JS_WHITESPACE) == t and "javascript" not in t),
)
def test_location_refs_round_trip(location_type, target):
    text = stringify_location_ref(location_type, target)
    assert parse_location_ref(text) == (location_type, target)


@PROPERTY
@given(st.one_of(st.text(), st.none(), st.integers(), st.lists(st.text(), max_size=3)))
def test_any_location_ref_parses_or_raises_a_location_ref_error(value):
    try:
        location_type, target = parse_location_ref(value)
    except LocationRefError:
        return
    assert location_type and target
    assert location_type == location_type.strip(JS_WHITESPACE)
    assert target == target.strip(JS_WHITESPACE)
