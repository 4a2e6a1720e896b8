"""The entity provider plugin interface: how entities enter the catalog.

As in Backstage, a provider has a name and is connected once at start-up; from
then on it pushes *mutations* whenever its source changes:

* a **full** mutation replaces everything the provider supplied before (entities
  it no longer lists are deleted, with their descendants);
* a **delta** mutation adds or removes individual entities.

``location_key`` guards against two sources claiming the same entity: the first
one keeps it. A third-party package adds a provider with an entry point in the
``catalog.entity_providers`` group whose value is a factory ``factory(context)``
returning a provider, a list of providers, or ``None``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

Entity = dict[str, Any]


@dataclass
class DeferredEntity:
    entity: Entity
    location_key: str | None = None


@dataclass(frozen=True)
class RemovedEntity:
    """A removal by ref, for providers that no longer have the entity body."""

    entity_ref: str
    location_key: str | None = None


@dataclass
class FullMutation:
    entities: list[DeferredEntity]


@dataclass
class DeltaMutation:
    added: list[DeferredEntity] = field(default_factory=list)
    removed: list[DeferredEntity | RemovedEntity] = field(default_factory=list)


Mutation = FullMutation | DeltaMutation


@dataclass(frozen=True)
class DeletionGuard:
    """Limits on what one full mutation may delete, against a source that hiccupped.

    A full mutation that lists nothing while the provider has entities (unless
    ``allow_empty``), or that would remove more than ``max_removed_share`` of them, is
    refused: the engine raises and the existing entities stay.
    """

    max_removed_share: float = 0.5
    allow_empty: bool = False


class EntityProviderConnection(Protocol):
    def apply_mutation(self, mutation: Mutation) -> None:
        """Store the mutation; the engine processes what changed."""

    def refresh(self, keys: list[str]) -> None:
        """Reprocess the entities that registered any of these refresh keys."""


class EntityProvider(ABC):
    @abstractmethod
    def get_provider_name(self) -> str:
        """A unique, stable name: it owns the entities this provider supplies."""

    @abstractmethod
    def connect(self, connection: EntityProviderConnection) -> None:
        """Called once; keep the connection and apply mutations through it."""

    def refresh_interval(self) -> float | None:
        """Seconds between calls of :meth:`run`, or None if the provider needs no schedule."""
        return None

    def run(self) -> None:  # noqa: B027 - optional hook, a no-op unless scheduled
        """One scheduled pass over the source (called by the scheduler when scheduled)."""

    def deletion_guard(self) -> DeletionGuard | None:
        """Limits on the deletions of a full mutation; None (the default) sets none."""
        return None
