"""Keyset pages give the same rows whichever plan finds them.

On SQLite a filtered page may first probe a window of the sort index (``EXISTS`` per
row) and fall back to the ``IN`` plan when the window holds too few matches. These tests
make every page try a window of one page, so that on a small catalog pages take every
path: window full, window reaching the last value, fallback, and the NULL segment. Each
walk, forwards and backwards, must equal the walk with the window turned off, and the
order the reference computes in Python.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.catalog import Catalog
from app.config import AppConfig
from app.storage import entities as entities_module
from app.storage.entities import EntityReader, OrderField, PageRow
from app.storage.filters import AllOf, AnyOf, FieldIn, FieldPrefix, Filter, Not
from tests.conftest import catalog_config, component, fresh_database, settle, write_yaml

LONG = "x" * 250  # longer than the 200 characters the search index keeps: sorts as NULL


def _entities() -> list[dict[str, Any]]:
    out = []
    for index in range(90):
        entity = component(
            f"svc-{index:03d}",
            type="rare" if index % 30 == 7 else "service",
            owner="team-b" if index % 4 == 0 else "team-a",
        )
        entity["metadata"]["title"] = LONG + str(index) if index % 17 == 3 else f"T{index % 9}"
        entity["metadata"]["tags"] = ["common"] if index % 2 else ["common", "even"]
        out.append(entity)
    return out


FILTERS: dict[str, Filter] = {
    "common": FieldIn("kind", ("component",)),
    "half": FieldIn("metadata.tags", ("even",)),
    "rare": FieldIn("spec.type", ("rare",)),
    "none": FieldIn("spec.type", ("nothing",)),
    "prefix": FieldPrefix("metadata.name", "svc-01"),
    "owned": FieldIn("relations.ownedby", ("group:default/team-b",)),
    "not": AllOf((FieldIn("kind", ("component",)), Not(FieldIn("metadata.tags", ("even",))))),
    "any": AnyOf((FieldIn("spec.type", ("rare",)), FieldIn("relations.ownedby", None))),
}
ORDERS = [
    OrderField("metadata.name", "asc"),
    OrderField("metadata.name", "desc"),
    OrderField("metadata.title", "asc"),
    OrderField("metadata.title", "desc"),
]


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    path = write_yaml(folder / "catalog-info.yaml", *_entities())
    with fresh_database(folder) as url:
        catalog = Catalog.from_config(AppConfig(catalog_config(url, [path])))
        catalog.engine.connect_providers()
        settle(catalog)
        yield EntityReader(catalog.db)
        catalog.stop()


def _walk(reader: EntityReader, node: Filter, order: OrderField, limit: int) -> list[PageRow]:
    with reader.connect() as conn:
        matches = reader.count(conn, node, order, None)
        rows, more = reader.query_page(conn, node, order, None, limit=limit, matches=matches)
        out = list(rows)
        while more:
            last = (out[-1].sort_value, out[-1].entity_id)
            rows, more = reader.query_page(
                conn, node, order, None, limit=limit, after=last, matches=matches
            )
            out.extend(rows)
    return out


def _walk_back(
    reader: EntityReader, node: Filter, order: OrderField, limit: int, end: PageRow
) -> list[PageRow]:
    """From the last row towards the first, page by page, in display order."""
    out = [end]
    with reader.connect() as conn:
        while True:
            first = (out[0].sort_value, out[0].entity_id)
            rows, _ = reader.query_page(
                conn, node, order, None, limit=limit, after=first, backwards=True, matches=90
            )
            if not rows:
                return out
            out = rows + out


def _expected(node_name: str, order: OrderField) -> list[str]:
    matches = {
        "common": lambda i, e: True,
        "half": lambda i, e: i % 2 == 0,
        "rare": lambda i, e: i % 30 == 7,
        "none": lambda i, e: False,
        "prefix": lambda i, e: e["metadata"]["name"].startswith("svc-01"),
        "owned": lambda i, e: i % 4 == 0,
        "not": lambda i, e: i % 2 == 1,
        "any": lambda i, e: True,
    }[node_name]
    field = order.field.split(".")[1]
    chosen = [e for i, e in enumerate(_entities()) if matches(i, e)]
    valued = [e for e in chosen if len(e["metadata"][field]) <= 200]
    nulls = [e for e in chosen if len(e["metadata"][field]) > 200]
    valued.sort(key=lambda e: e["metadata"][field].lower(), reverse=order.order == "desc")
    # Ties (and NULLs) follow the entity id, which is random: compare values only there.
    return [e["metadata"][field].lower() for e in valued] + [None] * len(nulls)


def _values(rows: list[PageRow], order: OrderField) -> list[str | None]:
    field = order.field.split(".")[1]
    out: list[str | None] = []
    for row in rows:
        value = json.loads(row.text)["metadata"][field]
        out.append(None if len(value) > 200 else value.lower())
    return out


def _window_of_one_page(monkeypatch) -> None:
    monkeypatch.setattr(entities_module, "_PROBE_COST", 0)
    monkeypatch.setattr(entities_module, "_PROBE_MARGIN", 0)


@pytest.mark.parametrize("node_name", sorted(FILTERS))
@pytest.mark.parametrize("order", ORDERS, ids=lambda o: f"{o.field}-{o.order}")
def test_pages_equal_the_in_plan_forwards_and_backwards(reader, monkeypatch, node_name, order):
    node = FILTERS[node_name]
    limit = 4
    monkeypatch.setattr(entities_module, "_PROBE_MAX_LIMIT", 0)
    reference = _walk(reader, node, order, limit)
    monkeypatch.setattr(entities_module, "_PROBE_MAX_LIMIT", 1000)
    _window_of_one_page(monkeypatch)
    walked = _walk(reader, node, order, limit)

    assert [r.entity_id for r in walked] == [r.entity_id for r in reference]
    assert len({r.entity_id for r in walked}) == len(walked)
    assert _values(walked, order) == _expected(node_name, order)
    if walked:
        back = _walk_back(reader, node, order, limit, walked[-1])
        assert [r.entity_id for r in back] == [r.entity_id for r in walked]


def test_sqlite_pages_take_the_window_and_fall_back_when_it_is_too_sparse(reader, monkeypatch):
    if reader.db.is_postgres:
        pytest.skip("SQLite only: PostgreSQL plans the IN as a semi-join itself")
    outcomes: list[str] = []
    original = entities_module._Segments._windowed_values

    def recording(self, *args):
        rows = original(self, *args)
        outcomes.append("fallback" if rows is None else "window")
        return rows

    monkeypatch.setattr(entities_module._Segments, "_windowed_values", recording)
    order = OrderField("metadata.name", "asc")
    _walk(reader, FILTERS["common"], order, 4)
    assert set(outcomes) == {"window"}
    outcomes.clear()
    _walk(reader, FILTERS["rare"], order, 4)
    assert outcomes == []  # 3 matches: not worth a window
    _window_of_one_page(monkeypatch)
    _walk(reader, FILTERS["rare"], order, 4)
    assert "fallback" in outcomes


def test_sqlite_chooses_the_window_only_where_it_is_cheaper(reader):
    if reader.db.is_postgres:
        pytest.skip("SQLite only")
    with reader.connect() as conn:
        # 91 entities: a filter matching 90 of them is worth probing, one matching 3 not.
        window = entities_module._probe_window(conn, 90, 5)
        assert window is not None and 15 <= window <= 30
        assert entities_module._probe_window(conn, 3, 5) is None
