"""The processor plugin interface: how entities are read, checked and enriched.

Modelled on Backstage's ``CatalogProcessor``: every hook is optional and processors
run in ``priority`` order (lower first). A processor reports what it finds through
an :class:`Emitter` instead of return values, so one hook can emit child entities,
locations, relations, errors and refresh keys at once.

A third-party package adds a processor with an entry point in the
``catalog.processors`` group whose value is a factory ``factory(context)``
returning a processor, a list of processors, or ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.errors import CatalogError, InputError, NotFoundError

Entity = dict[str, Any]


@dataclass(frozen=True)
class LocationSpec:
    """Where entities come from: ``type`` (``file``, ``url``, ...) and ``target``."""

    type: str
    target: str
    presence: str = "required"

    @property
    def ref(self) -> str:
        return f"{self.type}:{self.target}"

    @property
    def optional(self) -> bool:
        return self.presence == "optional"


# Sentinel: "use the emitting location as the child's location key".
DEFAULT_LOCATION_KEY: Any = object()


@dataclass
class EmittedEntity:
    location: LocationSpec
    entity: Entity
    location_key: Any = DEFAULT_LOCATION_KEY


@dataclass
class EmittedLocation:
    location: LocationSpec


@dataclass(frozen=True)
class EmittedRelation:
    """A relation between canonical refs (``kind:namespace/name``, lowercase)."""

    source: str
    type: str
    target: str


@dataclass
class EmittedError:
    location: LocationSpec | None
    error: BaseException


@dataclass
class Emitter:
    """Collects everything processors emit while one entity is processed."""

    entities: list[EmittedEntity] = field(default_factory=list)
    locations: list[EmittedLocation] = field(default_factory=list)
    relations: list[EmittedRelation] = field(default_factory=list)
    errors: list[EmittedError] = field(default_factory=list)
    refresh_keys: list[str] = field(default_factory=list)
    #: Locations a processor asked the engine to read (e.g. a Location's targets).
    reads: list[LocationSpec] = field(default_factory=list)

    #: Set by the engine through collect_with: takes each emitted entity at once.
    collector: Callable[[EmittedEntity], None] | None = None

    def entity(
        self, location: LocationSpec, entity: Entity, *, location_key: Any = DEFAULT_LOCATION_KEY
    ) -> None:
        emitted = EmittedEntity(location, entity, location_key)
        if self.collector is not None:
            self.collector(emitted)
        else:
            self.entities.append(emitted)

    def collect_with(self, collector: Callable[[EmittedEntity], None]) -> None:
        """Hand the entities emitted so far, and every later one, to ``collector``."""
        pending, self.entities = self.entities, []
        for emitted in pending:
            collector(emitted)
        self.collector = collector

    def location(self, location: LocationSpec) -> None:
        self.locations.append(EmittedLocation(location))

    def relation(self, source: str, type: str, target: str) -> None:
        self.relations.append(EmittedRelation(source, type, target))

    def error(self, location: LocationSpec | None, error: BaseException) -> None:
        self.errors.append(EmittedError(location, error))

    def input_error(self, location: LocationSpec | None, message: str) -> None:
        self.error(location, InputError(message))

    def not_found_error(self, location: LocationSpec | None, message: str) -> None:
        self.error(location, NotFoundError(message))

    def general_error(self, location: LocationSpec | None, message: str) -> None:
        self.error(location, CatalogError(message))

    def refresh(self, key: str) -> None:
        self.refresh_keys.append(key)

    def read(self, location: LocationSpec) -> None:
        """Ask the engine to read ``location`` with the ``read_location`` processors."""
        self.reads.append(location)


class ProcessorCache:
    """A processor's JSON key/value store for one entity, kept until its next run."""

    def __init__(self, previous: dict[str, Any] | None = None):
        self._previous = previous or {}
        self._next: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self._previous.get(key)

    def set(self, key: str, value: Any) -> None:
        self._next[key] = value

    def collect(self) -> dict[str, Any]:
        return self._next


# Parses the bytes read from a location into entities (YAML documents by default).
EntityParser = Callable[[bytes, LocationSpec], Iterator[tuple[Entity | None, BaseException | None]]]


class CatalogProcessor:
    """Base class of processors. Override the hooks you need; the rest cost nothing."""

    #: Unique name, used in error messages ("Processor <name> threw an error ...").
    name: str = "CatalogProcessor"
    #: Lower runs first. Backstage's default is 20.
    priority: int = 20

    def get_processor_name(self) -> str:
        return self.name

    def read_location(
        self,
        location: LocationSpec,
        optional: bool,
        emit: Emitter,
        parser: EntityParser,
        cache: ProcessorCache,
    ) -> bool:
        """Read ``location`` and emit its entities; return True if this type is handled."""
        return False

    def pre_process_entity(
        self,
        entity: Entity,
        location: LocationSpec,
        emit: Emitter,
        origin_location: LocationSpec,
        cache: ProcessorCache,
    ) -> Entity:
        """Transform the raw entity before validation (placeholders, annotations)."""
        return entity

    def validate_entity_kind(self, entity: Entity) -> bool:
        """True if this processor knows the kind and the entity is valid; raise if invalid."""
        return False

    def post_process_entity(
        self, entity: Entity, location: LocationSpec, emit: Emitter, cache: ProcessorCache
    ) -> Entity:
        """Final pass over a valid entity: emit relations and derived entities."""
        return entity


class PluginContext(Protocol):
    """What a plugin factory receives: its own config section and shared services."""

    name: str
    config: dict[str, Any]
    app_config: Any
    readers: Any


def overrides(processor: CatalogProcessor, hook: str) -> bool:
    """Whether ``processor`` implements ``hook`` (so the engine can skip the no-ops)."""
    return getattr(type(processor), hook) is not getattr(CatalogProcessor, hook)
