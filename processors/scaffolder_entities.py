"""``ScaffolderEntitiesProcessor``: the ``Template`` kind (``scaffolder.backstage.io/v1beta3``).

In Backstage the scaffolder backend's catalog module adds this kind, not the core
processor; errors name it accordingly. Its relations (``spec.owner``) are emitted
with the other built-in relations by ``BuiltinKindsEntityProcessor``.
"""

from __future__ import annotations

from typing import Any

from app.model import validate_entity_kind
from processors.base import CatalogProcessor


class ScaffolderEntitiesProcessor(CatalogProcessor):
    name = "ScaffolderEntitiesProcessor"

    def validate_entity_kind(self, entity: dict[str, Any]) -> bool:
        return validate_entity_kind(entity, processor=self.name)


def factory(context) -> CatalogProcessor:
    return ScaffolderEntitiesProcessor()
