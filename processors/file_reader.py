"""``FileReaderProcessor``: reads ``file`` locations (single files or globs)."""

from __future__ import annotations

from app.errors import CatalogError, NotFoundError
from app.reading import Readers
from processors.base import CatalogProcessor, Emitter, EntityParser, LocationSpec, ProcessorCache


class FileReaderProcessor(CatalogProcessor):
    name = "FileReaderProcessor"

    def __init__(self, readers: Readers):
        self.reader = readers.for_type("file")

    def read_location(
        self,
        location: LocationSpec,
        optional: bool,
        emit: Emitter,
        parser: EntityParser,
        cache: ProcessorCache,
    ) -> bool:
        if location.type != "file":
            return False
        try:
            matches = self.reader.search(location.target)
            for path in matches:
                try:
                    result = self.reader.read(path)
                except NotFoundError:
                    if self.reader.is_glob(location.target) or optional:
                        continue
                    raise
                file_location = LocationSpec("file", result.target)
                emit.refresh(f"file:{result.target}")
                for entity, error in parser(result.data, file_location):
                    if error is not None:
                        emit.error(file_location, error)
                    else:
                        assert entity is not None
                        emit.entity(file_location, entity)
        except NotFoundError:
            if not optional:
                emit.not_found_error(location, f"{location.type} {location.target} does not exist")
        except CatalogError as exc:
            emit.error(
                location,
                CatalogError(f"{location.type} {location.target} could not be read, {exc}"),
            )
        return True


def factory(context) -> CatalogProcessor:
    return FileReaderProcessor(context.readers)
