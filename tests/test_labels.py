"""Labels: an idempotent replace, the inbox filter, staff-only broadcasts and views."""

from __future__ import annotations

from tests.sockets import Client
from tests.support import assert_error, bearer


async def put_labels(api, token: str, session_id: str, labels: list) -> dict:
    r = await api.put(
        f"/api/sessions/{session_id}/labels", json={"labels": labels}, headers=bearer(token)
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_labels_replace_the_set_normalised_and_twice_is_the_same(api, make):
    token = await make.admin_token()
    session = await make.session()
    assert (await put_labels(api, token, session["id"], ["VIP", " refund ", "vip"]))["labels"] == [
        "refund",
        "vip",
    ]
    again = await put_labels(api, token, session["id"], ["refund", "vip"])
    assert again["labels"] == ["refund", "vip"]
    assert (await put_labels(api, token, session["id"], ["billing"]))["labels"] == ["billing"]
    assert (await put_labels(api, token, session["id"], []))["labels"] == []


async def test_a_malformed_label_is_400(api, make):
    token = await make.admin_token()
    session = await make.session()
    for bad in (["has space"], [""], [3], "vip", ["x" * 51]):
        r = await api.put(
            f"/api/sessions/{session['id']}/labels", json={"labels": bad}, headers=bearer(token)
        )
        assert_error(r, 400, "validation_error")


async def test_the_inbox_filters_by_label(api, make):
    token = await make.admin_token()
    tagged = await make.session()
    await make.session()
    await put_labels(api, token, tagged["id"], ["vip"])
    r = await api.get("/api/sessions?label=VIP", headers=bearer(token))
    assert [s["id"] for s in r.json()] == [tagged["id"]]
    assert r.json()[0]["labels"] == ["vip"]
    r = await api.get("/api/labels", headers=bearer(token))
    assert r.json() == [{"label": "vip", "sessions": 1}]


async def test_labels_reach_staff_as_session_updated_and_never_the_customer(api, make, server):
    token = await make.admin_token()
    session = await make.session()
    staff = Client(server.url, token)
    customer = Client(server.url, session["customerToken"])
    await staff.connect()
    await customer.connect()
    try:
        assert (await customer.call("join_session", session["id"]))["ok"]
        await put_labels(api, token, session["id"], ["angry"])
        seen = await staff.wait_for("session_updated", lambda s: s["labels"] == ["angry"])
        assert seen["id"] == session["id"]
        # A status change reaches the customer (a control): it carries no labels.
        r = await api.patch(
            f"/api/sessions/{session['id']}/status",
            json={"status": "closed"},
            headers=bearer(token),
        )
        assert r.status_code == 200
        updates = [await customer.wait_for("session_updated")]
        assert len(customer.of("session_updated")) == 1
        assert "labels" not in updates[0] and updates[0]["status"] == "closed"
        own = await api.get(
            f"/api/sessions/{session['id']}", headers=bearer(session["customerToken"])
        )
        assert "labels" not in own.json()
    finally:
        await staff.close()
        await customer.close()
