"""Read queries over final entities: what the API serves.

Entities come back as the stored JSON text, so a listing can be spliced into a
response without decoding and re-encoding every entity. Filtering, ordering,
keyset paging and facets all run on the ``search`` index in SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, asc, desc, func, or_, select

from app.storage.database import Database
from app.storage.filters import Filter, is_match_all, to_sql
from app.storage.tables import final_entities, refresh_state_references, search
from app.storage.util import chunked

fe = final_entities


@dataclass(frozen=True)
class OrderField:
    field: str  # lowercased search key
    order: str  # "asc" | "desc"


@dataclass
class PageRow:
    entity_id: str
    sort_value: str | None
    text: str


@dataclass(frozen=True)
class FullText:
    term: str  # lowercased, trimmed
    fields: tuple[str, ...]  # lowercased keys; empty means "the sort field"


def _where(query: Any, node: Filter | None) -> Any:
    if is_match_all(node):
        return query
    assert node is not None
    return query.where(to_sql(node, fe.c.entity_id))


def _full_text(query: Any, full_text: FullText | None, sort_field: str) -> Any:
    if full_text is None or not full_text.term:
        return query
    keys = list(full_text.fields) or [sort_field]
    sub = select(search.c.entity_id).where(
        search.c.key.in_(keys), search.c.value.like(f"%{full_text.term}%")
    )
    return query.where(fe.c.entity_id.in_(sub))


class EntityReader:
    def __init__(self, db: Database):
        self.db = db

    def connect(self) -> Any:
        return self.db.engine.connect()

    # -- single entities ------------------------------------------------------

    def by_ref(self, conn: Connection, ref: str) -> str | None:
        return conn.execute(select(fe.c.final_entity).where(fe.c.entity_ref == ref)).scalar()

    def by_uid(self, conn: Connection, uid: str) -> str | None:
        return conn.execute(select(fe.c.final_entity).where(fe.c.entity_id == uid)).scalar()

    def by_refs(
        self, conn: Connection, refs: list[str], node: Filter | None = None
    ) -> dict[str, str]:
        found: dict[str, str] = {}
        for batch in chunked(sorted(set(refs))):
            query = _where(
                select(fe.c.entity_ref, fe.c.final_entity).where(fe.c.entity_ref.in_(batch)), node
            )
            for row in conn.execute(query):
                found[row.entity_ref] = row.final_entity
        return found

    # -- GET /entities ----------------------------------------------------------

    def stream_all(
        self, conn: Connection, node: Filter | None, order: OrderField | None = None
    ) -> Iterator[str]:
        """Every match. With ``order``, only entities that have the field, sorted by it."""
        query = _where(select(fe.c.final_entity), node)
        if order is not None:
            sort = search.alias("sort")
            query = query.join(
                sort, and_(sort.c.entity_id == fe.c.entity_id, sort.c.key == order.field)
            )
            direction = asc if order.order == "asc" else desc
            query = query.order_by(direction(sort.c.value), direction(fe.c.entity_id))
        result = conn.execution_options(yield_per=5000).execute(query)
        for row in result:
            yield row[0]

    def list_page(
        self,
        conn: Connection,
        node: Filter | None,
        orders: list[OrderField],
        offset: int,
        limit: int,
    ) -> tuple[list[str], bool]:
        """A page of the legacy list: every order field honoured, missing values last."""
        query = _where(select(fe.c.final_entity), node)
        order_by: list[Any] = []
        for index, order in enumerate(orders):
            sort = search.alias(f"sort{index}")
            query = query.outerjoin(
                sort, and_(sort.c.entity_id == fe.c.entity_id, sort.c.key == order.field)
            )
            direction = asc if order.order == "asc" else desc
            order_by.extend([sort.c.value.is_(None), direction(sort.c.value)])
        if not orders:
            order_by.append(fe.c.entity_ref)
        order_by.append(fe.c.entity_id)
        rows = [
            row[0]
            for row in conn.execute(
                query.order_by(*order_by).offset(_sql_int(offset)).limit(_sql_int(limit) + 1)
            )
        ]
        return rows[:limit], len(rows) > limit

    # -- /entities/by-query ----------------------------------------------------

    def _sorted_base(
        self, node: Filter | None, order: OrderField, full_text: FullText | None
    ) -> tuple[Any, Any]:
        sort = search.alias("sort")
        query = select(fe.c.entity_id, sort.c.value, fe.c.final_entity).join(
            sort, and_(sort.c.entity_id == fe.c.entity_id, sort.c.key == order.field)
        )
        query = _full_text(_where(query, node), full_text, order.field)
        return query, sort

    def count(self, conn: Connection, node: Filter | None, order: OrderField, full_text) -> int:
        query, _ = self._sorted_base(node, order, full_text)
        # Entities, not rows: ordering by an array field joins one row per item.
        rows = query.subquery()
        return int(conn.execute(select(func.count(func.distinct(rows.c.entity_id)))).scalar_one())

    def query_page(
        self,
        conn: Connection,
        node: Filter | None,
        order: OrderField,
        full_text: FullText | None,
        *,
        limit: int,
        offset: int = 0,
        after: tuple[str | None, str] | None = None,
        backwards: bool = False,
    ) -> tuple[list[PageRow], bool]:
        """Up to ``limit`` rows after (or, backwards, before) the keyset ``after``.

        Rows are sorted by the field's lowercased value (nulls last) and then by
        entity id in the same direction. Returns (rows in display order, more exist).
        """
        query, sort = self._sorted_base(node, order, full_text)
        ascending = (order.order == "asc") != backwards
        value, entity_id = sort.c.value, fe.c.entity_id
        if after is not None:
            query = query.where(_keyset(value, entity_id, after, order.order == "asc", backwards))
        direction = asc if ascending else desc
        # "Nulls last" in display order means nulls first when walking backwards.
        nulls_first = backwards
        null_key = value.is_(None) if not nulls_first else value.is_not(None)
        query = query.order_by(null_key, direction(value), direction(entity_id))
        query = query.offset(_sql_int(offset)).limit(_sql_int(limit) + 1)
        rows = [PageRow(r[0], r[1], r[2]) for r in conn.execute(query)]
        more = len(rows) > limit
        rows = rows[:limit]
        if backwards:
            rows.reverse()
        return rows, more

    # -- facets -----------------------------------------------------------------

    def facets(
        self, conn: Connection, facets: list[str], node: Filter | None
    ) -> dict[str, list[dict[str, Any]]]:
        result: dict[str, list[dict[str, Any]]] = {}
        entity_ids = None if is_match_all(node) else _where(select(fe.c.entity_id), node)
        for facet in facets:
            query = (
                select(search.c.original_value, func.count())
                .where(search.c.key == facet.lower(), search.c.original_value.is_not(None))
                .group_by(search.c.original_value)
            )
            if entity_ids is not None:
                query = query.where(search.c.entity_id.in_(entity_ids))
            result[facet] = [{"value": row[0], "count": int(row[1])} for row in conn.execute(query)]
        return result

    # -- ancestry ---------------------------------------------------------------

    def ancestry(self, conn: Connection, root_ref: str) -> list[tuple[str, list[str]]] | None:
        """[(entity JSON, parent refs)] from the entity up through whoever emitted it."""
        if self.by_ref(conn, root_ref) is None:
            return None
        items: list[tuple[str, list[str]]] = []
        seen: set[str] = set()
        todo = [root_ref]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            text = self.by_ref(conn, current)
            if text is None:
                continue
            parents = [
                row[0]
                for row in conn.execute(
                    select(refresh_state_references.c.source_entity_ref)
                    .where(refresh_state_references.c.target_entity_ref == current)
                    .where(refresh_state_references.c.source_entity_ref.is_not(None))
                    .order_by(refresh_state_references.c.id)
                )
            ]
            items.append((text, parents))
            todo.extend(parents)
        return items


# Clients may send any JSON number as a limit or offset (JavaScript has no integer
# overflow); the databases take 64-bit integers, and no catalog is this big.
_MAX_ROWS = 2**53 - 1


def _sql_int(value: int) -> int:
    return min(value, _MAX_ROWS)


def _keyset(
    value: Any,
    entity_id: Any,
    after: tuple[str | None, str],
    ascending_order: bool,
    backwards: bool,
) -> Any:
    """Rows strictly after (or before, walking backwards) the row with sort key ``after``."""
    last_value, last_id = after
    forward_greater = ascending_order != backwards  # compare with > when true
    beyond_id = entity_id > last_id if forward_greater else entity_id < last_id
    if not backwards:
        if last_value is None:
            return and_(value.is_(None), beyond_id)
        beyond_value = value > last_value if forward_greater else value < last_value
        return or_(value.is_(None), beyond_value, and_(value == last_value, beyond_id))
    if last_value is None:
        return or_(value.is_not(None), and_(value.is_(None), beyond_id))
    beyond_value = value > last_value if forward_greater else value < last_value
    return and_(value.is_not(None), or_(beyond_value, and_(value == last_value, beyond_id)))
