"""The leak test: with notes (and labels) on a session, its customer's token walks every
route of the live OpenAPI document and every socket event the server registers, and
joins and rejoins with every cursor: no note, note id, note text or label reaches it.

Nothing here lists routes or events: they are read from the running app, so a route or
event added later is walked too.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import orjson
import pytest
import socketio

from tests.support import LiveServer, bearer

NOTE_TEXT = "NOTESECRET"
LABEL = "labelsecret"


def registered_events() -> set[str]:
    """The client events the app's Socket.IO server handles, read from an app built in
    this process (never started)."""
    from sanic import Sanic

    from app.config import Settings
    from app.main import create_app

    Sanic.test_mode = True
    app = create_app(Settings(sqlite_path=":memory:", jwt_secret="s" * 40))
    try:
        return set(app.ctx.sio.handlers["/"]) - {"connect", "disconnect"}
    finally:
        Sanic._app_registry.pop(app.name, None)


class Desk:
    """A session with messages from both sides, notes and a label, and what must not leak."""

    def __init__(self, api: httpx.AsyncClient, staff: str, session: dict[str, Any]) -> None:
        self.api = api
        self.staff = staff
        self.session = session
        self.customer = session["customerToken"]
        self.secrets: set[str] = {NOTE_TEXT, LABEL}
        self.ids: dict[str, list[str]] = {"session": [session["id"]], "message": [], "note": []}
        self.last_seq = 0

    async def note(self) -> None:
        r = await self.api.post(
            f"/api/sessions/{self.session['id']}/notes",
            json={"content": f"{NOTE_TEXT} {uuid.uuid4().hex}: do not tell the customer"},
            headers=bearer(self.staff),
        )
        assert r.status_code == 201, r.text
        self.secrets |= {r.json()["id"], r.json()["content"]}
        self.ids["note"].append(r.json()["id"])

    async def message(self, token: str, content: str) -> dict[str, Any]:
        r = await self.api.post(
            "/api/chat/messages",
            json={"sessionId": self.session["id"], "content": content},
            headers=bearer(token),
        )
        assert r.status_code == 201, r.text
        self.ids["message"].append(r.json()["id"])
        self.last_seq = r.json()["seq"]
        return dict(r.json())

    def leaks(self, seen: Any) -> list[str]:
        text = seen if isinstance(seen, str) else orjson.dumps(seen).decode()
        return sorted(s for s in self.secrets if s in text)


@pytest.fixture
async def desk(api: httpx.AsyncClient, make) -> Desk:
    staff = await make.admin_token()
    session = await make.session(userName="Ada", userEmail="ada@example.com")
    d = Desk(api, staff, session)
    await d.message(d.customer, "hello")
    await d.note()
    await d.message(staff, "hi, looking")
    await d.note()
    await d.message(d.customer, "thanks")
    r = await api.put(
        f"/api/sessions/{session['id']}/labels", json={"labels": [LABEL]}, headers=bearer(staff)
    )
    assert r.status_code == 200
    canned = await api.post(
        "/api/canned-responses",
        json={"shortCode": "leak", "content": "Hi {{customer.name}}"},
        headers=bearer(staff),
    )
    d.ids["canned"] = [canned.json()["id"]]
    return d


def example(schema: dict[str, Any], desk: Desk) -> Any:
    """A value for a documented parameter or field that names the desk's own things."""
    kind = schema.get("type")
    if schema.get("format") == "uuid":
        return desk.session["id"]
    if kind == "integer":
        return max(schema.get("minimum", 0), 0)
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if "enum" in schema:
        return schema["enum"][0]
    return "probe"


def body_for(operation: dict[str, Any], desk: Desk) -> dict[str, Any]:
    """The documented body with every field set, plus what a session create needs to
    resume this session (its userId, with the customer token as Bearer)."""
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    props = content.get("schema", {}).get("properties", {})
    body = {name: example(schema, desk) for name, schema in props.items()}
    return {**body, "sessionId": desk.session["id"], "userId": desk.session["userId"]}


def paths_for(path: str, desk: Desk) -> list[str]:
    """The path with each parameter set to every id the desk knows, and a random one."""
    params = re.findall(r"\{(\w+)\}", path)
    if not params:
        return [path]
    candidates = [i for ids in desk.ids.values() for i in ids] + [str(uuid.uuid4())]
    out = [path]
    for name in params:
        out = [p.replace("{" + name + "}", c) for p in out for c in candidates]
    return out


