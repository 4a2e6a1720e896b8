"""Static bearer tokens (``backend.auth.externalAccess``) on a real server process.

One server with four tokens: read-write, read-only (``permissionAttribute.action: read``),
a permission list, and one restricted to another plugin. Tokens come from the
environment, as a Backstage app-config reads them.
"""

from __future__ import annotations

import hmac
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from app.auth import parse_auth_config
from app.cli import check_exposure, is_loopback
from app.config import AppConfig, ConfigError
from tests.conftest import component, free_port, shared_server, write_yaml

# Distinctive, so that a part of one in a log would be found too.
WRITER = "w8Zq3xKp1LmN0vT6yRb2"
READER = "r4Hd7sJw9QeU5iOa3Gc1"
VALIDATOR = "v2Ft6kYx8PzM4nBq1Wd7"
SCAFFOLDER = "s9Lc3mRv5TgX7hJe2Nu4"
TOKENS = (WRITER, READER, VALIDATOR, SCAFFOLDER)
ENV = {
    "CATALOG_WRITER": WRITER,
    "CATALOG_READER": READER,
    "CATALOG_VALIDATOR": VALIDATOR,
    "CATALOG_SCAFFOLDER": SCAFFOLDER,
}
AUTH: dict[str, Any] = {
    "externalAccess": [
        {
            "type": "static",
            "options": {"token": "${CATALOG_WRITER}", "subject": "backstage-proxy"},
        },
        {
            "type": "static",
            "options": {"token": "${CATALOG_READER}", "subject": "dashboards"},
            "accessRestrictions": [
                {"plugin": "catalog", "permissionAttribute": {"action": "read"}}
            ],
        },
        {
            "type": "static",
            "options": {"token": "${CATALOG_VALIDATOR}", "subject": "ci"},
            "accessRestrictions": [
                {"plugin": "catalog", "permission": "catalog.entity.read, catalog.entity.validate"}
            ],
        },
        {
            "type": "static",
            "options": {"token": "${CATALOG_SCAFFOLDER}", "subject": "templates"},
            "accessRestrictions": [{"plugin": "scaffolder"}],
        },
    ]
}
ENTITY = {
    "apiVersion": "backstage.io/v1alpha1",
    "kind": "Component",
    "metadata": {"name": "validated"},
    "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    files = tmp_path_factory.mktemp("catalog")
    catalog_file = write_yaml(files / "all.yaml", component("payments"), component("ledger"))
    with shared_server(
        tmp_path_factory,
        [catalog_file],
        env=ENV,
        extra_args=["--access-log"],
        backend={"auth": AUTH, "cors": {"origin": "https://backstage.example.com"}},
    ) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_request_without_a_token_gets_401_in_backstages_error_shape(server):
    response = requests.get(f"{server.catalog_url}/entities?fields=kind")
    assert response.status_code == 401
    assert response.reason == "Unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="catalog"'
    assert response.json() == {
        "error": {"name": "AuthenticationError", "message": "Missing credentials"},
        "request": {"method": "GET", "url": "/entities?fields=kind"},
        "response": {"statusCode": 401},
    }


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (f"Bearer {WRITER}x", "Illegal token"),
        (f"Bearer {WRITER[:-1]}", "Illegal token"),
        ("Bearer " + "A" * 4000, "Illegal token"),
        (f"bearer   {READER[::-1]}", "Illegal token"),
        (f"Basic {WRITER}", "Missing credentials"),
        (f"Bearer {WRITER} extra", "Missing credentials"),
        ("Bearer", "Missing credentials"),
        ("", "Missing credentials"),
    ],
)
def test_a_wrong_token_gets_401(server, header: str, message: str):
    response = requests.get(f"{server.catalog_url}/entities", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == {"name": "AuthenticationError", "message": message}


def test_the_scheme_is_case_insensitive_as_in_backstage(server):
    response = requests.get(
        f"{server.catalog_url}/entities", headers={"Authorization": f"bEaReR  {READER}"}
    )
    assert response.status_code == 200


def test_health_probes_stay_open(server):
    for probe in ("liveness", "readiness"):
        response = requests.get(f"{server.base}/.backstage/health/v1/{probe}")
        assert response.status_code == 200, probe


def test_unknown_routes_do_not_answer_before_authentication(server):
    assert requests.get(f"{server.catalog_url}/nope").status_code == 401
    assert requests.get(f"{server.catalog_url}/nope", headers=bearer(READER)).status_code == 404


def test_a_read_write_token_reads_and_writes(server):
    base, headers = server.catalog_url, bearer(WRITER)
    names = [
        e["metadata"]["name"] for e in requests.get(f"{base}/entities", headers=headers).json()
    ]
    assert {"payments", "ledger"} <= set(names)
    assert (
        requests.delete(f"{base}/entities/by-uid/no-such-uid", headers=headers).status_code == 204
    )
    response = requests.post(
        f"{base}/refresh", json={"entityRef": "component:default/payments"}, headers=headers
    )
    assert response.status_code == 200
    response = requests.post(
        f"{base}/validate-entity",
        json={"entity": ENTITY, "location": "url:https://example.com/catalog-info.yaml"},
        headers=headers,
    )
    assert response.status_code == 200


def test_a_read_only_token_reads_also_through_post(server):
    base, headers = server.catalog_url, bearer(READER)
    assert requests.get(f"{base}/entities/by-query?limit=1", headers=headers).status_code == 200
    response = requests.post(
        f"{base}/entities/by-refs",
        json={"entityRefs": ["component:default/payments"]},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.json()["items"][0]["metadata"]["name"] == "payments"
    assert (
        requests.post(
            f"{base}/entity-facets", json={"facets": ["kind"]}, headers=headers
        ).status_code
        == 200
    )
    assert requests.get(f"{base}/locations", headers=headers).status_code == 200
    assert requests.get(f"{server.base}/api/graph/status", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "permission"),
    [
        ("POST", "/refresh", {"entityRef": "component:default/payments"}, "catalog.entity.refresh"),
        ("DELETE", "/entities/by-uid/some-uid", None, "catalog.entity.delete"),
        (
            "POST",
            "/locations",
            {"type": "url", "target": "https://example.com/catalog-info.yaml"},
            "catalog.location.create",
        ),
        (
            "PUT",
            "/locations/some-id",
            {"type": "url", "target": "https://example.com/x.yaml"},
            "catalog.location.create",
        ),
        ("DELETE", "/locations/some-id", None, "catalog.location.delete"),
        (
            "POST",
            "/validate-entity",
            {"entity": ENTITY, "location": "url:https://example.com/catalog-info.yaml"},
            "catalog.entity.validate",
        ),
        (
            "POST",
            "/analyze-location",
            {"location": {"type": "url", "target": "https://example.com/repo"}},
            "catalog.location.analyze",
        ),
    ],
)
def test_a_read_only_token_on_a_write_gets_403(server, method, path, body, permission):
    response = requests.request(
        method, f"{server.catalog_url}{path}", json=body, headers=bearer(READER)
    )
    assert response.status_code == 403
    assert response.reason == "Forbidden"
    assert response.json() == {
        "error": {
            "name": "NotAllowedError",
            "message": f"The token of 'dashboards' does not grant {permission}",
        },
        "request": {"method": method, "url": path},
        "response": {"statusCode": 403},
    }


def test_a_permission_list_allows_exactly_its_permissions(server):
    base, headers = server.catalog_url, bearer(VALIDATOR)
    response = requests.post(
        f"{base}/validate-entity",
        json={"entity": ENTITY, "location": "url:https://example.com/catalog-info.yaml"},
        headers=headers,
    )
    assert response.status_code == 200
    assert requests.get(f"{base}/entities?limit=1", headers=headers).status_code == 200
    assert requests.get(f"{base}/locations", headers=headers).status_code == 403
    response = requests.post(
        f"{base}/refresh", json={"entityRef": "component:default/payments"}, headers=headers
    )
    assert response.status_code == 403


def test_a_token_for_another_plugin_gets_403(server):
    response = requests.get(f"{server.catalog_url}/entities", headers=bearer(SCAFFOLDER))
    assert response.status_code == 403
    assert response.json()["error"] == {
        "name": "NotAllowedError",
        "message": "This token's access is restricted to plugin(s) 'scaffolder'",
    }


def test_metrics_and_graph_need_a_token(server):
    assert requests.get(f"{server.base}/metrics").status_code == 401
    assert requests.get(f"{server.base}/metrics", headers=bearer(READER)).status_code == 200
    assert requests.get(f"{server.base}/api/graph/status").status_code == 401
    assert requests.get(f"{server.base}/api/catalog-graph/graph").status_code == 401


def test_a_cors_preflight_needs_no_token(server):
    response = requests.options(
        f"{server.catalog_url}/entities",
        headers={
            "Origin": "https://backstage.example.com",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://backstage.example.com"
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


def test_tokens_never_reach_the_log(server):
    # Every token, valid or not, in headers of requests that succeed, fail and are refused.
    for token in TOKENS:
        requests.get(f"{server.catalog_url}/entities", headers=bearer(token))
        requests.get(f"{server.catalog_url}/entities", headers=bearer(token + "wrong"))
        requests.post(f"{server.catalog_url}/refresh", json={}, headers=bearer(token))
    log = server.log_path.read_text(errors="replace")
    assert "GET /api/catalog/entities" in log  # the access log is on
    assert "Authentication on: bearer tokens of backstage-proxy (read-write)" in log
    assert "dashboards (read-only)" in log
    for token in TOKENS:
        assert token not in log
        assert token[:10] not in log and token[-10:] not in log


# -- configuration and start-up -------------------------------------------------------------


def static(token: str, subject: str) -> dict[str, Any]:
    return {"type": "static", "options": {"token": token, "subject": subject}}


def test_token_comparison_looks_at_every_configured_token(monkeypatch):
    settings = parse_auth_config(
        {"externalAccess": [static(WRITER, "backstage-proxy"), static(READER, "dashboards")]}
    )
    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(a)
        return real(a, b)

    monkeypatch.setattr("app.auth.hmac.compare_digest", spy)
    assert settings.verify(WRITER).subject == "backstage-proxy"  # type: ignore[union-attr]
    assert len(compared) == 2  # no early exit on the first match
    assert settings.verify("nope") is None
    assert WRITER not in repr(settings)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "jwks", "options": {}}, "Unknown type 'jwks'"),
        ({"type": "static", "options": {"token": "short", "subject": "s"}}, "at least 8"),
        ({"type": "static", "options": {"token": "", "subject": "s"}}, "non-space"),
        ({"type": "static", "options": {"token": "has space 123", "subject": "s"}}, "non-space"),
        ({"type": "static", "options": {"token": "secret-secret", "subject": "a b"}}, "subject"),
        (
            {
                "type": "static",
                "options": {"token": "secret-secret", "subject": "s"},
                "accessRestrictions": [{"plugin": "catalog", "permissionAttribute": {"x": 1}}],
            },
            "Invalid key 'x'",
        ),
        (
            {
                "type": "static",
                "options": {"token": "secret-secret", "subject": "s"},
                "accessRestrictions": [
                    {"plugin": "catalog", "permissionAttribute": {"action": "write"}}
                ],
            },
            "Invalid value 'write'",
        ),
        (
            {
                "type": "static",
                "options": {"token": "secret-secret", "subject": "s"},
                "accessRestrictions": [{"plugin": "catalog", "permission": "catalog.entity.eat"}],
            },
            "unknown catalog permission(s) catalog.entity.eat",
        ),
    ],
)
def test_bad_token_configuration_is_refused_without_echoing_the_token(entry, message):
    with pytest.raises(ConfigError) as raised:
        AppConfig({"backend": {"auth": {"externalAccess": [entry]}}}).validate()
    assert message in str(raised.value)
    token = (entry.get("options") or {}).get("token")
    if token and len(token) > 3:
        assert token not in str(raised.value)


