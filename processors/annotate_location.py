"""``AnnotateLocationEntityProcessor``: location, source, view and edit annotations.

The location annotations always reflect where the entity was read from. For
``url`` locations the entity also gets ``backstage.io/view-url`` (the file),
``backstage.io/source-location`` (its folder) and, where the host's URL scheme is
known, ``backstage.io/edit-url``. Values written in the entity file win.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from processors.base import CatalogProcessor, Emitter, LocationSpec, ProcessorCache

ANNOTATION_LOCATION = "backstage.io/managed-by-location"
ANNOTATION_ORIGIN_LOCATION = "backstage.io/managed-by-origin-location"
ANNOTATION_VIEW_URL = "backstage.io/view-url"
ANNOTATION_EDIT_URL = "backstage.io/edit-url"
ANNOTATION_SOURCE_LOCATION = "backstage.io/source-location"


def edit_url_for(url: str) -> str | None:
    """The edit URL of a file on GitHub- or GitLab-style hosts, if recognisable."""
    if "/blob/" in url:
        if "gitlab" in url:
            return url.replace("/-/blob/", "/-/edit/", 1).replace("/blob/", "/edit/", 1)
        return url.replace("/blob/", "/edit/", 1)
    return None


class AnnotateLocationEntityProcessor(CatalogProcessor):
    name = "AnnotateLocationEntityProcessor"
    priority = 30

    def pre_process_entity(
        self,
        entity: dict[str, Any],
        location: LocationSpec,
        emit: Emitter,
        origin_location: LocationSpec,
        cache: ProcessorCache,
    ) -> dict[str, Any]:
        defaults: dict[str, str] = {
            ANNOTATION_LOCATION: location.ref,
            ANNOTATION_ORIGIN_LOCATION: origin_location.ref,
        }
        if location.type == "url":
            defaults[ANNOTATION_VIEW_URL] = location.target
            edit = edit_url_for(location.target)
            if edit:
                defaults[ANNOTATION_EDIT_URL] = edit
            defaults[ANNOTATION_SOURCE_LOCATION] = f"url:{urljoin(location.target, './')}"
        metadata = entity.get("metadata")
        if not isinstance(metadata, dict):
            return entity
        annotations = metadata.get("annotations")
        if annotations is not None and not isinstance(annotations, dict):
            return entity
        merged = {**defaults, **(annotations or {})}
        if merged == annotations:
            return entity
        return {**entity, "metadata": {**metadata, "annotations": merged}}


def factory(context) -> CatalogProcessor:
    return AnnotateLocationEntityProcessor()
