"""Request ids, request metrics and request logs, and the ``/metrics`` endpoint.

Every request gets an id: the client's ``X-Request-Id`` when it is a sane token
(1-128 characters from ``A-Za-z0-9._:/+=-``), otherwise a generated one; it is
echoed in the response and stamped on every log record of the request. Latency is
recorded by route, the URL rule (``/api/catalog/entities/by-name/<kind>/...``), not
the raw path, so the number of series stays bounded whatever clients send, and sent
back as ``Server-Timing: app;dur=<ms>`` (the W3C header browsers' developer tools
show), so a client can tell the catalog's time from the network's and the HTTP
server's.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from flask import Flask, Response, current_app, g, request

from app.logs import REQUEST_ID
from app.metrics import (
    CONTENT_TYPE,
    REQUEST_SECONDS,
    CatalogCollector,
    exposition,
    scrape_registry,
)

access_log = logging.getLogger("catalog.access")

_SANE_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
UNMATCHED_ROUTE = "unmatched"


def init_observability(app: Flask, catalog: Any, *, log_requests: bool = False) -> None:
    """Install the request hooks (first of all, so they time and tag everything) and
    ``GET /metrics``."""

    def start() -> None:
        g.request_started = time.perf_counter()
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
        g.request_id = request_id
        g.request_id_token = REQUEST_ID.set(request_id)

    app.before_request_funcs.setdefault(None, []).insert(0, start)

    @app.after_request
    def finish(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id is not None:
            response.headers["X-Request-Id"] = request_id
        started = g.get("request_started")
        if started is None:
            return response
        duration = time.perf_counter() - started
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        status = response.status_code
        response.headers["Server-Timing"] = f"app;dur={duration * 1000:.3f}"
        REQUEST_SECONDS.labels(request.method, route, str(status)).observe(duration)
        if log_requests:
            principal = g.get("principal")
            access_log.info(
                "%s %s %d %.1fms",
                request.method,
                request.path,
                status,
                duration * 1000,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "route": route,
                    "status": status,
                    "duration": round(duration, 6),
                    "subject": getattr(principal, "subject", None),
                },
            )
        return response

    @app.teardown_request
    def forget(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            try:
                REQUEST_ID.reset(token)
            except ValueError:  # set in another context (cannot happen with sync Flask)
                REQUEST_ID.set(None)

    def graph_service() -> Any:
        return current_app.extensions.get("graph")

    registry = scrape_registry(CatalogCollector(catalog, graph_service))

    def metrics() -> Response:
        engine = getattr(catalog, "engine", None)
        if engine is not None:  # what the stitching process reported since the last poll
            engine.absorb_stitch_reports()
        return Response(exposition(registry), mimetype=None, content_type=CONTENT_TYPE)

    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
