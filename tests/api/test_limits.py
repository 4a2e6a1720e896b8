"""``catalog.limits`` on the request side, against a real server: each violation is a
400 or 413 in Backstage's error envelope, and the server keeps serving."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from tests.conftest import component, shared_server, write_yaml

LIMITS = {"requestBodyBytes": 4096, "byRefs": 5, "pageSize": 50}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    files = tmp_path_factory.mktemp("catalog")
    catalog_file = write_yaml(files / "all.yaml", *(component(f"c{i}") for i in range(3)))
    with shared_server(tmp_path_factory, [catalog_file], catalog={"limits": LIMITS}) as running:
        yield running


def assert_error(response: requests.Response, status: int, name: str, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["name"] == name
    assert fragment in body["error"]["message"]
    assert body["response"] == {"statusCode": status}


def test_a_body_over_the_limit_gets_413(server):
    body = json.dumps({"entityRefs": ["component:default/" + "x" * 5000]})
    response = requests.post(
        f"{server.catalog_url}/entities/by-refs",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.reason == "Payload Too Large"
    assert_error(
        response,
        413,
        "PayloadTooLargeError",
        f"the body is {len(body)} bytes, the limit is 4096 bytes (catalog.limits.requestBodyBytes)",
    )
    assert response.json()["request"] == {"method": "POST", "url": "/entities/by-refs"}


def test_a_chunked_body_is_cut_off_at_the_limit(server):
    def chunks():
        yield b'{"entityRefs": ["'
        for _ in range(100):
            yield b"x" * 1000

    response = requests.post(
        f"{server.catalog_url}/entities/by-refs",
        data=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 413, "PayloadTooLargeError", "the limit is 4096 bytes")


def test_too_many_refs_in_by_refs(server):
    refs = [f"component:default/c{i}" for i in range(6)]
    response = requests.post(f"{server.catalog_url}/entities/by-refs", json={"entityRefs": refs})
    assert_error(
        response,
        400,
        "InputError",
        "Too many entity refs, 6: at most 5 may be asked for at once (catalog.limits.byRefs)",
    )
    response = requests.post(
        f"{server.catalog_url}/entities/by-refs", json={"entityRefs": refs[:5]}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/entities?limit=51", None),
        ("GET", "/entities/by-query?limit=51", None),
        ("POST", "/entities/by-query", {"limit": 1_000_000_000}),
        ("POST", "/locations/by-query", {"limit": 51}),
        ("POST", "/locations/by-query", {"limit": 1e300}),
    ],
)
def test_a_page_over_the_limit_gets_400(server, method, path, body):
    response = requests.request(method, f"{server.catalog_url}{path}", json=body)
    assert_error(response, 400, "InputError", "must be at most 50 (catalog.limits.pageSize)")


def test_a_forged_cursor_cannot_lift_the_page_size(server):
    after = base64.b64encode(json.dumps({"limit": 10**9, "offset": 0}).encode()).decode()
    response = requests.get(f"{server.catalog_url}/entities", params={"after": after})
    assert_error(response, 400, "InputError", "catalog.limits.pageSize")
    cursor = base64.b64encode(json.dumps({"limit": 10**9}).encode()).decode()
    response = requests.post(f"{server.catalog_url}/locations/by-query", json={"cursor": cursor})
    assert_error(response, 400, "InputError", "catalog.limits.pageSize")


def test_pages_within_the_limit_are_served(server):
    response = requests.get(f"{server.catalog_url}/entities", params={"limit": 50})
    assert response.status_code == 200
    assert len(response.json()) == 4  # three components and the generated Location


def test_a_deeply_nested_json_body_is_refused(server):
    body = '{"query": ' + "[" * 2000 + "]" * 2000 + "}"
    response = requests.post(
        f"{server.catalog_url}/entities/by-query",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["name"] == "InputError"


def test_oversized_headers_and_request_lines_are_refused_by_gunicorn(server):
    # gunicorn's own limits (8190-byte header fields, 4094-byte request line) answer
    # before the app sees the request; the server keeps serving.
    response = requests.get(f"{server.catalog_url}/entities", headers={"X-Big": "a" * 10_000})
    assert response.status_code == 431
    assert response.reason == "Request Header Fields Too Large"
    assert response.json()["error"]["name"] == "InputError"
    response = requests.get(f"{server.catalog_url}/entities?filter=" + "a" * 10_000)
    assert response.status_code == 414
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["error"]["name"] == "InputError"
    assert body["error"]["message"].startswith("Request Line is too large (")
    assert body["request"] == {"method": "", "url": ""}
    assert body["response"] == {"statusCode": 414}
    assert requests.get(f"{server.catalog_url}/entities?limit=1").status_code == 200
