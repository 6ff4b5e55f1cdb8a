"""The contract machinery (app/contract.py) over the declared shapes (app/models.py):
one declaration gives the validation, the error details and the OpenAPI schema, and each
error code has one home (app/errors.py)."""

from __future__ import annotations

import ast
import re
import uuid
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from app import contract, models
from app.errors import (
    CODES,
    AssignmentConflict,
    BadRequest,
    CurrentOwner,
    ErrorBody,
    FieldProblems,
    InvalidBody,
    NotFound,
    RateLimited,
    RetryAfter,
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


# ---- each limit and each response field name has one home ------------------------------

MODELS = APP / "models.py"
LIMITS = {
    name: value
    for name, value in vars(models).items()
    if re.fullmatch(r"(MAX|MIN)_[A-Z_]+|[A-Z_]+_PAGE(_MAX)?|SEQ_MAX", name) and type(value) is int
}
# Ceilings: a literal equal to one of these, used as a length, is a copy of it.
CEILINGS = {value for name, value in LIMITS.items() if "MAX" in name}
BOUNDS = ("min_length", "max_length", "ge", "le")
# A limit's number as prose spells it: "16–100 characters", "at most 20", "500 messages".
LIMIT_PHRASE = re.compile(
    r"(\d+)\s*[-–]\s*(\d+)\s+characters|(\d+)\+?\s+(?:characters|messages|notes|items|labels)"
    r"|(?:at most|up to|≤)\s+(\d+)"
)


def _refers_to_limits(node: ast.expr) -> bool:
    """A bound written as a limit's name (or one more or less): never as its number."""
    if isinstance(node, ast.Name):
        return node.id in LIMITS
    if isinstance(node, ast.BinOp):
        return _refers_to_limits(node.left) and (
            _refers_to_limits(node.right)
            or (isinstance(node.right, ast.Constant) and node.right.value == 1)
        )
    return isinstance(node, ast.Constant) and node.value in (0, 1)


def test_each_limit_is_assigned_once_in_the_models_and_every_bound_names_one():
    tree = ast.parse(MODELS.read_text())
    assigned = Counter(
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id in LIMITS
    )
    assert assigned == Counter(set(LIMITS))
    literal_bounds = [
        (node.lineno, keyword.arg, ast.unparse(keyword.value))
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("Meta", "msgspec.Meta")
        for keyword in node.keywords
        if keyword.arg in BOUNDS and not _refers_to_limits(keyword.value)
    ]
    assert literal_bounds == []
    elsewhere = [
        f"{path.relative_to(APP)}:{node.lineno} {target.id}"
        for path in APP.rglob("*.py")
        if path != MODELS
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id in LIMITS
    ]
    assert elsewhere == []


def _copied_ceilings(tree: ast.AST) -> list[tuple[int, str]]:
    """Literal numbers equal to a ceiling where a length is meant: a column's or field's
    `length=`, a comparison with `len(…)`, a slice's end."""
    found = []
    for node in ast.walk(tree):
        numbers: list[ast.expr] = []
        if isinstance(node, ast.keyword) and node.arg in ("length", *BOUNDS):
            numbers = [node.value]
        elif isinstance(node, ast.Compare) and "len(" in ast.unparse(node):
            numbers = [node.left, *node.comparators]
        elif isinstance(node, ast.Slice):
            numbers = [n for n in (node.lower, node.upper) if n is not None]
        found += [
            (n.lineno, ast.unparse(n))
            for n in numbers
            if isinstance(n, ast.Constant) and type(n.value) is int and n.value in CEILINGS
        ]
    return found


def test_no_limit_is_copied_as_a_number_in_code_or_prose():
    values = set(LIMITS.values())
    copies = []
    for path in sorted(APP.rglob("*.py")):
        tree = ast.parse(path.read_text())
        where = path.relative_to(APP)
        copies += [f"{where}:{line} {text}" for line, text in _copied_ceilings(tree)]
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for match in LIMIT_PHRASE.finditer(node.value):
                    if {int(n) for n in match.groups() if n} & values:
                        copies.append(f"{where}:{node.lineno} {match.group(0)!r}")
    assert copies == []


def _response_field_names() -> set[str]:
    shapes: list[type[msgspec.Struct]] = [m for m in models.declared() if issubclass(m, models.Out)]
    shapes += [ErrorBody, FieldProblems, RetryAfter, CurrentOwner]
    return {info.encode_name for shape in shapes for info in msgspec.structs.fields(shape)}


# Dicts in the adapters whose keys spell a response field's name, each with why it is one.
# Exact: a new one fails, and so does one that is gone (take it off).
NOT_RESPONSES = {
    ("api/access.py", "status"): "the access log record's field",
    ("api/demo.py", "agent"): "the demo console's page name",
    ("realtime/affinity.py", "id"): "a relayed polling request's id, between workers",
    ("realtime/affinity.py", "status"): "a relayed polling reply's HTTP status, between workers",
}
UNMODELLED = {
    ("realtime/handlers.py", "ok"): "the success ack's envelope {ok: true, ...} (w3's file)",
    ("realtime/handlers.py", "code"): "connect_error's data {code} (w3's file)",
    ("realtime/guards.py", "code"): "connect_error's data {code} (w3's file)",
    ("realtime/guards.py", "message"): "connect_error {message, data} (w3's file)",
    ("realtime/affinity.py", "relayed"): "RelayCounters' names, keyed (w2's file)",
    ("realtime/affinity.py", "answered"): "RelayCounters' names, keyed (w2's file)",
    ("realtime/affinity.py", "timeouts"): "RelayCounters' names, keyed (w2's file)",
    ("realtime/affinity.py", "refused"): "RelayCounters' names, keyed (w2's file)",
}


def test_adapters_spell_no_response_field_in_a_dict():
    """Answers are the models of app/models.py (and app/errors.py): an adapter that
    builds one as a dict writes its field names a second time."""
    names = _response_field_names()
    found: dict[tuple[str, str], int] = {}
    for path in sorted([*(APP / "api").rglob("*.py"), *(APP / "realtime").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            keys: list[str] = []
            if isinstance(node, ast.Dict):
                keys = [
                    k.value
                    for k in node.keys
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)
                ]
            elif isinstance(node, ast.Call) and ast.unparse(node.func) == "dict":
                keys = [k.arg for k in node.keywords if k.arg]
            for key in set(keys) & names:
                found[(str(path.relative_to(APP)), key)] = getattr(node, "lineno", 0)
    assert set(found) - set(NOT_RESPONSES) == set(UNMODELLED), found
