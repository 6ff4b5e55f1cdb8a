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

# Columns that hold a bounded input are as wide as its declared limit.
from app.models import (
    MAX_CLIENT_MESSAGE_ID,
    MAX_DEVICE,
    MAX_EMAIL,
    MAX_LABEL,
    MAX_NAME,
    MAX_SHORT_CODE,
    MAX_USER_ID,
)


class Admin(Table, tablename="admin"):
    id = UUID(primary_key=True)
    email = Varchar(length=MAX_EMAIL, unique=True)
    password = Varchar(length=255, secret=True)
    full_name = Varchar(length=MAX_NAME, null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    # `admin` manages the team and chats; `agent` chats. Both send as senderType "admin".
    role = Varchar(length=16, default="admin")
    # Set while the account is suspended: no login, every token and socket refused.
    deactivated_at = Timestamptz(null=True, default=None)
    last_seen_at = Timestamptz(null=True, default=None)
    # The member's own switch: `online` takes conversations, `busy` keeps theirs but takes
    # no new ones, `offline` hands theirs back (app/domain/availability.py).
    availability = Varchar(length=16, default="online")
    # When routing last gave them a conversation: round-robin's turn order.
    last_routed_at = Timestamptz(null=True, default=None)


class SignIn(Table, tablename="sign_in"):
    """One login (a device): staff tokens name it in `sid`, so it can be revoked alone."""

    id = UUID(primary_key=True)
    admin_id = ForeignKey(references=Admin, on_delete=OnDelete.cascade, index=True)
    device = Varchar(length=MAX_DEVICE, null=True, default=None)
    ip = Varchar(length=64, null=True, default=None)
    created_at = Timestamptz()
    last_seen_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)


class Invitation(Table, tablename="invitation"):
    """A single-use link: `invite` sets a new member's password, `reset` an existing one's.
    Only the token's sha256 is stored."""

    id = UUID(primary_key=True)
    admin_id = ForeignKey(references=Admin, on_delete=OnDelete.cascade, index=True)
    kind = Varchar(length=16, default="invite")
    token_hash = Varchar(length=64, unique=True)
    created_by = UUID(null=True, default=None)
    created_at = Timestamptz()
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


class ChatSession(Table, tablename="chat_session"):
    id = UUID(primary_key=True)
    user_id = Varchar(length=MAX_USER_ID, index=True)
    user_name = Varchar(length=MAX_NAME, null=True, default=None)
    user_email = Varchar(length=MAX_EMAIL, null=True, default=None)
    status = Varchar(length=16, default="active")
    # Position of the newest message; the next message takes last_seq + 1 under a row lock.
    last_seq = Integer(default=0)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    last_activity_at = Timestamptz()
    # sha256 of the widget's clientSessionId: a retried create finds the active session.
    client_session_key = Varchar(length=64, null=True, default=None)
    # The owner (a staff member) or none (waiting: the routing backlog, oldest first).
    assignee_id = UUID(null=True, default=None)
    assigned_at = Timestamptz(null=True, default=None)
    # Why the current owner has it (or why it went back to the queue): manual, claim,
    # auto, unavailable. Every change is also a row of `assignment`.
    assignment_reason = Varchar(length=16, null=True, default=None)


class Message(Table, tablename="message"):
    id = UUID(primary_key=True)
    # Indexed through the unique (session_id, seq) index of the second migration.
    session_id = ForeignKey(references=ChatSession, on_delete=OnDelete.cascade)
    # Per-session position, 1, 2, 3 …: the cursor clients page and replay by.
    seq = Integer()
    sender_type = Varchar(length=16)
    sender_id = Varchar(length=MAX_USER_ID, null=True, default=None)
    content = Text()
    is_read = Boolean(default=False)
    client_message_id = Varchar(length=MAX_CLIENT_MESSAGE_ID, null=True, default=None)
    created_at = Timestamptz()
    # The staff member's display name when it was sent (transcripts keep it as written).
    sender_name = Varchar(length=MAX_NAME, null=True, default=None)


class Assignment(Table, tablename="assignment"):
    """The record of every change of owner: who had it, who has it, why, and who did it
    (None: the router)."""

    id = UUID(primary_key=True)
    session_id = ForeignKey(references=ChatSession, on_delete=OnDelete.cascade, index=True)
    assignee_id = UUID(null=True, default=None)
    previous_assignee_id = UUID(null=True, default=None)
    reason = Varchar(length=16)
    actor_id = UUID(null=True, default=None)
    created_at = Timestamptz()


class Note(Table, tablename="note"):
    """A staff member's private note on a session. Never a message: notes have their own
    per-session position (`seq` here, `noteSeq` in JSON), so a customer's message `seq`
    stays gap-free, and no customer-facing query reads this table (app/domain/visibility.py).
    """

    id = UUID(primary_key=True)
    session_id = ForeignKey(references=ChatSession, on_delete=OnDelete.cascade)
    # Indexed through the unique (session_id, seq) index of the workspace migration.
    seq = Integer()
    author_id = UUID(null=True, default=None)
    # The author's display name when written (kept as written, like senderName).
    author_name = Varchar(length=MAX_NAME, null=True, default=None)
    content = Text()
    created_at = Timestamptz()


class SessionLabel(Table, tablename="session_label"):
    """One label on one session: a row per pair, so the inbox filter is an index lookup
    on PostgreSQL and SQLite alike (no array type needed)."""

    id = UUID(primary_key=True)
    session_id = ForeignKey(references=ChatSession, on_delete=OnDelete.cascade)
    label = Varchar(length=MAX_LABEL)


class CannedResponse(Table, tablename="canned_response"):
    """A reusable reply: `{{customer.name}}`-style placeholders are filled per session."""

    id = UUID(primary_key=True)
    short_code = Varchar(length=MAX_SHORT_CODE, unique=True)
    title = Varchar(length=MAX_NAME, null=True, default=None)
    content = Text()
    created_by = UUID(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()
