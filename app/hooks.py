"""Every place the server overrides or relies on a library's private name, declared once.

A private name can change in any release, and then an override is silently dead (a fix
turned off) or the library calls something we no longer match. pyproject holds these
libraries to one minor release and the lock to one version; on top of that each hook says
here what it expects (the name, its kind, its leading parameters, and the library code
that calls it), `check()` runs at start-up (`helpline serve`, every worker, `helpline
doctor`) and refuses to start with a message naming what no longer fits. Each hook names
the test that fails when its effect disappears.

To add one: append a `Hook` to `HOOKS` (tests/test_hooks.py also fails for a subclass of
a library class that overrides a private method not listed here).
"""

from __future__ import annotations

import importlib
import inspect
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

from app.config import ConfigError

Kind = Literal["coroutine function", "async generator function", "function", "mapping"]


@dataclass(frozen=True)
class Hook:
    """One private name of a library, as we use it."""

    library: str  # its distribution, for the version in messages
    name: str  # dotted path: module, then attributes
    kind: Kind
    used_by: str  # where we override or use it
    why: str
    test: str  # the test that fails when the hook's effect disappears
    params: tuple[str, ...] = ()  # leading parameter names we rely on
    keys: tuple[str, ...] = ()  # for a mapping: keys we replace or read
    # (dotted function, text its source must contain): how the library reaches the name.
    called_in: tuple[tuple[str, str], ...] = ()


class HookError(ConfigError):
    """A hooked library name is missing or changed: this release is not supported."""


_KIND_CHECKS: dict[Kind, Callable[[Any], bool]] = {
    "coroutine function": inspect.iscoroutinefunction,
    "async generator function": inspect.isasyncgenfunction,
    "function": inspect.isfunction,
    "mapping": lambda value: isinstance(value, Mapping),
}

_POLL = "tests/test_multiworker.py::test_a_polling_client_that_disconnects_is_let_go_at_once"
_RELAY = "tests/test_relay.py::test_polling_on_new_connections_is_relayed_by_both_workers"

