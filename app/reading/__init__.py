"""Readers fetch the bytes behind a location (``file``, ``url``, ...).

Processors never open files or sockets themselves: they ask the registry, so a new
source (git, an object store) slots in as one more :class:`Reader`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from app.errors import InputError


@dataclass(frozen=True)
class ReadResult:
    data: bytes
    #: The canonical target that was read (after resolving, for refresh keys).
    target: str
    #: A validator of the content (mtime/size, ETag, commit) for cheap change checks.
    etag: str | None = None


class Reader(ABC):
    #: Location types this reader handles, e.g. ("file",).
    types: tuple[str, ...] = ()

    @abstractmethod
    def read(self, target: str) -> ReadResult:
        """Return the content of ``target``; raise NotFoundError if it does not exist."""

    def search(self, target: str) -> list[str]:
        """Expand a glob target into the existing targets it matches (sorted)."""
        return [target]

    def is_glob(self, target: str) -> bool:
        return False

    def check_allowed(self, target: str) -> None:
        """Raise NotAllowedError if an untrusted caller (the API) may not read ``target``.

        The default allows everything: a reader with limits overrides this.
        """
        return None

    @abstractmethod
    def resolve(self, base: str, relative: str) -> str:
        """Resolve ``relative`` against the location ``base`` of the same type."""


class Readers:
    """The registry of readers, by location type."""

    def __init__(self, readers: list[Reader] | None = None):
        self._by_type: dict[str, Reader] = {}
        for reader in readers or []:
            self.register(reader)

    def register(self, reader: Reader) -> None:
        for location_type in reader.types:
            self._by_type[location_type] = reader

    def get(self, location_type: str) -> Reader | None:
        return self._by_type.get(location_type)

    def for_type(self, location_type: str) -> Reader:
        reader = self._by_type.get(location_type)
        if reader is None:
            raise InputError(f"No reader for location type '{location_type}'")
        return reader

    @property
    def types(self) -> list[str]:
        return sorted(self._by_type)
