"""Migrations: HEAD matches Alembic's head, upgrades are idempotent, and the schema matches the tables."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from flowyard.store.db import HEAD, MIGRATIONS, connect, current_revision, migrate
from flowyard.store.tables import metadata


def test_head_constant_is_alembic_head() -> None:
    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == HEAD


def test_migrate_creates_every_table_once(tmp_path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'x.db'}")
    assert current_revision(engine) is None
    migrate(engine)
    migrate(engine)
    assert current_revision(engine) == HEAD
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    for table in metadata.sorted_tables:
        assert {c["name"] for c in inspect(engine).get_columns(table.name)} == {c.name for c in table.columns}