def test_a_token_may_not_be_declared_twice():
    entry = {"type": "static", "options": {"token": "secret-secret", "subject": "s"}}
    with pytest.raises(ConfigError, match="declared more than once"):
        AppConfig({"backend": {"auth": {"externalAccess": [entry, entry]}}}).validate()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("catalog.internal", False),
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool):
    assert is_loopback(host) is loopback


def test_without_auth_a_non_loopback_host_needs_an_explicit_opt_in(caplog):
    exposed = AppConfig({"backend": {"listen": {"host": "0.0.0.0", "port": 7007}}})
    with pytest.raises(ConfigError, match="refusing to listen on 0.0.0.0 without auth"):
        check_exposure(exposed, allow_unauthenticated=False)
    caplog.set_level("INFO")
    check_exposure(exposed, allow_unauthenticated=True)
    assert "anyone who can reach it may read and write" in caplog.text
    assert "--allow-unauthenticated" in caplog.text
    opted_in = AppConfig(
        {
            "backend": {
                "listen": {"host": "0.0.0.0"},
                "auth": {"dangerouslyDisableDefaultAuthPolicy": True},
            }
        }
    )
    check_exposure(opted_in, allow_unauthenticated=False)
    assert "allowed by backend.auth.dangerouslyDisableDefaultAuthPolicy" in caplog.text
    with_auth = AppConfig(
        {
            "backend": {
                "listen": {"host": "0.0.0.0"},
                "auth": {"externalAccess": [static(WRITER, "backstage-proxy")]},
            }
        }
    )
    check_exposure(with_auth, allow_unauthenticated=False)
    assert "Authentication on: bearer tokens of backstage-proxy (read-write)" in caplog.text
    assert WRITER not in caplog.text


