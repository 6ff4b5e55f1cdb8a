"""The messaging scenario: customers and agents on different workers, a fixed total send
rate per phase, every message stamped with the time it was due.

The generator runs in `processes` OS processes (one Python process cannot parse thousands
of frames a second and keep its send schedule). Each holds a slice of the customers and
agents, sends its share of the rate open-loop (the schedule does not wait for acks) and
records, for every `new_message` that reaches the other side, the latency since the
message was due by the schedule (not since the send task ran: a generator or server that
falls behind would otherwise hide its own queueing, "coordinated omission"). Times come
from the monotonic clock, which every process on the machine shares. The first seconds of
each phase are a warm-up, counted for lost and duplicated messages but not for rates or
latencies. Each message also carries the older stamps, so the report shows on the same
deliveries what each fix changed (`method`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing as mp
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import httpx
import psutil

from bench import stack, stats
from bench.sio import SioClient, connect_on

PASSWORD = "bench password 1234"
DRAIN_SECONDS = 3.0
# Two of the server's 1 s chores (manager.SWEEP_SECONDS: room-channel sweep, counters).
SETTLE_SECONDS = 2.5


@dataclass(frozen=True)
class Phase:
    rate: float
    seconds: float
    # Leading seconds excluded from rates and latencies (connections, caches and plans warm).
    warmup: float = 1.0


@dataclass(frozen=True)
class Plan:
    customers: int
    agents: int
    phases: tuple[Phase, ...]
    processes: int = 2
    customer_share: float = 0.5


@dataclass(frozen=True)
class Slice:
    """What one generator process drives."""

    index: int
    url: str
    agent_tokens: list[str]
    customers: list[tuple[int, str, str]]  # (session index, session id, token)
    session_ids: list[str]
    agents_worker: str
    multi_worker: bool
    phases: tuple[Phase, ...]
    rate_share: float
    customer_share: float


async def setup_people(url: str, customers: int, agents: int) -> tuple[list[str], list[Any]]:
    """Agents (admins) and customer sessions through the public API."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as api:
        tokens: list[str] = []
        for i in range(agents):
            headers = {"Authorization": f"Bearer {tokens[0]}"} if tokens else {}
            r = await api.post(
                "/api/auth/register",
                json={"email": f"agent{i}@bench.example", "password": PASSWORD},
                headers=headers,
            )
            r.raise_for_status()
            tokens.append(r.json()["token"])
        gate = asyncio.Semaphore(16)

        async def one(i: int) -> Any:
            async with gate:
                r = await api.post("/api/sessions", json={"userId": f"bench-user-{i}"})
                r.raise_for_status()
                return r.json()

        sessions = await asyncio.gather(*(one(i) for i in range(customers)))
    return tokens, sessions


async def find_workers(url: str, token: str, expected: int) -> list[str]:
    """The worker ids behind `url`, learnt from where probe connections land."""
    seen: list[str] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(60 * expected):
            client = SioClient(http, url, token)
            await client.connect()
            await client.close()
            if client.worker not in seen:
                seen.append(client.worker)
            if len(seen) >= expected:
                break
    return seen


class Meter(Protocol):
    def cpu_snapshot(self) -> dict[str, dict[int, float]]: ...

    def pubsub_counters(self) -> dict[str, dict[str, int]]: ...

    def rss_per_worker(self) -> list[int]: ...


