"""Marshmallow schemas of the catalog API: request arguments and documented responses.

Request schemas validate (with Backstage's messages, see ``params``); response
schemas only describe the wire format for the OpenAPI spec, since entities are
served as stored JSON.
"""

from __future__ import annotations

from marshmallow import Schema, fields

from app.api.params import (
    BodySchema,
    QuerySchema,
    integer,
    json_object,
    one_of,
    string,
    string_list,
)


class EntitySchema(Schema):
    apiVersion = fields.String(required=True)
    kind = fields.String(required=True)
    metadata = fields.Dict(required=True)
    spec = fields.Dict()
    relations = fields.List(fields.Dict())
    status = fields.Dict()


class ProjectedEntitySchema(Schema):
    """An entity, or only the parts of it that ``fields`` asked for: nothing is required."""

    apiVersion = fields.String()
    kind = fields.String()
    metadata = fields.Dict()
    spec = fields.Dict()
    relations = fields.List(fields.Dict())
    status = fields.Dict()


class NoQuery(QuerySchema):
    """Endpoints without query parameters still reject unknown ones, as Backstage does."""


class EntitiesQuery(QuerySchema):
    filter = string_list(metadata={"description": "key=value[,key=value] (repeatable)"})
    fields = string_list(metadata={"description": "comma-separated dotted paths"})  # type: ignore[assignment]
    order = string_list(metadata={"description": "asc:<field> or desc:<field> (repeatable)"})
    offset = integer(minimum=0)
    limit = integer(minimum=0)
    after = string()


class QueryEntitiesQuery(QuerySchema):
    filter = string_list()
    fields = string_list()  # type: ignore[assignment]
    limit = integer(minimum=0)
    offset = integer(minimum=0)
    orderField = string_list(metadata={"description": "<field>,asc|desc (repeatable)"})
    cursor = string()
    fullTextFilterTerm = string()
    fullTextFilterFields = string_list()
    totalItems = one_of(["include", "exclude"])


class OrderBySchema(Schema):
    field = string(required=True)
    order = one_of(["asc", "desc"])


class FullTextFilterSchema(Schema):
    term = string()
    fields = string_list()  # type: ignore[assignment]


class QueryEntitiesBody(BodySchema):
    query = json_object()
    limit = integer(minimum=0, strict=True)
    offset = integer(minimum=0, strict=True)
    orderBy = fields.List(
        fields.Nested(OrderBySchema, error_messages={"null": "must be object"}),
        error_messages={"invalid": "must be array", "null": "must be array"},
    )
    orderField = string_list()
    fullTextFilter = fields.Nested(
        FullTextFilterSchema, error_messages={"invalid": "must be object", "null": "must be object"}
    )
    fields = string_list()  # type: ignore[assignment]
    totalItems = one_of(["include", "exclude"])
    cursor = string()


class PageInfoSchema(Schema):
    nextCursor = fields.String()
    prevCursor = fields.String()


class QueryEntitiesResponse(Schema):
    items = fields.List(fields.Nested(ProjectedEntitySchema))
    totalItems = fields.Integer()
    pageInfo = fields.Nested(PageInfoSchema)


class ByRefsQuery(QuerySchema):
    filter = string_list()


class ByRefsBody(BodySchema):
    entityRefs = string_list(required=True)
    fields = string_list()  # type: ignore[assignment]
    query = json_object()


class ByRefsResponse(Schema):
    items = fields.List(fields.Nested(ProjectedEntitySchema, allow_none=True))


class AncestryItemSchema(Schema):
    entity = fields.Nested(EntitySchema)
    parentEntityRefs = fields.List(fields.String())


class AncestryResponse(Schema):
    rootEntityRef = fields.String()
    items = fields.List(fields.Nested(AncestryItemSchema))


class FacetsQuery(QuerySchema):
    facet = string_list(required=True)
    filter = string_list()


class FacetsBody(BodySchema):
    facets = string_list(required=True)
    query = json_object()


class FacetValueSchema(Schema):
    value = fields.String()
    count = fields.Integer()


class FacetsResponse(Schema):
    facets = fields.Dict(keys=fields.String(), values=fields.List(fields.Nested(FacetValueSchema)))


class ErrorBodySchema(Schema):
    name = fields.String(required=True, metadata={"description": "decides the status code"})
    message = fields.String(required=True)


class ErrorRequestSchema(Schema):
    method = fields.String(required=True)
    url = fields.String(required=True, metadata={"description": "relative to the mount point"})


class ErrorResponseSchema(Schema):
    statusCode = fields.Integer(required=True)


class ErrorSchema(Schema):
    """Backstage's error envelope, which every error response has (``app.api.errors``)."""

    error = fields.Nested(ErrorBodySchema, required=True)
    request = fields.Nested(ErrorRequestSchema, required=True)
    response = fields.Nested(ErrorResponseSchema, required=True)
