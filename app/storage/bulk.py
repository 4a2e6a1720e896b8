"""Bulk reads and writes on the driver connection, for the engine's hot paths.

SQLAlchemy Core costs a few microseconds per parameter and per row; the engine moves
millions of search and relation rows, so its hot paths go one level down, to the
DB-API cursor of the same connection and transaction: ``executemany`` with tuples on
SQLite, ``COPY`` on PostgreSQL. Everything else keeps using SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection

from app.storage.util import chunked

IN_CHUNK = 500


def _is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _cursor(conn: Connection) -> Any:
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def _placeholder(conn: Connection) -> str:
    return "%s" if _is_postgres(conn) else "?"


def select_in(
    conn: Connection, sql: str, values: Iterable[Any], params: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """Run ``sql`` (with ``{in}`` where the IN list goes, after ``params``) per chunk."""
    mark = _placeholder(conn)
    rows: list[tuple[Any, ...]] = []
    cursor = _cursor(conn)
    try:
        for batch in chunked(list(values), IN_CHUNK):
            text = sql.replace("?", mark).replace("{in}", ", ".join([mark] * len(batch)))
            cursor.execute(text, (*params, *batch))
            rows.extend(cursor.fetchall())
    finally:
        cursor.close()
    return rows


def delete_in(conn: Connection, table: str, column: str, values: Iterable[Any]) -> None:
    mark = _placeholder(conn)
    cursor = _cursor(conn)
    try:
        for batch in chunked(list(values), IN_CHUNK):
            cursor.execute(
                f"DELETE FROM {table} WHERE {column} IN ({', '.join([mark] * len(batch))})",
                tuple(batch),
            )
    finally:
        cursor.close()


def insert_rows(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Append ``rows`` (tuples in ``columns`` order) to ``table``."""
    if not rows:
        return
    cursor = _cursor(conn)
    try:
        if _is_postgres(conn):
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
    finally:
        cursor.close()


def insert_ignore_rows(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Like :func:`insert_rows`, skipping rows whose key already exists."""
    if not rows:
        return
    marks = ", ".join("?" * len(columns))
    verb, suffix = (
        ("INSERT", " ON CONFLICT DO NOTHING") if _is_postgres(conn) else ("INSERT OR IGNORE", "")
    )
    execute_many(conn, f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({marks}){suffix}", rows)


def execute_many(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """``executemany`` of ``sql`` written with ``?`` marks, on either database."""
    if not rows:
        return
    cursor = _cursor(conn)
    try:
        cursor.executemany(sql.replace("?", _placeholder(conn)), rows)
    finally:
        cursor.close()
