"""Alembic environment of the review store; `ReviewStore.open` runs it with its own connection.

The store passes an open connection in `config.attributes["connection"]` (inside its
transaction, so the upgrade commits or rolls back as one). A developer may also run Alembic by
hand with `sqlalchemy.url` set on the config, e.g. to write a new revision.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from commsrisk.reviews.tables import VERSION_TABLE, metadata

config = context.config


def run_offline() -> None:
    """Emit the SQL for `sqlalchemy.url` without connecting."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Migrate through the store's connection, or one made from `sqlalchemy.url`."""
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as own:
            _migrate(own)
        engine.dispose()
        return
    _migrate(connection)


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
