"""``url`` locations through the engine: read over HTTP, re-read with ETags."""

from __future__ import annotations

import yaml

from tests.conftest import component, final_entities_by_ref, force_due, settle
from tests.httpserver import file_server


def test_unchanged_files_are_not_read_again(make_catalog):
    with file_server() as files:
        url = files.serve("/catalog-info.yaml", yaml.safe_dump(component("served")), etag='"1"')
        catalog = make_catalog(
            [{"type": "url", "target": url}],
            backend={"reading": {"allow": [{"host": files.host}]}},
        )
        settle(catalog)
        assert "component:default/served" in final_entities_by_ref(catalog)
        force_due(catalog)
        settle(catalog)
        # The second read asked whether the file changed; it had not (304), and the
        # entities read the first time are still there.
        assert [headers.get("If-None-Match") for _, headers in files.requests] == [None, '"1"']
        assert "component:default/served" in final_entities_by_ref(catalog)

        files.serve("/catalog-info.yaml", yaml.safe_dump(component("renamed")), etag='"2"')
        force_due(catalog)
        settle(catalog)
        entities = final_entities_by_ref(catalog)
        assert "component:default/renamed" in entities
        assert (
            entities["component:default/served"]["metadata"]["annotations"]["backstage.io/orphan"]
            == "true"
        )


def test_a_missing_file_is_an_error_on_its_location_unless_optional(make_catalog):
    with file_server() as files:
        catalog = make_catalog(
            [
                {"type": "url", "target": files.url("/missing.yaml")},
                {"type": "url", "target": files.url("/optional.yaml"), "presence": "optional"},
            ],
            backend={"reading": {"allow": [{"host": files.host}]}},
        )
        settle(catalog)
        messages = {
            entity["spec"]["target"]: [
                i["message"] for i in entity.get("status", {}).get("items", [])
            ]
            for entity in final_entities_by_ref(catalog).values()
        }
        assert messages[files.url("/missing.yaml")] == [
            "NotFoundError: Unable to read url, no matching files found for "
            + files.url("/missing.yaml")
        ]
        assert messages[files.url("/optional.yaml")] == []
