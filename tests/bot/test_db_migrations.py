"""The schema is versioned by Alembic: migrated at open, upgraded from 0001 keeping ratings, models == migrations."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from bot.db import RatingStore, StoreConfig, StoreError
from bot.db.engine import alembic_config, make_engine, migrate
from bot.db.models import Base

TABLES = {"listeners", "ratings", "requests", "impressions", "group_members"}
HEAD = "0003"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'listeners.db'}"


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    made = make_engine(url, StoreConfig())
    yield made
    made.dispose()


def revision_of(url: str) -> str | None:
    plain = create_engine(url)
    try:
        with plain.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        plain.dispose()


def test_an_empty_file_is_migrated_to_head_at_open(url: str) -> None:
    with RatingStore(url) as store:
        assert store.counts() == (0, 0)
    assert revision_of(url) == HEAD
    plain = create_engine(url)
    assert set(inspect(plain).get_table_names()) == TABLES | {"alembic_version"}
    plain.dispose()


def test_a_database_at_0001_with_ratings_upgrades_and_keeps_them(url: str, engine: Engine) -> None:
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
    assert revision_of(url) == "0001"
    rated_at = datetime(2024, 6, 1, 8, 30, tzinfo=UTC)
    with engine.begin() as connection:  # what the previous version of the bot wrote
        assert "requests" not in inspect(connection).get_table_names()
        connection.execute(text("INSERT INTO listeners (id, created_at) VALUES (5, :at), (6, :at)"), {"at": rated_at})
        connection.execute(
            text("INSERT INTO ratings VALUES (5, 'kept', 1, :at, 'forme'), (6, 'also', -1, :at, 'mix')"),
            {"at": rated_at},
        )
    with RatingStore(url) as store:
        assert store.ratings_of(5) == {"kept": 1}
        assert store.ratings_of(6) == {"also": -1}
        assert store.likes_of(5, limit=5)[0].rated_at == rated_at
        store.record_request(5, "song", "kept")  # the tables from 0002 work
        store.record_impressions(5, ["kept"])
        assert store.forget(6) == 2
    assert revision_of(url) == HEAD


def test_opening_again_runs_no_migration_and_changes_nothing(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="alembic")
    with RatingStore(url) as store:
        store.rate(1, "t1", 1, "forme")
    assert "Running upgrade  -> 0001" in caplog.text
    assert "Running upgrade 0001 -> 0002" in caplog.text
    assert "Running upgrade 0002 -> 0003" in caplog.text
    caplog.clear()
    with RatingStore(url) as store:
        assert store.ratings_of(1) == {"t1": 1}
    assert "Running upgrade" not in caplog.text
    assert revision_of(url) == HEAD


def test_the_models_match_what_the_migrations_build(engine: Engine) -> None:
    migrate(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_every_migration_downgrades_and_upgrades_again(url: str, engine: Engine) -> None:
    migrate(engine)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0001")
    assert revision_of(url) == "0001"
    assert "requests" not in inspect(engine).get_table_names()
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    migrate(engine)
    assert revision_of(url) == HEAD


def test_the_migrations_render_for_postgresql(capsys: pytest.CaptureFixture[str]) -> None:
    command.upgrade(alembic_config("postgresql://bot@db.invalid/musicrec"), "head", sql=True)
    ddl = capsys.readouterr().out
    assert "CREATE TABLE ratings" in ddl
    assert "listener_id BIGINT NOT NULL" in ddl
    assert "id BIGSERIAL NOT NULL" in ddl  # requests/impressions autoincrement on PostgreSQL too
    assert "TIMESTAMP WITH TIME ZONE" in ddl


def test_a_database_from_a_newer_bot_is_refused_with_advice(url: str, engine: Engine) -> None:
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    with pytest.raises(StoreError, match="newer version of the bot"):
        RatingStore(url)
