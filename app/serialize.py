"""Rows to the original's camelCase JSON shapes."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any


def iso(value: Any) -> str | None:
    """ISO-8601 UTC with milliseconds and `Z`, as JavaScript's toISOString() writes it."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def uid(value: Any) -> str | None:
    return None if value is None else str(value)


def as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def admin(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": uid(row["id"]),
        "email": row["email"],
        "fullName": row["full_name"],
        "role": row["role"],
        "createdAt": iso(row["created_at"]),
    }


def member(row: Mapping[str, Any], online: bool, available: bool = False) -> dict[str, Any]:
    """A staff member as the team list shows them. `invited`: the invitation is not
    accepted yet (no password, cannot log in)."""
    return {
        **admin(row),
        "active": row["deactivated_at"] is None,
        "invited": not row["password"],
        "deactivatedAt": iso(row["deactivated_at"]),
        "lastSeenAt": iso(row["last_seen_at"]),
        "online": online,
        "availability": row["availability"],
        "available": available,
    }


def sign_in(row: Mapping[str, Any], current: bool) -> dict[str, Any]:
    return {
        "id": uid(row["id"]),
        "device": row["device"],
        "ip": row["ip"],
        "createdAt": iso(row["created_at"]),
        "lastSeenAt": iso(row["last_seen_at"]),
        "current": current,
    }


def message(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": uid(row["id"]),
        "sessionId": uid(row["session_id"]),
        "seq": row["seq"],
        "senderType": row["sender_type"],
        "senderId": row["sender_id"],
        "senderName": row["sender_name"],
        "content": row["content"],
        "isRead": bool(row["is_read"]),
        "clientMessageId": row["client_message_id"],
        "createdAt": iso(row["created_at"]),
    }


def session(
    row: dict[str, Any],
    last_message: dict[str, Any] | None = None,
    unread: int = 0,
    assignee_name: str | None = None,
) -> dict[str, Any]:
    return {
        "id": uid(row["id"]),
        "userId": row["user_id"],
        "userName": row["user_name"],
        "userEmail": row["user_email"],
        "status": row["status"],
        "lastSeq": row["last_seq"],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
        "lastActivityAt": iso(row["last_activity_at"]),
        "lastMessage": message(last_message) if last_message else None,
        "unreadCount": unread,
        "assigneeId": uid(row["assignee_id"]),
        # The owner's display name, never an email (the customer's GET shows it too).
        "assigneeName": assignee_name,
        "assignedAt": iso(row["assigned_at"]),
        "assignmentReason": row["assignment_reason"],
    }