HOOKS: list[Hook] = [
    Hook(
        library="python-engineio",
        name="engineio.async_server.AsyncServer._trigger_event",
        kind="coroutine function",
        params=("self", "event"),
        called_in=(("engineio.async_socket.AsyncSocket.close", "_trigger_event("),),
        used_by="app/realtime/engine.py EngineIO._trigger_event",
        why="a polling client's CLOSE gets its pending GET answered with a NOOP at once "
        "(upstream leaves it to the ~30 s ping timeout): docs/upstream/engineio-polling-close.md",
        test=_POLL,
    ),
    Hook(
        library="python-engineio",
        name="engineio.async_socket.AsyncSocket._send_ping",
        kind="coroutine function",
        params=("self",),
        called_in=(
            ("engineio.async_socket.AsyncSocket.schedule_ping", "start_background_task("),
            ("engineio.async_socket.AsyncSocket.schedule_ping", "self._send_ping"),
        ),
        used_by="app/realtime/engine.py EngineIO.start_background_task (by function name)",
        why="a session's next ping goes to the shared timer of app/realtime/pings.py instead "
        "of a sleeping task per session: docs/upstream/engineio-shared-ping-timer.md",
        test="tests/test_lean_websocket.py::"
        "test_pings_of_many_sessions_share_one_task_and_silent_ones_are_closed",
    ),
    Hook(
        library="python-engineio",
        name="engineio.async_drivers.sanic._async",
        kind="mapping",
        keys=("translate_request", "make_response", "websocket", "create_route"),
        called_in=(
            ("engineio.async_server.AsyncServer.handle_request", "_async['translate_request']"),
            ("engineio.async_server.AsyncServer._make_response", "_async['make_response']"),
            ("engineio.async_server.AsyncServer.attach", "_async['create_route']("),
        ),
        used_by="app/realtime/affinity.py AffinityEngineIO.__init__ (a per-server copy); "
        "app/realtime/websocket.py driver (websocket, create_route, translate_request)",
        why="relayed polling requests come in as environs and go back as plain dicts; "
        "bodies are read from a small reader instead of a per-request class; websockets "
        "run on our transport (the next hooks)",
        test=_RELAY,
    ),
    Hook(
        library="python-engineio",
        name="engineio.async_drivers.sanic.make_response",
        kind="function",
        params=("status", "headers", "payload", "environ"),
        used_by="app/realtime/affinity.py AffinityEngineIO make_response (wraps it)",
        why="a relayed request's answer is returned as data; a local one goes through it",
        test=_RELAY,
    ),
    Hook(
        library="python-socketio",
        name="socketio.async_server.AsyncServer._engineio_server_class",
        kind="function",
        params=("self",),
        called_in=(("socketio.base_server.BaseServer.__init__", "self._engineio_server_class()"),),
        used_by="app/realtime/engine.py SocketIO, app/realtime/affinity.py AffinitySocketIO",
        why="python-socketio builds our Engine.IO server (the fixes above, the relay)",
        test=_RELAY,
    ),
    Hook(
        library="piccolo",
        name="piccolo.engine.postgres.PostgresTransaction.__aenter__",
        kind="coroutine function",
        called_in=(
            (
                "piccolo.engine.postgres.PostgresTransaction.__aenter__",
                "self.context = self.engine.current_transaction.set(self)",
            ),
            ("piccolo.engine.postgres.PostgresTransaction.__aenter__", "self.connection ="),
            ("piccolo.engine.postgres.PostgresEngine.__init__", "self.current_transaction"),
        ),
        used_by="app/db.py transaction/_finish (tx.connection, tx.context, "
        "engine.current_transaction)",
        why="a transaction whose COMMIT fails gives its connection back and clears the "
        "current-transaction marker (Piccolo leaks both)",
        test="tests/test_hooks.py::test_a_transaction_whose_commit_fails_gives_its_connection_back",
    ),
    Hook(
        library="piccolo",
        name="piccolo.engine.sqlite.SQLiteTransaction.__aenter__",
        kind="coroutine function",
        called_in=(
            (
                "piccolo.engine.sqlite.SQLiteTransaction.__aenter__",
                "self.context = self.engine.current_transaction.set(self)",
            ),
            ("piccolo.engine.sqlite.SQLiteTransaction.__aenter__", "self.connection ="),
        ),
        used_by="app/db.py _finish (embedded mode: tx.connection.close, tx.context)",
        why="the same as PostgresTransaction, for SQLite's connection per transaction",
        test="tests/test_hooks.py::test_a_transaction_whose_commit_fails_gives_its_connection_back",
    ),
]

