"""Joining without a gap: a message committed while a client joins reaches it.

`join_session` reads the history and puts the socket in the session's room; a message
committed between the two steps must be in the ack or in the live feed (or both: clients
drop a repeated seq). The server under test pauses between the steps
(HELPLINE_TEST_JOIN_PAUSE, ignored in production) and a message is committed inside the
pause at a different moment each round, so each round hits the window.
"""

from __future__ import annotations

import asyncio

import httpx

from app.config import Settings
from app.realtime import testpoints
from tests.sockets import Client, matching
from tests.support import Factory, LiveServer

PAUSE = 0.3
ROUNDS = 12


async def test_a_message_committed_during_a_join_is_in_the_ack_or_the_live_feed(
    database_url: str, redis_url: str
) -> None:
    env = {testpoints.JOIN_PAUSE: str(PAUSE)}
    with LiveServer.running("join-race", database_url, redis_url, **env) as live:
        async with httpx.AsyncClient(base_url=live.url, timeout=10) as api:
            make = Factory(api)
            agent = await make.admin_token()
            missed = []
            for round_ in range(ROUNDS):
                session = await make.session()
                customer = await Client(live.url, session["customerToken"]).connect()
                try:
                    first = await make.message(agent, session["id"], "before the join")
                    join = asyncio.create_task(
                        customer.call(
                            "join_session", {"sessionId": session["id"], "after": first["seq"]}
                        )
                    )
                    # Somewhere inside the pause, a different moment each round.
                    await asyncio.sleep(PAUSE * (0.1 + 0.7 * round_ / ROUNDS))
                    sent = await make.message(agent, session["id"], f"during join {round_}")
                    ack = await join
                    assert ack["ok"], ack
                    if sent["seq"] not in {m["seq"] for m in ack["messages"]}:
                        try:
                            await customer.wait_for(
                                "new_message", matching(seq=sent["seq"]), within=5
                            )
                        except AssertionError:
                            missed.append(round_)
                finally:
                    await customer.close()
            assert missed == [], f"missed in {len(missed)} of {ROUNDS} rounds: {missed}"


def test_the_join_pause_is_never_read_in_production() -> None:
    environ = {testpoints.JOIN_PAUSE: "5"}
    assert testpoints.join_pause(Settings(), environ) == 5.0
    assert testpoints.join_pause(Settings(env="production"), environ) == 0.0
    assert testpoints.join_pause(Settings(), {}) == 0.0
