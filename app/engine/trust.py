"""Processing with the read trust an entity's origin deserves.

An entity's ``backstage.io/managed-by-origin-location`` names the location it
ultimately came from, and the orchestrator stamps it on every child, so it cannot
be forged from inside a catalog file. Entities that originate in a
``catalog.locations`` entry are trusted; everything else (registered locations, dry
runs, ``validate-entity``) reads files only within ``catalog.allowedFileRoots``
(see :mod:`app.reading.access`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.reading.access import read_trust

from .orchestrator import ANNOTATION_ORIGIN_LOCATION, Orchestrator, ProcessingOutcome


class TrustingOrchestrator(Orchestrator):
    def __init__(self, *args: Any, trusted_origins: Iterable[str] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.trusted_origins = frozenset(trusted_origins)

    def is_trusted(self, entity: Any) -> bool:
        metadata = entity.get("metadata") if isinstance(entity, dict) else None
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        origin = (
            annotations.get(ANNOTATION_ORIGIN_LOCATION) if isinstance(annotations, dict) else None
        )
        return isinstance(origin, str) and origin in self.trusted_origins

    def process(
        self,
        unprocessed: dict[str, Any],
        previous_cache: dict[str, Any] | None = None,
        *,
        owned: bool = False,
        trusted: bool | None = None,
    ) -> ProcessingOutcome:
        """Process ``unprocessed``; ``trusted`` overrides what its origin says."""
        if trusted is None:
            trusted = self.is_trusted(unprocessed)
        with read_trust(trusted):
            return super().process(unprocessed, previous_cache, owned=owned)
