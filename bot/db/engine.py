"""Connecting to the database (SQLite pragmas, pool) and migrating it to the newest schema with Alembic."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from bot.db.errors import StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


@dataclass(frozen=True)
class StoreConfig:
    """How the store talks to its database; the bot combines it with MUSICREC_DB_URL."""

    # A write holds SQLite's lock for about a millisecond, so 50 writers queue well inside 5 s; much longer and a
    # person waiting for "saved" would rather hear that it failed.
    busy_timeout_s: float = 5.0
    # FULL fsyncs the WAL at each commit: a rating survives a power cut, not only kill -9 (NORMAL+WAL does that
    # much); one fsync per tap is nothing at chat rates.
    synchronous: str = "FULL"
    # asyncio.to_thread's default executor runs up to 32 threads; 5 kept open + 27 on demand covers all of them.
    pool_size: int = 5
    max_overflow: int = 27
    # Waiting for a free pooled connection counts apart from the busy timeout; past it the call fails loudly.
    pool_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {_SYNCHRONOUS}, got {self.synchronous!r}")
        if self.busy_timeout_s < 0:
            raise ValueError(f"busy_timeout_s must be >= 0, got {self.busy_timeout_s}")


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory or URI-style database."""
    database = url.database or ""
    if not is_sqlite(url) or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def make_engine(url: str | URL, config: StoreConfig) -> Engine:
    """An engine with a connection pool; on SQLite with WAL, foreign keys, a busy timeout and explicit BEGINs."""
    parsed = make_url(url)
    if not is_sqlite(parsed):
        return create_engine(
            parsed,
            pool_size=config.pool_size,
            max_overflow=config.max_overflow,
            pool_timeout=config.pool_timeout_s,
            pool_pre_ping=True,  # a server restart must not turn the next tap into an error
        )
    path = sqlite_file(parsed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"connect_args": {"timeout": config.busy_timeout_s, "check_same_thread": False}}
    if path is None and (parsed.database or "") in ("", ":memory:"):
        options["poolclass"] = StaticPool  # one in-memory database shared by every thread (the store serialises)
    else:
        options.update(pool_size=config.pool_size, max_overflow=config.max_overflow, pool_timeout=config.pool_timeout_s)
    engine = create_engine(parsed, **options)
    _install_sqlite_hooks(engine, config)
    return engine


def _install_sqlite_hooks(engine: Engine, config: StoreConfig) -> None:
    synchronous = config.synchronous.upper()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # SQLAlchemy emits BEGIN itself (below): the sqlite3 module's own deferred BEGIN skips SELECTs and DDL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer, nor it for them
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(config.busy_timeout_s * 1000)}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A write takes the lock at BEGIN, where the busy timeout applies; a deferred read-then-write transaction
        # would instead fail at once with SQLITE_BUSY when another writer committed in between.
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def writer(engine: Engine) -> Engine:
    """The same engine and pool, whose transactions take SQLite's write lock at BEGIN (no-op elsewhere)."""
    return engine.execution_options(sqlite_immediate=True)


def alembic_config(url_or_connection: str | URL | Connection) -> Config:
    """A programmatic Alembic config for the migrations in this package; no alembic.ini involved."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if isinstance(url_or_connection, Connection):
        config.attributes["connection"] = url_or_connection
    else:
        url = make_url(url_or_connection).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # ConfigParser interpolates '%'
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to `revision` in one transaction; a database already there is left alone."""
    with writer(engine).connect() as connection:
        if connection.dialect.name != "sqlite":
            with connection.begin():
                command.upgrade(alembic_config(connection), revision)
            return
        # Batch migrations rebuild a table by dropping it; with foreign keys on, that would cascade-delete ratings.
        # The pragma only takes effect outside a transaction, so it goes straight to the driver before BEGIN.
        raw = connection.connection.driver_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                command.upgrade(alembic_config(connection), revision)
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StoreError(f"migrating to {revision} left rows without their listener: {broken[:3]}")
        finally:
            raw.execute("PRAGMA foreign_keys=ON")
