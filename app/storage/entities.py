"""Read queries over final entities: what the API serves.

Entities come back as the stored JSON text, so a listing can be spliced into a
response without decoding and re-encoding every entity. Filtering, ordering,
keyset paging and facets all run on the ``search`` index in SQL (``relations.*``
keys on the ``relations`` table, see :mod:`app.storage.filters`).

Pages are found in two steps: first the ids of the page, walking the
``(key, value, entity_id)`` index in order and stopping after ``limit + 1``; then
the JSON of just those entities. Values over 200 characters are indexed as NULL
and sort last in both directions, as in Backstage; they form a second segment
after the ordered values, so the index order is never broken by them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, asc, desc, func, or_, select
from sqlalchemy import column as text_column

from app.storage.bulk import select_in
from app.storage.database import Database
from app.storage.filters import Filter, field_values, is_match_all, matching_ids, to_sql
from app.storage.tables import final_entities, refresh_state_references
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


def _where(query: Any, node: Filter | None, entity_id_column: Any = None) -> Any:
    if is_match_all(node):
        return query
    assert node is not None
    return query.where(
        to_sql(node, fe.c.entity_id if entity_id_column is None else entity_id_column)
    )


def _full_text(
    query: Any, full_text: FullText | None, sort_field: str, entity_id_column: Any = None
) -> Any:
    if full_text is None or not full_text.term:
        return query
    pattern = f"%{full_text.term}%"
    keys = list(full_text.fields) or [sort_field]
    column = fe.c.entity_id if entity_id_column is None else entity_id_column
    return query.where(
        or_(*(column.in_(matching_ids(key, lambda v: v.like(pattern))) for key in keys))
    )


# Keys every final entity has exactly once: counting the filter alone counts them.
_SINGLE_VALUED = frozenset({"metadata.uid", "metadata.name", "metadata.namespace", "kind"})


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
            sort = field_values(order.field).subquery("sort")
            query = query.join(sort, sort.c.entity_id == fe.c.entity_id)
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
            sort = field_values(order.field).subquery(f"sort{index}")
            query = query.outerjoin(sort, sort.c.entity_id == fe.c.entity_id)
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

    def count(
        self, conn: Connection, node: Filter | None, order: OrderField, full_text: FullText | None
    ) -> int:
        """Entities in the result: those matching that have the sort field."""
        if order.field in _SINGLE_VALUED:
            query = _full_text(
                _where(select(func.count()).select_from(fe), node), full_text, order.field
            )
            return int(conn.execute(query).scalar_one())
        sort = field_values(order.field).subquery("sort")
        query = select(func.count(func.distinct(sort.c.entity_id)))
        query = _full_text(
            _where(query, node, sort.c.entity_id), full_text, order.field, sort.c.entity_id
        )
        return int(conn.execute(query).scalar_one())

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
        matches: int | None = None,
    ) -> tuple[list[PageRow], bool]:
        """Up to ``limit`` rows after (or, backwards, before) the keyset ``after``.

        Rows are sorted by the field's lowercased value, then by entity id in the same
        direction; NULL values come last. Returns (rows in display order, more exist).
        ``matches``, how many entities the filter matches when known (a cursor's
        ``totalItems``), lets SQLite choose how to find the page.
        """
        sort = field_values(order.field).subquery("sort")
        base = _full_text(
            _where(select(sort.c.entity_id, sort.c.value), node, sort.c.entity_id),
            full_text,
            order.field,
            sort.c.entity_id,
        )
        segments = _Segments(conn, base, sort, order.order == "asc")
        wanted = _sql_int(limit) + 1
        if (
            conn.dialect.name == "sqlite"
            and not is_match_all(node)
            and full_text is None
            and matches
            and limit <= _PROBE_MAX_LIMIT
        ):
            assert node is not None
            window = _probe_window(conn, matches, wanted)
            if window is not None:
                segments.probe = lambda column: to_sql(node, column, probe=True)
                segments.window = window
        if backwards:
            assert after is not None
            keys = segments.before(after, wanted)
        else:
            keys = segments.after(after, wanted, _sql_int(offset))
        more = len(keys) > limit
        keys = keys[:limit]
        if backwards:
            keys.reverse()
        texts = dict(
            select_in(  # type: ignore[arg-type]
                conn,
                "SELECT entity_id, final_entity FROM final_entities WHERE entity_id IN ({in})",
                sorted({entity_id for entity_id, _ in keys}),
            )
        )
        rows = [
            PageRow(entity_id, value, texts[entity_id])
            for entity_id, value in keys
            if entity_id in texts
        ]
        return rows, more

    # -- facets -----------------------------------------------------------------

    def facets(
        self, conn: Connection, facets: list[str], node: Filter | None
    ) -> dict[str, list[dict[str, Any]]]:
        """Per facet, how many matching entities have each (original-case) value."""
        result: dict[str, list[dict[str, Any]]] = {}
        for facet in facets:
            rows = field_values(facet.lower()).subquery("facet")
            query = _where(
                select(rows.c.original_value, func.count())
                .where(rows.c.original_value.is_not(None))
                .group_by(rows.c.original_value),
                node,
                rows.c.entity_id,
            )
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


# SQLite finds a filtered page one of two ways: list every matching id (the IN plan,
# about one unit per match) or probe the filter row by row along the sort index (about
# PROBE_COST units per row, and limit * entities / matches rows to fill a page). The
# window is tried when it is the cheaper; it spans PROBE_MARGIN times the rows a page
# should need, in case the matches cluster, and the IN plan takes over if it falls short.
# Measured with python -m tests.storage.bench_query_pages.
_PROBE_COST = 11
_PROBE_MARGIN = 3
# Bigger pages take the IN plan: a page that size pays for listing the matches.
_PROBE_MAX_LIMIT = 1000


def _probe_window(conn: Connection, matches: int, wanted: int) -> int | None:
    """How many sort-index rows to probe for a page of ``wanted`` rows, or None."""
    # The highest rowid bounds the number of entities, at the cost of one index lookup.
    entities = conn.execute(select(func.max(text_column("rowid"))).select_from(fe)).scalar()
    if not entities:
        return None
    if matches * matches < _PROBE_COST * wanted * entities:
        return None
    return max(wanted, -(-_PROBE_MARGIN * wanted * entities // matches))


class _Segments:
    """Walks the ordered rows of a sort field: values first, then NULLs.

    Each segment is one index-ordered query; a page that runs off the end of the
    values continues at the start of the NULLs (and, backwards, the other way).
    """

    def __init__(self, conn: Connection, base: Any, sort: Any, ascending: bool):
        self.conn = conn
        self.base = base
        self.value = sort.c.value
        self.entity_id = sort.c.entity_id
        self.ascending = ascending
        #: The filter as per-entity EXISTS probes, and how many rows of the sort index
        #: to probe with it before falling back to the IN plan (see _probe_window).
        self.probe: Callable[[Any], Any] | None = None
        self.window = 0

    def _windowed_values(
        self, last: tuple[str | None, str] | None, limit: int, forward: bool
    ) -> list[tuple[str, str | None]] | None:
        """The next values, found by probing the filter along the sort index.

        SQLite answers the filter's ``IN`` by listing every matching id first: 20,000
        ids for ``kind=component`` at 50,000 entities, for each page. Probing the next
        rows of the sort index instead stops as soon as the page is full, which is
        quick when the filter matches often. It looks at a bounded window only, and
        returns None when the window held too few matches (a rare filter): then the
        ``IN`` is the better plan.
        """
        assert self.probe is not None
        direction = asc if forward == self.ascending else desc
        window = select(self.entity_id, self.value).where(self.value.is_not(None))
        if last is not None:
            window = window.where(self._beyond_value(last, forward))
        window = window.order_by(direction(self.value), direction(self.entity_id)).limit(
            max(self.window, limit)
        )
        rows_in_window = window.subquery("window")
        query = (
            select(rows_in_window.c.entity_id, rows_in_window.c.value)
            .where(self.probe(rows_in_window.c.entity_id))
            .order_by(direction(rows_in_window.c.value), direction(rows_in_window.c.entity_id))
            .limit(limit)
        )
        rows = [(row[0], row[1]) for row in self.conn.execute(query)]
        if len(rows) == limit:
            return rows
        seen = self.conn.execute(select(func.count()).select_from(rows_in_window)).scalar_one()
        if seen < max(self.window, limit):
            return rows  # the window reached the last value: these are all there are
        return None

    def _fetch(self, query: Any, limit: int, offset: int = 0) -> list[tuple[str, str | None]]:
        if limit <= 0:
            return []
        return [(row[0], row[1]) for row in self.conn.execute(query.offset(offset).limit(limit))]

    def _values(self, forward: bool) -> Any:
        direction = asc if forward == self.ascending else desc
        return self.base.where(self.value.is_not(None)).order_by(
            direction(self.value), direction(self.entity_id)
        )

    def _nulls(self, forward: bool) -> Any:
        direction = asc if forward == self.ascending else desc
        return self.base.where(self.value.is_(None)).order_by(direction(self.entity_id))

    def _beyond_id(self, last_id: str, forward: bool) -> Any:
        greater = forward == self.ascending
        return self.entity_id > last_id if greater else self.entity_id < last_id

    def _beyond_value(self, last: tuple[str | None, str], forward: bool) -> Any:
        value, last_id = last
        greater = forward == self.ascending
        beyond = self.value > value if greater else self.value < value
        # The redundant bound is what lets the index scan start at the cursor: PostgreSQL
        # does not derive one from the OR, and scanned every earlier page's rows again.
        start = self.value >= value if greater else self.value <= value
        return and_(
            start, or_(beyond, and_(self.value == value, self._beyond_id(last_id, forward)))
        )

    def after(
        self, last: tuple[str | None, str] | None, limit: int, offset: int
    ) -> list[tuple[str, str | None]]:
        if last is not None and last[0] is None:
            return self._fetch(self._nulls(True).where(self._beyond_id(last[1], True)), limit)
        values = self._values(True)
        if last is not None:
            values = values.where(self._beyond_value(last, True))
        windowed = None
        if self.probe is not None and not offset and limit > 0:
            windowed = self._windowed_values(last, limit, True)
        rows = windowed if windowed is not None else self._fetch(values, limit, offset)
        if len(rows) < limit:
            # The values ran out: the NULLs follow. An offset beyond every value
            # continues into them by what is left of it.
            null_offset = 0
            if offset and not rows:
                counted = select(func.count()).select_from(values.order_by(None).subquery())
                null_offset = max(0, offset - int(self.conn.execute(counted).scalar_one()))
            rows += self._fetch(self._nulls(True), limit - len(rows), null_offset)
        return rows

    def before(self, last: tuple[str | None, str], limit: int) -> list[tuple[str, str | None]]:
        """Rows before ``last``, nearest first."""
        if last[0] is None:
            rows = self._fetch(self._nulls(False).where(self._beyond_id(last[1], False)), limit)
            if len(rows) < limit:
                rows += self._fetch(self._values(False), limit - len(rows))
            return rows
        if self.probe is not None and limit > 0:
            windowed = self._windowed_values(last, limit, False)
            if windowed is not None:
                return windowed
        return self._fetch(self._values(False).where(self._beyond_value(last, False)), limit)
