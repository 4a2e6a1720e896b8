"""Backstage's error classes (``@backstage/errors``), as data the API and the engine share.

The error ``name`` decides the HTTP status on the wire, and the message of an
error with a cause is ``"<message>; caused by <CauseName>: <cause message>"``,
exactly as Backstage's ``CustomErrorBase`` builds it, because clients and UIs
show these strings verbatim.
"""

from __future__ import annotations

from typing import Any


class CatalogError(Exception):
    """Base of the named errors; ``name`` is what goes on the wire."""

    name = "Error"
    status = 500

    def __init__(self, message: str, cause: BaseException | None = None):
        self.plain_message = message
        self.cause = cause
        full = message
        if cause is not None:
            full = f"{message}; caused by {error_name(cause)}: {error_message(cause)}"
        super().__init__(full)
        self.message = full

    def serialize(self) -> dict[str, Any]:
        return serialize_error(self)


class InputError(CatalogError):
    name = "InputError"
    status = 400


class AuthenticationError(CatalogError):
    name = "AuthenticationError"
    status = 401


class NotAllowedError(CatalogError):
    name = "NotAllowedError"
    status = 403


class NotFoundError(CatalogError):
    name = "NotFoundError"
    status = 404


class ConflictError(CatalogError):
    name = "ConflictError"
    status = 409


class NotModifiedError(CatalogError):
    name = "NotModifiedError"
    status = 304


class NotImplementedYetError(CatalogError):
    """Backstage's ``NotImplementedError`` (renamed: Python has a builtin of that name)."""

    name = "NotImplementedError"
    status = 501


class ServiceUnavailableError(CatalogError):
    name = "ServiceUnavailableError"
    status = 503


class SchemaError(TypeError):
    """A kind's JSON schema rejected an entity; Backstage throws these as ``TypeError``."""


def error_name(exc: BaseException) -> str:
    name = getattr(exc, "name", None)
    if isinstance(name, str):
        return name
    if isinstance(exc, SchemaError | TypeError):
        return "TypeError"
    return "Error"


def error_message(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        return message
    return str(exc)


def serialize_error(exc: BaseException) -> dict[str, Any]:
    """The JSON form Backstage stores in ``status.items[].error`` and ``{errors: [...]}``."""
    body: dict[str, Any] = {"name": error_name(exc), "message": error_message(exc)}
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        body["cause"] = serialize_error(cause)
    return body


def status_for(exc: BaseException) -> int:
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status
    return 500
