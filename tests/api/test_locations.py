"""``/locations`` over real HTTP: register, dry-run, read, query, update, remove, restart.

Each test runs its own ``catalog serve`` on its own database. The configured
catalog (``all.yaml``) is trusted; API registrations may only read below the
``registered/`` folder (``catalog.allowedFileRoots``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from app.model.locations import generated_location_name
from tests.conftest import group, wait_for, write_yaml

ZERO_UUID = "00000000-0000-0000-0000-000000000000"


def component(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name},
        "spec": {"type": "service", "lifecycle": "production", "owner": "team-a", **spec},
    }


def location_entity(name: str, *targets: str) -> dict[str, Any]:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Location",
        "metadata": {"name": name},
        "spec": {"targets": list(targets)},
    }


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    write_yaml(root / "all.yaml", location_entity("root", "./team.yaml"))
    write_yaml(root / "team.yaml", group("team-a"), component("base-service"))
    write_yaml(
        root / "registered" / "one.yaml",
        component("one-service", dependsOn=["component:base-service"]),
    )
    write_yaml(root / "registered" / "two.yaml", component("two-service"))
    write_yaml(root / "registered" / "invalid.yaml", component("Bad Name!"))
    return root


@pytest.fixture
def serve(start_server, tree: Path) -> Callable[..., Any]:
    def start(**catalog: Any) -> Any:
        return start_server(
            [tree / "all.yaml"],
            catalog={"allowedFileRoots": [str(tree / "registered")], **catalog},
        )

    return start


def entity(base: str, ref: str) -> dict[str, Any] | None:
    kind, rest = ref.split(":", 1)
    namespace, name = rest.split("/", 1)
    response = requests.get(f"{base}/entities/by-name/{kind}/{namespace}/{name}")
    return response.json() if response.status_code == 200 else None


def post(base: str, path: str, body: Any) -> requests.Response:
    return requests.post(f"{base}{path}", json=body)


def generated_ref(target: Path | str) -> str:
    return f"location:default/{generated_location_name('file', str(target))}"


def test_register_read_query_and_remove(serve, tree: Path):
    server = serve()
    base = server.catalog_url
    target = str(tree / "registered" / "one.yaml")

    created = post(base, "/locations", {"type": "file", "target": target})
    assert created.status_code == 201
    body = created.json()
    assert body["entities"] == [] and "exists" not in body
    location = body["location"]
    assert location == {
        "id": location["id"],
        "type": "file",
        "target": target,
        "entityRef": generated_ref(target),
    }
    one = wait_for(lambda: entity(base, "component:default/one-service"))
    annotations = one["metadata"]["annotations"]
    assert annotations["backstage.io/managed-by-origin-location"] == f"file:{target}"
    assert {"type": "dependsOn", "targetRef": "component:default/base-service"} in one["relations"]

    assert requests.get(f"{base}/locations").json() == [{"data": location}]
    assert requests.get(f"{base}/locations/{location['id']}").json() == location
    for by in ("component/default/one-service", f"location/default/{generated_ref(target)[17:]}"):
        response = requests.get(f"{base}/locations/by-entity/{by}")
        assert response.status_code == 200, response.text
        assert response.json() == location
    # The configured location is not a registered one.
    response = requests.get(f"{base}/locations/by-entity/component/default/base-service")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "name": "NotFoundError",
        "message": f"Found no location with type file and target {tree / 'all.yaml'}",
    }
    # The ancestry goes up to the generated Location, which the location store emitted.
    ancestry = requests.get(f"{base}/entities/by-name/component/default/one-service/ancestry")
    assert [item["parentEntityRefs"] for item in ancestry.json()["items"]] == [
        [generated_ref(target)],
        [],
    ]

    removed = requests.delete(f"{base}/locations/{location['id']}")
    assert removed.status_code == 204 and removed.text == ""
    # Removal is immediate: the entities it alone emitted are gone when DELETE returns.
    assert entity(base, "component:default/one-service") is None
    assert entity(base, generated_ref(target)) is None
    assert entity(base, "component:default/base-service") is not None
    assert requests.get(f"{base}/locations").json() == []
    again = requests.delete(f"{base}/locations/{location['id']}")
    assert again.status_code == 404
    assert again.json()["error"]["message"] == f"Found no location with ID {location['id']}"


def test_query_locations_pages_and_filters(serve, tree: Path):
    server = serve()
    base = server.catalog_url
    targets = [str(tree / "registered" / f"{name}.yaml") for name in ("one", "two", "invalid")]
    ids = sorted(
        post(base, "/locations", {"type": "file", "target": t}).json()["location"]["id"]
        for t in targets
    )

    first = post(base, "/locations/by-query", {"limit": 2}).json()
    assert [item["id"] for item in first["items"]] == ids[:2]
    assert first["totalItems"] == 3
    second = post(base, "/locations/by-query", {"cursor": first["pageInfo"]["nextCursor"]}).json()
    assert [item["id"] for item in second["items"]] == ids[2:]
    assert second["pageInfo"] == {} and second["totalItems"] == 3

    def matching(query: Any) -> list[str]:
        response = post(base, "/locations/by-query", {"query": query})
        assert response.status_code == 200, response.text
        return sorted(item["target"] for item in response.json()["items"])

    assert matching({"TARGET": targets[1].upper()}) == [targets[1]]
    assert matching({"target": {"$hasPrefix": str(tree / "registered" / "T")}}) == [targets[1]]
    assert matching({"target": {"$in": [targets[0], "nope"]}}) == [targets[0]]
    assert matching({"$not": {"type": "file"}}) == []
    assert matching({"$all": []}) == []
    assert matching({"entityRef": generated_ref(targets[2])}) == [targets[2]]
    assert matching({"type": {"$contains": "file"}}) == []
    bad = post(base, "/locations/by-query", {"query": {"nope": "x"}})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == (
        "Invalid filter predicate, expected key to be 'id', 'type', 'target', or 'entityRef', "
        "got 'nope'"
    )
    # The body is optional.
    empty = requests.post(f"{base}/locations/by-query")
    assert empty.status_code == 200 and empty.json()["totalItems"] == 3
    for body, message in (
        ({"limit": 0}, "Limit must be a positive integer >= 1"),
        ({"limit": 1.5}, "Limit must be a positive integer >= 1"),
        ({"limit": "2"}, "request/body/limit must be number"),
        ({"cursor": ""}, "Cursor cannot be empty"),
        ({"cursor": "%%%"}, "Malformed cursor, unknown encoding"),
    ):
        response = post(base, "/locations/by-query", body)
        assert (response.status_code, response.json()["error"]["message"]) == (400, message)


def test_conflicts_and_refresh_on_conflict(serve, tree: Path):
    server = serve()
    base = server.catalog_url
    target = str(tree / "registered" / "one.yaml")
    location = post(base, "/locations", {"type": "file", "target": target}).json()["location"]
    wait_for(lambda: entity(base, "component:default/one-service"))

    conflict = post(base, "/locations", {"type": "file", "target": target})
    assert conflict.status_code == 409
    assert conflict.json()["error"] == {
        "name": "ConflictError",
        "message": f"Location file:{target} already exists",
    }
    # onConflict=refresh re-reads the file at once (the processing interval is an hour).
    write_yaml(
        Path(target),
        {**component("one-service"), "metadata": {"name": "one-service", "description": "changed"}},
    )
    refreshed = requests.post(
        f"{base}/locations",
        params={"onConflict": "refresh"},
        json={"type": "file", "target": target},
    )
    assert refreshed.status_code == 201
    assert refreshed.json() == {"location": location, "entities": []}
    wait_for(
        lambda: (
            (entity(base, "component:default/one-service") or {})
            .get("metadata", {})
            .get("description")
            == "changed"
        )
    )
    assert requests.get(f"{base}/locations").json() == [{"data": location}]


def test_dry_run_processes_without_storing(serve, tree: Path):
    server = serve()
    base = server.catalog_url
    target = str(tree / "registered" / "one.yaml")
    response = requests.post(
        f"{base}/locations", params={"dryRun": "yes"}, json={"type": "file", "target": target}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["exists"] is False
    assert body["location"] == {
        "type": "file",
        "target": target,
        "id": f"file:{target}",
        "entityRef": generated_ref(target),
    }
    names = sorted(e["metadata"]["name"] for e in body["entities"])
    assert names == sorted(["one-service", generated_ref(target).split("/")[1]])
    assert requests.get(f"{base}/locations").json() == []
    assert entity(base, "component:default/one-service") is None

    post(base, "/locations", {"type": "file", "target": target})
    again = post(base, "/locations?dryRun=true", {"type": "file", "target": target}).json()
    assert again["exists"] is True

    invalid = post(
        base,
        "/locations?dryRun=true",
        {"type": "file", "target": str(tree / "registered" / "invalid.yaml")},
    )
    assert invalid.status_code == 400
    assert invalid.json()["error"]["message"].startswith(
        "InputError: Policy check failed for component:default/bad name!"
    )
    missing = str(tree / "registered" / "missing.yaml")
    response = post(base, "/locations?dryRun=true", {"type": "file", "target": missing})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "name": "InputError",
        "message": f"NotFoundError: file {missing} does not exist",
    }


def test_update_keeps_the_entity_name_and_orphans_old_children(serve, tree: Path):
    server = serve()
    base = server.catalog_url
    one, two = (str(tree / "registered" / f"{n}.yaml") for n in ("one", "two"))
    location = post(base, "/locations", {"type": "file", "target": one}).json()["location"]
    wait_for(lambda: entity(base, "component:default/one-service"))

    updated = requests.put(
        f"{base}/locations/{location['id']}", json={"type": "file", "target": two}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json() == {**location, "target": two}
    wait_for(lambda: entity(base, "component:default/two-service"))
    generated = entity(base, location["entityRef"])
    assert generated is not None and generated["spec"]["target"] == two
    orphan = wait_for(
        lambda: (
            (entity(base, "component:default/one-service") or {})
            .get("metadata", {})
            .get("annotations", {})
            .get("backstage.io/orphan")
        )
    )
    assert orphan == "true"

    unknown = requests.put(f"{base}/locations/{ZERO_UUID}", json={"type": "file", "target": one})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == f"Found no location with ID {ZERO_UUID}"
    # The conflict check comes first, as in Backstage.
    taken = requests.put(f"{base}/locations/{ZERO_UUID}", json={"type": "file", "target": two})
    assert taken.status_code == 409


def test_registered_locations_survive_a_restart(serve, tree: Path):
    first = serve()
    target = str(tree / "registered" / "one.yaml")
    location = post(first.catalog_url, "/locations", {"type": "file", "target": target}).json()
    wait_for(lambda: entity(first.catalog_url, "component:default/one-service"))
    uid = entity(first.catalog_url, "component:default/one-service")["metadata"]["uid"]
    first.stop()

    second = serve()
    assert requests.get(f"{second.catalog_url}/locations").json() == [
        {"data": location["location"]}
    ]
    again = wait_for(lambda: entity(second.catalog_url, "component:default/one-service"))
    assert again["metadata"]["uid"] == uid


def test_readonly_mode_refuses_location_writes(serve, tree: Path):
    server = serve(readonly=True)
    base = server.catalog_url
    target = str(tree / "registered" / "one.yaml")
    denied = {
        "name": "NotAllowedError",
        "message": "This operation not allowed in readonly mode",
    }
    for response in (
        post(base, "/locations", {"type": "file", "target": target}),
        requests.put(f"{base}/locations/{ZERO_UUID}", json={"type": "file", "target": target}),
        requests.delete(f"{base}/locations/{ZERO_UUID}"),
    ):
        assert response.status_code == 403
        assert response.reason == "Forbidden"
        assert response.json()["error"] == denied
    # A dry run is not a write; refresh and delete-by-uid are allowed, as in Backstage.
    assert (
        post(base, "/locations?dryRun=true", {"type": "file", "target": target}).status_code == 201
    )
    assert (
        post(base, "/refresh", {"entityRef": "component:default/base-service"}).status_code == 200
    )
    assert requests.delete(f"{base}/entities/by-uid/{ZERO_UUID}").status_code == 204
    assert requests.get(f"{base}/locations").json() == []
