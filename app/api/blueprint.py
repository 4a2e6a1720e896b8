"""The flask-smorest Blueprint every API module uses, with Backstage's request parsing."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint

from app.api.params import parser
from app.api.schemas import ErrorSchema


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = parser


class CatalogApi(Api):  # type: ignore[misc]
    """flask-smorest's Api, documenting errors as the envelope they are sent in."""

    ERROR_SCHEMA = ErrorSchema


def catalog() -> Any:
    """The catalog services of the running app (see ``app.create_app``)."""
    return current_app.extensions["catalog"]
