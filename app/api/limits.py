"""Request limits from ``catalog.limits``: body size, page size, refs per by-refs call.

A body over ``requestBodyBytes`` is refused with 413 before it is read (with a
``Content-Length``) or as soon as the stream passes the limit (chunked uploads),
in Backstage's error envelope with the name express's body parser gives it.
"""

from __future__ import annotations

import io

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.api.errors import error_response
from app.errors import CatalogError, InputError
from app.limits import DEFAULT_LIMITS, Limits


class PayloadTooLargeError(CatalogError):
    name = "PayloadTooLargeError"
    status = 413


def init_limits(app: Flask, limits: Limits) -> None:
    app.extensions["limits"] = limits
    app.config["MAX_CONTENT_LENGTH"] = limits.request_body_bytes

    def buffer_chunked_body() -> None:
        """A body without Content-Length (chunked): read up to the limit here, refuse more.

        Werkzeug would cut such a stream at the limit without a word (the request then
        fails as malformed JSON); buffering it first turns that into a clear 413.
        """
        environ = request.environ
        if environ.get("CONTENT_LENGTH") or "wsgi.input_terminated" not in environ:
            return
        data = environ["wsgi.input"].read(limits.request_body_bytes + 1)
        if len(data) > limits.request_body_bytes:
            raise RequestEntityTooLarge()
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))

    # Before anything reads the body (request.stream is computed once).
    app.before_request_funcs.setdefault(None, []).insert(0, buffer_chunked_body)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc: RequestEntityTooLarge) -> Response:
        size = request.content_length
        declared = f"the body is {size} bytes, " if size is not None else ""
        return error_response(
            PayloadTooLargeError(
                f"request entity too large: {declared}the limit is "
                f"{limits.request_body_bytes} bytes (catalog.limits.requestBodyBytes)"
            )
        )


def current_limits() -> Limits:
    limits = current_app.extensions.get("limits")
    return limits if isinstance(limits, Limits) else DEFAULT_LIMITS


def check_page_size(limit: int | None) -> None:
    """Refuse a page larger than ``catalog.limits.pageSize``."""
    maximum = current_limits().page_size
    if limit is not None and limit > maximum:
        raise InputError(
            f"Invalid limit {limit}, must be at most {maximum} (catalog.limits.pageSize)"
        )


def check_ref_count(refs: list[str]) -> None:
    """Refuse more refs in one by-refs call than ``catalog.limits.byRefs``."""
    maximum = current_limits().by_refs
    if len(refs) > maximum:
        raise InputError(
            f"Too many entity refs, {len(refs)}: at most {maximum} may be asked for at once "
            "(catalog.limits.byRefs)"
        )