# Socket guards (issue 10, app/realtime/guards.py).
_GUARDS = "tests/test_socket_guards.py::"
HOOKS += [
    Hook(
        library="python-socketio",
        name="socketio.async_server.AsyncServer._handle_eio_connect",
        kind="coroutine function",
        params=("self", "eio_sid", "environ"),
        called_in=(("socketio.base_server.BaseServer.__init__", "self._handle_eio_connect)"),),
        used_by="app/realtime/guards.py GuardedServer._handle_eio_connect",
        why="connections per client address and unauthenticated ones are refused first",
        test=_GUARDS + "test_connections_per_client_address_are_capped",
    ),
    Hook(
        library="python-socketio",
        name="socketio.async_server.AsyncServer._handle_eio_disconnect",
        kind="coroutine function",
        params=("self", "eio_sid", "reason"),
        called_in=(("socketio.base_server.BaseServer.__init__", "self._handle_eio_disconnect)"),),
        used_by="app/realtime/guards.py GuardedServer._handle_eio_disconnect",
        why="a closed connection gives its per-address slot back",
        test=_GUARDS + "test_connections_per_client_address_are_capped",
    ),
    Hook(
        library="python-socketio",
        name="socketio.async_server.AsyncServer._handle_eio_message",
        kind="coroutine function",
        params=("self", "eio_sid", "data"),
        called_in=(("socketio.base_server.BaseServer.__init__", "self._handle_eio_message)"),),
        used_by="app/realtime/guards.py GuardedServer._handle_eio_message",
        why="binary and malformed packets are refused before python-socketio parses them",
        test=_GUARDS + "test_binary_packets_are_refused_and_never_stored",
    ),
    Hook(
        library="python-socketio",
        name="socketio.async_server.AsyncServer._handle_connect",
        kind="coroutine function",
        params=("self", "eio_sid", "namespace", "data"),
        called_in=(("socketio.async_server.AsyncServer._handle_eio_message", "._handle_connect("),),
        used_by="app/realtime/guards.py GuardedServer._handle_connect",
        why="a namespace CONNECT spends the connection's event budget",
        test=_GUARDS + "test_events_past_a_connections_budget_are_refused_with_rate_limited",
    ),
    Hook(
        library="python-socketio",
        name="socketio.async_server.AsyncServer._handle_event",
        kind="coroutine function",
        params=("self", "eio_sid", "namespace", "id", "data"),
        called_in=(("socketio.async_server.AsyncServer._handle_eio_message", "._handle_event("),),
        used_by="app/realtime/guards.py GuardedServer._handle_event",
        why="events past the budget, reserved or unknown names are answered, not dispatched",
        test=_GUARDS + "test_an_unknown_event_is_answered_unknown_event",
    ),
    Hook(
        library="python-socketio",
        name="socketio.async_server.AsyncServer._handle_event_internal",
        kind="coroutine function",
        params=("self", "server", "sid", "eio_sid", "data", "namespace", "id"),
        called_in=(
            ("socketio.async_server.AsyncServer._handle_event", "self._handle_event_internal"),
        ),
        used_by="app/realtime/guards.py GuardedServer._handle_event_internal",
        why="an admitted event gives its in-flight slot back once answered",
        test=_GUARDS + "test_events_under_way_are_capped_and_their_slots_given_back",
    ),
    Hook(
        library="python-socketio",
        name="socketio.async_server.AsyncServer._send_packet",
        kind="coroutine function",
        params=("self", "eio_sid", "pkt"),
        used_by="app/realtime/guards.py GuardedServer (acks for refused packets)",
        why="a refused event that asked for an ack still gets one",
        test=_GUARDS + "test_binary_packets_are_refused_and_never_stored",
    ),
    Hook(
        library="python",
        name="asyncio.queues.Queue._put",
        kind="function",
        params=("self", "item"),
        called_in=(("asyncio.queues.Queue._init", "self._queue = "),),
        used_by="app/realtime/guards.py SendQueue._put (and its _queue)",
        why="an Engine.IO send queue counts the bytes waiting for its client",
        test=_GUARDS + "test_a_client_that_never_reads_is_closed_and_its_queue_dropped",
    ),
    Hook(
        library="python",
        name="asyncio.queues.Queue._get",
        kind="function",
        params=("self",),
        used_by="app/realtime/guards.py SendQueue._get",
        why="the same, as bytes leave",
        test=_GUARDS + "test_a_client_that_never_reads_is_closed_and_its_queue_dropped",
    ),
]

