"""Our server against the real Backstage backend, on Backstage's own example catalog.

The reference answers were recorded from ``../shared/reference-backend`` with
``python -m tests.differential.record`` (see ``cases.py`` for the requests and the
normalisation); this test needs no Node. It loads the same examples into a real
``catalog serve``, sends the same requests, and expects the same answers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import SHARED
from tests.differential.cases import CASES, EXTRA_IN_OURS, generated_name, run_cases

REFERENCE = Path(__file__).resolve().parent / "reference.json"
EXAMPLES = os.path.realpath(SHARED / "backstage" / "examples")


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return json.loads(REFERENCE.read_text())  # type: ignore[no-any-return]


@pytest.fixture
def server(start_server):
    return start_server(
        [{"type": "file", "target": f"{EXAMPLES}/all.yaml"}],
        catalog={"allowedFileRoots": [EXAMPLES]},
    )


def _differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                out.append(f"{path}.{key}: missing")
            elif key not in expected:
                out.append(f"{path}.{key}: unexpected {json.dumps(actual[key])[:200]}")
            else:
                out.extend(_differences(expected[key], actual[key], f"{path}.{key}"))
        return out
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        out = []
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out.extend(_differences(e, a, f"{path}[{index}]"))
        return out
    if expected != actual:
        return [f"{path}: expected {json.dumps(expected)[:300]} got {json.dumps(actual)[:300]}"]
    return []


def test_the_reference_recording_covers_every_request(reference):
    assert reference["requests"] == len(CASES) >= 60
    assert set(reference["answers"]) == {case.name for case in CASES}


def test_same_answers_as_backstage(server, reference):
    answers, _ = run_cases(server.catalog_url, EXAMPLES)
    report = []
    for case in CASES:
        differences = _differences(reference["answers"][case.name], answers[case.name])
        if differences:
            report.append(f"{case.name} ({answers[case.name]['request']}):")
            report.extend(f"  {line}" for line in differences[:10])
    assert not report, "\n" + "\n".join(report)


def test_deliberate_differences(server, reference):
    """The two entities only we have, for the documented reasons, and nothing else."""
    listed = {
        f"{e['kind'].lower()}:{e['metadata']['namespace']}/{e['metadata']['name']}"
        for e in reference["answers"]["list.fields"]["body"]
    }
    assert not listed & set(EXTRA_IN_OURS)
    base = server.catalog_url
    # The relative $text placeholder resolved to the file next to the API definition.
    webhook = requests.get(f"{base}/entities/by-name/api/default/petstore-webhook").json()
    spec_file = Path(EXAMPLES) / "apis" / "petstore-webhook.oas.yaml"
    assert webhook["spec"]["definition"] == spec_file.read_text()
    # The Location with entities of an unknown kind is there, its errors in its status.
    location = requests.get(f"{base}/entities/by-name/location/default/example-ai-resources")
    messages = [item["message"] for item in location.json()["status"]["items"]]
    assert messages and all("airesource:default/" in m for m in messages)
    ours = requests.get(
        f"{base}/entities", params={"fields": "kind,metadata.namespace,metadata.name"}
    )
    config_location = generated_name(f"{EXAMPLES}/all.yaml")
    refs = {
        f"{e['kind'].lower()}:{e['metadata']['namespace']}/"
        + e["metadata"]["name"].replace(config_location, "generated-<all.yaml>")
        for e in ours.json()
    }
    assert refs - listed == set(EXTRA_IN_OURS)
    assert listed - refs == set()
