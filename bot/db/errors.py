"""The one error the store raises for every database failure, with a one-line message saying what to do."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from alembic.util import CommandError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

# Substrings of driver messages (SQLite's and PostgreSQL's) mapped to the advice a person operating the bot needs.
_HINTS: tuple[tuple[str, str], ...] = (
    ("database is locked", "another writer held the lock past the busy timeout; retry shortly"),
    ("file is not a database", "the file is not a SQLite database (corrupt?); move it aside or restore a backup"),
    ("malformed", "the database file is corrupt; move it aside or restore a backup"),
    ("disk is full", "the disk is full; free some space"),
    ("disk i/o error", "the disk failed to read or write; check the disk and free space"),
    ("readonly database", "the database file is read-only; check its permissions"),
    ("unable to open database", "check that the folder exists and is writable"),
    ("file exists", "a file stands where the database folder should be; check the path"),
    ("not a directory", "a file stands where the database folder should be; check the path"),
    ("permission denied", "check the file and folder permissions"),
    ("connection refused", "is the database server running and the URL right?"),
    ("no module named", "install the driver package for this URL, e.g. psycopg for PostgreSQL"),
    ("can't locate revision", "the database was migrated by a newer version of the bot; upgrade the bot"),
)


class StoreError(Exception):
    """A database operation failed; the message is one line, safe to log and to summarise to the person."""


def describe(exc: BaseException) -> str:
    """One line saying what failed underneath: the driver's message without SQL, parameters or links."""
    cause: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    text = lines[0] if lines else type(cause).__name__
    hint = next((advice for needle, advice in _HINTS if needle in text.lower()), "")
    return f"{text}; {hint}" if hint else text


@contextlib.contextmanager
def guard(action: str, where: str) -> Iterator[None]:
    """Turn any database, migration or file-system failure, or a missing driver, inside the block into StoreError."""
    try:
        yield
    except StoreError:
        raise
    except (SQLAlchemyError, sqlite3.Error, CommandError, OSError, ImportError) as exc:
        raise StoreError(f"could not {action} ({where}): {describe(exc)}") from exc
