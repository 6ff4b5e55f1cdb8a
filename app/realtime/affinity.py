"""Long-polling on many workers without a sticky router.

An Engine.IO polling session lives in the memory of the worker that opened it, and the
kernel (or a platform router) spreads a client's next requests over any worker: those
answer 400 "Invalid session" and socket.io-client's default transports fail. Here every
session id starts with its worker's id, and a worker that gets a polling request for a
session it does not hold relays it over Redis to the owner and returns the owner's
answer. It works across processes and machines alike, as long as they share Redis.

A websocket upgrade cannot be relayed: on a foreign worker it is refused, the client
keeps polling (through the relay), and `transports: ["websocket"]` avoids all of it.

Bounded and counted: a worker holds at most `relay_max_in_flight` relayed requests (past
it: 503, the client reconnects and retries), waits `relay_timeout` seconds for the owner
(then a GET gets an empty poll, so the client just polls again, and a POST a 503), and an
owner ends a relayed GET with a NOOP after `HOLD` seconds if nothing else ended it, so a
live owner always answers first. `RelayStats` counts it all per worker (/health/ready).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
import redis.asyncio as aioredis
from engineio import packet
from sanic import Request
from sanic.response import HTTPResponse

from app import metrics, stopping
from app.outage import REDIS
from app.realtime.engine import EngineIO, SocketIO

log = logging.getLogger(__name__)

# Environ keys that cannot cross a process boundary (and are not needed for polling).
LOCAL_ONLY = ("wsgi.input", "wsgi.errors", "sanic.request")
RELAYED = "helpline.relayed"
# Seconds an owner lets a relayed long-poll GET wait before ending it with a NOOP (below
# the ping interval, so it normally ends with a ping or a packet first).
HOLD = 20.0
# An empty poll: what a GET whose owner did not answer in time gets (Engine.IO NOOP).
EMPTY_POLL = b"6"


# /health/ready's names for the counts kept in metrics.RELAYED (their one record).
COUNT_NAMES = {
    "relayed": [("sent", "ok")],  # forwarded to their owner and answered
    "answered": [("answered", "ok"), ("answered", "failed")],  # forwarded here, answered
    "timeouts": [("sent", "timeout")],  # the owner did not answer within relay_timeout
    "refused": [("sent", "refused")],  # over relay_max_in_flight: 503
    "owner_gone": [("sent", "no_owner")],  # no worker listening for the owner: 400
    "late_replies": [("sent", "late_reply")],  # an answer after its request timed out
}


@dataclass
class RelayStats:
    """One worker's relay state; its counts are read from metrics.RELAYED, which /metrics
    sums over workers (one counter, so the two views cannot drift apart)."""

    worker: str = ""
    in_flight: int = 0  # forwarded, waiting for the owner now
    longest_wait_ms: int = 0  # the longest a forwarded request waited for its answer

    def as_dict(self) -> dict[str, Any]:
        """camelCase, like every JSON body of the API: this worker's counts since start,
        its requests in flight and longest wait."""
        counts = metrics.relay_counts()
        body = {name: sum(counts[key] for key in keys) for name, keys in COUNT_NAMES.items()}
        body.update(asdict(self))
        return {_camel(k): v for k, v in body.items()}


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


class _Body:
    """The `wsgi.input` Engine.IO reads a relayed request's body from."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    async def read(self, length: int | None = None) -> bytes:
        chunk = self.payload if length is None else self.payload[:length]
        self.payload = self.payload[len(chunk) :]
        return chunk


class Relayed:
    """A polling request that arrived at another worker, as the owner receives it."""

    def __init__(self, environ: dict[str, Any], body: bytes) -> None:
        self.environ = {**environ, "wsgi.input": _Body(body), RELAYED: True}


class AffinityEngineIO(EngineIO):
    _async: dict[str, Any]
    worker_id: str
    relay: Relay | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker_id = secrets.token_hex(4)
        driver = self._async
        translate, respond = driver["translate_request"], driver["make_response"]
        self.respond_locally = respond

        def translate_request(request: Any) -> dict[str, Any]:
            if isinstance(request, Relayed):
                return request.environ
            environ: dict[str, Any] = translate(request)
            # The driver wraps the body in a class it defines per request, which every
            # open connection would keep alive (~2 KB each).
            environ["wsgi.input"] = _Body(request.body or b"")
            return environ

        def make_response(status: str, headers: list[Any], payload: Any, environ: Any) -> Any:
            if environ.get(RELAYED):
                return {"status": status, "headers": headers, "payload": payload}
            return respond(status, headers, payload, environ)

        # A per-server copy: the driver's dict is shared module state.
        self._async = {
            **driver,
            "translate_request": translate_request,
            "make_response": make_response,
        }

    def generate_id(self) -> str:
        return f"{self.worker_id}.{super().generate_id()}"

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        request = args[0] if args else None
        if self.relay is not None and isinstance(request, Request):
            sid = request.args.get("sid")
            owner = sid.partition(".")[0] if sid and "." in sid else None
            if owner and owner != self.worker_id and sid not in self.sockets:
                if request.args.get("transport") == "websocket":
                    return HTTPResponse("Upgrade only on the session's own worker", status=400)
                return await self.relay.forward(owner, request)
        return await super().handle_request(*args, **kwargs)


class AffinitySocketIO(SocketIO):
    def _engineio_server_class(self) -> type[AffinityEngineIO]:
        return AffinityEngineIO


