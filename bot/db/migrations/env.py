"""Alembic's environment: migrates the connection the store hands over (config.attributes["connection"]).

The store runs `alembic.command.upgrade(config, "head")` when it opens; no alembic.ini is needed. To write a new
revision, build the same config in Python and autogenerate against a database at head:

    from alembic import command
    from bot.db.engine import alembic_config
    command.revision(alembic_config("sqlite:///data/musicrec.db"), "add x", autogenerate=True, rev_id="0003")
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from bot.db.models import Base


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table instead
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    config = context.config
    if context.is_offline_mode():  # `upgrade --sql`: print the DDL for a DBA instead of running it
        url = config.get_main_option("sqlalchemy.url")
        context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as own:
            run(own)
    finally:
        engine.dispose()


main()
