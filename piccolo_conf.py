"""Piccolo's engine and app registry, from DATABASE_URL (PostgreSQL) or a local SQLite file."""

from piccolo.conf.apps import AppRegistry

from app.config import Settings
from app.db import make_engine

DB = make_engine(Settings.from_env())

APP_REGISTRY = AppRegistry(apps=["app.piccolo_app"])
