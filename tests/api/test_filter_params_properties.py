"""Properties of both filter languages over generated input (Hypothesis): any input parses
or is an InputError, parsing means what the syntax says, and a parsed filter survives the
trip through a cursor (``to_predicate``) unchanged."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.api.filter_params import parse_filter_params, parse_predicate
from app.errors import InputError
from app.storage.filters import AllOf, AnyOf, FieldIn, Filter, to_predicate

PROPERTY = settings(max_examples=300, deadline=None, database=None)

# Keys and values as they appear in filter statements: no separators, not blank; "$" keys
# have a test of their own.
keys = (
    st.text(st.characters(exclude_characters=",=", exclude_categories=("Cs",)), min_size=1)
    .map(str.strip)
    .filter(lambda key: key and not key.startswith("$"))
)
values = st.text(st.characters(exclude_characters=",", exclude_categories=("Cs",))).map(str.strip)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(
                st.sampled_from(
                    ["$all", "$any", "$not", "$exists", "$in", "$hasPrefix", "$contains", "kind"]
                ),
                st.text(max_size=8),
            ),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=20,
)


def statement_text(statements: dict[str, list[str]]) -> str:
    return ",".join(f"{k}={v}" for k, vs in statements.items() for v in vs)


@PROPERTY
@given(st.lists(st.text(), max_size=4))
def test_any_filter_parameters_parse_or_are_an_input_error(params):
    try:
        node = parse_filter_params(params)
    except InputError:
        return
    if node is not None:
        _round_trips(node)  # whatever parses survives a cursor, "$" keys included


@PROPERTY
@given(st.lists(st.dictionaries(keys, st.lists(values, min_size=1, max_size=3)), min_size=1))
def test_statements_mean_what_they_say(sets):
    """``k=a,k=b,j=c`` is (k in {a,b}) AND (j = c); repeated parameters are OR'ed."""
    params = [
        ",".join(f"{k}={v}" for k, vs in statements.items() for v in vs) for statements in sets
    ]
    if "" in params:
        return  # an empty parameter is refused, tested elsewhere
    parsed = parse_filter_params(params)

    def expected_set(statements: dict[str, list[str]]) -> Filter:
        by_key: dict[str, list[str]] = {}
        for key, vs in statements.items():
            by_key.setdefault(key.lower(), []).extend(v.lower() for v in vs)
        return AllOf(tuple(FieldIn(k, tuple(dict.fromkeys(vs))) for k, vs in by_key.items()))

    expected = [expected_set(statements) for statements in sets]
    assert parsed == (expected[0] if len(expected) == 1 else AnyOf(tuple(expected)))


@PROPERTY
@given(json_values)
def test_any_predicate_parses_or_is_an_input_error(query):
    try:
        parse_predicate(query)
    except InputError as error:
        assert str(error).startswith(("Invalid query", "Query must be an object"))


def _round_trips(node: Filter) -> None:
    assert parse_predicate(to_predicate(node)) == node


def test_a_dollar_key_matches_nothing_and_survives_a_cursor():
    # Found by test_legacy_filters_survive_a_cursor: "$not=x" came back as an operator.
    node = parse_filter_params(["$not=x,kind=component", "kind=api"])
    assert node == AnyOf(
        (AllOf((AnyOf(()), FieldIn("kind", ("component",)))), AllOf((FieldIn("kind", ("api",)),)))
    )
    _round_trips(node)


@PROPERTY
@given(json_values)
def test_a_parsed_predicate_survives_a_cursor(query: Any):
    try:
        node = parse_predicate(query)
    except InputError:
        return
    _round_trips(node)


@PROPERTY
@given(st.lists(st.dictionaries(keys, st.lists(values, min_size=1, max_size=3)), min_size=1))
def test_legacy_filters_survive_a_cursor(sets):
    params = [
        ",".join(f"{k}={v}" for k, vs in statements.items() for v in vs) for statements in sets
    ]
    try:
        node = parse_filter_params(params)
    except InputError:
        return
    assert node is not None
    _round_trips(node)
