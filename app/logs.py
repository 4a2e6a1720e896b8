"""Logging set-up: human-readable text, or one JSON object per line for log pipelines.

``backend.logging.format: json`` (or ``catalog serve --log-format json``) writes
every record, the server's and gunicorn's, as::

    {"time": "2025-01-01T12:00:00.123Z", "level": "INFO", "logger": "catalog.access",
     "message": "GET /api/catalog/entities 200", "request_id": "...", "method": "GET",
     "path": "/api/catalog/entities", "status": 200, "duration": 0.0042}

Records logged while a request is handled carry its ``request_id`` (the
``X-Request-Id`` the client sent, if sane, else a generated one; echoed in the
response), in text mode too. Request logs never contain headers or query strings,
so a bearer token cannot end up in a log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

#: The id of the request this thread is handling, for every record logged meanwhile.
REQUEST_ID: ContextVar[str | None] = ContextVar("catalog_request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Extra attributes a record may carry that belong in the JSON object.
_FIELDS = ("request_id", "method", "path", "route", "status", "duration", "subject")


class RequestIdFilter(logging.Filter):
    """Stamp each record with the current request id (None outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        body: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                body[name] = value
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with ``[request_id]`` when the record belongs to a request."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [{request_id}]" if request_id else line


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """One stderr handler on the root logger, in ``log_format`` (``text`` or ``json``)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(log_format))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level)


def restyle_handlers(logger: logging.Logger, log_format: str) -> None:
    """Give the handlers another library installed (gunicorn's) our format and request ids."""
    for handler in logger.handlers:
        handler.setFormatter(formatter_for(log_format))
        handler.addFilter(RequestIdFilter())
