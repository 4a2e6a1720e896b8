"""What each entity provider did last, and the guard against deleting on a hiccup.

Every mutation a provider applies goes through its connection, which asks
:meth:`ProviderRuns.before_mutation` first. For a full mutation of a provider with a
:class:`~entity_providers.base.DeletionGuard`, the provider's current entities are
compared with the new set: a set that is empty, or that drops more than the allowed
share, is refused with :class:`DeletionRefusedError` before anything is written, and
the refusal is logged and kept for ``GET /api/catalog/providers``. Providers that
report runs of their own (``status()``) add them to what that endpoint shows.

The records live in the process that applied the mutations (each server worker keeps
its own; with one worker, the default, that is the whole story).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select

from app.errors import CatalogError
from app.model import entity_ref
from app.storage.database import Database
from app.storage.tables import refresh_state_references
from entity_providers.base import DeletionGuard, FullMutation, Mutation

log = logging.getLogger(__name__)


class DeletionRefusedError(CatalogError):
    """A provider run would delete too much; nothing was applied."""

    name = "DeletionRefusedError"
    status = 409


@dataclass
class MutationSummary:
    type: str
    at: float
    #: Entities the mutation offered (full) or added (delta).
    entities: int
    added: int
    removed: int

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": _iso(self.at)}


@dataclass
class _Record:
    last_mutation: MutationSummary | None = None
    refused_at: float | None = None
    refused_message: str | None = None
    refusals: int = 0


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def current_refs(db: Database, source_key: str) -> set[str]:
    with db.engine.connect() as conn:
        return {
            row[0]
            for row in conn.execute(
                select(refresh_state_references.c.target_entity_ref).where(
                    refresh_state_references.c.source_key == source_key
                )
            )
        }


def entity_counts(db: Database) -> dict[str, int]:
    """How many entities each provider supplies now, by provider name."""
    column = refresh_state_references.c.source_key
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(column, func.count()).where(column.is_not(None)).group_by(column)
        )
        return {row[0]: int(row[1]) for row in rows}


def refusal(guard: DeletionGuard, name: str, current: set[str], wanted: set[str]) -> str | None:
    """Why ``guard`` refuses replacing ``current`` by ``wanted``, or None if it does not."""
    if not current:
        return None
    if not wanted and not guard.allow_empty:
        return (
            f"Provider {name} refused a run whose source listed no entities, which would "
            f"delete all {len(current)} of its entities; they are kept (allow it with "
            "safeDeletions.allowEmpty, or turn the guard off with safeDeletions: false)"
        )
    removed = len(current - wanted)
    if removed / len(current) > guard.max_removed_share:
        return (
            f"Provider {name} refused a run that would delete {removed} of its "
            f"{len(current)} entities ({removed / len(current):.0%}), more than the allowed "
            f"{guard.max_removed_share:.0%}; they are kept (safeDeletions.maxRemovedShare)"
        )
    return None


class ProviderRuns:
    """Per provider: the last mutation applied and the last refusal."""

    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def _record(self, name: str) -> _Record:
        with self._lock:
            return self._records.setdefault(name, _Record())

    def before_mutation(
        self, db: Database, name: str, mutation: Mutation, guard: DeletionGuard | None
    ) -> MutationSummary:
        """Check ``mutation`` against ``guard``; raise DeletionRefusedError if it is refused."""
        now = time.time()
        if isinstance(mutation, FullMutation):
            wanted = {entity_ref(item.entity) for item in mutation.entities}
            current = current_refs(db, name)
            if guard is not None:
                message = refusal(guard, name, current, wanted)
                if message is not None:
                    record = self._record(name)
                    record.refused_at, record.refused_message = now, message
                    record.refusals += 1
                    log.error("%s", message)
                    raise DeletionRefusedError(message)
            return MutationSummary(
                "full", now, len(wanted), len(wanted - current), len(current - wanted)
            )
        return MutationSummary(
            "delta", now, len(mutation.added), len(mutation.added), len(mutation.removed)
        )

    def after_mutation(self, name: str, summary: MutationSummary) -> None:
        self._record(name).last_mutation = summary

    def as_json(self, name: str) -> dict[str, Any]:
        record = self._record(name)
        return {
            "lastMutation": record.last_mutation.as_json() if record.last_mutation else None,
            "lastRefusal": None
            if record.refused_at is None
            else {"at": _iso(record.refused_at), "message": record.refused_message},
            "refusals": record.refusals,
        }