async def test_a_customer_token_walking_every_route_never_sees_a_note(api, desk, server):
    spec = (await api.get("/docs/openapi.json")).json()
    walked = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            queries: list[dict[str, Any]] = [{}]
            params = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
            if params:
                filled = {p["name"]: example(p.get("schema", {}), desk) for p in params}
                if "q" in filled:
                    filled["q"] = NOTE_TEXT
                queries.append(filled)
            for concrete in paths_for(path, desk):
                for query in queries:
                    r = await api.request(
                        method.upper(),
                        concrete,
                        params=query,
                        json=body_for(operation, desk)
                        if method in ("post", "put", "patch")
                        else None,
                        headers=bearer(desk.customer),
                    )
                    walked += 1
                    assert r.status_code < 500, (method, concrete, r.text)
                    leaked = desk.leaks(r.text + str(dict(r.headers)))
                    assert not leaked, (method, concrete, query, leaked)
    # Every cursor of the history, both ways.
    for seq in range(desk.last_seq + 2):
        for cursor in ("after", "before"):
            r = await api.get(
                f"/api/chat/messages/{desk.session['id']}?{cursor}={seq}",
                headers=bearer(desk.customer),
            )
            assert r.status_code == 200 and not desk.leaks(r.text), (cursor, seq)
    assert walked > 50


class Listener:
    """A raw Socket.IO client that records every event the server sends, by any name."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.sio = socketio.AsyncClient(reconnection=False)
        self.heard: list[tuple[str, Any]] = []
        self.sio.on("*", self._any)

    async def _any(self, event: str, *args: Any) -> None:
        self.heard.append((event, args))

    async def connect(self) -> None:
        await self.sio.connect(
            self.url, auth={"token": self.token}, transports=["websocket"], wait_timeout=10
        )

    async def call(self, event: str, data: Any) -> Any:
        return await self.sio.call(event, data, timeout=10)


def payloads(desk: Desk, after: int) -> list[Any]:
    """Every shape a client event takes, naming this desk's session, messages and notes."""
    sid = desk.session["id"]
    ids = [i for group in desk.ids.values() for i in group]
    return [
        sid,
        {"sessionId": sid},
        {"sessionId": sid, "after": after},
        {"sessionId": sid, "after": after, "notesAfter": 0},
        {"sessionId": sid, "content": "probe", "isTyping": True},
        *({"messageId": i, "noteId": i, "sessionId": sid} for i in ids),
    ]


async def test_a_customer_socket_sending_every_event_and_rejoining_never_hears_a_note(
    api, desk, server: LiveServer
):
    events = registered_events()
    assert {"join_session", "send_message"} <= events
    customer = Listener(server.url, desk.customer)
    await customer.connect()
    answers: list[Any] = []
    try:
        for after in range(desk.last_seq + 1):
            for event in sorted(events):
                for payload in payloads(desk, after):
                    answers.append(await customer.call(event, payload))
        # Rejoin after a reconnect, with every cursor.
        await customer.sio.disconnect()
        await customer.connect()
        for after in (None, *range(desk.last_seq + 1)):
            ack = await customer.call(
                "join_session", {"sessionId": desk.session["id"], "after": after, "notesAfter": 0}
            )
            assert ack["ok"], ack
            answers.append(ack)
        # While it is in the room: a note, a label change, then a control message.
        await desk.note()
        r = await api.put(
            f"/api/sessions/{desk.session['id']}/labels",
            json={"labels": [LABEL, "other"]},
            headers=bearer(desk.staff),
        )
        assert r.status_code == 200
        control = await desk.message(desk.staff, "control: sent after the note")
        for _ in range(500):
            if any(e == "new_message" and a[0]["id"] == control["id"] for e, a in customer.heard):
                break
            await customer.sio.sleep(0.02)
        else:
            raise AssertionError(f"the control message never arrived: {customer.heard}")
    finally:
        await customer.sio.disconnect()
    assert not desk.leaks(answers), desk.leaks(answers)
    assert not desk.leaks(customer.heard), desk.leaks(customer.heard)
    assert not [e for e, _ in customer.heard if e == "new_note"]
