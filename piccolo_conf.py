"""Piccolo's engine and app registry, from DATABASE_URL (PostgreSQL) or a local SQLite file."""

from piccolo.conf.apps import AppRegistry
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine

from app.config import Settings
from app.sqlite_engine import EmbeddedSQLiteEngine


def make_engine(settings: Settings) -> Engine:
    if settings.database_url:
        return PostgresEngine(config={"dsn": settings.database_url}, log_queries=False)
    # A statement outside a transaction waits this long for the one writer (app/db.py).
    return EmbeddedSQLiteEngine(path=settings.sqlite_path, timeout=30)


DB = make_engine(Settings.from_env())

APP_REGISTRY = AppRegistry(apps=["app.piccolo_app"])
