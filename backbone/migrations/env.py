"""Alembic environment: runs on a connection handed in by `backbone.migrations.upgrade`, or
renders the SQL without one (`backbone.migrations.render_sql`, offline mode)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from backbone.platform import dialects

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        render_as_batch=connection.dialect.name == dialects.SQLITE,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _render() -> None:
    """Write the statements to the output buffer; the URL names the dialect, no driver is loaded."""
    url = config.get_main_option("sqlalchemy.url") or ""
    context.configure(
        url=url,
        dialect_opts=dialects.offline_dialect_options(url),
        literal_binds=True,
        render_as_batch=dialects.kind_of(url) == dialects.SQLITE,
        output_buffer=config.output_buffer,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _render()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "", hide_parameters=True)
        with engine.begin() as own_connection:
            _run(own_connection)
