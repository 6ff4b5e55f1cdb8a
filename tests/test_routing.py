"""Automatic routing against two server processes deciding at once: round-robin and
least-open under load, the cap, the FIFO backlog, and what happens to an owner's sessions
when their sockets go (SIGKILL of their worker, a clean disconnect, a reconnect within the
grace). How fast the requeue is, over many rounds, is measured by bench/unavailability.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.sockets import Client, matching
from tests.support import Factory, LiveServer, bearer

GRACE = "2"
LOAD = 300


@pytest.fixture(scope="class")
def pair(request: pytest.FixtureRequest, database_url: str, redis_url: str) -> Iterator[Any]:
    """Two server processes on the test database with the class's routing settings
    (class scope: one routing pair at a time sweeps the shared database)."""
    env = {"AVAILABILITY_GRACE": GRACE, **request.cls.ROUTING}
    name = request.cls.__name__.lower()
    with (
        LiveServer.running(f"{name}-1", database_url, redis_url, **env) as a,
        LiveServer.running(f"{name}-2", database_url, redis_url, **env) as b,
    ):
        yield a, b


async def _desk(make: Factory, agents: int) -> tuple[str, list[dict[str, Any]]]:
    """A boss who watches but takes no sessions (busy), and `agents` members."""
    boss = await make.admin_token()
    r = await make.api.patch(
        "/api/agents/me/availability", json={"status": "busy"}, headers=bearer(boss)
    )
    assert r.status_code == 200, r.text
    return boss, [await make.agent(full_name=f"Agent {n}") for n in range(agents)]


async def _connect(servers: list[LiveServer], agents: list[dict[str, Any]]) -> list[Client]:
    """One socket per agent, spread over the servers; returns once each is available."""
    clients = []
    for n, agent in enumerate(agents):
        clients.append(await Client(servers[n % len(servers)].url, agent["token"]).connect())
    return clients


async def _open_sessions(servers: tuple[LiveServer, LiveServer], count: int) -> list[str]:
    """`count` sessions created concurrently through both processes."""
    gate = asyncio.Semaphore(16)
    async with (
        httpx.AsyncClient(base_url=servers[0].url, timeout=30) as a,
        httpx.AsyncClient(base_url=servers[1].url, timeout=30) as b,
    ):

        async def one(n: int) -> str:
            async with gate:
                r = await (a, b)[n % 2].post("/api/sessions", json={"userId": f"load-{n}"})
                assert r.status_code == 201, r.text
                return str(r.json()["id"])

        return list(await asyncio.gather(*(one(n) for n in range(count))))


async def _settled(db: asyncpg.Connection, total: int, waiting: int) -> dict[str, int]:
    """Open sessions per owner once `waiting` of `total` are left unassigned."""
    for _ in range(600):
        rows = await db.fetch(
            "SELECT assignee_id, count(*) AS n FROM chat_session WHERE status = 'active'"
            " GROUP BY assignee_id"
        )
        owners = {str(r["assignee_id"]): int(r["n"]) for r in rows}
        if sum(owners.values()) == total and owners.get("None", 0) == waiting:
            owners.pop("None", None)
            return owners
        await asyncio.sleep(0.05)
    raise AssertionError(f"routing did not settle: {owners}")


async def _history(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT session_id, assignee_id, previous_assignee_id, reason, created_at"
            " FROM assignment ORDER BY created_at, id"
        )
    )


def _assigned_once(history: list[asyncpg.Record], sessions: list[str]) -> None:
    per_session = Counter(str(h["session_id"]) for h in history if h["reason"] == "auto")
    assert set(per_session.values()) == {1}
    assert set(per_session) <= set(sessions)


def _rerouted(session_id: str, away_from: str) -> Callable[[Any], bool]:
    """Routing gave the session to someone other than `away_from`."""

    def check(event: Any) -> bool:
        return bool(
            event["sessionId"] == session_id
            and event["reason"] == "auto"
            and event["assigneeId"] != away_from
        )

    return check


class TestRoundRobin:
    ROUTING = {"AUTO_ASSIGN": "round_robin", "MAX_OPEN_PER_AGENT": "200"}

    async def test_300_sessions_over_two_processes_go_100_100_100_in_turn(
        self, pair: tuple[LiveServer, LiveServer], make: Factory, db: asyncpg.Connection
    ):
        _, agents = await _desk(make, 3)
        clients = await _connect(list(pair), agents)
        try:
            sessions = await _open_sessions(pair, LOAD)
            owners = await _settled(db, LOAD, waiting=0)
            ids = [a["admin"]["id"] for a in agents]
            assert set(owners) == set(ids)
            assert max(owners.values()) - min(owners.values()) <= 1
            history = await _history(db)
            _assigned_once(history, sessions)
            # In turn all along: after each routing decision (decisions are written one
            # microsecond apart) no agent is more than one session ahead of another.
            seen: Counter[str] = Counter(dict.fromkeys(ids, 0))
            by_decision: defaultdict[Any, list[str]] = defaultdict(list)
            for h in history:
                by_decision[h["created_at"]].append(str(h["assignee_id"]))
            for decision in sorted(by_decision):
                seen.update(by_decision[decision])
                assert max(seen.values()) - min(seen.values()) <= 1, seen
        finally:
            for client in clients:
                await client.close()

    async def test_a_killed_workers_agent_loses_their_sessions_after_the_grace(
        self,
        pair: tuple[LiveServer, LiveServer],
        make: Factory,
        database_url: str,
        redis_url: str,
    ):
        boss, (leaving, staying) = await _desk(make, 2)
        watcher = await Client(pair[0].url, boss).connect()
        env = {"AVAILABILITY_GRACE": GRACE, **self.ROUTING}
        doomed = LiveServer(
            "routing-doomed", {"DATABASE_URL": database_url, "REDIS_URL": redis_url, **env}
        )
        doomed.start()
        try:
            away = await Client(doomed.url, leaving["token"]).connect()
            sessions = await _open_sessions(pair, 3)
            for sid in sessions:
                await watcher.wait_for(
                    "session_assigned",
                    matching(sessionId=sid, assigneeId=leaving["admin"]["id"]),
                )
            here = await Client(pair[1].url, staying["token"]).connect()
            doomed.kill()
            for sid in sessions:
                await watcher.wait_for(
                    "session_assigned",
                    matching(sessionId=sid, assigneeId=staying["admin"]["id"]),
                    within=20,
                )
            requeued = [e for e in watcher.of("session_assigned") if e["reason"] == "unavailable"]
            assert sorted(e["sessionId"] for e in requeued) == sorted(sessions)
            assert {e["previousAssigneeId"] for e in requeued} == {leaving["admin"]["id"]}
            assert {e["assigneeId"] for e in requeued} == {None}
            with contextlib.suppress(Exception):
                await away.close()
            await here.close()
        finally:
            doomed.stop()
            await watcher.close()

    async def test_a_clean_disconnect_counts_after_the_grace_and_a_reconnect_within_it_keeps_them(
        self, pair: tuple[LiveServer, LiveServer], make: Factory
    ):
        boss, (returning, leaving, staying) = await _desk(make, 3)
        watcher = await Client(pair[0].url, boss).connect()
        try:
            first = await Client(pair[0].url, returning["token"]).connect()
            second = await Client(pair[1].url, leaving["token"]).connect()
            sessions = await _open_sessions(pair, 4)
            for sid in sessions:
                await watcher.wait_for("session_assigned", matching(sessionId=sid))
            owned = {
                e["sessionId"]: e["assigneeId"]
                for e in watcher.of("session_assigned")
                if e["reason"] == "auto"
            }
            assert Counter(owned.values()) == {
                returning["admin"]["id"]: 2,
                leaving["admin"]["id"]: 2,
            }
            here = await Client(pair[1].url, staying["token"]).connect()
            # Both drop at once; one is back at once (a page reload), the other is not.
            await asyncio.gather(first.close(), second.close())
            back = await Client(pair[1].url, returning["token"]).connect()
            # The control: the one who stayed away loses theirs after the grace, and
            # routing gives them to someone available...
            for sid, owner in owned.items():
                if owner == leaving["admin"]["id"]:
                    await watcher.wait_for(
                        "session_assigned",
                        _rerouted(sid, away_from=leaving["admin"]["id"]),
                        within=20,
                    )
            # ...by then the one who came back has kept theirs.
            lost = {
                e["sessionId"]
                for e in watcher.of("session_assigned")
                if e["reason"] == "unavailable"
            }
            assert lost == {s for s, o in owned.items() if o == leaving["admin"]["id"]}
            await back.close()
            await here.close()
        finally:
            await watcher.close()


class TestLeastOpen:
    ROUTING = {"AUTO_ASSIGN": "least_open", "MAX_OPEN_PER_AGENT": "50"}

    async def test_300_sessions_fill_every_agent_to_the_cap_and_no_further(
        self, pair: tuple[LiveServer, LiveServer], make: Factory, db: asyncpg.Connection
    ):
        _, agents = await _desk(make, 3)
        # One agent already holds 10 (claimed by hand): least-open gives them fewer.
        held = await _open_sessions(pair, 10)
        busy = agents[0]
        for sid in held:
            r = await make.api.post(f"/api/sessions/{sid}/claim", headers=bearer(busy["token"]))
            assert r.status_code == 200, r.text
        clients = await _connect(list(pair), agents)
        try:
            sessions = await _open_sessions(pair, LOAD)
            owners = await _settled(db, LOAD + 10, waiting=LOAD + 10 - 150)
            assert owners == dict.fromkeys((a["admin"]["id"] for a in agents), 50)
            history = await _history(db)
            _assigned_once(history, sessions)
            routed = Counter(str(h["assignee_id"]) for h in history if h["reason"] == "auto")
            assert routed[busy["admin"]["id"]] == 40
            # Least-open first: until the busy agent's 10 were matched, it got none.
            first_twenty = [str(h["assignee_id"]) for h in history if h["reason"] == "auto"][:20]
            assert busy["admin"]["id"] not in first_twenty
        finally:
            for client in clients:
                await client.close()

    async def test_the_backlog_is_served_in_creation_order_as_capacity_frees(
        self, pair: tuple[LiveServer, LiveServer], make: Factory, db: asyncpg.Connection
    ):
        boss, (agent,) = await _desk(make, 1)
        watcher = await Client(pair[0].url, boss).connect()
        client = await Client(pair[1].url, agent["token"]).connect()
        try:
            full = await _open_sessions(pair, 50)
            await _settled(db, 50, waiting=0)
            backlog, tokens = [], []
            async with httpx.AsyncClient(base_url=pair[0].url, timeout=30) as api:
                for n in range(20):
                    r = await api.post("/api/sessions", json={"userId": f"backlog-{n}"})
                    backlog.append(r.json()["id"])
                    tokens.append(r.json()["customerToken"])
                await _settled(db, 70, waiting=20)
                # The customer's widget learns its place in the queue when it joins.
                for n in (0, 19):
                    mine = await Client(pair[n % 2].url, tokens[n]).connect()
                    ack = await mine.call("join_session", backlog[n])
                    await mine.close()
                    assert ack["queuePosition"] == n + 1
                for n, sid in enumerate(full[:20]):
                    r = await api.patch(
                        f"/api/sessions/{sid}/status",
                        json={"status": "closed"},
                        headers=bearer(agent["token"]),
                    )
                    assert r.status_code == 200
                    await watcher.wait_for("session_assigned", matching(sessionId=backlog[n]))
            routed = [
                e["sessionId"]
                for e in watcher.of("session_assigned")
                if e["reason"] == "auto" and e["sessionId"] in backlog
            ]
            assert routed == backlog
        finally:
            await client.close()
            await watcher.close()
