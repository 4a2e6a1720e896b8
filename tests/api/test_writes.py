"""Entity writes over real HTTP: refresh, delete by uid, validate-entity, analyze-location."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.api.test_locations import component, entity, group, location_entity, wait_for
from tests.conftest import write_yaml
from tests.httpserver import file_server

ZERO_UUID = "00000000-0000-0000-0000-000000000000"
VALID = {
    "apiVersion": "backstage.io/v1alpha1",
    "kind": "Component",
    "metadata": {"name": "validated"},
    "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"},
}
URL_REF = "url:https://example.com/catalog-info.yaml"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    write_yaml(root / "all.yaml", location_entity("root", "./team.yaml", "./nested.yaml"))
    write_yaml(root / "team.yaml", group("team-a"), component("base-service"))
    write_yaml(root / "nested.yaml", location_entity("nested", "./leaf.yaml"))
    write_yaml(root / "leaf.yaml", component("leaf-service"))
    return root


@pytest.fixture
def server(start_server, tree: Path):
    return start_server([tree / "all.yaml"])


def test_refresh_rereads_the_file_of_the_entity(server, tree: Path):
    base = server.catalog_url
    wait_for(lambda: entity(base, "component:default/leaf-service"))
    before = entity(base, "component:default/leaf-service")
    changed = component("leaf-service")
    changed["metadata"]["description"] = "refreshed"
    write_yaml(tree / "leaf.yaml", changed)

    response = requests.post(
        f"{base}/refresh", json={"entityRef": "Component:Default/Leaf-Service"}
    )
    assert response.status_code == 200
    assert response.text == "" and "Content-Type" not in response.headers
    after = wait_for(
        lambda: (
            (e := entity(base, "component:default/leaf-service"))
            and e["metadata"].get("description") == "refreshed"
            and e
        )
    )
    assert after["metadata"]["uid"] == before["metadata"]["uid"]

    unknown = requests.post(f"{base}/refresh", json={"entityRef": "component:default/nope"})
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": {"name": "NotFoundError", "message": "Entity component:default/nope not found"},
        "request": {"method": "POST", "url": "/refresh"},
        "response": {"statusCode": 404},
    }


def test_delete_by_uid_of_an_emitted_entity_brings_it_back_with_a_new_uid(server):
    base = server.catalog_url
    leaf = wait_for(lambda: entity(base, "component:default/leaf-service"))
    uid = leaf["metadata"]["uid"]
    response = requests.delete(f"{base}/entities/by-uid/{uid}")
    assert response.status_code == 204 and response.text == ""
    assert requests.get(f"{base}/entities/by-uid/{uid}").status_code == 404
    back = wait_for(
        lambda: (
            (e := entity(base, "component:default/leaf-service"))
            and e["metadata"]["uid"] != uid
            and e
        )
    )
    assert {k: v for k, v in back.items() if k != "metadata"} == {
        k: v for k, v in leaf.items() if k != "metadata"
    }


def test_delete_by_uid_of_a_parent_orphans_its_children_until_it_returns(server):
    base = server.catalog_url
    wait_for(lambda: entity(base, "component:default/leaf-service"))
    nested = entity(base, "location:default/nested")
    requests.delete(f"{base}/entities/by-uid/{nested['metadata']['uid']}")
    # The parent (the root Location) re-emits it, and it re-adopts its child.
    wait_for(
        lambda: (
            (e := entity(base, "location:default/nested"))
            and e["metadata"]["uid"] != nested["metadata"]["uid"]
        )
    )
    leaf = wait_for(
        lambda: (
            (e := entity(base, "component:default/leaf-service"))
            and "backstage.io/orphan" not in e["metadata"]["annotations"]
            and e
        )
    )
    assert leaf is not None


def test_delete_by_uid_of_an_orphan_is_final(server, tree: Path):
    base = server.catalog_url
    wait_for(lambda: entity(base, "component:default/leaf-service"))
    write_yaml(tree / "nested.yaml", location_entity("nested"))
    requests.post(f"{base}/refresh", json={"entityRef": "location:default/nested"})
    orphan = wait_for(
        lambda: (
            (e := entity(base, "component:default/leaf-service"))
            and e["metadata"]["annotations"].get("backstage.io/orphan") == "true"
            and e
        )
    )
    assert requests.delete(f"{base}/entities/by-uid/{orphan['metadata']['uid']}").status_code == 204
    assert entity(base, "component:default/leaf-service") is None
    assert requests.delete(f"{base}/entities/by-uid/{ZERO_UUID}").status_code == 204


def validate(base: str, body: Any) -> requests.Response:
    return requests.post(f"{base}/validate-entity", json=body)


def test_validate_entity(server):
    base = server.catalog_url
    valid = validate(base, {"entity": VALID, "location": URL_REF})
    assert valid.status_code == 200 and valid.text == ""

    bad_name = validate(
        base, {"entity": {**VALID, "metadata": {"name": "Bad Name!"}}, "location": URL_REF}
    )
    assert bad_name.status_code == 400
    [error] = bad_name.json()["errors"]
    assert error["name"] == "InputError"
    assert error["message"].startswith("Policy check failed for component:default/bad name!")
    assert error["cause"]["name"] == "Error"

    no_type = validate(
        base, {"entity": {**VALID, "spec": {"lifecycle": "x", "owner": "y"}}, "location": URL_REF}
    )
    assert no_type.json()["errors"][0]["cause"] == {
        "name": "TypeError",
        "message": "/spec must have required property 'type' - missingProperty: type",
    }
    envelope = validate(base, {"entity": {}, "location": URL_REF})
    assert envelope.json() == {
        "errors": [
            {
                "name": "TypeError",
                "message": "<root> must have required property 'apiVersion' - missingProperty: "
                "apiVersion",
            }
        ]
    }
    file_ref = validate(base, {"entity": VALID, "location": "file:/etc/catalog-info.yaml"})
    assert file_ref.json()["errors"] == [
        {
            "name": "TypeError",
            "message": "Invalid location ref file:/etc/catalog-info.yaml, only 'url:<target>' is "
            "supported, e.g. url:https://host/path",
        }
    ]
    missing = validate(base, {"entity": VALID})
    assert missing.status_code == 400
    assert (
        missing.json()["error"]["message"] == "request/body must have required property 'location'"
    )


def test_validate_entity_reads_nothing_outside_the_allowed_roots(server, tree: Path, tmp_path):
    """Even with its annotations claiming the trusted configured location as its origin."""
    secret = tmp_path / "secret.txt"
    secret.write_text("do not leak")
    forged = {
        **VALID,
        "metadata": {
            "name": "validated",
            "annotations": {
                "backstage.io/managed-by-location": f"file:{tmp_path}/x.yaml",
                "backstage.io/managed-by-origin-location": f"file:{tree / 'all.yaml'}",
            },
        },
        "spec": {**VALID["spec"], "owner": {"$text": "./secret.txt"}},
    }
    response = validate(server.catalog_url, {"entity": forged, "location": URL_REF})
    assert response.status_code == 400
    assert "do not leak" not in response.text
    assert "catalog.allowedFileRoots" in response.json()["errors"][0]["message"]


def test_analyze_location(server):
    base = server.catalog_url
    url = "https://github.com/acme/storefront/blob/main/catalog-info.yaml"
    github = requests.post(
        f"{base}/analyze-location", json={"location": {"type": "url", "target": url}}
    )
    assert github.status_code == 200
    assert github.json() == {
        "existingEntityFiles": [],
        "generateEntities": [
            {
                "entity": {
                    "apiVersion": "backstage.io/v1alpha1",
                    "kind": "Component",
                    "metadata": {
                        "name": "storefront",
                        "annotations": {"github.com/project-slug": "acme/storefront"},
                    },
                    "spec": {"type": "other", "lifecycle": "unknown"},
                },
                "fields": [],
            }
        ],
    }
    not_url = requests.post(
        f"{base}/analyze-location", json={"location": {"type": "file", "target": "/srv/x.yaml"}}
    )
    assert not_url.status_code == 400
    assert not_url.json()["error"]["message"] == "The given location.target is not a URL"


def test_analyze_location_reads_allowed_urls(start_server, tree: Path):
    catalog_file = yaml.safe_dump_all([component("served"), group("team-b")])
    with file_server() as files:
        files.serve("/repo/catalog-info.yaml", catalog_file)
        files.serve("/other/custom.yaml", yaml.safe_dump(component("custom")))
        server = start_server(
            [tree / "all.yaml"], backend={"reading": {"allow": [{"host": files.host}]}}
        )
        base = server.catalog_url

        def analyze(target: str, **extra: Any) -> dict[str, Any]:
            body = {"location": {"type": "url", "target": target}, **extra}
            response = requests.post(f"{base}/analyze-location", json=body)
            assert response.status_code == 200, response.text
            return response.json()

        found = analyze(files.url("/repo"))
        assert found["generateEntities"] == []
        assert [
            (f["location"]["target"], f["isRegistered"], f["entity"]["metadata"]["name"])
            for f in found["existingEntityFiles"]
        ] == [
            (files.url("/repo/catalog-info.yaml"), False, "served"),
            (files.url("/repo/catalog-info.yaml"), False, "team-b"),
        ]
        requests.post(
            f"{base}/locations",
            json={"type": "url", "target": files.url("/repo/catalog-info.yaml")},
        )
        again = analyze(files.url("/repo/catalog-info.yaml"))
        assert {f["isRegistered"] for f in again["existingEntityFiles"]} == {True}
        custom = analyze(files.url("/other"), catalogFilename="custom.yaml")
        assert custom["existingEntityFiles"][0]["entity"]["metadata"]["name"] == "custom"
        # Looked, found nothing: the suggestion says what the user has to fill in.
        empty = analyze(files.url("/empty-repo"))
        [suggestion] = empty["generateEntities"]
        assert suggestion["entity"]["metadata"] == {"name": "empty-repo"}
        assert [f["field"] for f in suggestion["fields"]] == ["spec.owner"]
        assert suggestion["fields"][0]["state"] == "needsUserInput"