def test_serve_refuses_an_exposed_host_without_auth_and_says_why(tmp_path: Path):
    config = tmp_path / "app-config.yaml"
    config.write_text(
        f"backend:\n  listen: {{host: 0.0.0.0, port: {free_port()}}}\n"
        f"  database: {{url: 'sqlite:///{tmp_path / 'x.sqlite'}'}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "refusing to listen on 0.0.0.0 without authentication" in result.stderr
    assert "--allow-unauthenticated" in result.stderr


def test_serve_says_at_start_up_that_it_runs_without_auth_on_loopback(start_server, tmp_path):
    server = start_server([write_yaml(tmp_path / "c.yaml", component("solo"))])
    assert "Authentication is not configured (backend.auth.externalAccess)" in server.log()
    assert "listening on loopback (127.0.0.1) only" in server.log()
    assert requests.get(f"{server.catalog_url}/entities").status_code == 200


def test_every_endpoint_has_a_permission_decision():
    """A new endpoint must say which permission it checks (or why it is open)."""
    from app import create_app
    from app.api.auth import (
        BLUEPRINT_PERMISSIONS,
        ENDPOINT_PERMISSIONS,
        OPEN_BLUEPRINTS,
        permission_for,
    )
    from app.auth import PERMISSION_ACTIONS

    app = create_app(AppConfig({}), catalog=object(), start=False)
    undecided = []
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.partition(".")[0]
        if rule.endpoint in ("static", "metrics") or blueprint in OPEN_BLUEPRINTS:
            continue
        permission = permission_for(rule.endpoint)
        if permission is None:
            undecided.append(rule.endpoint)
        else:
            assert permission in PERMISSION_ACTIONS, rule.endpoint
    assert undecided == []
    assert set(ENDPOINT_PERMISSIONS.values()) | set(BLUEPRINT_PERMISSIONS.values()) <= set(
        PERMISSION_ACTIONS
    )
