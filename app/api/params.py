"""Request parsing with Backstage's validation messages.

Backstage validates requests against its OpenAPI spec with ajv before its own
code runs, so malformed input gets messages such as ``request/query/limit must be
integer`` or ``request/body must have required property 'entityRefs'``. The
marshmallow schemas here document the API (flask-smorest writes them into the
OpenAPI spec) and this parser turns their errors into those same messages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Request
from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy

from app.errors import InputError

# Sentinel messages: the formatter below turns them into ajv's wording.
REQUIRED = "__required__"
UNKNOWN = "__unknown__"


def integer(minimum: int | None = None, **kwargs: Any) -> fields.Integer:
    validators = []
    if minimum is not None:
        validators.append(validate.Range(min=minimum, error=f"must be >= {minimum}"))
    return fields.Integer(
        strict=kwargs.pop("strict", False),
        validate=validators,
        error_messages={
            "invalid": "must be integer",
            "null": "must be integer",
            "required": REQUIRED,
        },
        **kwargs,
    )


def string(**kwargs: Any) -> fields.String:
    return fields.String(
        error_messages={
            "invalid": "must be string",
            "null": "must be string",
            "required": REQUIRED,
        },
        **kwargs,
    )


def string_list(**kwargs: Any) -> fields.List:
    return fields.List(
        string(),
        error_messages={"invalid": "must be array", "null": "must be array", "required": REQUIRED},
        **kwargs,
    )


def json_object(**kwargs: Any) -> fields.Dict:
    return fields.Dict(
        error_messages={
            "invalid": "must be object",
            "null": "must be object",
            "required": REQUIRED,
        },
        **kwargs,
    )


def one_of(choices: list[str], **kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.OneOf(
            choices, error="must be equal to one of the allowed values: " + ", ".join(choices)
        ),
        error_messages={
            "invalid": "must be string",
            "null": "must be string",
            "required": REQUIRED,
        },
        **kwargs,
    )


class QuerySchema(Schema):
    class Meta:
        unknown = RAISE


class BodySchema(Schema):
    class Meta:
        unknown = EXCLUDE


def _first_error(messages: Any, path: list[str]) -> tuple[list[str], str]:
    """Depth-first, the first message and the path it belongs to."""
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            return _first_error(value, [*path, str(key)])
    if isinstance(messages, list) and messages:
        first = messages[0]
        if isinstance(first, str):
            return path, first
        return _first_error(first, path)
    return path, str(messages)


def ajv_message(messages: Any, location: str) -> str:
    path, message = _first_error(messages, [])
    if path and path[-1] == "_schema":
        # A nested schema given something other than an object.
        path = path[:-1]
        if message == "Invalid input type.":
            message = "must be object"
    prefix = f"request/{location}"
    if message == "Unknown field." and location == "query" and path:
        return f"Unknown query parameter '{path[0]}'"
    if message == "Unknown field.":
        # ajv names the object that has the extra property, e.g. request/body/location.
        return f"{'/'.join([prefix, *path[:-1]])} must NOT have additional properties"
    if message == REQUIRED:
        parent = "/".join([prefix, *path[:-1]])
        return f"{parent} must have required property '{path[-1]}'"
    return f"{'/'.join([prefix, *path])} {message}"


class BackstageParser(FlaskParser):
    """webargs parser with Backstage's strictness and messages."""

    DEFAULT_VALIDATION_STATUS = 400
    # Let each schema's Meta.unknown decide (webargs would silently drop unknown
    # query parameters; Backstage rejects them).
    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, Any] = {
        "query": None,
        "querystring": None,
        "json": None,
    }

    def load_querystring(self, req: Request, schema: Schema) -> Any:
        for name, value in req.args.items(multi=True):
            if value == "" and name in schema.fields:
                raise InputError(f"Empty value found for query parameter '{name}'")
        return MultiDictProxy(req.args, schema)

    def load_json(self, req: Request, schema: Schema) -> Any:
        content_type = req.mimetype or ""
        if content_type != "application/json":
            raise InputError(f"unsupported media type {content_type or 'undefined'}")
        raw = req.get_data(cache=True)
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise InputError(f"Malformed request body (invalid JSON): {exc}") from exc
        except RecursionError as exc:
            raise InputError("Malformed request body (invalid JSON): nested too deeply") from exc
        if not isinstance(body, dict):
            raise InputError("request/body must be object")
        if _contains_nul(body):
            raise InputError("The request body contains a NUL character")
        return body

    def handle_error(
        self,
        error: ValidationError,
        req: Request,
        schema: Schema,
        *,
        error_status_code: int | None,
        error_headers: Mapping[str, str] | None,
    ) -> Any:
        location = "body" if "json" in (getattr(error, "data", None) or {}) else None
        messages = error.messages
        if isinstance(messages, Mapping) and len(messages) == 1:
            key = next(iter(messages))
            if key in ("json", "query", "querystring"):
                location = "body" if key == "json" else "query"
                messages = messages[key]
        raise InputError(ajv_message(messages, location or "query"))


parser = BackstageParser()


def _contains_nul(value: Any) -> bool:
    """Whether any key or string in a parsed JSON document contains NUL (no recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def split_csv(values: list[str] | None) -> list[str]:
    """``fields=a,b&fields=c`` → ``[a, b, c]``."""
    result: list[str] = []
    for value in values or []:
        result.extend(part.strip() for part in value.split(",") if part.strip())
    return result
