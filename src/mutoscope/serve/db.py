"""Connections and transactions for SQLite (the default) and PostgreSQL, and migrations at start-up.

Two kinds of transaction, because the two databases serialise writers differently:
- `db.write()`: on SQLite it starts with BEGIN IMMEDIATE, taking the database's write lock up front
  (a deferred transaction that reads, then writes, can fail with SQLITE_BUSY instead of waiting).
  On PostgreSQL it is an ordinary READ COMMITTED transaction; code that must serialise per user or
  per job takes row locks (`SELECT ... FOR UPDATE [SKIP LOCKED]`), which SQLite ignores.
- `db.read()`: a plain deferred transaction on both, for GETs and SSE polling, so that readers
  never queue behind writers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


class Database:
    """One database: an engine for writes and one for reads (the same engine on PostgreSQL)."""

    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE")
            self.read_engine = _sqlite_engine(url, begin="BEGIN")
        else:
            self.write_engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
            self.read_engine = self.write_engine
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any exception."""
        with self._write() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent; safe across replicas)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("path_separator", "os")
        # A plain engine: Alembic manages its own transactions, without our BEGIN IMMEDIATE hook.
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
        finally:
            engine.dispose()

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()


def _sqlite_engine(url: str, begin: str) -> Engine:
    # Threads share the pool (uvicorn's threadpool, the worker thread); each connection waits up
    # to 30 s for the write lock rather than failing at once.
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite would defer it otherwise).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer, nor it them
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql(begin)

    return engine
