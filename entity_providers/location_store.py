"""``DefaultLocationStore``: locations registered through the API, as entities.

Every row of the ``locations`` table becomes a generated Location entity
(``location:default/generated-<sha1 of the registered "type:target">``) that the
engine reads like any other location. At start-up the provider offers all rows in
one full mutation, so registrations survive restarts and rows deleted while the
server was down take their entities with them; afterwards the location service
reports each change as a delta mutation.

The lock makes "change the table, then apply the mutation" atomic with respect to
the start-up full mutation: a registration racing with ``connect`` is either in the
rows ``connect`` reads or applied after it.
"""

from __future__ import annotations

import threading
from typing import Any

from app.model.locations import location_entity_for
from app.model.refs import parse_entity_ref
from app.storage.database import Database
from app.storage.locations import LocationRow, list_locations
from entity_providers.base import (
    DeferredEntity,
    DeltaMutation,
    EntityProvider,
    EntityProviderConnection,
    FullMutation,
    Mutation,
)
from processors.base import LocationSpec

PROVIDER_NAME = "DefaultLocationStore"


def location_entity(location: LocationRow) -> dict[str, Any]:
    """The generated Location entity of a registered location."""
    entity = location_entity_for(LocationSpec(location.type, location.target))
    entity["metadata"]["name"] = parse_entity_ref(location.entity_ref).name
    return entity


def deferred(location: LocationRow) -> DeferredEntity:
    return DeferredEntity(
        location_entity(location), location_key=f"{location.type}:{location.target}"
    )


class DefaultLocationStore(EntityProvider):
    def __init__(self, db: Database):
        self.db = db
        self.lock = threading.RLock()
        self._connection: EntityProviderConnection | None = None

    def get_provider_name(self) -> str:
        return PROVIDER_NAME

    def connect(self, connection: EntityProviderConnection) -> None:
        with self.lock:
            with self.db.engine.connect() as conn:
                rows = list_locations(conn)
            connection.apply_mutation(FullMutation([deferred(row) for row in rows]))
            self._connection = connection

    @property
    def connected(self) -> bool:
        return self._connection is not None

    def apply(self, mutation: Mutation) -> bool:
        """Apply a delta for rows just changed; False if not connected (the caller stores it)."""
        with self.lock:
            if self._connection is None:
                return False
            self._connection.apply_mutation(mutation)
            return True

    def upserted(self, location: LocationRow) -> bool:
        return self.apply(DeltaMutation(added=[deferred(location)]))

    def removed(self, location: LocationRow) -> bool:
        return self.apply(DeltaMutation(removed=[deferred(location)]))


def factory(context) -> EntityProvider:
    return DefaultLocationStore(context.services["database"])
