"""Push events: signed webhooks make a new commit visible within seconds.

The latency tests run a real ``catalog serve`` process against repositories served by
``git daemon`` on 127.0.0.1, with a schedule far too slow to matter: only the event can
bring the change in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from app import create_app
from tests.conftest import component, final_entities_by_ref, settle
from tests.gitrepos import Remote, git_daemon

SECRET = "It's a Secret to Everybody"
NAME = "git-provider:repos"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_signature_matches_githubs_documented_example():
    # The example of GitHub's "Validating webhook deliveries" documentation.
    assert sign(b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


@pytest.fixture
def repos(tmp_path: Path) -> list[Remote]:
    made = []
    for name in ("alpha", "beta"):
        remote = Remote(tmp_path / "srv" / "org", name, tmp_path / "work")
        remote.write_yaml("catalog-info.yaml", component(name))
        remote.commit("initial")
        made.append(remote)
    return made


@pytest.fixture
def daemon(tmp_path: Path, repos: list[Remote]) -> Iterator[int]:
    with git_daemon(tmp_path / "srv") as port:
        yield port


def provider_config(tmp_path: Path, port: int, **catalog: Any) -> dict[str, Any]:
    return {
        "backend": {"reading": {"git": {"cacheDir": str(tmp_path / "cache")}}},
        "catalog": {
            "providers": {
                "git": {
                    "repos": {
                        "repositories": [
                            f"git://127.0.0.1:{port}/org/alpha.git",
                            f"git://127.0.0.1:{port}/org/beta.git",
                        ],
                        "schedule": {"frequency": {"hours": 1}},
                    }
                }
            },
            **catalog,
        },
    }


def lifecycle(entities: dict[str, Any], name: str) -> str | None:
    entity = entities.get(f"component:default/{name}")
    return entity["spec"]["lifecycle"] if entity else None


# -- through the Flask test client: signatures and bad input --------------------------------


@pytest.fixture
def client(make_catalog, tmp_path, daemon) -> Any:
    catalog = make_catalog(**provider_config(tmp_path, daemon, events={"secret": SECRET}))
    provider = next(p for p in catalog.engine.providers if p.get_provider_name() == NAME)
    provider.sync()
    settle(catalog)
    app = create_app(catalog.config, catalog=catalog, start=False)
    client = app.test_client()
    client.catalog = catalog  # type: ignore[attr-defined]
    return client


def post(client: Any, path: str, payload: Any, signature: str | None = "sign", **headers: Any):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if signature == "sign":
        signature = sign(body)
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return client.post(
        f"/api/catalog/events/{path}",
        data=body,
        headers={"Content-Type": "application/json", **headers},
    )


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (None, "Missing X-Hub-Signature-256 header"),
        ("sha256=" + "0" * 64, "signature does not match the body"),
        (sign(b"another body"), "signature does not match the body"),
        (sign(b"x", "wrong secret"), "signature does not match the body"),
        ("sha1=abcdef", "must look like sha256=<hex digest>"),
    ],
)
def test_a_wrong_signature_is_refused_and_changes_nothing(client, repos, signature, message):
    catalog = client.catalog
    before = final_entities_by_ref(catalog)
    repos[0].write_yaml("catalog-info.yaml", component("alpha", lifecycle="experimental"))
    repos[0].commit("unannounced")
    response = post(client, "git", {"repository": repos[0].file_url}, signature)
    assert response.status_code == 401
    assert message in response.get_json()["error"]["message"]
    assert response.get_json()["error"]["name"] == "AuthenticationError"
    settle(catalog)
    assert final_entities_by_ref(catalog) == before


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"repository": "--upload-pack=touch /tmp/pwned"}, "looks like a command option"),
        ({"repository": "ext::sh -c touch% /tmp/pwned"}, "transport 'ext::' is not allowed"),
        ({"repository": "git://127.0.0.1/org/../../etc"}, "'..' paths are not allowed"),
        ({"repository": "git://127.0.0.1/org/a", "ref": "--output=/tmp/x"}, "not a valid"),
        ({}, "must be a non-empty string"),
        (b"{not json", "Malformed event body"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_events_are_refused(client, payload, message):
    before = final_entities_by_ref(client.catalog)
    response = post(client, "git", payload)
    assert response.status_code == 400
    assert message in response.get_json()["error"]["message"]
    settle(client.catalog)
    assert final_entities_by_ref(client.catalog) == before


def test_github_ping_and_other_events_are_ignored(client):
    response = post(
        client, "github", {"zen": "Keep it logically awesome."}, **{"X-GitHub-Event": "ping"}
    )
    assert response.status_code == 200
    assert response.get_json() == {"ignored": "pong"}
    response = post(client, "github", {}, **{"X-GitHub-Event": "issues"})
    assert response.get_json() == {"ignored": "event 'issues' is not handled"}


def test_events_need_a_configured_secret(make_catalog, tmp_path, daemon):
    catalog = make_catalog(**provider_config(tmp_path, daemon))
    client = create_app(catalog.config, catalog=catalog, start=False).test_client()
    response = post(client, "git", {"repository": f"git://127.0.0.1:{daemon}/org/alpha.git"})
    assert response.status_code == 403
    assert "no webhook secret is configured" in response.get_json()["error"]["message"]


def test_a_provider_secret_speaks_for_its_provider_only(make_catalog, tmp_path, daemon, repos):
    config = provider_config(tmp_path, daemon)
    config["catalog"]["providers"]["git"]["repos"]["webhookSecret"] = "provider secret"
    catalog = make_catalog(**config)
    provider = next(p for p in catalog.engine.providers if p.get_provider_name() == NAME)
    provider.sync()
    settle(catalog)
    client = create_app(catalog.config, catalog=catalog, start=False).test_client()
    body = json.dumps({"repository": f"git://127.0.0.1:{daemon}/org/alpha.git"}).encode()
    response = post(client, "git", body, sign(body, "provider secret"))
    assert response.status_code == 202
    assert response.get_json() == {"providers": [NAME], "repositories": ["127.0.0.1/org/alpha"]}


# -- a real server: a push shows up within 5 seconds --------------------------------------


def wait_for(url: str, predicate: Any, timeout: float) -> float:
    """Poll ``url`` until ``predicate(entities)``; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        items = requests.get(url, timeout=5).json()
        entities = {f"{e['kind']}:default/{e['metadata']['name']}".lower(): e for e in items}
        if predicate(entities):
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not seen within {timeout} s")


