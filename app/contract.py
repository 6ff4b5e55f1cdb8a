"""How a declared shape (app/models.py) becomes validation, JSON and OpenAPI.

A shape is a msgspec Struct whose fields carry their rules as `Annotated[..., Meta(...)]`.
From that one declaration this module derives:

- `read(Model, data)`: the untrusted mapping (a REST body, a socket payload) checked field
  by field, every field error collected, then one `BadRequest` with today's shape
  `{"error", "code": "validation_error", "details": {"fields": {name: problem}}}`; unknown
  fields are ignored. msgspec's own decoder stops at the first error and knows nothing of
  trimming, NUL characters or one spelling of an email, so the walk is ours; the
  compiled readers are cached per model.
- `read_query(Model, args)`: the same for query parameters (strings parsed to ints).
- `encode(value)`: JSON bytes of Structs, lists and dicts (msgspec's encoder).
- `schema(tp)`: the OpenAPI 3.0 schema of a type, inlined (nullable instead of `null`).

Field rules beyond the type, read from `Meta(extra=...)`: `strip=False` keeps the
whitespace (passwords), `email=True` folds to the one spelling (app/validation.py),
`password=True` refuses an only-whitespace value. Cross-field rules of one shape go in its
`problems()` method.
"""

from __future__ import annotations

import types
import typing
import uuid
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

import msgspec

from app.errors import BadRequest, InvalidBody
from app.validation import normalise_email, parse_uuid

T = TypeVar("T", bound="Shape")


class Shape(msgspec.Struct, kw_only=True):
    """An input shape: a request body, query or socket payload."""

    # The field a socket payload may also be sent as on its own (a bare session id).
    bare: ClassVar[str | None] = None

    def problems(self) -> dict[str, str]:
        """Rules between fields of one shape (none by default): field → problem."""
        return {}


class Invalid(Exception):
    """One field's problem, raised by its reader."""


_ENCODER = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    """JSON of a response: Structs, lists, dicts, UUIDs (as their canonical string)."""
    return _ENCODER.encode(value)


def to_builtins(value: Any) -> Any:
    """Dicts and lists of a response, for an encoder that does not know Structs."""
    return msgspec.to_builtins(value)


# ---- reading -------------------------------------------------------------------------

FieldReader = Callable[[Any], Any]


def _meta_of(annotated: Any) -> tuple[Any, list[msgspec.Meta]]:
    if get_origin(annotated) is typing.Annotated:
        base, *extras = get_args(annotated)
        return base, [m for m in extras if isinstance(m, msgspec.Meta)]
    return annotated, []


def _unwrap(tp: Any) -> tuple[Any, list[msgspec.Meta], bool]:
    """(base type, its Meta, whether None is allowed) of a field's annotation."""
    tp, metas = _meta_of(tp)
    if get_origin(tp) not in (Union, types.UnionType):
        return tp, metas, False
    members = [a for a in get_args(tp) if a not in (type(None), msgspec.UnsetType)]
    assert len(members) == 1, f"unsupported union {tp!r}"
    base, more, nullable = _unwrap(members[0])
    return base, metas + more, nullable or type(None) in get_args(tp)


def _limit(metas: list[msgspec.Meta], name: str) -> Any:
    for meta in metas:
        if getattr(meta, name) is not None:
            return getattr(meta, name)
    return None


def _extra(metas: list[msgspec.Meta], name: str, default: Any = None) -> Any:
    for meta in metas:
        if meta.extra and name in meta.extra:
            return meta.extra[name]
    return default


