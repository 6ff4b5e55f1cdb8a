"""The contract machinery (app/contract.py) over the declared shapes (app/models.py):
one declaration gives the validation, the error details and the OpenAPI schema, and each
error code has one home (app/errors.py)."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest

from app import contract, models
from app.errors import CODES, BadRequest, InvalidBody

APP = Path(__file__).resolve().parent.parent / "app"


def problems_of(model: type[contract.Shape], data: object) -> dict[str, str]:
    with pytest.raises(BadRequest) as caught:
        contract.read(model, data)
    assert caught.value.details is not None
    fields: dict[str, str] = caught.value.details["fields"]
    return fields


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
