"""Connecting to the catalog database and bringing its schema up to date.

SQLite is the embedded default (one file, WAL mode so reads never wait for the
processing loop); PostgreSQL is the production database, and the one several
processes can share.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Serialises SQLite writers inside one process: SQLite allows one writer at a time,
# and waiting on a Python lock is cheaper and fairer than on SQLITE_BUSY retries.
_sqlite_write_locks: dict[str, threading.RLock] = {}


def normalise_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` and pick the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class Database:
    """An engine plus what the rest of the code needs to know about its dialect."""

    def __init__(self, url: str, *, pool_size: int = 5, busy_timeout: float = 30.0):
        """``busy_timeout``: on SQLite, how long a statement waits for another process's
        lock before it fails with "database is locked" (the engine then retries)."""
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        self.is_postgres = self.dialect == "postgresql"
        #: Whether other processes can open this database (not SQLite in memory).
        self.shared = True
        if self.is_sqlite:
            database = parsed.database or ""
            self.shared = database not in ("", ":memory:")
            if self.shared:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                self.url,
                connect_args={"check_same_thread": False, "timeout": busy_timeout},
            )
            event.listen(self.engine, "connect", partial(_sqlite_pragmas, busy_timeout))
            # pysqlite's own transaction handling defers BEGIN until the first write,
            # which breaks read-then-write atomicity; take control of it.
            event.listen(self.engine, "begin", _sqlite_begin)
            self.write_lock = _sqlite_write_locks.setdefault(
                os.path.abspath(database) if database else ":memory:", threading.RLock()
            )
            self._file_lock = _FileLock(f"{database}.write-lock") if self.shared else None
            self._busy_timeout = busy_timeout
        else:
            self.engine = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                # psycopg prepares a statement run five times, and PostgreSQL then may
                # switch to a generic plan that ignores the parameters' values: a cursor
                # page's keyset bound among them, so deep pages scanned from the start
                # (250 ms instead of 6 at 50,000 entities). Plan every execution.
                connect_args={"options": "-c plan_cache_mode=force_custom_plan"},
            )
            self.write_lock = threading.RLock()
            self._file_lock = None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: commits on success, rolls back on error.

        On SQLite it starts with ``BEGIN IMMEDIATE``, taking the write lock up front, so
        a read-then-write (a claim) is atomic across processes too; threads of one
        process queue on a Python lock first, then processes on a lock file: both are
        taken the moment they are free, where SQLite's busy handler sleeps up to 100 ms
        between tries.
        """
        with self.write_lock:
            locked = self._file_lock is not None and self._file_lock.acquire(self._busy_timeout)
            try:
                conn = self.engine.connect()
                if self.is_sqlite:
                    conn = conn.execution_options(sqlite_immediate=True)
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.close()
            finally:
                if locked:
                    assert self._file_lock is not None
                    self._file_lock.release()

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read transaction: on SQLite every statement in it sees one snapshot of the
        database, and it neither takes nor waits for the write lock."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def migrate(self) -> None:
        """Run Alembic migrations to head.

        Several workers or instances may start at once: one migrates, the others wait
        (an advisory lock on PostgreSQL, a lock file beside an SQLite database).
        """
        cfg = AlembicConfig(str(MIGRATIONS_DIR / "alembic.ini"))
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self._migration_lock(), self.engine.begin() as conn:
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(7007001)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        database = make_url(self.url).database if self.is_sqlite else None
        if not database or not self.shared:
            yield
            return
        with open(f"{database}.migrate-lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def dispose(self) -> None:
        self.engine.dispose()


class _FileLock:
    """An exclusive lock on a file beside an SQLite database, for its writers in other
    processes (ours: a stitching process, other workers). Advisory: a writer that does
    not take it (the sqlite3 shell) still meets SQLite's own lock and busy timeout."""

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None
        self._pid: int | None = None

    def acquire(self, timeout: float) -> bool:
        """Wait for the lock (polling every few ms); False if it cannot be had in time,
        or the file cannot be opened: the transaction then waits on SQLite's lock."""
        if self._pid != os.getpid():  # a forked child has its own lock to take
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                log.warning("No write lock file %s (%s): SQLite's lock alone", self.path, exc)
                self._fd = None
            self._pid = os.getpid()
        if self._fd is None:
            return False
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 0.004)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def _sqlite_pragmas(busy_timeout: float, dbapi_connection, _record) -> None:
    # Autocommit at the driver level; SQLAlchemy's "begin" event issues BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA temp_store=MEMORY")
    # Checkpoint the WAL every ~80 MB instead of every 4 MB: bulk ingestion commits
    # often, and each checkpoint rewrites pages the next batch touches again.
    cursor.execute("PRAGMA wal_autocheckpoint=20000")
    cursor.close()


def _sqlite_begin(conn) -> None:
    immediate = conn.get_execution_options().get("sqlite_immediate")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def created_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database ``<prefix>_<random>`` on the server of
    ``admin_url`` (whose own database is untouched); its URL, dropped afterwards with
    any connection still open to it. For tests and benchmarks."""
    admin = normalise_url(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        engine.dispose()