def _string_reader(metas: list[msgspec.Meta], required: bool) -> FieldReader:
    min_len = _limit(metas, "min_length") or 0
    max_len = _limit(metas, "max_length")
    strip = _extra(metas, "strip", True)
    email = _extra(metas, "email", False)
    password = _extra(metas, "password", False)
    floor = max(min_len, 1 if required else 0)
    too_short = "must not be empty" if min_len <= 1 else f"needs {min_len}+ characters"
    too_long = f"must be at most {max_len} characters"

    def read(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("must be a string")
        if "\x00" in value:
            # PostgreSQL text cannot hold NUL: refuse it here rather than fail at the database.
            raise Invalid("must not contain NUL characters")
        if strip:
            value = value.strip()
        if len(value) < floor:
            raise Invalid(too_short)
        if max_len is not None and len(value) > max_len:
            raise Invalid(too_long)
        if password and not value.strip():
            raise Invalid("must not be only whitespace")
        if email:
            value, problem = normalise_email(value)
            if problem is not None:
                raise Invalid(problem)
        return value

    return read


def _int_reader(metas: list[msgspec.Meta], from_text: bool) -> FieldReader:
    low = _limit(metas, "ge")
    high = _limit(metas, "le")

    def read(value: Any) -> int:
        if from_text and isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise Invalid("must be an integer") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("must be an integer")
        if (low is not None and value < low) or (high is not None and value > high):
            raise Invalid(f"must be between {low} and {high}")
        return value

    return read


def _choice_reader(options: tuple[Any, ...]) -> FieldReader:
    problem = f"must be one of {', '.join(map(str, options))}"

    def read(value: Any) -> Any:
        if not isinstance(value, str) or value not in options:
            raise Invalid(problem)
        return value

    return read


def _bool_reader(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def _uuid_reader(value: Any) -> uuid.UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise Invalid("must be a UUID")
    return parsed


def _list_reader(item_tp: Any, metas: list[msgspec.Meta]) -> FieldReader:
    """A JSON array whose items each pass their own reader (labels)."""
    base, item_metas = _meta_of(item_tp)
    item = _reader_for(base, item_metas, True, False)
    most = _limit(metas, "max_length")

    def read(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise Invalid("must be a list")
        if most is not None and len(value) > most:
            raise Invalid(f"must have at most {most} items")
        out = []
        for i, raw in enumerate(value):
            try:
                out.append(item(raw))
            except Invalid as exc:
                raise Invalid(f"item {i} {exc}") from None
        return out

    return read


def _reader_for(tp: Any, metas: list[msgspec.Meta], required: bool, from_text: bool) -> FieldReader:
    if get_origin(tp) is list:
        return _list_reader(get_args(tp)[0], metas)
    if tp is str:
        return _string_reader(metas, required)
    if tp is int:
        return _int_reader(metas, from_text)
    if tp is bool:
        return _bool_reader
    if tp is uuid.UUID:
        return _uuid_reader
    if get_origin(tp) is Literal:
        return _choice_reader(get_args(tp))
    raise TypeError(f"no reader for {tp!r}")


@cache
def _readers(model: type[Shape], from_text: bool) -> list[tuple[str, bool, bool, FieldReader]]:
    """(name, required, null is a value, reader) of each field. A null is a value where the
    field tells it from absence: a required nullable field, or one that defaults to UNSET;
    elsewhere null reads as absent."""
    hints = typing.get_type_hints(model, include_extras=True)
    out = []
    for info in msgspec.structs.fields(model):
        tp, metas, nullable = _unwrap(hints[info.name])
        required = info.required
        null_value = nullable and (required or info.default is msgspec.UNSET)
        reader = _reader_for(tp, metas, required and not nullable, from_text)
        out.append((info.encode_name, required, null_value, reader))
    return out


def _read(model: type[T], data: Mapping[str, Any], from_text: bool) -> T:
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, required, null_value, reader in _readers(model, from_text):
        raw = data.get(name)
        if null_value and raw is None and name in data:
            values[name] = None
            continue
        if raw is None or (from_text and raw == ""):
            if required:
                errors[name] = "is required"
            continue
        try:
            values[name] = reader(raw)
        except Invalid as exc:
            errors[name] = str(exc)
    if not errors:
        shape = model(**values)
        errors = shape.problems()
        if not errors:
            return shape
    name, problem = next(iter(errors.items()))
    raise BadRequest(f"{name} {problem}", fields=errors)


def read(model: type[T], data: Any) -> T:
    """A JSON object (REST body or socket payload) as `model`, or 400 with every field's
    problem."""
    if isinstance(data, str) and model.bare is not None:
        data = {model.bare: data}
    if not isinstance(data, Mapping):
        raise InvalidBody()
    return _read(model, data, from_text=False)


def read_query(model: type[T], args: Mapping[str, Any]) -> T:
    """Query parameters as `model` (first value of each; an empty one counts as absent)."""
    first = {
        name: values[0] if isinstance(values, list) else values for name, values in args.items()
    }
    return _read(model, first, from_text=True)


# ---- OpenAPI -------------------------------------------------------------------------


def _openapi(node: Any, defs: dict[str, Any]) -> Any:
    """JSON Schema (2020-12, as msgspec writes it) to OpenAPI 3.0: refs inlined, `null`
    as `nullable`, titles and Struct docstrings (written for developers) left out."""
    if isinstance(node, list):
        return [_openapi(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _openapi(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o != {"type": "null"}]
        if len(options) == 1 and len(options) < len(node["anyOf"]):
            rest = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
            return {**_openapi(options[0], defs), **rest, "nullable": True}
    out: dict[str, Any] = {}
    for key, value in node.items():
        # A Struct's docstring (it has properties) is for developers; a dict field's is not.
        struct_doc = key == "description" and "properties" in node
        if key in ("title", "$defs") or struct_doc:
            continue
        if key == "properties":
            out[key] = {name: _openapi(prop, defs) for name, prop in value.items()}
        else:
            out[key] = _openapi(value, defs)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("required") == []:
        del out["required"]  # OpenAPI 3.0: a `required` list is never empty
    return out


@cache
def _schema(tp: Any) -> dict[str, Any]:
    raw = msgspec.json.schema(tp)
    result: dict[str, Any] = _openapi(raw, raw.get("$defs", {}))
    # A rule of the whole shape (say, at least one field) that no field type carries.
    result.update(getattr(tp, "json_schema_extra", {}))
    return result


def schema(tp: Any) -> dict[str, Any]:
    """The OpenAPI schema of a shape, a list of shapes, or a plain type."""
    return dict(_schema(tp))


def query_parameters(model: type[Shape]) -> list[tuple[str, dict[str, Any], str]]:
    """(name, schema, description) of each query parameter of `model`."""
    props = schema(model)["properties"]
    out = []
    for info in msgspec.structs.fields(model):
        prop = dict(props[info.encode_name])
        text = prop.pop("description", "")
        prop.pop("nullable", None)
        out.append((info.encode_name, prop, text))
    return out


# ---- README ---------------------------------------------------------------------------


def _describe(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        text = " \\| ".join(f"`{v}`" for v in schema["enum"])
    elif schema.get("type") == "array":
        text = f"list of {_describe(schema['items'])}"
    elif schema.get("type") == "object":
        text = "object"
    else:
        text = schema.get("format") or schema.get("type", "any")
        bounds = [
            f"{label} {schema[key]}"
            for key, label in (
                ("minLength", "≥"),
                ("maxLength", "≤"),
                ("minimum", "≥"),
                ("maximum", "≤"),
            )
            if key in schema
        ]
        if bounds:
            text += f" ({', '.join(bounds)})"
    return text + (" or null" if schema.get("nullable") else "")


def markdown_table(shapes: list[type[msgspec.Struct]]) -> str:
    """The README's field table: one row per shape, its fields as the wire has them
    (`?`: may be left out), generated from the same declarations as everything else."""
    lines = ["| shape | fields |", "|---|---|"]
    for shape in shapes:
        schema = _schema(shape)
        required = set(schema.get("required", []))
        fields = [
            f"`{name}{'' if name in required else '?'}`: {_describe(prop)}"
            for name, prop in schema["properties"].items()
        ]
        lines.append(f"| {shape.__name__} | {'; '.join(fields)} |")
    return "\n".join(lines) + "\n"