# Idle connections (issue 16): the lean websocket transport (app/realtime/websocket.py)
# and the shared ping timer (app/realtime/pings.py).
_LEAN = "tests/test_lean_websocket.py::"
_OUTLIVES = _LEAN + "test_a_websocket_outlives_the_request_that_opened_it"
HOOKS += [
    Hook(
        library="python-engineio",
        name="engineio.async_socket.AsyncSocket._upgrade_websocket",
        kind="coroutine function",
        params=("self", "environ"),
        called_in=(
            ("engineio.async_socket.AsyncSocket._upgrade_websocket", "_async['websocket']("),
            ("engineio.async_socket.AsyncSocket._upgrade_websocket", "self._websocket_handler"),
        ),
        used_by="app/realtime/websocket.py driver (LeanWebSocket, create_route, the environ)",
        why="an accepted websocket is taken over by a protocol of ours (no task, queue or "
        "Sanic request per connection): docs/upstream/engineio-lean-websocket.md",
        test=_OUTLIVES,
    ),
    Hook(
        library="python-engineio",
        name="engineio.async_socket.AsyncSocket._websocket_handler",
        kind="coroutine function",
        params=("self", "ws"),
        used_by="app/realtime/websocket.py LeanWebSocket (its __self__ is the session)",
        why="the session being upgraded is the handler's owner",
        test=_OUTLIVES,
    ),
    Hook(
        library="python-engineio",
        name="engineio.base_socket.BaseSocket.__init__",
        kind="function",
        params=("self", "server", "sid"),
        called_in=(("engineio.base_socket.BaseSocket.__init__", "self.queue = "),),
        used_by="app/realtime/websocket.py LeanSocket.take_over (drops the queue)",
        why="an upgraded session writes to its transport; its polling queue is let go",
        test=_LEAN + "test_a_message_in_fragments_is_reassembled",
    ),
    Hook(
        library="sanic",
        name="sanic.app.Sanic.handle_request",
        kind="coroutine function",
        params=("self", "request"),
        called_in=(("sanic.app.Sanic.handle_request", 'hasattr(handler, "is_websocket")'),),
        used_by="app/realtime/websocket.py create_route (is_websocket on the endpoint)",
        why="the endpoint returns no response once the websocket took the connection over",
        test=_OUTLIVES,
    ),
    Hook(
        library="sanic",
        name="sanic.server.protocols.base_protocol.SanicProtocol.close",
        kind="function",
        params=("self",),
        called_in=(
            ("sanic.server.protocols.base_protocol.SanicProtocol.close", "self.transport is None"),
            (
                "sanic.server.protocols.base_protocol.SanicProtocol.connection_made",
                "self.connections.add(self)",
            ),
            (
                "sanic.server.protocols.http_protocol.HttpProtocol.check_timeouts",
                "self._callback_check_timeouts = ",
            ),
        ),
        used_by="app/realtime/websocket.py detach (transport, connections, "
        "_callback_check_timeouts of Sanic's protocol)",
        why="Sanic lets go of a connection the websocket took: no timeout, no close when the "
        "handler returns, no wait for it at stop",
        test=_OUTLIVES,
    ),
]


def _resolve(dotted: str) -> Any:
    """The object at a dotted path: the longest importable module, then attributes
    (looked up without running descriptors, so a method stays a function)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            value = inspect.getattr_static(value, attr)
        return value
    raise ImportError(dotted)


def _version(library: str) -> str:
    if library == "python":
        return platform.python_version()
    try:
        return metadata.version(library)
    except metadata.PackageNotFoundError:
        return "(not installed)"


def problem(hook: Hook) -> str | None:
    """What no longer fits `hook` in the installed library, or None."""
    try:
        value = _resolve(hook.name)
    except (ImportError, AttributeError):
        return f"{hook.name} is missing"
    if isinstance(value, staticmethod | classmethod):
        value = value.__func__
    if not _KIND_CHECKS[hook.kind](value):
        return f"{hook.name} is no longer a {hook.kind}"
    if hook.params:
        try:
            names = tuple(inspect.signature(value).parameters)
        except (TypeError, ValueError):
            names = ()
        if names[: len(hook.params)] != hook.params:
            return f"{hook.name} takes ({', '.join(names)}), expected ({', '.join(hook.params)}, …)"
    missing = [key for key in hook.keys if key not in value]
    if missing:
        return f"{hook.name} has no {', '.join(missing)}"
    for where, text in hook.called_in:
        try:
            source = inspect.getsource(_resolve(where))
        except (ImportError, AttributeError, OSError, TypeError):
            return f"{where} is missing (it should reach {hook.name})"
        if text not in source:
            return f"{where} no longer contains {text!r}"
    return None


def problems(hooks: list[Hook] | None = None) -> list[str]:
    """One line per hook that no longer fits; empty when all do."""
    found = []
    for hook in HOOKS if hooks is None else hooks:
        what = problem(hook)
        if what is not None:
            found.append(
                f"{hook.library} {_version(hook.library)} does not fit a hook: {what}; "
                f"{hook.used_by} relies on it ({hook.why}). Install the locked versions "
                f"(requirements.txt) or update the hook in app/hooks.py and its test {hook.test}"
            )
    return found


def check() -> None:
    """Refuse to start on a library release whose hooked names changed."""
    found = problems()
    if found:
        raise HookError("; ".join(found))
