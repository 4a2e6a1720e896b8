"""Backstage's error envelope and Node's reason phrases, for every response.

Every error leaves the API as::

    {"error": {"name", "message"}, "request": {"method", "url"}, "response": {"statusCode"}}

where ``request.url`` is the URL as received, relative to the plugin's mount point
(``/entities?...`` for ``/api/catalog/entities?...``). Status lines use Node's
reason phrases ("Not Found", not Werkzeug's "NOT FOUND"): Backstage clients and
the proxy pass them through, so they are part of the wire format.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from app import jsonutil
from app.errors import CatalogError, InputError, error_message, error_name, status_for

log = logging.getLogger(__name__)

# Node's http.STATUS_CODES where it differs from Python's phrase.
_NODE_PHRASES = {
    413: "Payload Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Entity",
}

# Where each API is mounted; request.url in error bodies is relative to it.
MOUNT_POINTS = ("/api/catalog-graph", "/api/catalog", "/api/graph")


def reason_phrase(status: int) -> str:
    if status in _NODE_PHRASES:
        return _NODE_PHRASES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def plugin_relative_url() -> str:
    """The request URL as received (query string untouched), minus the mount point."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if not raw:
        raw = request.path
        if request.query_string:
            raw += "?" + request.query_string.decode("latin-1")
    for mount in MOUNT_POINTS:
        if raw == mount or raw.startswith(mount + "/") or raw.startswith(mount + "?"):
            return raw[len(mount) :] or "/"
    return raw


def json_response(body: str | bytes, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="application/json")


def error_response(exc: BaseException, status: int | None = None) -> Response:
    status = status or status_for(exc)
    body = {
        "error": {"name": error_name(exc), "message": error_message(exc)},
        "request": {"method": request.method, "url": plugin_relative_url()},
        "response": {"statusCode": status},
    }
    return json_response(jsonutil.dumps(body), status)


class _HttpError(Exception):
    """A werkzeug HTTP error seen through Backstage's error names."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name
        self.message = message


_HTTP_ERROR_NAMES = {
    400: "InputError",
    401: "AuthenticationError",
    403: "NotAllowedError",
    404: "NotFoundError",
    405: "NotAllowedError",
    409: "ConflictError",
    413: "InputError",
    415: "InputError",
}


def register_error_handlers(app: Flask) -> None:
    @app.before_request
    def reject_nul() -> None:
        # No entity can contain NUL, and PostgreSQL refuses it in a query parameter.
        if "\x00" in request.path or any(
            "\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)
        ):
            raise InputError("The request contains a NUL character")

    @app.errorhandler(CatalogError)
    def handle_catalog_error(exc: CatalogError) -> Response:
        return error_response(exc)

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        name = _HTTP_ERROR_NAMES.get(status, "Error")
        if status == 404:
            message = f"No route for {request.method} {plugin_relative_url()}"
        elif status == 405:
            message = f"Method {request.method} is not allowed for {request.path}"
        else:
            message = exc.description or reason_phrase(status)
        response = error_response(_HttpError(name, message), status)
        if status == 405:
            # RFC 9110: a 405 lists the methods the route has.
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(sorted(allowed))
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Response:
        log.exception("Unhandled error on %s %s", request.method, request.path)
        if current_app.debug:
            return error_response(exc, 500)
        return error_response(_HttpError("Error", "Internal server error"), 500)

    @app.after_request
    def node_reason_phrase(response: Response) -> Response:
        response.status = f"{response.status_code} {reason_phrase(response.status_code)}"
        return response
