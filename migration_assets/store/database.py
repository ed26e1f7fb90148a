"""The one way to open the target database: URL normalisation, engine, schema upgrade."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InvalidRequestError

from migration_assets.store import writelock

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def normalise_url(url: str, *, create_dirs: bool = True) -> str:
    """``postgresql://`` → the installed psycopg 3 driver; relative SQLite paths made absolute
    (and their folder created, unless ``create_dirs`` is off)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
        path = Path(parsed.database).expanduser().resolve()
        if create_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
        parsed = parsed.set(database=str(path))
    return parsed.render_as_string(hide_password=False)


def redact_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (see _sqlite_begin):
    # otherwise SAVEPOINT and the transaction boundaries of a batch are not what they seem.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA page_size=16384")  # a new database only: fewer overflow pages for content of a few KB
    # The rollback journal (SQLite's default), not WAL: a migration appends hundreds of MB, and
    # WAL writes every page twice (to the log, then into the database at checkpoint) for
    # concurrency these writes do not need: they queue on one lock, and readers wait out a
    # commit in busy_timeout. A database made in WAL mode stays so: the mode is kept in the file.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # a 32 MiB page cache keeps a batch's index pages in memory between its statements (the
    # 2 MiB default spills them to the file mid-transaction); temporary b-trees stay in memory
    cursor.execute("PRAGMA cache_size=-32768")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def _sqlite_begin(connection) -> None:  # type: ignore[no-untyped-def]
    # IMMEDIATE takes the write lock up front: concurrent writers queue instead of failing when
    # a read-then-write transaction is overtaken. They queue on the file lock of writelock.py
    # first, so that a run writing batch after batch cannot starve another one.
    database = connection.engine.url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        writelock.acquire(connection.info, database)
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        writelock.release(connection.info)
        raise


def _sqlite_end(connection) -> None:  # type: ignore[no-untyped-def]
    # fired just before COMMIT / ROLLBACK: the next writer's BEGIN IMMEDIATE waits out the
    # commit itself in SQLite's busy handler (busy_timeout), a matter of milliseconds
    writelock.release(connection.info)


