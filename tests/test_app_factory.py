"""The app factory takes its collaborators: the database engine is a service like the
state store, so a caller (a test, an embedding program) can hand it one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from piccolo.engine import engine_finder
from piccolo.engine.postgres import PostgresEngine
from sanic import Sanic

from app import db
from app.config import Settings
from app.context import Services
from app.main import create_app
from app.sqlite_engine import EmbeddedSQLiteEngine
from app.tables import Message


@pytest.fixture
def rebind() -> Iterator[None]:
    """Binding is per process: give the rest of the run piccolo_conf.py's engine back."""
    yield
    configured = engine_finder()
    assert configured is not None
    db.bind(configured)


async def test_create_app_sends_every_query_to_the_engine_it_is_handed(tmp_path: Path, rebind):
    handed = EmbeddedSQLiteEngine(path=str(tmp_path / "handed.sqlite3"))
    Sanic.test_mode = True
    app = create_app(
        Settings(sqlite_path=str(tmp_path / "named.sqlite3"), jwt_secret="s" * 40),
        database=handed,
    )
    try:
        assert app.ctx.services.database is handed
        assert db.engine() is handed and Message._meta.db is handed
        await db.ping()
        assert (tmp_path / "handed.sqlite3").exists()
        assert not (tmp_path / "named.sqlite3").exists()
    finally:
        Sanic._app_registry.pop(app.name, None)


def test_without_one_the_services_build_the_engine_the_settings_name(
    tmp_path: Path, database_url: str
):
    embedded = Services.build(Settings(sqlite_path=str(tmp_path / "x.sqlite3")))
    assert isinstance(embedded.database, EmbeddedSQLiteEngine)
    assert embedded.database.path == str(tmp_path / "x.sqlite3")
    standalone = Services.build(Settings(database_url=database_url))
    assert isinstance(standalone.database, PostgresEngine)
    assert standalone.database.config["dsn"] == database_url
