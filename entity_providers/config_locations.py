"""``ConfigLocationEntityProvider``: the locations listed in ``catalog.locations``.

Each configured location becomes a generated Location entity
(``location:default/generated-<sha1 of "type:target">``) that the engine then
reads. A full mutation on every start makes the catalog follow the configuration:
a location removed from the file takes its entities with it.
"""

from __future__ import annotations

from typing import Any

from app.model.locations import location_entity_for
from entity_providers.base import (
    DeferredEntity,
    EntityProvider,
    EntityProviderConnection,
    FullMutation,
)
from processors.base import LocationSpec


class ConfigLocationEntityProvider(EntityProvider):
    def __init__(self, locations: list[dict[str, Any]]):
        self.locations = locations

    def get_provider_name(self) -> str:
        return "ConfigLocationProvider"

    def entities(self) -> list[DeferredEntity]:
        deferred = []
        for location in self.locations:
            spec = LocationSpec(
                location["type"], location["target"], location.get("presence", "required")
            )
            entity = location_entity_for(spec)
            deferred.append(DeferredEntity(entity, location_key=spec.ref))
        return deferred

    def connect(self, connection: EntityProviderConnection) -> None:
        connection.apply_mutation(FullMutation(self.entities()))


def factory(context) -> EntityProvider:
    return ConfigLocationEntityProvider(context.app_config.locations)
