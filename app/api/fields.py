"""The ``fields`` projection: keep only the listed dotted paths of each entity."""

from __future__ import annotations

from typing import Any

from app.errors import InputError


def parse_fields(paths: list[str]) -> list[list[str]] | None:
    if not paths:
        return None
    parsed = []
    for path in paths:
        if "[" in path:
            raise InputError(f'Invalid field "{path}", array type fields are not supported')
        parsed.append(path.split("."))
    return parsed


def project(entity: dict[str, Any], fields: list[list[str]]) -> dict[str, Any]:
    """Copy the value at each path into a new object; missing paths are skipped."""
    result: dict[str, Any] = {}
    for parts in fields:
        node: Any = entity
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            target = result
            for part in parts[:-1]:
                existing = target.get(part)
                if not isinstance(existing, dict):
                    existing = target[part] = {}
                target = existing
            target[parts[-1]] = node
    return result
