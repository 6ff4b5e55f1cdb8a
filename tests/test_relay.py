"""The long-polling relay proves itself: clients that open a new TCP connection for every
polling request (as a browser behind a router without keep-alive does) reach both
workers of a two-worker server, each worker relays the requests of sessions it does not
hold, and every request is answered, none later than the relay's timeout."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support import Factory, LiveServer, samples

SEP = "\x1e"  # Engine.IO v4 packet separator in a polling payload
ROUNDS = 25
RELAY_TIMEOUT = 30  # the default RELAY_TIMEOUT


@pytest.fixture(scope="module")
def two_workers(database_url: str, redis_url: str) -> Iterator[LiveServer]:
    env = {"WEB_CONCURRENCY": "2", "SOCKET_EVENTS_PER_SECOND": "1000", "SOCKET_EVENT_BURST": "1000"}
    with LiveServer.running("relay", database_url, redis_url, **env) as live:
        yield live


@dataclass
class PollingClient:
    """Socket.IO over Engine.IO long-polling, spoken by hand, with no keep-alive: every
    request is a new TCP connection, so the kernel spreads them over both workers."""

    http: httpx.AsyncClient
    sid: str = ""
    acks: dict[int, object] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    @property
    def owner(self) -> str:
        return self.sid.partition(".")[0]

    async def request(self, method: str, body: str | None = None) -> str:
        started = time.monotonic()
        r = await self.http.request(
            method,
            "/socket.io/",
            params={"EIO": "4", "transport": "polling", **({"sid": self.sid} if self.sid else {})},
            content=body,
            headers={"Content-Type": "text/plain;charset=UTF-8"} if body else None,
        )
        self.waits.append(time.monotonic() - started)
        self.statuses.append(r.status_code)
        assert r.status_code == 200, f"{method} answered {r.status_code}: {r.text}"
        return r.text

    async def open(self, token: str) -> None:
        handshake = await self.request("GET")
        assert handshake.startswith("0"), handshake
        self.sid = json.loads(handshake[1:])["sid"]
        assert (await self.request("POST", "40" + json.dumps({"token": token}))).lower() == "ok"
        assert (await self.poll())[0].startswith("40{")

    async def poll(self) -> list[str]:
        packets = (await self.request("GET")).split(SEP)
        for pkt in packets:
            if pkt == "2":  # the server's ping
                assert (await self.request("POST", "3")).lower() == "ok"
            elif pkt.startswith("43"):
                ack_id = int(pkt[2 : pkt.index("[")])
                self.acks[ack_id] = json.loads(pkt[pkt.index("[") :])[0]
        return packets

    async def call(self, ack_id: int, event: str, data: object) -> object:
        assert (
            await self.request("POST", f"42{ack_id}" + json.dumps([event, data]))
        ).lower() == "ok"
        while ack_id not in self.acks:
            await self.poll()
        return self.acks[ack_id]


async def stats_of_both_workers(url: str) -> dict[str, dict[str, int]]:
    """Each worker's relay counters from /health/ready, asked on new connections until
    both workers have answered."""
    seen: dict[str, dict[str, int]] = {}
    async with httpx.AsyncClient(
        base_url=url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
    ) as http:
        for _ in range(60):
            relay = (await http.get("/health/ready")).json()["relay"]
            seen[relay["worker"]] = relay
            if len(seen) == 2:
                break
    assert len(seen) == 2, f"only {list(seen)} answered /health/ready"
    return seen


async def test_polling_on_new_connections_is_relayed_by_both_workers(two_workers):
    async with httpx.AsyncClient(base_url=two_workers.url, timeout=10) as api:
        session = await Factory(api).session()
    clients: dict[str, PollingClient] = {}
    opened = []
    async with httpx.AsyncClient(
        base_url=two_workers.url,
        timeout=RELAY_TIMEOUT + 15,
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as http:
        # One session held by each worker (the Engine.IO sid names its owner).
        for _ in range(20):
            client = PollingClient(http)
            await client.open(session["customerToken"])
            opened.append(client)
            clients.setdefault(client.owner, client)
            if len(clients) == 2:
                break
        assert len(clients) == 2, "every session opened on one worker"
        for n in range(ROUNDS):
            for client in clients.values():
                ack = await client.call(n, "leave_session", session["id"])
                assert ack == {"ok": True, "sessionId": session["id"]}, ack
        for client in opened:
            await client.request("POST", "1")  # Engine.IO close

    stats = await stats_of_both_workers(two_workers.url)
    requests = sum(len(c.statuses) for c in opened)
    print(
        f"[relay] {requests} polling requests on new connections, longest "
        f"{max(w for c in opened for w in c.waits):.3f}s; per worker: {stats}"
    )
    for worker, relay in stats.items():
        assert relay["relayed"] > 0, f"worker {worker} relayed nothing: {relay}"
        assert relay["answered"] > 0, f"worker {worker} answered nothing relayed: {relay}"
        assert relay["timeouts"] == relay["refused"] == relay["ownerGone"] == 0, relay
        assert relay["longestWaitMs"] < RELAY_TIMEOUT * 1000, relay
    assert all(status == 200 for c in opened for status in c.statuses)
    assert all(c.acks.keys() >= set(range(ROUNDS)) for c in clients.values())
    assert max(w for c in opened for w in c.waits) < RELAY_TIMEOUT


async def test_relay_counts_of_health_and_metrics_are_one_record(two_workers):
    """Each worker's /health/ready counts add up to the /metrics sum over workers, every
    outcome included (one counter behind both: they were kept twice and drifted)."""
    async with httpx.AsyncClient(base_url=two_workers.url, timeout=10) as api:
        session = await Factory(api).session()
    async with httpx.AsyncClient(
        base_url=two_workers.url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
    ) as http:
        client = PollingClient(http)
        await client.open(session["customerToken"])
        for n in range(5):
            await client.call(n, "leave_session", session["id"])
        await client.request("POST", "1")
        stats = await stats_of_both_workers(two_workers.url)
        scraped = samples((await http.get("/metrics")).text)
    metric = {
        "relayed": [("sent", "ok")],
        "answered": [("answered", "ok"), ("answered", "failed")],
        "timeouts": [("sent", "timeout")],
        "refused": [("sent", "refused")],
        "ownerGone": [("sent", "no_owner")],
        "lateReplies": [("sent", "late_reply")],
    }
    for name, outcomes in metric.items():
        summed = sum(
            scraped[("helpline_polling_relayed_total", (("direction", d), ("outcome", o)))]
            for d, o in outcomes
        )
        assert summed == sum(relay[name] for relay in stats.values()), (name, stats)


async def test_a_starting_worker_relays_from_its_first_request(database_url, redis_url):
    """A worker serves as soon as its server is up, while its after-start work still runs
    (held open here by a test pause): a polling request for the other worker's session
    that reached it then was answered 400 "Invalid session" by the local Engine.IO, and
    the client had to start over (seen as a browser's "xhr poll error" on a loaded CI)."""
    env = {"WEB_CONCURRENCY": "2", "HELPLINE_TEST_START_PAUSE": "6"}
    with LiveServer.running("relay-start", database_url, redis_url, **env) as live:
        async with httpx.AsyncClient(base_url=live.url, timeout=10) as api:
            session = await Factory(api).session()
        async with httpx.AsyncClient(
            base_url=live.url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
        ) as http:
            client = PollingClient(http)
            await client.open(session["customerToken"])
            for n in range(6):
                ack = await client.call(n, "leave_session", session["id"])
                assert ack == {"ok": True, "sessionId": session["id"]}, ack
    assert all(status == 200 for status in client.statuses), client.statuses
