"""``PlaceholderProcessor``: ``$text``, ``$json`` and ``$yaml`` placeholders.

An object with exactly one ``$``-key naming a known resolver is replaced by the
content it points at, read relative to the file the entity came from. Unknown
``$`` keys (``$ref`` in an embedded JSON schema) are left alone. Resolved content
is not searched for further placeholders, so resolution cannot recurse; and one
entity may read at most ``catalog.limits.placeholderReads`` placeholders.

Backstage cannot resolve relative placeholders in entities read from ``file``
locations; we can, through the same readers the locations use.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import yaml

from app.engine.parsing import load_yaml_documents
from app.limits import DEFAULT_LIMITS, Limits
from app.reading import Readers
from processors.base import CatalogProcessor, Emitter, LocationSpec, ProcessorCache


class PlaceholderError(Exception):
    name = "Error"


class PlaceholderProcessor(CatalogProcessor):
    name = "PlaceholderProcessor"
    # Placeholders are resolved before anything else looks at the entity.
    priority = 10

    def __init__(self, readers: Readers, limits: Limits | None = None):
        self.readers = readers
        self.limits = limits or DEFAULT_LIMITS
        self.resolvers: dict[str, Callable[[str, str], Any]] = {
            "text": lambda key, content: content,
            "json": _parse_json,
            "yaml": lambda key, content: _parse_yaml(key, content, self.limits),
        }

    def pre_process_entity(
        self,
        entity: dict[str, Any],
        location: LocationSpec,
        emit: Emitter,
        origin_location: LocationSpec,
        cache: ProcessorCache,
    ) -> dict[str, Any]:
        if not _has_placeholder_key(entity):
            return entity
        result, _ = self._process(entity, location, emit, [0])
        return result

    def _process(
        self, data: Any, location: LocationSpec, emit: Emitter, reads: list[int]
    ) -> tuple[Any, bool]:
        """``reads`` counts this entity's placeholder reads (one list per entity)."""
        if isinstance(data, list):
            items = [self._process(item, location, emit, reads) for item in data]
            if not any(changed for _, changed in items):
                return data, False
            return [item for item, _ in items], True
        if not isinstance(data, dict) or not data:
            return data, False
        dollar_keys = [k for k in data if isinstance(k, str) and k.startswith("$")]
        if not dollar_keys:
            entries = {k: self._process(v, location, emit, reads) for k, v in data.items()}
            if not any(changed for _, changed in entries.values()):
                return data, False
            return {k: v for k, (v, _) in entries.items()}, True
        if len(data) != 1:
            return data, False
        key = dollar_keys[0][1:]
        resolver = self.resolvers.get(key)
        if resolver is None:
            return data, False
        value = data[dollar_keys[0]]
        reads[0] += 1
        if reads[0] > self.limits.placeholder_reads:
            raise PlaceholderError(
                f"Placeholder ${key} exceeds the limit of {self.limits.placeholder_reads} "
                "placeholder reads per entity (catalog.limits.placeholderReads)"
            )
        content, target = self._read(key, value, location)
        emit.refresh(target)
        return resolver(key, content), True

    def _read(self, key: str, value: Any, base: LocationSpec) -> tuple[str, str]:
        if not isinstance(value, str):
            raise PlaceholderError(
                f"Placeholder ${key} expected a string value parameter, in the form of an "
                "absolute URL or a relative path"
            )
        location_type, target = self._resolve(key, value, base)
        try:
            result = self.readers.for_type(location_type).read(target)
            return result.data.decode("utf-8"), f"{location_type}:{result.target}"
        except Exception as exc:
            raise PlaceholderError(
                f"Placeholder ${key} could not read location {value}, "
                f"{getattr(exc, 'name', 'Error')}: {exc}"
            ) from exc

    def _resolve(self, key: str, value: str, base: LocationSpec) -> tuple[str, str]:
        if value.startswith(("http://", "https://")):
            return "url", value
        reader = self.readers.get(base.type)
        if reader is None:
            raise PlaceholderError(
                f"Placeholder ${key} could not form a URL out of {base.target} and {value}"
            )
        return base.type, reader.resolve(base.target, value)


def _has_placeholder_key(data: Any) -> bool:
    """Whether any object in ``data`` has a ``$`` key: the common answer is no, and
    finding that out allocates nothing."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and key.startswith("$"):
                    return True
                if isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(item for item in node if isinstance(item, dict | list))
    return False


def _parse_json(key: str, content: str) -> Any:
    try:
        return json.loads(content)
    except ValueError as exc:
        raise PlaceholderError(f"Placeholder ${key} failed to parse JSON data, {exc}") from exc


def _parse_yaml(key: str, content: str, limits: Limits) -> Any:
    try:
        documents = [d for d in load_yaml_documents(content, limits) if d is not None]
    except yaml.YAMLError as exc:
        raise PlaceholderError(f"Placeholder ${key} failed to parse YAML data, {exc}") from exc
    if len(documents) != 1:
        raise PlaceholderError(
            f"Placeholder ${key} expected to find exactly one document of data, "
            f"found {len(documents)}"
        )
    return documents[0]


def factory(context) -> CatalogProcessor:
    return PlaceholderProcessor(context.readers, context.app_config.limits)
