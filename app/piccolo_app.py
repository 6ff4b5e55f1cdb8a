"""Piccolo app registration: tables plus the top-level migrations folder."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.tables import (
    Admin,
    Assignment,
    CannedResponse,
    ChatSession,
    Invitation,
    Message,
    Note,
    SessionLabel,
    SignIn,
)

MIGRATIONS = Path(__file__).resolve().parent.parent / "piccolo_migrations"

APP_CONFIG = AppConfig(
    app_name="helpline",
    migrations_folder_path=str(MIGRATIONS),
    table_classes=[
        Admin,
        ChatSession,
        Message,
        SignIn,
        Invitation,
        Note,
        SessionLabel,
        CannedResponse,
        Assignment,
    ],
    migration_dependencies=[],
    commands=[],
)
