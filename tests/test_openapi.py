"""OpenAPI at /docs documents every route of the contract, with its body, query and errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.core.failures import FailureGroup
from schemathesis.core.transport import Response

from app.api import routes
from tests.test_fuzz_rest import CONFORMANCE

# (method, path) → (needs a body, query parameters, error statuses it must document)
CONTRACT: dict[tuple[str, str], tuple[bool, set[str], set[int]]] = {
    ("post", "/api/auth/register"): (True, set(), {400, 401, 403, 409, 413, 429, 503}),
    ("post", "/api/auth/login"): (True, set(), {400, 401, 403, 413, 429, 503}),
    ("get", "/api/auth/me"): (False, set(), {401, 403, 503}),
    ("get", "/api/auth/sessions"): (False, set(), {401, 403, 503}),
    ("delete", "/api/auth/sessions/{sign_in_id}"): (False, set(), {401, 403, 404, 503}),
    ("post", "/api/auth/logout"): (False, set(), {401, 403, 503}),
    ("post", "/api/auth/logout-all"): (False, set(), {401, 403, 503}),
    ("post", "/api/auth/password"): (True, set(), {400, 401, 403, 413, 429, 503}),
    ("post", "/api/auth/accept-invite"): (True, set(), {400, 404, 409, 410, 413, 429, 503}),
    ("post", "/api/auth/reset-password"): (True, set(), {400, 404, 409, 410, 413, 429, 503}),
    ("get", "/api/agents"): (False, set(), {401, 403, 503}),
    ("post", "/api/agents"): (True, set(), {400, 401, 403, 409, 413, 503}),
    ("patch", "/api/agents/{agent_id}"): (True, set(), {400, 401, 403, 404, 409, 413, 503}),
    ("post", "/api/agents/{agent_id}/deactivate"): (False, set(), {401, 403, 404, 409, 503}),
    ("post", "/api/agents/{agent_id}/reactivate"): (False, set(), {401, 403, 404, 503}),
    ("post", "/api/agents/{agent_id}/logout-all"): (False, set(), {401, 403, 404, 503}),
    ("post", "/api/agents/{agent_id}/reset-link"): (False, set(), {401, 403, 404, 409, 503}),
    ("post", "/api/agents/{agent_id}/invitation"): (False, set(), {401, 403, 404, 409, 503}),
    ("delete", "/api/invitations/{invitation_id}"): (False, set(), {401, 403, 404, 503}),
    ("get", "/api/sessions"): (
        False,
        {"status", "limit", "before", "assignee", "label"},
        {400, 401, 403, 503},
    ),
    ("patch", "/api/sessions/{session_id}/assignee"): (
        True,
        set(),
        {400, 401, 403, 404, 409, 413, 503},
    ),
    ("post", "/api/sessions/{session_id}/claim"): (False, set(), {401, 403, 404, 409, 503}),
    ("get", "/api/sessions/{session_id}/assignments"): (False, set(), {401, 403, 404, 503}),
    ("patch", "/api/agents/me/availability"): (True, set(), {400, 401, 403, 413, 503}),
    ("post", "/api/sessions"): (True, set(), {400, 413, 429, 503}),
    ("get", "/api/sessions/{session_id}"): (False, set(), {401, 404, 503}),
    ("patch", "/api/sessions/{session_id}/status"): (True, set(), {400, 401, 403, 404, 503}),
    ("get", "/api/chat/messages/{session_id}"): (
        False,
        {"limit", "before", "after"},
        {400, 401, 404, 503},
    ),
    ("post", "/api/chat/messages"): (True, set(), {400, 401, 403, 404, 409, 413, 429, 503}),
    ("patch", "/api/chat/messages/{message_id}/read"): (False, set(), {401, 403, 404, 503}),
    ("post", "/api/sessions/{session_id}/notes"): (True, set(), {400, 401, 403, 404, 413, 503}),
    ("get", "/api/sessions/{session_id}/notes"): (
        False,
        {"after", "limit"},
        {400, 401, 403, 404, 503},
    ),
    ("put", "/api/sessions/{session_id}/labels"): (True, set(), {400, 401, 403, 404, 413, 503}),
    ("get", "/api/labels"): (False, set(), {401, 403, 503}),
    ("get", "/api/canned-responses"): (
        False,
        {"q", "sessionId", "limit"},
        {400, 401, 403, 404, 503},
    ),
    ("post", "/api/canned-responses"): (True, set(), {400, 401, 403, 409, 413, 503}),
    ("patch", "/api/canned-responses/{canned_id}"): (
        True,
        set(),
        {400, 401, 403, 404, 409, 413, 503},
    ),
    ("delete", "/api/canned-responses/{canned_id}"): (False, set(), {401, 403, 404, 503}),
    ("get", "/api/search/messages"): (
        False,
        {"q", "mode", "status", "label", "assignee", "limit", "before"},
        {400, 401, 403, 503},
    ),
    ("get", "/api/search/sessions"): (
        False,
        {"q", "status", "label", "assignee", "limit", "before"},
        {400, 401, 403, 503},
    ),
    ("get", "/health"): (False, set(), set()),
    ("get", "/health/ready"): (False, set(), {503}),
}


@pytest.fixture
async def spec(api) -> dict[str, Any]:
    r = await api.get("/docs/openapi.json")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_the_spec_lists_exactly_the_contract_routes(spec):
    listed = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert listed == set(CONTRACT)
    # The README's route table is generated from the same declarations (tests/test_docs.py).
    assert {(method.lower(), path) for method, path, _ in routes.routes()} == listed


@pytest.mark.parametrize(("method", "path"), sorted(CONTRACT))
async def test_each_route_documents_its_body_query_and_errors(spec, method, path):
    needs_body, query, errors = CONTRACT[(method, path)]
    op = spec["paths"][path][method]
    assert op["summary"] and op["tags"]
    if needs_body:
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        # Something is required: a named field, or (a partial update) at least one (an
        # empty `required` list is left out: OpenAPI 3.0 wants one element at least).
        assert schema["type"] == "object" and (schema.get("required") or schema["minProperties"])
    else:
        assert "requestBody" not in op
    documented_query = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    assert documented_query == query
    statuses = {int(s) for s in op["responses"]}
    assert errors <= statuses
    assert any(200 <= s < 300 for s in statuses)
    for status in errors - {503} if path == "/health/ready" else errors:
        schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
        assert schema["required"] == ["error", "code"]


async def test_protected_routes_declare_the_bearer_token(spec):
    scheme = spec["components"]["securitySchemes"]["token"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for (method, path), (_, _, errors) in CONTRACT.items():
        if 401 in errors and path != "/api/auth/register" and path != "/api/auth/login":
            assert {"token": []} in spec["paths"][path][method].get("security", []), path


async def test_the_docs_page_is_served(api):
    r = await api.get("/docs")
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]


async def test_inbox_items_document_whether_the_customer_is_online(spec):
    item = spec["paths"]["/api/sessions"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]["items"]
    assert item["properties"]["customerOnline"]["type"] == "boolean"


async def test_error_responses_describe_the_details_their_codes_carry(spec):
    def details(path: str, method: str, status: int) -> dict[str, Any] | None:
        body = spec["paths"][path][method]["responses"][str(status)]["content"]
        found: dict[str, Any] | None = body["application/json"]["schema"]["properties"].get(
            "details"
        )
        return found

    assignee = ("/api/sessions/{session_id}/assignee", "patch")
    fields = details(*assignee, 400)
    assert fields is not None and fields["required"] == ["fields"]
    assert fields["properties"]["fields"]["additionalProperties"] == {"type": "string"}
    owner = details(*assignee, 409)
    assert owner is not None and owner["properties"]["assigneeId"]["nullable"] is True
    assert "`assignment_conflict`" in owner["description"]
    retry = details("/api/chat/messages", "post", 429)
    assert retry is not None and retry["properties"]["retryAfter"]["type"] == "integer"
    assert details(*assignee, 401) is None


async def test_the_fuzzers_checks_flag_an_answer_that_drifted_from_the_document(spec, api, make):
    """The checks tests/test_fuzz_rest.py runs on every answer are live: a real answer
    passes them, and the same answer with one field drifted (renamed, or an error's
    `details` reshaped) is flagged."""
    schema = schemathesis.openapi.from_dict(spec)
    me = schema["/api/auth/me"]["GET"].Case()
    token = await make.admin_token()
    answer = await api.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    me.validate_response(answer, checks=CONFORMANCE)

    drifted = dict(answer.json())
    drifted["full_name"] = drifted.pop("fullName")
    assert '"fullName" is a required property' in _violations(me, _with_body(answer, drifted))

    send = schema["/api/chat/messages"]["POST"].Case(body={})
    refused = await api.post(
        "/api/chat/messages", json={"content": ""}, headers={"Authorization": f"Bearer {token}"}
    )
    assert refused.status_code == 400 and "fields" in refused.json()["details"]
    send.validate_response(refused, checks=CONFORMANCE)
    reshaped = {**refused.json(), "details": {"field": refused.json()["details"]["fields"]}}
    flagged = _violations(send, _with_body(refused, reshaped))
    assert flagged.startswith('Response violates schema\n\n{"field":')


def _violations(case: Any, answer: Response) -> str:
    with pytest.raises(FailureGroup) as caught:
        case.validate_response(answer, checks=CONFORMANCE)
    return "\n".join(str(failure) for failure in caught.value.exceptions)


def _with_body(answer: httpx.Response, body: Any) -> Response:
    """The same answer (status, headers, request) with another JSON body."""
    real = Response.from_any(answer)
    return Response(
        real.status_code,
        real.headers,
        json.dumps(body).encode(),
        real.request,
        real.elapsed,
        verify=True,
    )
