"""``LocationEntityProcessor``: a Location entity's targets become locations to read.

Relative targets resolve against the file the Location was read from; ``type``
defaults to that file's location type; ``presence: optional`` silences missing
targets. The engine reads the requested locations with the ``read_location``
processors and the entities found there become this Location's children.
"""

from __future__ import annotations

import os
from typing import Any

from app.errors import InputError
from app.limits import DEFAULT_LIMITS, Limits
from app.reading import Readers
from processors.base import CatalogProcessor, Emitter, LocationSpec, ProcessorCache


class LocationEntityProcessor(CatalogProcessor):
    name = "LocationEntityProcessor"

    def __init__(self, readers: Readers, limits: Limits | None = None):
        self.readers = readers
        self.limits = limits or DEFAULT_LIMITS

    def post_process_entity(
        self, entity: dict[str, Any], location: LocationSpec, emit: Emitter, cache: ProcessorCache
    ) -> dict[str, Any]:
        if entity.get("kind") != "Location":
            return entity
        spec = entity.get("spec") or {}
        location_type = spec.get("type") or location.type
        presence = spec.get("presence") or "required"
        targets: list[str] = []
        if spec.get("target"):
            targets.append(spec["target"])
        targets.extend(spec.get("targets") or [])
        if len(targets) > self.limits.location_targets:
            # The whole Location fails (its last good version stays): reading only the
            # first targets would silently orphan the entities of the others.
            raise InputError(
                f"Location has {len(targets)} targets, more than the limit of "
                f"{self.limits.location_targets} (catalog.limits.locationTargets)"
            )
        for target in targets:
            if location_type == "file" and target.endswith(os.sep):
                emit.input_error(
                    location,
                    f"LocationEntityProcessor cannot handle {location_type} type location with "
                    f"target {location.target} that ends with a path separator",
                )
                continue
            absolute = self._absolute(location, location_type, target)
            emit.read(LocationSpec(location_type, absolute, presence))
        return entity

    def _absolute(self, base: LocationSpec, location_type: str, target: str) -> str:
        # Only a target of the same type as its base can be relative to it.
        reader = self.readers.get(base.type)
        if reader is None or base.type != location_type:
            return target
        return reader.resolve(base.target, target)


def factory(context) -> CatalogProcessor:
    return LocationEntityProcessor(context.readers, context.app_config.limits)
