"""Alembic environment: runs on the connection that `Database.migrate()` hands over.

On PostgreSQL the upgrade holds an advisory lock, so API replicas starting together migrate once.
`alembic` on the command line works too: `alembic -x url=sqlite:///data/mutoscope.db upgrade head`
with `script_location` pointing here.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from mutoscope.serve.tables import Base

MIGRATION_LOCK = 0x6D75746F  # "muto": the advisory lock key for schema upgrades

target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    is_postgres = connection.dialect.name == "postgresql"
    if is_postgres:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
        connection.commit()
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if is_postgres:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
            connection.commit()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
