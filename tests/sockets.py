"""A recording Socket.IO test client: connects a real python-socketio client to a live
server and keeps every server event it receives, for assertions."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import socketio

EVENTS = (
    "new_message",
    "user_typing",
    "message_read",
    "session_created",
    "session_updated",
    "customer_presence",
    "session_revoked",
    "error",
    "rejoin",
    "session_assigned",
    "agent_presence",
    "new_note",
)


def matching(**fields: Any) -> Callable[[Any], bool]:
    """A `wait_for` predicate: the event has these values (camelCase keys)."""

    def check(event: Any) -> bool:
        return isinstance(event, dict) and all(event.get(k) == v for k, v in fields.items())

    return check


class Client:
    def __init__(self, url: str, token: str | None, transports: list[str] | None = None) -> None:
        self.url = url
        self.token = token
        self.transports = transports or ["websocket"]
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        for name in EVENTS:
            self.sio.on(name, self._recorder(name))
        # When the server dropped this client (monotonic time), for revocation timings.
        self.disconnected_at: float | None = None
        self.sio.on("disconnect", self._on_disconnect)

    def _on_disconnect(self, *_: Any) -> None:
        self.disconnected_at = time.monotonic()

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(data: Any = None) -> None:
            self.events.append((name, data))

        return record

    async def connect(self) -> Client:
        auth = {"token": self.token} if self.token is not None else None
        await self.sio.connect(self.url, auth=auth, transports=self.transports, wait_timeout=10)
        return self

    async def call(self, event: str, data: Any = None) -> Any:
        return await self.sio.call(event, data, timeout=10)

    async def close(self) -> None:
        await self.sio.disconnect()

    def of(self, name: str) -> list[Any]:
        return [data for event, data in self.events if event == name]

    async def wait_for(
        self, name: str, predicate: Callable[[Any], bool] = lambda _: True, within: float = 10
    ) -> Any:
        """The first `name` event matching `predicate`, waiting up to `within` seconds."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for data in self.of(name):
                if predicate(data):
                    return data
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {name} event matching within {within}s; got {self.events!r}")

    async def wait_disconnected(self, within: float = 10) -> float:
        """Monotonic time the server disconnected this client, waiting up to `within`."""
        deadline = time.monotonic() + within
        while self.disconnected_at is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"still connected after {within}s; got {self.events!r}")
            await asyncio.sleep(0.005)
        return self.disconnected_at

    async def round_trip(self) -> None:
        """An event of this client's own, answered: its ack is written to this connection
        behind every packet its worker had already queued for it."""
        ack = await self.call("leave_session", str(uuid.uuid4()))
        assert ack["ok"] is True, ack

    async def heard_no(
        self,
        name: str,
        *controls: Client,
        predicate: Callable[[Any], bool] = lambda _: True,
    ) -> None:
        """Asserts this client heard no matching `name` event, without waiting a fixed
        time: each control, a client on this client's worker that the same broadcast
        reached (one per room it went to), hears it first; then this client's own round
        trip proves that whatever its worker sent it by then has arrived."""
        for control in controls:
            await control.wait_for(name, predicate)
        await self.round_trip()
        heard = [data for data in self.of(name) if predicate(data)]
        assert heard == [], f"{name} should not have reached this client: {heard!r}"

    async def heard_once(
        self, name: str, predicate: Callable[[Any], bool], *controls: Client
    ) -> None:
        """Asserts this client heard exactly one matching `name` event, the same way."""
        await self.wait_for(name, predicate)
        for control in controls:
            await control.wait_for(name, predicate)
        await self.round_trip()
        heard = [data for data in self.of(name) if predicate(data)]
        assert len(heard) == 1, f"{name} reached this client {len(heard)} times: {heard!r}"
