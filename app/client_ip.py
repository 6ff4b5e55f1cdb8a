"""The one rule for "the client's address", for REST requests and sockets alike.

Per-IP limits must key on the visitor, not on the router in front of us: behind Heroku's
router (or nginx, or a load balancer) every TCP peer is the proxy. Each trusted proxy
appends the address it saw to `X-Forwarded-For`, so with N trusted proxies the client is
the N-th entry from the right; anything further left was written by the client and is
ignored. With no trusted proxies (the default) the header is ignored entirely: a client
cannot choose its own address by sending one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from sanic import Request

UNKNOWN = "unknown"


def resolve(peer: str | None, forwarded_for: Iterable[str], trusted_proxies: int) -> str:
    """The client address from the TCP peer and the `X-Forwarded-For` header values (in
    the order received), trusting the rightmost `trusted_proxies` hops only."""
    peer = peer or UNKNOWN
    if trusted_proxies <= 0:
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    if not hops:
        # A trusted proxy always appends: no header means the peer is not that proxy.
        return peer
    # Fewer hops than trusted proxies: the leftmost is still written by a trusted proxy.
    candidate = hops[-min(trusted_proxies, len(hops))]
    return _address(candidate) or peer


def _address(text: str) -> str | None:
    """A bare IP address from a header hop (`1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`)."""
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _trusted(request: Request) -> int:
    settings = getattr(request.app.ctx, "settings", None)
    return int(getattr(settings, "trusted_proxies", 0) or 0)


def client_ip(request: Request) -> str:
    """A REST request's client address (see the module docstring for the rule)."""
    peer = request.conn_info.client_ip if request.conn_info else None
    return resolve(peer, request.headers.getall("x-forwarded-for", []), _trusted(request))


def environ_client_ip(environ: Mapping[str, Any], trusted_proxies: int) -> str:
    """A Socket.IO connection's client address, from its Engine.IO (WSGI-style) environ."""
    request = environ.get("sanic.request")
    if isinstance(request, Request):
        return client_ip(request)
    # A polling request relayed from another worker: the environ crossed as plain data.
    forwarded = environ.get("HTTP_X_FORWARDED_FOR")
    return resolve(environ.get("REMOTE_ADDR"), [forwarded] if forwarded else [], trusted_proxies)
