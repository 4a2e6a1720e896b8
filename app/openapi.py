"""The OpenAPI document flask-smorest generates from the blueprints.

``openapi/openapi.yaml`` is this document, committed; ``tests/test_openapi.py``
fails when code and committed spec drift apart. Regenerate with
``catalog openapi --write``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi" / "openapi.yaml"


def generate_spec() -> dict[str, Any]:
    from app import create_app
    from app.config import AppConfig

    # The spec depends only on the blueprints: no database, no processing.
    app = create_app(AppConfig({}), catalog=object(), start=False)
    with app.app_context():
        spec: dict[str, Any] = app.extensions["openapi"].spec.to_dict()
    return with_security(spec)


def with_security(spec: dict[str, Any]) -> dict[str, Any]:
    """Document the bearer tokens of ``backend.auth`` (app.api.auth): every operation
    needs one, except those of the blueprints that stay open (health, signed events)."""
    from app.api.auth import OPEN_BLUEPRINTS

    spec.setdefault("components", {})["securitySchemes"] = {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": "A static token of backend.auth.externalAccess; required when "
            "tokens are configured (without them the server listens on loopback only)",
        }
    }
    spec["security"] = [{"bearerAuth": []}]
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and OPEN_BLUEPRINTS & set(operation.get("tags", [])):
                operation["security"] = []
    return spec


def render_spec(spec: dict[str, Any]) -> str:
    return yaml.safe_dump(spec, sort_keys=True, allow_unicode=True, width=100)
