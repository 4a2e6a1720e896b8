"""Request and response schemas of the write API: locations, refresh, validation, analysis.

As for the read API, the marshmallow schemas play the part of Backstage's OpenAPI
request validator (ajv messages via :mod:`app.api.params`). ``POST /locations``
and ``POST /analyze-location`` are then checked again by the router's zod schema
``locationInput`` (``{type, target, presence?}``, nothing else), whose errors
Backstage sends as ``Malformed request: <the zod issues as indented JSON>``;
:func:`strict_location_input` reproduces those.
"""

from __future__ import annotations

import json
from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, fields

from app.api.params import BodySchema, QuerySchema, json_object, one_of, string
from app.api.schemas import (
    EntitySchema,
    ErrorBodySchema,
    ErrorRequestSchema,
    ErrorResponseSchema,
)
from app.errors import InputError

PRESENCE_VALUES = ("required", "optional")


class JsonNumber(fields.Field):
    """A JSON number (ajv's ``type: number``): integers and decimals, not strings or booleans."""

    default_error_messages = {"invalid": "must be number", "null": "must be number"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return value


# -- locations ------------------------------------------------------------------------


class LocationSchema(Schema):
    id = fields.String(required=True)
    type = fields.String(required=True)
    target = fields.String(required=True)
    entityRef = fields.String(
        required=True,
        metadata={"description": "location:default/generated-<sha1 of the registered type:target>"},
    )


class CreateLocationQuery(QuerySchema):
    dryRun = string(metadata={"description": "true, yes, 1, ... (yn): process without storing"})
    onConflict = one_of(
        ["refresh", "reject"],
        metadata={"description": "reject (default): 409 if registered; refresh: refresh it"},
    )


class CreateLocationBody(BodySchema):
    """``{type, target, presence?}``; other keys are refused after this schema (zod)."""

    class Meta:
        unknown = INCLUDE

    target = string(required=True)
    type = string(required=True)


class CreateLocationResponse(Schema):
    location = fields.Nested(LocationSchema, required=True)
    entities = fields.List(fields.Nested(EntitySchema), required=True)
    exists = fields.Boolean(metadata={"description": "dry run only: already registered"})


class LocationWrapperSchema(Schema):
    data = fields.Nested(LocationSchema, required=True)


class LocationInputBody(BodySchema):
    """``PUT /locations/{id}`` and ``analyze-location``'s ``location``: type and target only."""

    class Meta:
        unknown = RAISE

    type = string(required=True)
    target = string(required=True)


class LocationsQueryBody(BodySchema):
    query = json_object(
        metadata={"description": "a FilterPredicate over id, type, target, entityRef"}
    )
    limit = JsonNumber(metadata={"description": "page size, default 1000"})
    cursor = string()


class LocationsPageInfo(Schema):
    nextCursor = fields.String()


class LocationsQueryResponse(Schema):
    items = fields.List(fields.Nested(LocationSchema), required=True)
    totalItems = fields.Integer(required=True)
    pageInfo = fields.Nested(LocationsPageInfo, required=True)


def _zod_json(issues: list[dict[str, Any]]) -> str:
    return json.dumps(issues, indent=2, ensure_ascii=False)


def strict_location_input(body: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """Backstage's zod ``locationInput`` check: the ``presence`` literal and unknown keys.

    Returns ``{type, target, presence?}`` in zod's key order.
    """
    issues: list[dict[str, Any]] = []
    if "presence" in body and body["presence"] not in PRESENCE_VALUES:
        received = body["presence"]
        issues.append(
            {
                "code": "invalid_union",
                "unionErrors": [
                    {
                        "issues": [
                            {
                                "received": received,
                                "code": "invalid_literal",
                                "expected": literal,
                                "path": ["presence"],
                                "message": f'Invalid literal value, expected "{literal}"',
                            }
                        ],
                        "name": "ZodError",
                    }
                    for literal in PRESENCE_VALUES
                ],
                "path": ["presence"],
                "message": "Invalid input",
            }
        )
    unknown = [key for key in body if key not in allowed]
    if unknown:
        issues.append(
            {
                "code": "unrecognized_keys",
                "keys": unknown,
                "path": [],
                "message": "Unrecognized key(s) in object: "
                + ", ".join(f"'{key}'" for key in unknown),
            }
        )
    if issues:
        raise InputError(f"Malformed request: {_zod_json(issues)}")
    result = {"type": body["type"], "target": body["target"]}
    if "presence" in body:
        result["presence"] = body["presence"]
    return result


# -- other writes -----------------------------------------------------------------------


class RefreshBody(BodySchema):
    class Meta:
        unknown = RAISE

    entityRef = string(
        required=True, metadata={"description": "The reference to a single entity to refresh"}
    )
    authorizationToken = string(metadata={"description": "legacy; ignored (no authentication)"})


class ValidateEntityBody(BodySchema):
    location = string(required=True, metadata={"description": "url:<target>"})
    entity = json_object(required=True)


class ValidationErrorSchema(Schema):
    name = fields.String(required=True)
    message = fields.String(required=True)
    cause = fields.Dict()


class ValidateEntityErrors(Schema):
    """A 400 of ``validate-entity``: ``{errors}`` when the entity is invalid, or the error
    envelope when the request itself is malformed (no body, not JSON, missing fields)."""

    errors = fields.List(fields.Nested(ValidationErrorSchema))
    error = fields.Nested(ErrorBodySchema)
    request = fields.Nested(ErrorRequestSchema)
    response = fields.Nested(ErrorResponseSchema)


class AnalyzeLocationBody(BodySchema):
    location = fields.Nested(
        LocationInputBody,
        required=True,
        error_messages={"invalid": "must be object", "required": "__required__"},
    )
    catalogFileName = string(metadata={"description": "default catalog-info.yaml"})
    catalogFilename = string(metadata={"description": "the router's spelling, also accepted"})


class AnalyzeLocationField(Schema):
    field = fields.String(required=True)
    state = fields.String(required=True)
    value = fields.String(allow_none=True, required=True)
    description = fields.String(required=True)


class AnalyzeLocationSpec(Schema):
    type = fields.String(required=True)
    target = fields.String(required=True)


class AnalyzeLocationExisting(Schema):
    location = fields.Nested(AnalyzeLocationSpec, required=True)
    isRegistered = fields.Boolean(required=True)
    entity = fields.Nested(EntitySchema, required=True)


class AnalyzeLocationGenerate(Schema):
    entity = fields.Dict(required=True)
    fields = fields.List(fields.Nested(AnalyzeLocationField), required=True)  # type: ignore[assignment]


class AnalyzeLocationResponse(Schema):
    existingEntityFiles = fields.List(fields.Nested(AnalyzeLocationExisting), required=True)
    generateEntities = fields.List(fields.Nested(AnalyzeLocationGenerate), required=True)
