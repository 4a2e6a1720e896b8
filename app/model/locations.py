"""Location entities the catalog generates for registered and configured locations."""

from __future__ import annotations

import hashlib
from typing import Any

from processors.base import LocationSpec

ANNOTATION_LOCATION = "backstage.io/managed-by-location"
ANNOTATION_ORIGIN_LOCATION = "backstage.io/managed-by-origin-location"


def generated_location_name(location_type: str, target: str) -> str:
    """``generated-<sha1 of "type:target">``, the name Backstage gives such entities."""
    digest = hashlib.sha1(f"{location_type}:{target}".encode()).hexdigest()
    return f"generated-{digest}"


def location_entity_for(
    location: LocationSpec, parent: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The Location entity for ``location``; children of ``parent`` inherit its locations."""
    if parent is not None:
        annotations = (parent.get("metadata") or {}).get("annotations") or {}
        own = annotations.get(ANNOTATION_LOCATION)
        origin = annotations.get(ANNOTATION_ORIGIN_LOCATION)
    else:
        own = origin = f"{location.type}:{location.target}"
    spec: dict[str, Any] = {"type": location.type, "target": location.target}
    if location.presence != "required":
        spec["presence"] = location.presence
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Location",
        "metadata": {
            "name": generated_location_name(location.type, location.target),
            "namespace": "default",
            "annotations": {ANNOTATION_LOCATION: own, ANNOTATION_ORIGIN_LOCATION: origin},
        },
        "spec": spec,
    }
