"""``/api/catalog-graph/graph`` answers like Backstage's catalog-graph backend plugin.

``data/catalog_graph_answers.json`` holds answers recorded from the real plugin
(built from its source, running in the Backstage 1.55 reference backend; see
``record_catalog_graph.py``) for three scenarios over Backstage's example
catalog. Each scenario here loads the same files into our server, asks the same
questions, and compares status, ``cutoff``, the entities in order and their
content.

Two differences are expected and asserted as such:

* bad ``maxDepth`` values (``-1``, ``abc``) get a 400 here; the plugin answers
  200 with nothing, or walks without limit;
* ``api:default/petstore-webhook`` is served by our catalog but never appears in
  the reference backend's (it does not ingest that example); it and the relations
  that point at it are left out of the comparison. That is a difference in
  ingestion, not in the graph walk.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import fresh_database
from tests.graph.support import examples_location, serve

DATA = Path(__file__).parent / "data" / "catalog_graph_answers.json"
RECORDED = json.loads(DATA.read_text())
OUR_400 = {"negative depth", "non-numeric depth"}
NOT_IN_REFERENCE = "api:default/petstore-webhook"
LOCATION_KEYS = ("backstage.io/managed-by-location", "backstage.io/managed-by-origin-location")


def _ref(entity: dict[str, Any]) -> str:
    metadata = entity["metadata"]
    return f"{entity['kind']}:{metadata.get('namespace', 'default')}/{metadata['name']}".lower()


def normalise(entity: dict[str, Any]) -> dict[str, Any]:
    """Drop what differs between any two catalogs (ids, hashes, where the files lie)."""
    entity = copy.deepcopy(entity)
    metadata = entity["metadata"]
    metadata.pop("uid", None)
    metadata.pop("etag", None)
    annotations = metadata.get("annotations") or {}
    for key in LOCATION_KEYS:
        value = annotations.get(key)
        if value:
            annotations[key] = (
                re.sub(r"^file:.*/backstage/examples/", "file:<examples>/", value)
                if "/backstage/examples/" in value
                else "<wrapper>"
            )
    entity["relations"] = sorted(
        (r for r in entity.get("relations") or [] if r["targetRef"] != NOT_IN_REFERENCE),
        key=lambda r: (r["type"], r["targetRef"]),
    )
    return entity


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    entities = [normalise(e) for e in body["entities"] if _ref(e) != NOT_IN_REFERENCE]
    return {"refs": [_ref(e) for e in entities], "cutoff": body["cutoff"], "entities": entities}


@pytest.mark.parametrize("scenario", sorted(RECORDED["scenarios"]))
def test_answers_match_the_real_plugin(scenario: str, tmp_path: Path) -> None:
    recorded = RECORDED["scenarios"][scenario]
    location = examples_location(tmp_path, recorded["targets"])
    extra = {"catalogGraph": recorded["catalogGraph"]} if recorded["catalogGraph"] else {}
    mismatches = []
    compared = 0
    with fresh_database(tmp_path) as url, serve(url, tmp_path, [location], **extra) as server:
        for answer in recorded["answers"]:
            response = requests.get(
                f"{server.base}/api/catalog-graph/graph",
                params=[tuple(pair) for pair in answer["params"]],
                timeout=30,
            )
            if answer["name"] in OUR_400:
                assert response.status_code == 400, answer["name"]
                assert response.json()["error"]["name"] == "InputError"
                continue
            if response.status_code != answer["status"]:
                mismatches.append((answer["name"], response.status_code, response.text[:300]))
                continue
            ours, theirs = comparable(response.json()), comparable(answer["body"])
            if ours != theirs:
                mismatches.append(
                    (answer["name"], ours["refs"], theirs["refs"], ours["cutoff"], theirs["cutoff"])
                )
            compared += 1
    assert mismatches == []
    assert compared == len(recorded["answers"]) - len(OUR_400)


def test_recording_covers_the_plugin_features() -> None:
    """The recorded cases exercise depth, relations, kinds, several roots and the limit."""
    answers = RECORDED["scenarios"]["limited"]["answers"]
    assert any(a["body"]["cutoff"] for a in answers if a["status"] == 200)
    assert sum(len(s["answers"]) for s in RECORDED["scenarios"].values()) == 84
    params = {
        p[0] for s in RECORDED["scenarios"].values() for a in s["answers"] for p in a["params"]
    }
    assert {"rootEntityRefs", "relations", "kinds", "maxDepth"} <= params
