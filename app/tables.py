"""Piccolo tables: the durable state. Anything shared but short-lived lives in Redis."""

from __future__ import annotations

from piccolo.columns import (
    UUID,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table


class Admin(Table, tablename="admin"):
    id = UUID(primary_key=True)
    email = Varchar(length=254, unique=True)
    password = Varchar(length=255, secret=True)
    full_name = Varchar(length=200, null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class ChatSession(Table, tablename="chat_session"):
    id = UUID(primary_key=True)
    user_id = Varchar(length=200, index=True)
    user_name = Varchar(length=200, null=True, default=None)
    user_email = Varchar(length=254, null=True, default=None)
    status = Varchar(length=16, default="active")
    # Position of the newest message; the next message takes last_seq + 1 under a row lock.
    last_seq = Integer(default=0)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    last_activity_at = Timestamptz()
    # sha256 of the widget's clientSessionId: a retried create finds the active session.
    client_session_key = Varchar(length=64, null=True, default=None)


class Message(Table, tablename="message"):
    id = UUID(primary_key=True)
    # Indexed through the unique (session_id, seq) index of the second migration.
    session_id = ForeignKey(references=ChatSession, on_delete=OnDelete.cascade)
    # Per-session position, 1, 2, 3 …: the cursor clients page and replay by.
    seq = Integer()
    sender_type = Varchar(length=16)
    sender_id = Varchar(length=200, null=True, default=None)
    content = Text()
    is_read = Boolean(default=False)
    client_message_id = Varchar(length=100, null=True, default=None)
    created_at = Timestamptz()
