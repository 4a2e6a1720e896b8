"""The location service: registering, dry-running, updating and removing locations.

Backstage's ``DefaultLocationService`` plus ``DefaultLocationStore``, with their
messages and status codes. A registered location is a row in ``locations`` and a
generated Location entity offered by the ``DefaultLocationStore`` provider; the
engine reads it asynchronously, so right after a registration its entities are not
visible yet (a dry run shows what they will be).

Where we are stricter than Backstage, on purpose: a target the catalog may not
read (a ``file`` outside ``catalog.allowedFileRoots``, a URL outside
``backend.reading.allow``, or not a URL at all) is refused with 400 also when
registering for real, where Backstage stores it and fails later in the background.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.errors import (
    CatalogError,
    ConflictError,
    InputError,
    NotFoundError,
    error_message,
)
from app.model import parse_location_ref, stringify_entity_ref
from app.model.locations import ANNOTATION_ORIGIN_LOCATION
from app.model.refs import LocationRefError
from app.reading import Readers
from app.storage import locations as table
from app.storage.database import Database
from app.storage.locations import LocationRow
from app.storage.tables import final_entities, refresh_state
from entity_providers.base import DeltaMutation
from entity_providers.location_store import PROVIDER_NAME, DefaultLocationStore, deferred

from . import operations
from .engine import CatalogEngine
from .orchestrator import Orchestrator

DRY_RUN_ANNOTATIONS = ("backstage.io/managed-by-location", ANNOTATION_ORIGIN_LOCATION)


@dataclass
class LocationService:
    db: Database
    engine: CatalogEngine
    orchestrator: Orchestrator
    readers: Readers
    allowed_types: list[str]
    provider: DefaultLocationStore | None = None

    def __post_init__(self) -> None:
        # Serialises "change the table, then tell the engine" (see location_store).
        self._lock: Any = self.provider.lock if self.provider is not None else threading.RLock()

    # -- checks -------------------------------------------------------------------

    def _check_type(self, location_type: str) -> None:
        if location_type not in self.allowed_types:
            allowed = json.dumps(self.allowed_types, separators=(",", ":"))
            raise InputError(f"Registered locations must be of an allowed type {allowed}")

    def _check_readable(self, location_type: str, target: str) -> None:
        """Refuse targets the catalog may not read, with the dry run's wording."""
        try:
            parse_location_ref(f"{location_type}:{target}")
        except LocationRefError as exc:
            raise InputError(f"TypeError: {exc}") from exc
        reader = self.readers.get(location_type)
        if reader is None:
            return
        try:
            reader.check_allowed(target)
        except CatalogError as exc:
            raise InputError(
                f"Error: Unable to read {location_type}, {error_message(exc)}"
            ) from exc

    # -- mutations ------------------------------------------------------------------

    def _tell_engine(self, mutation: DeltaMutation) -> None:
        if self.provider is None or not self.provider.apply(mutation):
            # No provider connected in this process (yet, or at all when another process
            # runs the engine): store the change directly. A later connect's full mutation
            # reads the same table, so it agrees.
            self.engine.apply_mutation(PROVIDER_NAME, mutation)

    def create(
        self,
        location_type: str,
        target: str,
        *,
        presence: str | None = None,
        dry_run: bool = False,
        on_conflict: str = "reject",
    ) -> dict[str, Any]:
        """``POST /locations``: the 201 body ``{location, entities, exists?}``."""
        self._check_type(location_type)
        self._check_readable(location_type, target)
        if dry_run:
            return self._dry_run(location_type, target, presence)
        existed = False
        with self._lock:
            try:
                with self.db.transaction() as conn:
                    row = table.find_location(conn, location_type, target)
                    if row is not None:
                        if on_conflict != "refresh":
                            raise ConflictError(f"Location {location_type}:{target} already exists")
                        existed = True
                    else:
                        row = table.insert_location(conn, location_type, target)
            except IntegrityError:
                # Registered concurrently by another request or process.
                raise ConflictError(f"Location {location_type}:{target} already exists") from None
            self._tell_engine(DeltaMutation(added=[deferred(row)]))
        if existed:
            self.engine.schedule_now([row.entity_ref], force=True)
        return {"location": row.to_json(), "entities": []}

    def _dry_run(self, location_type: str, target: str, presence: str | None) -> dict[str, Any]:
        ref = table.location_entity_ref(location_type, target)
        location_ref = f"{location_type}:{target}"
        entity = {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Location",
            "metadata": {
                "name": ref.split("/", 1)[1],
                "namespace": "default",
                "annotations": dict.fromkeys(DRY_RUN_ANNOTATIONS, location_ref),
            },
            "spec": {"type": location_type, "target": target},
        }
        entities = operations.dry_run(self.orchestrator, entity)
        with self.db.engine.connect() as conn:
            exists = table.find_location(conn, location_type, target) is not None
        location: dict[str, Any] = {"type": location_type, "target": target}
        if presence is not None:
            location["presence"] = presence
        location.update(id=location_ref, entityRef=ref)
        return {"exists": exists, "location": location, "entities": entities}

    def update(self, location_id: str, location_type: str, target: str) -> LocationRow:
        """``PUT /locations/{id}``: a taken target is a 409 before an unknown id is a 404."""
        self._check_type(location_type)
        self._check_readable(location_type, target)
        with self._lock:
            try:
                with self.db.transaction() as conn:
                    if table.find_location(conn, location_type, target, except_id=location_id):
                        raise ConflictError(f"Location {location_type}:{target} already exists")
                    row = table.update_location(conn, location_id, location_type, target)
            except IntegrityError:
                raise ConflictError(f"Location {location_type}:{target} already exists") from None
            if row is None:
                raise NotFoundError(f"Found no location with ID {location_id}")
            self._tell_engine(DeltaMutation(added=[deferred(row)]))
        return row

    def delete(self, location_id: str) -> None:
        """``DELETE /locations/{id}``: the Location entity and what only it emitted go now."""
        with self._lock:
            with self.db.transaction() as conn:
                row = table.delete_location(conn, location_id)
            if row is None:
                raise NotFoundError(f"Found no location with ID {location_id}")
            self._tell_engine(DeltaMutation(removed=[deferred(row)]))

    # -- reads ----------------------------------------------------------------------

    def list_all(self) -> list[LocationRow]:
        with self.db.engine.connect() as conn:
            return table.list_locations(conn)

    def get(self, location_id: str) -> LocationRow:
        with self.db.engine.connect() as conn:
            row = table.get_location(conn, location_id)
        if row is None:
            raise NotFoundError(f"Found no location with ID {location_id}")
        return row

    def query(
        self, query: Any, *, limit: int, after_id: str | None = None
    ) -> tuple[list[LocationRow], int]:
        with self.db.engine.connect() as conn:
            return table.query_locations(conn, query, after_id=after_id, limit=limit)

    def by_entity(self, kind: str, namespace: str, name: str) -> LocationRow:
        """The registered location an entity originates from (its origin annotation)."""
        ref = stringify_entity_ref(kind, namespace, name)
        with self.db.engine.connect() as conn:
            exists = conn.execute(
                select(refresh_state.c.entity_id).where(refresh_state.c.entity_ref == ref)
            ).first()
            if exists is None:
                raise NotFoundError(f"found no entity for ref {ref}")
            text = conn.execute(
                select(final_entities.c.final_entity).where(final_entities.c.entity_ref == ref)
            ).scalar()
            origin = None
            if text is not None:
                annotations = (json.loads(text).get("metadata") or {}).get("annotations") or {}
                origin = annotations.get(ANNOTATION_ORIGIN_LOCATION)
            if not origin:
                raise NotFoundError(f"found no origin annotation for ref {ref}")
            location_type, target = parse_location_ref(origin)
            row = table.find_location(conn, location_type, target)
        if row is None:
            raise NotFoundError(f"Found no location with type {location_type} and target {target}")
        return row
