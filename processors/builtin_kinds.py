"""``BuiltinKindsEntityProcessor``: validates the built-in kinds and emits their relations.

Validation uses Backstage's own JSON schemas (``app.model.kinds``); relations come
from the spec fields in REFERENCE section 4.5 (``app.model.relations``), both
directions, for every kind that has them (Template's owner included, whichever
processor validated it). Relation-carrying spec arrays are stored sorted, as
Backstage does.
"""

from __future__ import annotations

from typing import Any

from app.model import relations_for, validate_entity_kind
from processors.base import CatalogProcessor, Emitter, LocationSpec, ProcessorCache

# Spec arrays that Backstage's processing returns sorted.
_SORTED_SPEC_ARRAYS = (
    "dependsOn",
    "dependencyOf",
    "consumesApis",
    "providesApis",
    "memberOf",
    "children",
    "members",
)


class BuiltinKindsEntityProcessor(CatalogProcessor):
    name = "BuiltinKindsEntityProcessor"

    def validate_entity_kind(self, entity: dict[str, Any]) -> bool:
        return validate_entity_kind(entity, processor=self.name)

    def post_process_entity(
        self, entity: dict[str, Any], location: LocationSpec, emit: Emitter, cache: ProcessorCache
    ) -> dict[str, Any]:
        for source, relation_type, target in relations_for(entity):
            emit.relation(source, relation_type, target)
        spec = entity.get("spec")
        if isinstance(spec, dict):
            for key in _SORTED_SPEC_ARRAYS:
                value = spec.get(key)
                if isinstance(value, list) and all(isinstance(v, str) for v in value):
                    spec[key] = sorted(value)
        return entity


def factory(context) -> CatalogProcessor:
    return BuiltinKindsEntityProcessor()
