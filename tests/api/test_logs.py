"""Structured logs and request ids, on real server processes."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
import requests

from app.logs import JsonFormatter, RequestIdFilter
from tests.conftest import component, shared_server, write_yaml


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory):
    files = tmp_path_factory.mktemp("catalog")
    path = write_yaml(files / "all.yaml", component("logged"))
    with shared_server(
        tmp_path_factory, [path], extra_args=["--log-format", "json", "--access-log"]
    ) as running:
        yield running


def records(server: Any) -> list[dict[str, Any]]:
    lines = server.log_path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def lines_with(server: Any, text: str, timeout: float = 5.0) -> list[str]:
    """The log lines containing ``text``, waiting for the server to write them."""
    deadline = time.monotonic() + timeout
    while True:
        found = [x for x in server.log_path.read_text(errors="replace").splitlines() if text in x]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_every_line_is_one_json_object(json_server):
    requests.get(f"{json_server.catalog_url}/entities")
    parsed = records(json_server)  # raises if any line is not JSON
    assert parsed
    for record in parsed:
        assert {"time", "level", "logger", "message"} <= set(record), record
    loggers = {r["logger"] for r in parsed}
    assert "gunicorn.error" in loggers  # gunicorn's own lines are JSON too
    assert "catalog" in loggers  # the start-up lines


def test_a_request_line_carries_id_method_path_status_and_duration(json_server):
    response = requests.get(
        f"{json_server.catalog_url}/entities/by-name/component/default/logged",
        headers={"X-Request-Id": "trace-42.a:b/c+d=e"},
    )
    assert response.headers["X-Request-Id"] == "trace-42.a:b/c+d=e"
    lines_with(json_server, "trace-42")
    [line] = [r for r in records(json_server) if r.get("request_id") == "trace-42.a:b/c+d=e"]
    assert line["logger"] == "catalog.access"
    assert line["method"] == "GET"
    assert line["path"] == "/api/catalog/entities/by-name/component/default/logged"
    assert line["route"] == "/api/catalog/entities/by-name/<kind>/<namespace>/<name>"
    assert line["status"] == 200
    assert 0 < line["duration"] < 10


def test_a_response_says_how_long_the_catalog_took(json_server):
    response = requests.get(f"{json_server.catalog_url}/entities?limit=1")
    name, duration = response.headers["Server-Timing"].split(";dur=")
    assert name == "app" and 0 < float(duration) < 10_000


@pytest.mark.parametrize(
    "hostile",
    ["", "a" * 129, "two words", "semi;colon", "new\u2028line", "<script>", "ünïcode"],
)
def test_an_unusable_request_id_is_replaced(json_server, hostile: str):
    headers = {"X-Request-Id": hostile.encode("utf-8")} if hostile else {}
    response = requests.get(f"{json_server.catalog_url}/entities?limit=1", headers=headers)
    generated = response.headers["X-Request-Id"]
    assert generated != hostile and len(generated) == 32
    assert lines_with(json_server, generated)
    assert any(r.get("request_id") == generated for r in records(json_server))


def test_a_path_cannot_forge_log_lines(json_server):
    requests.get(f"{json_server.catalog_url}/entities/by-name/a/b/c%0A%7B%22level%22%3A%22X%22%7D")
    for record in records(json_server):  # still one valid object per line
        assert record.get("level") != "X"


def test_text_mode_appends_the_request_id_to_gunicorns_access_line(start_server, tmp_path):
    path = write_yaml(tmp_path / "c.yaml", component("texty"))
    server = start_server([path], extra_args=["--access-log"])
    requests.get(f"{server.catalog_url}/entities", headers={"X-Request-Id": "text-id-7"})
    [line] = lines_with(server, "text-id-7")
    assert '"GET /api/catalog/entities HTTP/1.1" 200' in line
    assert line.endswith(" text-id-7")


def test_records_logged_during_a_request_carry_its_id():
    from app.logs import REQUEST_ID

    record = logging.LogRecord("catalog", logging.WARNING, __file__, 1, "slow %s", ("x",), None)
    token = REQUEST_ID.set("req-1")
    try:
        RequestIdFilter().filter(record)
    finally:
        REQUEST_ID.reset(token)
    body = json.loads(JsonFormatter().format(record))
    assert body["request_id"] == "req-1"
    assert body["message"] == "slow x"
    assert body["time"].endswith("Z")
