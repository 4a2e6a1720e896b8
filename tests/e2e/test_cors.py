"""``backend.cors``: what a browser on another origin gets from a real server process.

Headers are compared with what Backstage's backend (express ``cors`` with minimatch
origins) sends for the same configuration. The browser itself is exercised in
test_backstage_ui.py (set-ups cross-origin and refused-origin).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from app.config import AppConfig, ConfigError
from tests.conftest import ServerProcess, catalog_config, free_port, write_yaml

APP = "http://127.0.0.1:3000"  # an allowed frontend origin
OTHER = "http://127.0.0.1:3001"  # one that is not listed
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type",
}
CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials")


def component(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name},
        "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"},
    }


@pytest.fixture
def serve(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> Callable[[dict[str, Any] | None], str]:
    """A server on two components with this ``backend.cors``; returns its catalog URL."""
    catalog = write_yaml(tmp_path / "catalog.yaml", component("alpha"), component("beta"))

    def start(cors: dict[str, Any] | None) -> str:
        backend = {"cors": cors} if cors is not None else {}
        return start_server([catalog], backend=backend).catalog_url

    return start


@pytest.fixture(scope="module")
def backstage_style(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server with BACKSTAGE_STYLE for the tests that only read (CORS does not depend
    on the database, so SQLite whatever CATALOG_TEST_DATABASE says)."""
    directory = tmp_path_factory.mktemp("cors")
    catalog = write_yaml(directory / "catalog.yaml", component("alpha"), component("beta"))
    config = catalog_config(
        f"sqlite:///{directory / 'catalog.sqlite'}",
        [catalog],
        {"backend": {"cors": BACKSTAGE_STYLE}},
    )
    port = free_port()
    config["backend"]["listen"] = {"host": "127.0.0.1", "port": port}
    (directory / "app-config.yaml").write_text(yaml.safe_dump(config))
    server = ServerProcess(directory / "app-config.yaml", port, directory / "server.log", [])
    try:
        server.wait_ready()
        yield server.catalog_url
    finally:
        server.stop()


BACKSTAGE_STYLE = {
    # As in Backstage's own app-config.yaml, plus a glob and a preflight cache.
    "origin": [APP, "http://localhost:*"],
    "methods": ["GET", "HEAD", "PATCH", "POST", "PUT", "DELETE"],
    "credentials": True,
    "maxAge": 600,
}


def test_allowed_origin_preflight_and_requests(backstage_style: str) -> None:
    url = backstage_style
    preflight = requests.options(
        f"{url}/entities/by-refs", headers={"Origin": APP, **PREFLIGHT}, timeout=10
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == APP
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET,HEAD,PATCH,POST,PUT,DELETE"
    # allowedHeaders unset: the requested headers are reflected, as the cors package does.
    assert preflight.headers["Access-Control-Allow-Headers"] == "content-type"
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    assert preflight.headers["Access-Control-Max-Age"] == "600"
    assert {"Origin", "Access-Control-Request-Headers"} <= vary(preflight)
    assert preflight.content == b""

    post = requests.post(
        f"{url}/entities/by-refs",
        json={"entityRefs": ["component:default/alpha"]},
        headers={"Origin": APP},
        timeout=10,
    )
    assert post.status_code == 200
    assert post.json()["items"][0]["metadata"]["name"] == "alpha"
    assert post.headers["Access-Control-Allow-Origin"] == APP
    assert post.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in vary(post)

    # Paging by Link header: exposed, or a cross-origin client could not read it.
    page = requests.get(f"{url}/entities", params={"limit": 1}, headers={"Origin": APP}, timeout=10)
    assert page.status_code == 200 and 'rel="next"' in page.headers["Link"]
    assert "link" in page.headers["Access-Control-Expose-Headers"].lower().split(",")

    # Errors carry the headers too, so the frontend can show the error body.
    missing = requests.get(
        f"{url}/entities/by-name/component/default/nope", headers={"Origin": APP}, timeout=10
    )
    assert missing.status_code == 404
    assert missing.headers["Access-Control-Allow-Origin"] == APP


def test_refused_origin_gets_no_cors_headers(backstage_style: str) -> None:
    url = backstage_style
    for origin in (OTHER, "https://localhost:3000", "http://localhost.evil.example:3000"):
        preflight = requests.options(
            f"{url}/entities/by-refs", headers={"Origin": origin, **PREFLIGHT}, timeout=10
        )
        get = requests.get(f"{url}/entities", headers={"Origin": origin}, timeout=10)
        for response in (preflight, get):
            present = [h for h in response.headers if h.lower().startswith("access-control-")]
            assert present == [], f"{origin}: {present}"
        # The request itself is answered: refusing is the browser's job, as in Backstage.
        assert get.status_code == 200


def test_glob_origins_match_like_backstage(backstage_style: str) -> None:
    url = backstage_style
    for origin in ("http://localhost:3000", "http://LOCALHOST:7007"):
        response = requests.get(f"{url}/entities", headers={"Origin": origin}, timeout=10)
        assert response.headers.get("Access-Control-Allow-Origin") == origin


def test_without_backend_cors_no_origin_is_answered(serve: Callable[..., str]) -> None:
    url = serve(None)
    preflight = requests.options(
        f"{url}/entities/by-refs", headers={"Origin": APP, **PREFLIGHT}, timeout=10
    )
    get = requests.get(f"{url}/entities", headers={"Origin": APP}, timeout=10)
    assert not any(h in r.headers for r in (preflight, get) for h in CORS_HEADERS)


def test_cors_without_origin_answers_any_origin_with_a_star(serve: Callable[..., str]) -> None:
    # Backstage's behaviour for backend.cors without `origin`: the cors package's "*".
    url = serve({"methods": ["GET"]})
    get = requests.get(f"{url}/entities", headers={"Origin": OTHER}, timeout=10)
    assert get.headers["Access-Control-Allow-Origin"] == "*"


def vary(response: requests.Response) -> set[str]:
    return {part.strip() for part in response.headers.get("Vary", "").split(",") if part.strip()}


@pytest.mark.parametrize(
    "cors",
    [
        "http://localhost:3000",
        {"origin": 3000},
        {"origin": [APP, 1]},
        {"credentials": "yes"},
        {"maxAge": "600"},
    ],
)
def test_bad_cors_settings_are_config_errors(cors: Any) -> None:
    with pytest.raises(ConfigError, match="backend.cors"):
        _ = AppConfig({"backend": {"cors": cors}}).cors


def test_origin_patterns_follow_minimatch() -> None:
    from app.api.cors import OriginPattern

    # Checked against minimatch 10 with {nocase: true, noglobstar: true}, as Backstage uses it.
    cases = [
        ("*", "http://a.example", False),  # "*" stays within one path part: no origin matches
        ("http://localhost:*", "http://localhost:3000", True),
        ("https://*.example.com", "https://a.b.example.com", True),
        ("http://{a,b}.example", "http://b.example", True),
        ("http://localhost:{3000..3002}", "http://localhost:3001", True),
        ("http://localhost:{3000..3002}", "http://localhost:3003", False),
        ("http://localhost:30?0", "http://localhost:3010", True),
        ("http://[ab].example", "http://a.example", True),
        ("!http://a.example", "http://b.example", True),
        ("http://a.example/", "http://a.example", False),
    ]
    for pattern, origin, expected in cases:
        assert OriginPattern(pattern).match(origin) is expected, (pattern, origin)
