"""The contract machinery (app/contract.py) over the declared shapes (app/models.py):
one declaration gives the validation, the error details and the OpenAPI schema, and each
error code has one home (app/errors.py)."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest

from app import contract, models
from app.errors import (
    CODES,
    AssignmentConflict,
    BadRequest,
    FieldProblems,
    InvalidBody,
    NotFound,
    RateLimited,
)

APP = Path(__file__).resolve().parent.parent / "app"


def problems_of(model: type[contract.Shape], data: object) -> dict[str, str]:
    with pytest.raises(BadRequest) as caught:
        contract.read(model, data)
    assert isinstance(caught.value.details, FieldProblems)
    return caught.value.details.fields


def test_every_field_problem_of_a_body_is_reported_at_once():
    fields = problems_of(
        models.NewMessage,
        {"sessionId": "nope", "content": "   ", "senderType": "bot", "clientMessageId": 7},
    )
    assert fields == {
        "sessionId": "must be a UUID",
        "content": "must not be empty",
        "senderType": "must be one of user, admin",
        "clientMessageId": "must be a string",
    }


def test_a_field_limit_comes_from_its_declaration():
    too_long = "x" * (models.MAX_CONTENT + 1)
    fields = problems_of(models.NewMessage, {"sessionId": str(uuid.uuid4()), "content": too_long})
    assert fields == {"content": f"must be at most {models.MAX_CONTENT} characters"}
    schema = contract.schema(models.NewMessage)["properties"]["content"]
    assert schema["maxLength"] == models.MAX_CONTENT


def test_strings_are_trimmed_but_passwords_keep_their_spaces():
    send = contract.read(models.NewMessage, {"sessionId": str(uuid.uuid4()), "content": " hi "})
    assert send.content == "hi"
    change = contract.read(
        models.PasswordChange, {"currentPassword": " old ", "newPassword": " new-secret "}
    )
    assert (change.currentPassword, change.newPassword) == (" old ", " new-secret ")


def test_a_rule_between_fields_is_the_shapes_own():
    email = "someone@example.com"
    fields = problems_of(models.Registration, {"email": email, "password": email.upper()})
    assert fields == {"password": "must not be the email address"}
    assert problems_of(models.MemberChange, {}) == {"fullName": "or role is required"}


def test_null_reads_as_absent_unless_the_field_tells_them_apart():
    assert contract.read(models.NewSession, {"userId": "u", "userName": None}).userName is None
    assert problems_of(models.AssigneeChange, {}) == {"assigneeId": "is required"}
    change = contract.read(models.AssigneeChange, {"assigneeId": None})
    assert change.assigneeId is None and change.expectedAssigneeId is contract.msgspec.UNSET
    cas = contract.read(models.AssigneeChange, {"assigneeId": None, "expectedAssigneeId": None})
    assert cas.expectedAssigneeId is None


def test_a_body_that_is_not_an_object_is_refused_as_such():
    with pytest.raises(InvalidBody):
        contract.read(models.NewMessage, ["content"])


def test_query_parameters_are_parsed_and_bounded_by_their_declaration():
    query = contract.read_query(models.HistoryQuery, {"limit": ["5"], "after": [""]})
    assert (query.limit, query.after, query.before) == (5, None, None)
    with pytest.raises(BadRequest) as caught:
        contract.read_query(models.HistoryQuery, {"limit": [str(models.HISTORY_PAGE_MAX + 1)]})
    assert caught.value.message == f"limit must be between 1 and {models.HISTORY_PAGE_MAX}"


def test_a_nullable_answer_field_is_documented_as_nullable_and_required():
    schema = contract.schema(models.Message)
    assert schema["properties"]["senderName"]["nullable"] is True
    assert "senderName" in schema["required"]
    assert schema["properties"]["id"] == {"type": "string", "format": "uuid"}


def test_error_bodies_keep_their_wire_shape_byte_for_byte():
    # Bytes as the dict-built details encoded them before the shapes were models.
    owner = uuid.UUID("6f1c2b9e-0a4d-4c1e-9a53-1d2f3e4a5b6c")
    bodies = {
        BadRequest("content must not be empty", fields={"content": "must not be empty"}): (
            b'{"error":"content must not be empty","code":"validation_error",'
            b'"details":{"fields":{"content":"must not be empty"}}}'
        ),
        RateLimited(7): (
            b'{"error":"Too many requests, try again later","code":"rate_limited",'
            b'"details":{"retryAfter":7}}'
        ),
        AssignmentConflict(owner): (
            b'{"error":"Someone else changed this session\'s owner first: reload it and try '
            b'again","code":"assignment_conflict",'
            b'"details":{"assigneeId":"6f1c2b9e-0a4d-4c1e-9a53-1d2f3e4a5b6c"}}'
        ),
        AssignmentConflict(None): (
            b'{"error":"Someone else changed this session\'s owner first: reload it and try '
            b'again","code":"assignment_conflict","details":{"assigneeId":null}}'
        ),
        NotFound("Session not found"): b'{"error":"Session not found","code":"not_found"}',
    }
    for error, wire in bodies.items():
        assert contract.encode(error.body()) == wire, error.code


def test_details_take_only_the_shape_their_error_declares():
    checked = BadRequest("q is required", details={"fields": {"q": "is required"}})
    assert checked.details == FieldProblems({"q": "is required"})
    with pytest.raises(contract.msgspec.ValidationError):
        BadRequest("q is required", details={"field": {"q": "is required"}})
    with pytest.raises(AssertionError):
        InvalidBody(details=FieldProblems({"q": "is required"}))


def _string_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    }


def test_each_error_code_is_written_once_in_the_code():
    codes = {code for listed in CODES.values() for code in listed}
    assert len(codes) == sum(len(listed) for listed in CODES.values())
    homes: dict[str, list[str]] = {code: [] for code in codes}
    for path in APP.rglob("*.py"):
        for literal in _string_literals(path) & codes:
            homes[literal].append(str(path.relative_to(APP)))
    assert {code: places for code, places in homes.items() if len(places) != 1} == {}
