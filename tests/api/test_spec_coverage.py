"""Every operation of Backstage's released catalog API (4.0.5) is served here."""

from __future__ import annotations

import json
import re

from app.openapi import generate_spec
from tests.conftest import SHARED

RELEASED = SHARED / "backstage" / "catalog-openapi.released-4.0.5.json"
METHODS = ("get", "post", "put", "delete")


def operations(paths: dict, prefix: str = "") -> set[tuple[str, str]]:
    return {
        (method.upper(), re.sub(r"\{[^}]+\}", "{}", path[len(prefix) :]))
        for path, item in paths.items()
        if path.startswith(prefix)
        for method in item
        if method in METHODS
    }


def test_every_released_operation_is_served():
    released = operations(json.loads(RELEASED.read_text())["paths"])
    ours = operations(generate_spec()["paths"], "/api/catalog")
    assert len(released) == 20
    assert released - ours == set()