@pytest.mark.parametrize("kind", ["github", "git"])
def test_a_push_event_makes_a_new_commit_visible_within_5_seconds(
    start_server, tmp_path, repos, daemon, kind
):
    server = start_server(**provider_config(tmp_path, daemon, events={"secret": SECRET}))
    entities_url = f"{server.catalog_url}/entities?filter=kind=component"
    # The configuration names a git daemon with several repositories: all are served.
    wait_for(
        entities_url,
        lambda e: lifecycle(e, "alpha") == "production" and lifecycle(e, "beta") == "production",
        30,
    )

    repos[0].write_yaml("catalog-info.yaml", component("alpha", lifecycle="experimental"))
    repos[0].write_yaml("services/new/catalog-info.yaml", component("alpha-new"))
    repos[0].commit("merge: alpha is experimental")
    url = f"git://127.0.0.1:{daemon}/org/alpha.git"
    if kind == "github":
        payload: dict[str, Any] = {
            "ref": "refs/heads/main",
            "after": repos[0].head(),
            "repository": {
                "name": "alpha",
                "full_name": "org/alpha",
                "clone_url": url,
                "owner": {"login": "org"},
            },
        }
        headers = {"X-GitHub-Event": "push"}
    else:
        payload = {"repository": url, "ref": "refs/heads/main"}
        headers = {}
    body = json.dumps(payload).encode()
    started = time.monotonic()
    response = requests.post(
        f"{server.catalog_url}/events/{kind}",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body), **headers},
        timeout=5,
    )
    assert response.status_code == 202, response.text
    assert response.json()["providers"] == [NAME]
    wait_for(entities_url, lambda e: lifecycle(e, "alpha") == "experimental", 5)
    latency = time.monotonic() - started
    print(f"push event ({kind}) to a changed entity served: {latency:.2f} s")
    assert latency < 5
    # The catalog path is only the root file: the nested one is not discovered.
    assert "component:default/alpha-new" not in {
        f"{e['kind']}:default/{e['metadata']['name']}".lower()
        for e in requests.get(entities_url, timeout=5).json()
    }
