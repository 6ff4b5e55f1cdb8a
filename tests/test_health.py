"""Liveness and readiness."""

from __future__ import annotations


async def test_health_answers_ok(api):
    r = await api.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_ready_reports_database_and_redis(api):
    r = await api.get("/health/ready")
    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in ("status", "checks")} == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok"},
    }
    # The answering worker's long-polling relay counters (tests/test_relay.py).
    assert body["relay"]["relayed"] >= 0 and body["relay"]["worker"]
