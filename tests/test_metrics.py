"""/metrics: Prometheus text summed over every worker, and not public."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.sockets import Client
from tests.support import ARTIFACTS, Factory, LiveServer, samples

CUSTOMERS = 6
PER_CUSTOMER = 2


@pytest.fixture
def two_workers(database_url: str, redis_url: str) -> Iterator[LiveServer]:
    with LiveServer.running("metrics", database_url, redis_url, WEB_CONCURRENCY="2") as live:
        yield live


def worker_of(client: Client) -> str:
    """The worker holding a connection: Engine.IO session ids start with its id."""
    return str(client.sio.eio.sid).split(".", 1)[0]


async def test_a_scrape_sums_sockets_and_messages_over_both_workers(two_workers):
    clients: list[Client] = []
    async with httpx.AsyncClient(base_url=two_workers.url, timeout=10) as api:
        make = Factory(api)
        token = await make.admin_token()
        try:
            agent = await Client(two_workers.url, token).connect()
            clients.append(agent)
            sessions: list[tuple[dict[str, Any], Client]] = []
            # Connections land on whichever worker accepts them: go on until both hold some.
            # The one that just answered the REST call can win every race (40 of 40 in one
            # CI run, both workers up): past CUSTOMERS, pause so both wait on the socket.
            deadline = time.monotonic() + 60
            while len(sessions) < CUSTOMERS or len({worker_of(c) for c in clients}) < 2:
                assert time.monotonic() < deadline, "every connection went to one worker"
                if len(sessions) >= CUSTOMERS:
                    await asyncio.sleep(0.2)
                session = await make.session()
                customer = await Client(two_workers.url, session["customerToken"]).connect()
                clients.append(customer)
                sessions.append((session, customer))
            for session, customer in sessions:
                assert (await customer.call("join_session", session["id"]))["ok"]
                for i in range(PER_CUSTOMER):
                    sent = await customer.call(
                        "send_message", {"sessionId": session["id"], "content": f"m{i}"}
                    )
                    assert sent["ok"], sent
            await agent.wait_for(
                "new_message", lambda _: len(agent.of("new_message")) == 2 * len(sessions)
            )
            refused = await agent.call("send_message", {"sessionId": "nope", "content": "x"})
            assert not refused["ok"]
            scrapes = [(await api.get("/metrics")) for _ in range(4)]
        finally:
            for client in clients:
                await client.close()
    assert all(r.status_code == 200 for r in scrapes)
    (ARTIFACTS / "metrics-scrape.txt").write_text(scrapes[-1].text)
    assert scrapes[0].headers["content-type"].startswith("text/plain")
    got = samples(scrapes[-1].text)
    sent = PER_CUSTOMER * len(sessions)
    assert got[("helpline_sockets_connected", (("role", "customer"),))] == len(sessions)
    assert got[("helpline_sockets_connected", (("role", "admin"),))] == 1
    assert got[("helpline_messages_total", (("outcome", "created"),))] == sent
    events = (("event", "send_message"), ("outcome", "ok"))
    assert got[("helpline_socket_events_total", events)] == sent
    refusal = (("event", "send_message"), ("outcome", "validation_error"))
    assert got[("helpline_socket_events_total", refusal)] == 1
    assert got[("helpline_message_commit_to_emit_seconds_count", ())] == sent
    assert got[("helpline_db_pool_connections", (("state", "max"),))] == 2 * 10
    # Each worker froze its start-up heap (app/heap.py), ~110,000 objects, and times the
    # collections of generations 1 and 2 since (tests/test_heap.py times one).
    assert got[("helpline_gc_frozen_objects", ())] > 2 * 50_000
    assert ("helpline_gc_pause_seconds_count", (("generation", "2"),)) in got
    # Whichever worker answered, the sums were the same.
    assert len({samples(r.text)[("helpline_messages_total", (("outcome", "created"),))]
                for r in scrapes}) == 1  # fmt: skip


def test_metrics_need_the_token_when_one_is_set(database_url, redis_url):
    with LiveServer.running(
        "metrics-token", database_url, redis_url, METRICS_TOKEN="s3cret-m"
    ) as live:
        none = httpx.get(f"{live.url}/metrics")
        wrong = httpx.get(f"{live.url}/metrics", headers={"Authorization": "Bearer nope"})
        right = httpx.get(f"{live.url}/metrics", headers={"Authorization": "Bearer s3cret-m"})
    assert (none.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert "helpline_sockets_connected" in right.text


def test_without_a_token_metrics_answer_loopback_clients_only(database_url, redis_url):
    with LiveServer.running("metrics-ip", database_url, redis_url, TRUSTED_PROXIES="1") as live:
        local = httpx.get(f"{live.url}/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
        remote = httpx.get(f"{live.url}/metrics", headers={"X-Forwarded-For": "203.0.113.5"})
    assert local.status_code == 200
    assert remote.status_code == 403 and remote.json()["code"] == "forbidden"