def run(url: str, plan: Plan, workers: int, meter: Meter) -> dict[str, Any]:
    """Drive `plan` against the server at `url`: figures per phase."""
    tokens, sessions = asyncio.run(setup_people(url, plan.customers, plan.agents))
    worker_ids = asyncio.run(find_workers(url, tokens[0], workers))
    session_ids = [s["id"] for s in sessions]
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(plan.processes + 1)
    queue = ctx.Queue()
    procs = []
    for p in range(plan.processes):
        part = Slice(
            index=p,
            url=url,
            agent_tokens=tokens[p :: plan.processes],
            customers=[
                (i, s["id"], s["customerToken"])
                for i, s in enumerate(sessions)
                if i % plan.processes == p
            ],
            session_ids=session_ids,
            agents_worker=worker_ids[0],
            multi_worker=len(worker_ids) > 1,
            phases=plan.phases,
            rate_share=1 / plan.processes,
            customer_share=plan.customer_share,
        )
        proc = ctx.Process(target=_process_main, args=(part, barrier, queue), daemon=True)
        proc.start()
        procs.append(proc)
    generators = [psutil.Process(proc.pid) for proc in procs]
    meters: list[dict[str, Any]] = []
    try:
        for _ in plan.phases:
            barrier.wait()
            cpu0, gen0 = meter.cpu_snapshot(), _cpu(generators)
            bus0 = meter.pubsub_counters()
            barrier.wait()
            cpu = stack.cpu_delta(cpu0, meter.cpu_snapshot())
            meters.append(
                {
                    "pubsub": pubsub_delta(bus0, meter.pubsub_counters()),
                    "cpu_s": cpu,
                    "server_cpu_s": cpu["workers"],
                    "generator_cpu_s": round(_cpu(generators) - gen0, 3),
                    "rss_per_worker_mb": [round(r / 2**20, 1) for r in meter.rss_per_worker()],
                }
            )
    except threading.BrokenBarrierError:
        pass
    outs = [queue.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
    fatal = [o["fatal"] for o in outs if "fatal" in o]
    if fatal:
        raise RuntimeError(f"load generator failed: {fatal}")
    agents = [f"a{o['index']}.{n}" for o in outs for n in range(o["agents"])]
    phases = []
    for no, phase in enumerate(plan.phases):
        figures = summarise(no, phase, outs, agents)
        figures.update(meters[no])
        # The CPU window spans the whole phase (warm-up and drain too): per message sent.
        acked = figures["messages_acked"]
        per_1000 = {
            group: round(seconds / acked * 1000, 3) if acked else None
            for group, seconds in figures["cpu_s"].items()
        }
        per_1000["all"] = round(sum(figures["cpu_s"].values()) / acked * 1000, 3) if acked else None
        figures["cpu_s_per_1000_msgs"] = per_1000
        figures["server_cpu_s_per_1000_msgs"] = per_1000["workers"]
        phases.append(figures)
    return {
        "customers": sum(o["customers"] for o in outs),
        "agents": len(agents),
        "generator_processes": plan.processes,
        "workers": worker_ids,
        "connect_errors": [e for o in outs for e in o["connect_errors"]][:10],
        "connect_error_count": sum(len(o["connect_errors"]) for o in outs),
        "dropped_connections": [d for o in outs for d in o["dropped"]],
        "phases": phases,
    }


def pubsub_delta(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> dict[str, Any] | None:
    """Per worker, what its Redis listener received from other workers in the phase and
    how much of it reached a local socket (None when the server does not report it:
    python-socketio's own manager receives and decodes every emit on every worker).
    Every message received has its header decoded, so "decoded but undelivered" counts
    all that was received and sent to no socket."""
    if not after:
        return None
    workers = [
        {k: v - before.get(host, {}).get(k, 0) for k, v in counters.items()}
        for host, counters in sorted(after.items())
    ]
    received = sum(w["received"] - w["own"] for w in workers)
    delivered = sum(w["delivered"] for w in workers)
    return {
        "workers": workers,
        "received_from_others": received,
        "delivered": delivered,
        "published": sum(w["published"] for w in workers),
        "decoded_undelivered_pct": round(100 * (received - delivered) / received, 2)
        if received
        else 0.0,
    }


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def summarise(
    no: int, phase: Phase, outs: list[dict[str, Any]], agents: list[str]
) -> dict[str, Any]:
    """Offered and delivered rates, latencies per direction, errors, lost and duplicated
    deliveries; `method` recomputes the p99 the ways the benchmark used to."""
    prefix = f"p{no}."
    sends = [s for o in outs for s in o["sends"] if s[0].startswith(prefix)]
    measured = {s[0] for s in sends if not s[6]}
    got: dict[tuple[str, str], int] = {}
    by_due: dict[str, list[float]] = {"a": [], "c": []}  # receiver side: agent, customer
    at_send: list[float] = []
    wall: list[float] = []
    with_warmup: list[float] = []
    for o in outs:
        for msg_id, receiver, due_s, sent_s, wall_s in o["receipts"]:
            if not msg_id.startswith(prefix):
                continue
            got[(msg_id, receiver)] = got.get((msg_id, receiver), 0) + 1
            with_warmup.append(wall_s)
            if msg_id in measured:
                by_due[receiver[0]].append(due_s)
                at_send.append(sent_s)
                wall.append(wall_s)
    acked = [s for s in sends if s[5] is None]
    errors = [s[5] for s in sends if s[5] is not None]
    lost: list[tuple[str, str]] = []
    complete = 0
    for msg_id, kind, idx, _, _, _, warm in acked:
        expected = agents if kind == "u" else [f"c{idx}"]
        missing = [(msg_id, r) for r in expected if (msg_id, r) not in got]
        lost += missing
        complete += not missing and not warm
    windows = [o["windows"][no] for o in outs if len(o["windows"]) > no]
    seconds = max(e for _, e in windows) - min(s for s, _ in windows) if windows else phase.seconds
    latencies = by_due["a"] + by_due["c"]
    measured_sends = [s for s in sends if not s[6]]
    return {
        "target_rate": phase.rate,
        "seconds": round(seconds, 2),
        "warmup_seconds": phase.warmup,
        "offered_msgs_per_s": round(len(measured_sends) / seconds, 1),
        "delivered_msgs_per_s": round(complete / seconds, 1),
        "messages_sent": len(sends),
        "messages_acked": len(acked),
        "messages_measured": len(measured_sends),
        "deliveries": len(latencies),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "lost": len(lost),
        "lost_samples": lost[:5],
        "duplicated": sum(n - 1 for n in got.values() if n > 1),
        "e2e_ms": stats.summary(latencies),
        "e2e_ms_customer_to_agent": stats.summary(by_due["a"]),
        "e2e_ms_agent_to_customer": stats.summary(by_due["c"]),
        "ack_ms": stats.summary([s[4] for s in measured_sends if s[4] is not None]),
        # The same deliveries' p99, with each fix undone in turn, and all of them at once.
        "method": {
            "p99_ms_now": stats.p99_ms(latencies),
            "p99_ms_stamped_when_sent": stats.p99_ms(at_send),
            "p99_ms_wall_clock": stats.p99_ms(wall),
            "p99_ms_percentile_before_fix": stats.p99_ms(latencies, before_fix=True),
            "p99_ms_warmup_included": stats.p99_ms(
                [d for o in outs for m, _, d, _, _ in o["receipts"] if m.startswith(prefix)]
            ),
            "p99_ms_as_before_issue_15": stats.p99_ms(with_warmup, before_fix=True),
        },
    }


def _process_main(part: Slice, barrier: Any, results: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    stats.raise_nofile()
    try:
        out = asyncio.run(_drive(part, barrier))
    except BaseException as exc:
        barrier.abort()
        out = {"index": part.index, "fatal": repr(exc)}
    results.put(out)


async def _drive(part: Slice, barrier: Any) -> dict[str, Any]:
    # (message id, receiver, s since due, s since the send ran, the same by the wall clock)
    receipts: list[tuple[str, str, float, float, float]] = []
    # (message id, kind, session index, due, ack s since due, error, in the warm-up)
    sends: list[tuple[str, str, int, float, float | None, str | None, bool]] = []
    connect_errors: list[str] = []

    def listener_for(receiver: str, side: str) -> Any:
        def on(event: str, data: Any) -> None:
            if event != "new_message" or data.get("senderType") == side:
                return
            now, now_wall = time.monotonic(), time.time()
            msg_id, due, sent, sent_wall = str(data.get("content", "")).split(" ")
            receipts.append(
                (msg_id, receiver, now - float(due), now - float(sent), now_wall - float(sent_wall))
            )

        return on

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        agents: list[SioClient] = []
        customers: list[tuple[int, str, SioClient]] = []

        def on_agents_worker(w: str) -> bool:
            return w == part.agents_worker

        def off_agents_worker(w: str) -> bool:
            return not part.multi_worker or w != part.agents_worker

        for n, token in enumerate(part.agent_tokens):
            try:
                client = await connect_on(http, part.url, token, on_agents_worker)
                client.listener = listener_for(f"a{part.index}.{n}", "admin")
                agents.append(client)
            except Exception as exc:
                connect_errors.append(repr(exc))
        gate = asyncio.Semaphore(50)

        async def join(i: int, sid: str, token: str) -> None:
            async with gate:
                try:
                    client = await connect_on(http, part.url, token, off_agents_worker)
                    client.listener = listener_for(f"c{i}", "user")
                    ack = await client.emit("join_session", sid)
                    if not ack.get("ok"):
                        raise RuntimeError(str(ack))
                    customers.append((i, sid, client))
                except Exception as exc:
                    connect_errors.append(repr(exc))

        await asyncio.gather(*(join(i, sid, tok) for i, sid, tok in part.customers))
        # Sends whose acknowledgement has not come yet (each sent with a callback: no task
        # or timer per message in the generator, whose CPU the server's cores pay for).
        outstanding = 0
        answered = asyncio.Event()

        def send(
            msg_id: str, kind: str, idx: int, sid: str, client: SioClient, due: float, warm: bool
        ) -> None:
            nonlocal outstanding
            content = f"{msg_id} {due:.6f} {time.monotonic():.6f} {time.time():.6f}"
            payload = {"sessionId": sid, "content": content, "clientMessageId": msg_id}

            def acked(ack: Any, error: BaseException | None) -> None:
                nonlocal outstanding
                outstanding -= 1
                if not outstanding:
                    answered.set()
                if error is not None:
                    sends.append((msg_id, kind, idx, due, None, repr(error), warm))
                elif ack.get("ok"):
                    sends.append((msg_id, kind, idx, due, time.monotonic() - due, None, warm))
                else:
                    sends.append((msg_id, kind, idx, due, None, str(ack.get("error")), warm))

            outstanding += 1
            answered.clear()
            client.send_event("send_message", payload, acked)

        # The generator's own full collections (60,000 objects after setup: 40-50 ms with
        # its loop stopped) read as server latency on every delivery they delayed;
        # frozen, a collection walks only what the phase made.
        gc.collect()
        gc.freeze()
        # Setup's own traffic (presence of each connection, channels of connections that
        # landed on the wrong worker, unsubscribed by the next sweep) is reported by the
        # workers' listeners about once a second: let it be, so a phase's pub/sub counts
        # start from a report taken after it rather than one up to a second old.
        await asyncio.sleep(SETTLE_SECONDS)
        rng = random.Random(part.index)
        phase_windows = []
        for phase_no, phase in enumerate(part.phases):
            await asyncio.to_thread(barrier.wait)
            interval = 1 / (phase.rate * part.rate_share)
            start = time.monotonic()
            n = 0
            while True:
                due = start + n * interval
                if due - start >= phase.seconds:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                msg_id = f"p{phase_no}.{part.index}.{n}.{uuid.uuid4().hex[:6]}"
                warm = due - start < phase.warmup
                if customers and (not agents or rng.random() < part.customer_share):
                    idx, sid, client = rng.choice(customers)
                    send(msg_id, "u", idx, sid, client, due, warm)
                else:
                    idx = rng.randrange(len(part.session_ids))
                    client = rng.choice(agents)
                    send(msg_id, "a", idx, part.session_ids[idx], client, due, warm)
                n += 1
            window = (start + phase.warmup, time.monotonic())
            # Every send is answered by then: acked, refused, or failed after 30 s.
            if outstanding:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(answered.wait(), 40)
            await asyncio.sleep(DRAIN_SECONDS)
            phase_windows.append(window)
            await asyncio.to_thread(barrier.wait)
        # A connection the server closed mid-run explains every delivery it then missed.
        dropped = [f"a{part.index}.{n}" for n, c in enumerate(agents) if not c.open]
        dropped += [f"c{i}" for i, _, c in customers if not c.open]
        for client in agents:
            await client.close()
        for _, _, client in customers:
            await client.close()
    return {
        "index": part.index,
        "agents": len(agents),
        "customers": len(customers),
        "connect_errors": connect_errors,
        "dropped": dropped,
        "sends": sends,
        "receipts": receipts,
        "windows": phase_windows,
    }