class Relay:
    """Request/response between workers over Redis pub/sub, one channel per worker."""

    def __init__(
        self,
        eio: AffinityEngineIO,
        redis_url: str,
        namespace: str,
        timeout: float,
        max_in_flight: int = 2000,
    ):
        self.eio = eio
        # Bursts of relayed requests wait for a connection rather than fail.
        pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=64, timeout=5)
        self.redis = aioredis.Redis(connection_pool=pool)
        self.prefix = f"{namespace}:eio:"
        self.timeout = timeout
        # A live owner ends a relayed GET well before the asking worker gives up on it.
        self.hold = min(HOLD, timeout * 2 / 3)
        self.max_in_flight = max_in_flight
        self.stats = RelayStats(worker=eio.worker_id)
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()

    @property
    def inbox(self) -> str:
        return self.prefix + self.eio.worker_id

    async def start(self) -> None:
        self.eio.relay = self
        self._listener = asyncio.create_task(self._listen(), name="eio-relay")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout=5)

    async def stop(self) -> None:
        self.eio.relay = None
        if self._listener is not None:
            await stopping.cancel_all([self._listener])
        await self.redis.aclose(close_connection_pool=True)

    async def forward(self, owner: str, request: Request) -> HTTPResponse:
        """Send `request` to the worker `owner` and answer with what it answers."""
        environ = self.eio._async["translate_request"](request)
        if len(self.waiting) >= self.max_in_flight:
            metrics.RELAYED.labels("sent", "refused").inc()
            return HTTPResponse(
                "Too many relayed requests: retry", status=503, headers={"Retry-After": "1"}
            )
        body = request.body or b""
        request_id = secrets.token_hex(8)
        message = {
            "kind": "request",
            "id": request_id,
            "reply": self.inbox,
            "environ": {k: v for k, v in environ.items() if k not in LOCAL_ONLY},
            "body": base64.b64encode(body).decode(),
        }
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = future
        self.stats.in_flight = len(self.waiting)
        started = time.monotonic()
        try:
            receivers = await self.redis.publish(self.prefix + owner, orjson.dumps(message))
            if receivers == 0:
                # The owner is gone (restarted, killed): the client must reconnect.
                metrics.RELAYED.labels("sent", "no_owner").inc()
                return HTTPResponse("Invalid session", status=400)
            reply = await asyncio.wait_for(future, timeout=self.timeout)
        except TimeoutError:
            metrics.RELAYED.labels("sent", "timeout").inc()
            log.warning(
                "relayed %s for worker %s unanswered after %ss",
                request.method,
                owner,
                self.timeout,
            )
            if request.method == "GET":
                # An empty poll: the client polls again, on the same session.
                reply = {
                    "status": "200 OK",
                    "headers": [["Content-Type", "text/plain; charset=UTF-8"]],
                    "payload": base64.b64encode(EMPTY_POLL).decode(),
                }
            else:
                return HTTPResponse(
                    "Session owner did not answer: retry", status=503, headers={"Retry-After": "1"}
                )
        else:
            metrics.RELAYED.labels("sent", "ok").inc()
        finally:
            self.waiting.pop(request_id, None)
            self.stats.in_flight = len(self.waiting)
            waited = int((time.monotonic() - started) * 1000)
            self.stats.longest_wait_ms = max(self.stats.longest_wait_ms, waited)
        payload = base64.b64decode(reply["payload"])
        response: HTTPResponse = self.eio.respond_locally(
            reply["status"], reply["headers"], payload, environ
        )
        return response

    async def _handle(self, relayed: Relayed) -> Any:
        """The owner's side: Engine.IO's answer, a long-poll GET ended after HOLD s."""
        work = asyncio.ensure_future(self.eio.handle_request(relayed))
        if relayed.environ.get("REQUEST_METHOD") == "GET":
            done, _ = await asyncio.wait({work}, timeout=self.hold)
            if not done:
                sid = (parse_qs(relayed.environ.get("QUERY_STRING", "")).get("sid") or [""])[0]
                socket = self.eio.sockets.get(sid)
                if socket is not None:
                    socket.queue.put_nowait(packet.Packet(packet.NOOP))
        return await work

    async def _answer(self, message: dict[str, Any]) -> None:
        relayed = Relayed(message["environ"], base64.b64decode(message["body"]))
        try:
            result = await self._handle(relayed)
        except Exception as exc:  # the asking worker must hear back either way
            log.warning("relayed Engine.IO request failed: %r", exc)
            outcome = "failed"
            result = {"status": "400 BAD REQUEST", "headers": [], "payload": b""}
        else:
            outcome = "ok"
        payload = result["payload"]
        if isinstance(payload, str):
            payload = payload.encode()
        reply = {
            "kind": "reply",
            "id": message["id"],
            "status": result["status"],
            "headers": [list(h) for h in result["headers"]],
            "payload": base64.b64encode(payload or b"").decode(),
        }
        await self.redis.publish(message["reply"], orjson.dumps(reply))
        metrics.RELAYED.labels("answered", outcome).inc()

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.inbox)
                    REDIS.succeeded()
                    self._ready.set()
                    async for raw in pubsub.listen():
                        if raw.get("type") != "message":
                            continue
                        message = orjson.loads(raw["data"])
                        if message["kind"] == "request":
                            task = asyncio.create_task(self._answer(message))
                            self._answering.add(task)
                            task.add_done_callback(self._answering.discard)
                        else:
                            future = self.waiting.get(message["id"])
                            if future is not None and not future.done():
                                future.set_result(message)
                            else:
                                metrics.RELAYED.labels("sent", "late_reply").inc()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: resubscribe when it is back
                REDIS.failed("Engine.IO relay", exc)
                await asyncio.sleep(1)
