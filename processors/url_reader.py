"""``UrlReaderProcessor``: reads ``url`` locations through the URL reader.

Messages and outcomes follow Backstage's ``UrlReaderProcessor``: a missing file is
a ``NotFoundError`` ("no matching files found", silent when the location is
optional), any other failure a plain ``Error`` "Unable to read url, ...". The
file's ETag and parsed entities are cached, so an unchanged file is not parsed
again (the server answers 304).
"""

from __future__ import annotations

from typing import Any

from app.errors import NotFoundError, NotModifiedError, error_message
from app.reading import Readers
from processors.base import CatalogProcessor, Emitter, EntityParser, LocationSpec, ProcessorCache

CACHE_KEY = "v1"
MAX_MESSAGE = 5000


class UrlReaderProcessor(CatalogProcessor):
    name = "url-reader"

    def __init__(self, readers: Readers):
        self.readers = readers

    def read_location(
        self,
        location: LocationSpec,
        optional: bool,
        emit: Emitter,
        parser: EntityParser,
        cache: ProcessorCache,
    ) -> bool:
        if location.type != "url":
            return False
        reader: Any = self.readers.for_type("url")
        cached = cache.get(CACHE_KEY)
        etag = cached.get("etag") if isinstance(cached, dict) else None
        try:
            reader.search(location.target)
            result = reader.read(location.target, etag=etag)
        except NotModifiedError:
            if not isinstance(cached, dict):
                emit.general_error(location, f"Unable to read {location.type}, not modified")
                return True
            for entity in cached.get("value") or []:
                emit.entity(LocationSpec("url", location.target), entity)
            emit.refresh(location.ref)
            cache.set(CACHE_KEY, cached)
            return True
        except NotFoundError:
            if not optional:
                emit.not_found_error(
                    location,
                    f"Unable to read {location.type}, no matching files found for "
                    f"{location.target}",
                )
            return True
        except Exception as exc:
            message = f"Unable to read {location.type}, {error_message(exc)}"
            emit.general_error(location, message[:MAX_MESSAGE])
            return True

        file_location = LocationSpec("url", location.target)
        entities: list[dict[str, Any]] = []
        only_entities = True
        for entity, error in parser(result.data, file_location):
            if error is not None:
                only_entities = False
                emit.error(file_location, error)
            elif entity is not None:
                entities.append(entity)
                emit.entity(file_location, entity)
        if result.etag and only_entities:
            cache.set(CACHE_KEY, {"etag": result.etag, "value": entities})
        emit.refresh(location.ref)
        return True


def factory(context) -> CatalogProcessor:
    return UrlReaderProcessor(context.readers)
