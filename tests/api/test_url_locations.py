"""``url`` locations end to end: a real HTTP server serves catalog files to a real catalog."""

from __future__ import annotations

from pathlib import Path

import requests
import yaml

from tests.api.test_locations import component, entity, group, location_entity, wait_for
from tests.conftest import write_yaml
from tests.httpserver import file_server


def test_url_locations_are_read_within_the_allow_list(start_server, tmp_path: Path):
    write_yaml(tmp_path / "all.yaml", location_entity("root", "./team.yaml"))
    write_yaml(tmp_path / "team.yaml", group("team-a"))
    (tmp_path / "secret.yaml").write_text(yaml.safe_dump(component("secret-service")))
    served = yaml.safe_dump_all(
        [
            component("served-service"),
            {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "API",
                "metadata": {"name": "served-api"},
                "spec": {
                    "type": "openapi",
                    "lifecycle": "production",
                    "owner": "team-a",
                    # Relative placeholders resolve against the URL they were read from.
                    "definition": {"$text": "./openapi.yaml"},
                },
            },
            # A registered file cannot reach local files through a Location entity.
            {
                **location_entity("sneaky"),
                "spec": {"type": "file", "target": str(tmp_path / "secret.yaml")},
            },
        ]
    )
    with file_server() as files:
        target = files.serve("/repo/catalog-info.yaml", served)
        files.serve("/repo/openapi.yaml", "openapi: 3.0.0\n")
        server = start_server(
            [tmp_path / "all.yaml"], backend={"reading": {"allow": [{"host": files.host}]}}
        )
        base = server.catalog_url
        created = requests.post(f"{base}/locations", json={"type": "url", "target": target})
        assert created.status_code == 201, created.text

        service = wait_for(lambda: entity(base, "component:default/served-service"))
        annotations = service["metadata"]["annotations"]
        assert annotations["backstage.io/managed-by-location"] == f"url:{target}"
        assert annotations["backstage.io/view-url"] == target
        api = wait_for(lambda: entity(base, "api:default/served-api"))
        assert api["spec"]["definition"] == "openapi: 3.0.0\n"
        sneaky = wait_for(lambda: entity(base, "location:default/sneaky"))
        [problem] = sneaky["status"]["items"]
        assert "catalog.allowedFileRoots" in problem["message"]
        assert entity(base, "component:default/secret-service") is None


def test_unreachable_and_disallowed_urls(start_server, tmp_path: Path):
    write_yaml(tmp_path / "all.yaml", location_entity("root"))
    with file_server() as files:
        closed_port = files.port
    with file_server() as files:
        server = start_server(
            [tmp_path / "all.yaml"],
            backend={
                "reading": {
                    "allow": [{"host": files.host}, {"host": f"127.0.0.1:{closed_port}"}],
                    "timeout": {"seconds": 5},
                }
            },
        )
        base = server.catalog_url
        disallowed = "http://example.com/catalog-info.yaml"
        for dry_run in ("true", "false"):
            response = requests.post(
                f"{base}/locations",
                params={"dryRun": dry_run},
                json={"type": "url", "target": disallowed},
            )
            assert response.status_code == 400
            assert response.json()["error"] == {
                "name": "InputError",
                "message": "Error: Unable to read url, Reading from "
                f"'{disallowed}' is not allowed. You may need to configure an integration for "
                "the target host, or add it to the configured list of allowed hosts at "
                "'backend.reading.allow'",
            }
        unreachable = f"http://127.0.0.1:{closed_port}/catalog-info.yaml"
        dry = requests.post(
            f"{base}/locations?dryRun=true", json={"type": "url", "target": unreachable}
        )
        assert dry.status_code == 400
        assert dry.json()["error"]["message"].startswith(
            f"Error: Unable to read url, Unable to read {unreachable}, "
        )
        # Registering for real is accepted (the host may come back), as in Backstage; the
        # read error shows on the generated Location entity.
        created = requests.post(f"{base}/locations", json={"type": "url", "target": unreachable})
        assert created.status_code == 201
        ref = created.json()["location"]["entityRef"]
        location = wait_for(lambda: (e := entity(base, ref)) and e.get("status") and e)
        assert location["status"]["items"][0]["message"].startswith(
            "Error: Unable to read url, Unable to read"
        )
        missing = files.url("/nope/catalog-info.yaml")
        response = requests.post(
            f"{base}/locations?dryRun=true", json={"type": "url", "target": missing}
        )
        assert response.json()["error"]["message"] == (
            f"NotFoundError: Unable to read url, no matching files found for {missing}"
        )
