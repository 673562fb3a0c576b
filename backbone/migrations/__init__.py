"""Alembic migrations, one branch per module; `upgrade` applies every branch's head."""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

_HERE = Path(__file__).parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest schema of every module."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")


def render_sql(database_url: str) -> str:
    """The whole chain, every module's branch up to its head, as SQL for the URL's dialect,
    rendered without connecting (nor loading a database driver)."""
    output = io.StringIO()
    config = alembic_config(database_url)
    config.output_buffer = output
    command.upgrade(config, "heads", sql=True)
    return output.getvalue()


def pending(engine: Engine) -> set[str]:
    """Return the heads the database has not reached yet."""
    heads = set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return heads - current