def _sqlite_pool_release(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
    writelock.release(record.info)  # a connection closed or dropped mid-transaction


def _sqlite_pool_reset(dbapi_connection, record, _reset_state) -> None:  # type: ignore[no-untyped-def]
    _sqlite_pool_release(dbapi_connection, record)  # a connection returned to the pool


def _sqlite_pool_invalidate(dbapi_connection, record, _exception) -> None:  # type: ignore[no-untyped-def]
    _sqlite_pool_release(dbapi_connection, record)


def _listen_sqlite(engine: Engine, *, writes: bool) -> None:
    event.listen(engine, "connect", _sqlite_pragmas)
    if writes:
        event.listen(engine, "begin", _sqlite_begin)
        for name in ("commit", "rollback"):
            event.listen(engine, name, _sqlite_end)
        event.listen(engine, "reset", _sqlite_pool_reset)
        event.listen(engine, "invalidate", _sqlite_pool_invalidate)
        event.listen(engine, "close", _sqlite_pool_release)


_ENGINES: dict[str, Engine] = {}


def get_engine(url: str) -> Engine:
    """A pooled engine per URL (one per process), with the schema upgraded to the latest revision."""
    url = normalise_url(url)
    if url in _ENGINES:
        return _ENGINES[url]
    engine = create_target_engine(url)
    upgrade_schema(engine)
    _ENGINES[url] = engine
    return engine


class TargetMissing(ValueError):
    """A command that works on an existing target was given a SQLite file that does not exist."""


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (made absolute), None for another database or an in-memory one."""
    parsed = make_url(normalise_url(url, create_dirs=False))
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def existing_engine(url: str) -> Engine:
    """``get_engine`` for a command that works on a target that must exist already (rollback,
    export): a SQLite file that does not exist is refused, never created empty."""
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise TargetMissing(f"the target database {path} does not exist")
    return get_engine(url)


def create_target_engine(url: str) -> Engine:
    """A new engine for ``url`` (normalised), SQLite configured for concurrent runs; neither
    cached nor upgraded: ``get_engine`` is the one to use."""
    engine = _create(normalise_url(url), pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        _listen_sqlite(engine, writes=True)
    return engine


SUPPORTED = ("sqlite", "postgresql")


def _create(url: str, **options: Any) -> Engine:
    """``create_engine``, refusing a database this project does not support (MySQL, say) with a
    database error that names it, not the missing driver's import error."""
    backend = make_url(url).get_backend_name()
    if backend not in SUPPORTED:
        raise ArgumentError(f"{backend} is not supported; the target is SQLite or PostgreSQL")
    return create_engine(url, **options)


def readonly_engine(url: str) -> Engine:
    """An engine that does not create or upgrade the schema (for commands that write nothing);
    a SQLite file that does not exist is not created: it reads as an empty database."""
    url = normalise_url(url, create_dirs=False)
    path = sqlite_file(url)
    if path is not None and not path.exists():
        url = "sqlite://"
    engine = _create(url)
    if engine.dialect.name == "sqlite":
        _listen_sqlite(engine, writes=False)
    return engine


def dispose_engine(url: str) -> None:
    """Close the pooled connections of ``url``'s engine and forget it."""
    engine = _ENGINES.pop(normalise_url(url), None)
    if engine is not None:
        engine.dispose()


class SharedTarget(InvalidRequestError):
    """The target database keeps another application's schema version in ``alembic_version``
    (a Dagster instance's, say): both would claim the table."""


def upgrade_schema(engine: Engine) -> None:
    """Bring the target schema to Alembic's head revision (a no-op when it is there); refuse a
    database whose ``alembic_version`` holds a revision that is not ours (``SharedTarget``)."""
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        serialise_writes(connection, "schema")  # two first runs at once must not both create it
        if inspect(connection).has_table("alembic_version"):
            ours = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
            foreign = [v for v in connection.execute(text("select version_num from alembic_version")).scalars() if v not in ours]
            if foreign:
                raise SharedTarget(
                    f"it keeps another application's schema version ({', '.join(foreign)}) in alembic_version, a Dagster "
                    "instance's perhaps: give the migration target its own database or schema"
                )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def serialise_writes(conn: Connection, scope: str) -> None:
    """Make this transaction's writes to ``scope`` wait for every other writer of it, and every
    other writer wait for them (held to commit): a rollback, an import, the schema's upgrade.

    PostgreSQL: a transaction-level advisory lock, one per scope, taken exclusively, so it also
    waits for the writers that share the scope (``share_writes``). SQLite: every write
    transaction already holds the database's write lock from its start (``BEGIN IMMEDIATE``,
    queued fairly by ``writelock``).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("select pg_advisory_xact_lock(hashtext(:scope))"), {"scope": f"{_LOCKS}:{scope}"})


def share_writes(conn: Connection, scope: str, keys: Iterable[str]) -> None:
    """Let this transaction write ``scope`` beside other writers of it, each holding only the
    ``keys`` it writes (a batch's source files): writers of different keys never wait for each
    other; two writers of one key go one after the other, so the second sees what the first
    committed; a ``serialise_writes`` of the scope waits for them all (held to commit).

    PostgreSQL: the scope's advisory lock in shared mode, then one exclusive advisory lock per
    key, taken in the order of their numbers, so that two writers never wait for each other in a
    cycle. SQLite: nothing more than its write lock, which is already the database's.
    """
    if conn.dialect.name != "postgresql":
        return
    conn.execute(text("select pg_advisory_xact_lock_shared(hashtext(:scope))"), {"scope": f"{_LOCKS}:{scope}"})
    numbers = sorted({lock_number(scope, key) for key in keys})
    if numbers:
        # one statement per lock, in order (one statement could take them in any order); the
        # driver sends them in a pipeline, a single round trip
        conn.exec_driver_sql("select pg_advisory_xact_lock(%s)", [(number,) for number in numbers])


_LOCKS = "migration_assets"


def lock_number(scope: str, key: str) -> int:
    """A stable signed 64-bit number for an advisory lock on ``key`` of ``scope``."""
    digest = hashlib.blake2b(f"{_LOCKS}:{scope}:{key}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
