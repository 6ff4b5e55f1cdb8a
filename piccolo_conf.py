"""Piccolo's engine and app registry, from DATABASE_URL (PostgreSQL) or a local SQLite file."""

from piccolo.conf.apps import AppRegistry
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine

from app.config import Settings


def make_engine(settings: Settings) -> Engine:
    if settings.database_url:
        return PostgresEngine(config={"dsn": settings.database_url}, log_queries=False)
    return SQLiteEngine(path=settings.sqlite_path)


DB = make_engine(Settings.from_env())

APP_REGISTRY = AppRegistry(apps=["app.piccolo_app"])
