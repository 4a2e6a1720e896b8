"""Cursor round trips over generated cursors, and garbage cursors (Hypothesis)."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from app.api.cursors import (
    QueryCursor,
    decode_after_cursor,
    decode_query_cursor,
    encode_after_cursor,
)
from app.errors import InputError

PROPERTY = settings(max_examples=300, deadline=None, database=None)

texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
sort_values = st.lists(st.one_of(st.none(), texts), min_size=1, max_size=2)
order_fields = st.lists(
    st.builds(
        lambda field, order: {"field": field, **({"order": order} if order else {})},
        texts,
        st.sampled_from([None, "asc", "desc"]),
    ),
    max_size=2,
)
predicates = st.one_of(
    st.none(),
    st.dictionaries(texts.filter(lambda t: not t.startswith("$")), texts, max_size=2),
    st.builds(lambda items: {"$all": items}, st.lists(st.dictionaries(texts, texts), max_size=2)),
)
full_texts = st.one_of(
    st.none(),
    st.builds(lambda term: {"term": term}, texts),
    st.builds(lambda term, fields: {"term": term, "fields": fields}, texts, st.lists(texts)),
)
cursors = st.builds(
    QueryCursor,
    order_fields=order_fields,
    order_field_values=sort_values,
    first_sort_field_values=st.one_of(st.none(), sort_values),
    is_previous=st.booleans(),
    total_items=st.integers(0, 2**53),
    query=predicates,
    full_text=full_texts,
)


@PROPERTY
@given(cursors)
def test_a_query_cursor_decodes_to_what_was_encoded(cursor: QueryCursor):
    assert decode_query_cursor(cursor.encode()) == cursor


@PROPERTY
@given(st.integers(0, 2**62), st.integers(0, 2**62))
def test_an_after_cursor_decodes_to_its_limit_and_offset(limit: int, offset: int):
    assert decode_after_cursor(encode_after_cursor(limit, offset)) == (limit, offset)


garbage = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), texts),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner)),
        max_leaves=10,
    ).map(lambda value: base64.b64encode(repr(value).encode()).decode()),
)


@PROPERTY
@given(garbage)
def test_a_garbage_query_cursor_is_an_input_error(text: str):
    try:
        cursor = decode_query_cursor(text)
    except InputError:
        return
    # Whatever decodes is a well-formed cursor that encodes again.
    assert decode_query_cursor(cursor.encode()) == cursor


@PROPERTY
@given(garbage)
def test_a_garbage_after_cursor_is_an_input_error(text: str):
    try:
        limit, offset = decode_after_cursor(text)
    except InputError:
        return
    assert limit >= 0 and offset >= 0


def test_a_cursor_nested_too_deeply_is_an_input_error():
    deep = base64.b64encode(("[" * 100_000 + "]" * 100_000).encode()).decode()
    for decode in (decode_query_cursor, decode_after_cursor):
        try:
            decode(deep)
        except InputError:
            continue
        raise AssertionError(f"{decode.__name__} accepted a deeply nested cursor")
