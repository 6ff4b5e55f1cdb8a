"""How the domain tells connected clients about a change, without knowing about sockets."""

from __future__ import annotations

from typing import Any, Protocol

ADMINS_ROOM = "admins"


SESSION_ROOM_PREFIX = "session:"


def session_room(session_id: object) -> str:
    return f"{SESSION_ROOM_PREFIX}{session_id}"


def session_of_room(room: str) -> str | None:
    """The session id of a session room, None for any other room."""
    return room.removeprefix(SESSION_ROOM_PREFIX) if room.startswith(SESSION_ROOM_PREFIX) else None


class Broadcaster(Protocol):
    async def emit(self, event: str, data: Any, rooms: list[str], skip: str | None = None) -> None:
        """Deliver `event` once to every client in any of `rooms`, on every worker,
        except the connection `skip` (the one that caused it)."""
        ...


class NullBroadcaster:
    async def emit(self, event: str, data: Any, rooms: list[str], skip: str | None = None) -> None:
        return None
