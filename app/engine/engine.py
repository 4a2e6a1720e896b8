"""The processing engine: providers in, final entities out.

One loop, safe to run in several processes against PostgreSQL: claim a batch of
due entities (the claim pushes their next update out, so nobody else takes them),
process them in memory, write all outcomes in one transaction that also queues the
refs to stitch, then stitch queued refs in batches (leased the same way; in a server,
in a process of its own, see :mod:`.stitch_process`). Work is never lost on a crash:
an unfinished claim comes due again, and the stitch queue lives in the database.
Hashes and texts are computed before a write transaction, not inside it: on SQLite
there is one writer at a time, and the other side waits for whoever holds it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, select
from sqlalchemy.exc import DBAPIError

from app.model import entity_ref
from app.storage.database import Database
from app.storage.tables import refresh_keys, refresh_state, refresh_state_references
from entity_providers.base import (
    DeferredEntity,
    DeletionGuard,
    DeltaMutation,
    EntityProvider,
    FullMutation,
    Mutation,
    RemovedEntity,
)

from . import refresh_state as rs
from .changes import prune_changes
from .orchestrator import Orchestrator
from .provider_runs import ProviderRuns
from .stitch_process import StitcherProcess
from .stitcher import (
    apply_stitch,
    claim_stitch_batch,
    held_stitch_claims,
    plan_stitch,
    release_stitch_claims,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Tries to write one batch when PostgreSQL aborts it for a deadlock.
WRITE_ATTEMPTS = 3
# SQLSTATEs of transactions PostgreSQL aborted for a conflict with another one.
_CONFLICT_STATES = ("40P01", "40001")


def _is_write_conflict(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in _CONFLICT_STATES


@dataclass
class EngineSettings:
    #: (min, max) seconds before an entity is processed again; None: only on demand.
    processing_interval: tuple[float, float] | None = (100.0, 150.0)
    orphan_strategy: str = "keep"
    batch_size: int = 500
    stitch_batch_size: int = 2000
    #: Idle sleep of the loop between polls for due work.
    poll_interval: float = 0.2
    orphan_cleanup_interval: float = 30.0
    #: While whole batches keep coming due, stitching waits (an entity and its relation
    #: peers are then stitched once, not once per batch that touches them) but never
    #: longer than this many seconds.
    stitch_max_delay: float = 5.0
    #: Threads that claim and process batches side by side (see CatalogEngine.start).
    processing_threads: int = 1
    #: Seconds a claimed batch is reserved for its process; if that process dies, the
    #: batch comes due again after this long. Far above any batch's processing time.
    claim_lease: float = 60.0


class _Abandoned(Generic[T]):
    """Claims of batches that failed, given back as soon as the database lets us rather
    than when their lease ends (a minute later, say, after the database came back)."""

    def __init__(self) -> None:
        self._items: list[T] = []
        self._lock = threading.Lock()

    def add(self, items: Iterable[T]) -> None:
        with self._lock:
            self._items.extend(items)

    def release(self, db: Database, give_back: Callable[[Connection, list[T]], None]) -> int:
        """Give every one back in one transaction; kept for the next try if that fails."""
        with self._lock:
            items, self._items = self._items, []
        if not items:
            return 0
        try:
            with db.transaction() as conn:
                give_back(conn, items)
        except BaseException:
            self.add(items)
            raise
        return len(items)


@dataclass
class EngineStats:
    processed: int = 0
    failed: int = 0
    stitched: int = 0
    last_error: str | None = None
    started_at: float = field(default_factory=time.time)


class ProviderConnection:
    """What a provider holds: mutations and refreshes go straight to the database."""

    def __init__(
        self, engine: CatalogEngine, provider_name: str, guard: DeletionGuard | None = None
    ):
        self.engine = engine
        self.provider_name = provider_name
        self.guard = guard

    def apply_mutation(self, mutation: Mutation) -> None:
        # Raises DeletionRefusedError, writing nothing, when the guard refuses the mutation.
        runs = self.engine.provider_runs
        summary = runs.before_mutation(self.engine.db, self.provider_name, mutation, self.guard)
        self.engine.apply_mutation(self.provider_name, mutation)
        runs.after_mutation(self.provider_name, summary)

    def refresh(self, keys: list[str]) -> None:
        self.engine.refresh_keys(keys)


class CatalogEngine:
    def __init__(
        self,
        db: Database,
        orchestrator: Orchestrator,
        providers: list[EntityProvider],
        settings: EngineSettings | None = None,
        clock: Callable[[], float] = time.time,
        stitcher: StitcherProcess | None = None,
    ):
        """``stitcher``: once :meth:`start` runs the loop, stitching happens in that
        child process instead of a thread (see :mod:`app.engine.stitch_process`)."""
        self.db = db
        self.stitcher = stitcher
        self.orchestrator = orchestrator
        self.providers = providers
        self.settings = settings or EngineSettings()
        self.clock = clock
        self.stats = EngineStats()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        # Until when processing counts as busy (full batches keep coming).
        self._busy_until = 0.0
        self._providers_connected = False
        self._last_orphan_cleanup = 0.0
        self._provider_schedule: dict[str, float] = {}
        self.provider_runs = ProviderRuns()
        # Claims of batches that failed after claiming, to release (see process_batch).
        self._abandoned: _Abandoned[rs.Claimed] = _Abandoned()
        # Stitch claims (refs, lease) of batches that failed, to release likewise.
        self._abandoned_stitches: _Abandoned[tuple[list[str], float]] = _Abandoned()
        self._reports_lock = threading.Lock()

    # -- providers -----------------------------------------------------------

    def connect_providers(self) -> None:
        for provider in self.providers:
            guard = getattr(provider, "deletion_guard", lambda: None)()
            provider.connect(ProviderConnection(self, provider.get_provider_name(), guard))
        self._providers_connected = True

    def apply_mutation(self, source_key: str, mutation: Mutation) -> None:
        now = self.clock()
        with self.db.transaction() as conn:
            stitch_refs: set[str] = set()
            if isinstance(mutation, FullMutation):
                items = self._unprocessed(mutation.entities)
                upserted = rs.upsert_unprocessed(conn, items, now, source_key=source_key)
                for conflict in upserted.conflicts:
                    log.warning("Provider %s: %s", source_key, conflict)
                _, removed = rs.replace_references(conn, upserted.accepted, source_key=source_key)
                _, restitch = rs.delete_entities(conn, removed)
                stitch_refs |= restitch
            elif isinstance(mutation, DeltaMutation):
                items = self._unprocessed(mutation.added)
                upserted = rs.upsert_unprocessed(conn, items, now, source_key=source_key)
                for conflict in upserted.conflicts:
                    log.warning("Provider %s: %s", source_key, conflict)
                current = {
                    row[0]
                    for row in conn.execute(
                        select(refresh_state_references.c.target_entity_ref).where(
                            refresh_state_references.c.source_key == source_key
                        )
                    )
                }
                removed_refs = {
                    item.entity_ref if isinstance(item, RemovedEntity) else entity_ref(item.entity)
                    for item in mutation.removed
                }
                wanted = (current | set(upserted.accepted)) - removed_refs
                _, removed = rs.replace_references(conn, wanted, source_key=source_key)
                _, restitch = rs.delete_entities(conn, removed)
                stitch_refs |= restitch
            rs.queue_stitch(self.db, conn, stitch_refs, now)
        self._wake.set()

    @staticmethod
    def _unprocessed(entities: list[DeferredEntity]) -> list[rs.Unprocessed]:
        by_ref: dict[str, rs.Unprocessed] = {}
        for deferred in entities:
            ref = entity_ref(deferred.entity)
            by_ref[ref] = rs.Unprocessed(ref, deferred.entity, deferred.location_key)
        return list(by_ref.values())

    def refresh_keys(self, keys: list[str]) -> None:
        """Make every entity that registered one of ``keys`` due now."""
        now = self.clock()
        with self.db.transaction() as conn:
            ids = select(refresh_keys.c.entity_id).where(refresh_keys.c.key.in_(keys))
            conn.execute(
                refresh_state.update()
                .where(refresh_state.c.entity_id.in_(ids))
                .values(next_update_at=now)
            )
        self._wake.set()

    def schedule_now(self, refs: list[str], force: bool = False) -> None:
        """Make these entities due now; ``force`` also discards their result hash."""
        now = self.clock()
        values: dict[str, Any] = {"next_update_at": now}
        if force:
            values["result_hash"] = None
        with self.db.transaction() as conn:
            conn.execute(
                refresh_state.update().where(refresh_state.c.entity_ref.in_(refs)).values(**values)
            )
        self._wake.set()

    # -- the loop ------------------------------------------------------------

    def process_batch(self) -> int:
        """Claim, process and write one batch; return the number of entities processed."""
        self._release_abandoned()
        now = self.clock()
        with self.db.transaction() as conn:
            claimed = rs.claim_due(
                self.db, conn, self.settings.batch_size, now, self.settings.claim_lease
            )
        # A full batch means more is probably due: stitching may wait for it (a partial
        # or empty one ends that at once).
        full = len(claimed) >= self.settings.batch_size
        self._busy_until = self.clock() + self.settings.stitch_max_delay if full else 0.0
        if self.stitcher is not None:
            self.stitcher.busy_until(self._busy_until)
        if not claimed:
            return 0
        try:
            written = self._write(claimed, self._process(claimed))
        except BaseException:
            # Left alone, the rows would wait for the lease to end (a minute) after, say,
            # the database came back; the next round releases them (if it can by then).
            self._abandoned.add(claimed)
            raise
        self.stats.processed += written
        if self.stitcher is not None:
            self.stitcher.poke()
        return written

    def _release_abandoned(self) -> None:
        released = self._abandoned.release(
            self.db, lambda conn, rows: rs.release_claims(conn, rows, self.clock(), None)
        )
        if released:
            log.info("Released %d claimed entities of a failed batch", released)

    def _process(self, claimed: list[rs.Claimed]) -> list[tuple[rs.Claimed, Any]]:
        results = []
        for row in claimed:
            # Each claimed entity was just decoded from its row: hand it over, uncopied.
            outcome = self.orchestrator.process(row.unprocessed, row.cache, owned=True)
            if not outcome.ok:
                self.stats.failed += 1
                log.warning(
                    "Processing of %s failed: %s",
                    row.entity_ref,
                    "; ".join(str(e) for e in outcome.errors),
                )
            elif outcome.errors:
                log.warning(
                    "Processing of %s reported: %s",
                    row.entity_ref,
                    "; ".join(str(e) for e in outcome.errors),
                )
            results.append((row, outcome))
        return results

    def _write(self, claimed: list[rs.Claimed], results: list[tuple[rs.Claimed, Any]]) -> int:
        """Write the outcomes whose claims are still ours; return how many were written.

        PostgreSQL may abort one of two writers that lock rows (children, stitch queue)
        in opposite orders: the loser's batch is written again at once.
        """
        prepared = rs.prepare_results(results)
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                now = self.clock()
                with self.db.transaction() as conn:
                    held = rs.held_claims(self.db, conn, claimed)
                    if len(held) < len(claimed):
                        log.warning(
                            "%d claimed entities were taken over by another process after "
                            "their lease ended; their results are dropped",
                            len(claimed) - len(held),
                        )
                    ours = {row.entity_id for row in held}
                    mine = [result for result in prepared if result.claimed.entity_id in ours]
                    to_stitch = rs.write_results(conn, mine, now)
                    to_stitch = rs.worth_stitching(self.db, conn, to_stitch)
                    rs.queue_stitch(self.db, conn, to_stitch, now)
                    rs.schedule_next(conn, held, now, self.settings.processing_interval)
                return len(held)
            except DBAPIError as exc:
                if attempt == WRITE_ATTEMPTS or not _is_write_conflict(exc):
                    raise
                log.info("Writing a batch met a concurrent writer (%s); retrying", exc.orig)
        raise AssertionError("unreachable")

    def stitch_batch(self, queued_before: float | None = None) -> int:
        """Stitch one batch of queued refs (only those queued before the given time, or
        never stitched, if a time is given); return how many refs were taken.

        The refs are leased in one short transaction, their final entities computed in a
        read transaction, and only the results whose lease is intact stored in a third:
        the computation, most of the work, holds no write lock (SQLite has one).
        """
        self._release_abandoned_stitches()
        lease = self.settings.claim_lease
        with self.db.transaction() as conn:
            refs, until = claim_stitch_batch(
                self.db, conn, self.settings.stitch_batch_size, self.clock(), lease, queued_before
            )
        if not refs:
            return 0
        try:
            with self.db.snapshot() as conn:
                plan = plan_stitch(conn, refs)
            with self.db.transaction() as conn:
                held = held_stitch_claims(self.db, conn, refs, until)
                if len(held) < len(refs):
                    # Queued again meanwhile: stitched again from the newer inputs.
                    plan = plan.only(held)
                self.stats.stitched += apply_stitch(conn, plan, self.clock())
        except BaseException:
            # As for processing claims (see process_batch): released as soon as the
            # database lets us, not a lease later.
            self._abandoned_stitches.add([(refs, until)])
            with contextlib.suppress(Exception):
                self._release_abandoned_stitches()
            raise
        return len(refs)

    def _release_abandoned_stitches(self) -> None:
        def give_back(conn: Connection, claims: list[tuple[list[str], float]]) -> None:
            for refs, until in claims:
                release_stitch_claims(conn, refs, until)

        self._abandoned_stitches.release(self.db, give_back)

    def cleanup_orphans(self) -> int:
        """With ``orphanStrategy: delete``, remove entities no parent emits any more."""
        if self.settings.orphan_strategy != "delete":
            return 0
        with self.db.transaction() as conn:
            referenced = select(refresh_state_references.c.target_entity_ref)
            orphans = [
                row[0]
                for row in conn.execute(
                    select(refresh_state.c.entity_ref).where(
                        refresh_state.c.entity_ref.not_in(referenced)
                    )
                )
            ]
            if not orphans:
                return 0
            deleted, restitch = rs.delete_entities(conn, orphans)
            rs.queue_stitch(self.db, conn, restitch, self.clock())
        log.info("Deleted %d orphaned entities", len(deleted))
        return len(deleted)

    def run_once(self) -> int:
        """One round of every duty, in this thread; return the amount of work done."""
        return self.process_batch() + self._run_duties()

    def _run_scheduled_providers(self, now: float) -> None:
        for provider in self.providers:
            interval = provider.refresh_interval()
            if interval is None:
                continue
            name = provider.get_provider_name()
            due = self._provider_schedule.get(name, 0.0)
            if now >= due:
                self._provider_schedule[name] = now + interval
                try:
                    provider.run()
                except Exception as exc:  # a broken source must not stop the loop
                    log.exception("Provider %s failed: %s", name, exc)

    def run_until_idle(self, timeout: float = 300.0) -> None:
        """Process until nothing is due and nothing waits to be stitched (tests, CLI)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run_once() == 0 and self.is_idle():
                return
        raise TimeoutError("The catalog did not settle in time")

    def is_idle(self) -> bool:
        with self.db.engine.connect() as conn:
            unprocessed, queued = rs.count_pending(conn)
            due = conn.execute(
                select(refresh_state.c.entity_id)
                .where(refresh_state.c.next_update_at <= self.clock())
                .limit(1)
            ).first()
        return unprocessed == 0 and queued == 0 and due is None

    def is_ready(self) -> tuple[bool, str]:
        """Ready once every known entity was processed once and stitched."""
        if not self._providers_connected:
            return False, "entity providers are not connected yet"
        if self.stats.last_error:
            return False, f"the processing loop is failing: {self.stats.last_error}"
        if self.stitcher is not None and self.stitcher.last_error:
            return False, f"the stitching process is failing: {self.stitcher.last_error}"
        with self.db.engine.connect() as conn:
            unprocessed, queued = rs.count_pending(conn)
        if unprocessed or queued:
            return False, (
                f"{unprocessed} entities not processed yet, {queued} waiting to be stitched"
            )
        return True, "ok"

    def start(self) -> None:
        """Run the engine in the background: one thread for providers, stitching and
        clean-up, and ``processing_threads`` that process batches side by side.

        The threads share the GIL, but the database works outside it (SQLite and
        psycopg release it), so one batch is processed while another is written.
        """
        if self._threads:
            return
        self._stop.clear()
        if self.stitcher is not None:
            # Before any thread exists (the child is spawned, but still).
            self.stitcher.start(self.settings)
        targets = [("catalog-engine", self._main_loop)] + [
            (f"catalog-processing-{i}", self._processing_loop)
            for i in range(max(1, self.settings.processing_threads))
        ]
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        if self.stitcher is not None:
            self.stitcher.stop(timeout)

    def _guarded(self, duty: Callable[[], int]) -> int:
        """Run one duty; a failure is logged and waited out, never fatal."""
        try:
            work = duty()
            self.stats.last_error = None
            return work
        except Exception as exc:  # keep serving; the database may come back
            log.exception("Processing loop error: %s", exc)
            self.stats.last_error = str(exc)
            self._stop.wait(1.0)
            return 0

    def _connect_until_done(self) -> None:
        delay = 1.0
        while not self._providers_connected and not self._stop.is_set():
            try:
                self.connect_providers()
            except Exception as exc:  # e.g. the database is not up yet: try again
                log.exception("Connecting entity providers failed, retrying in %.0fs", delay)
                self.stats.last_error = str(exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)

    def _main_loop(self) -> None:
        self._connect_until_done()
        while not self._stop.is_set():
            work = self._guarded(self._run_duties)
            if work == 0:
                self._wake.wait(self.settings.poll_interval)
                self._wake.clear()

    def _run_duties(self) -> int:
        """Stitching, orphan clean-up and scheduled providers (everything but processing)."""
        stitcher = self.stitcher
        if stitcher is not None and stitcher.running:
            stitcher.ensure_running()
            self.absorb_stitch_reports()
            work = 0
        else:
            work = self.stitch_pending(self._busy_until)
        now = self.clock()
        if now - self._last_orphan_cleanup >= self.settings.orphan_cleanup_interval:
            self._last_orphan_cleanup = now
            work += self.cleanup_orphans()
            with self.db.transaction() as conn:
                prune_changes(conn)
        self._run_scheduled_providers(now)
        return work

    def stitch_pending(self, busy_until: float) -> int:
        """Stitch batches until the queue has no full batch left; return refs taken.

        While processing is busy (full batches keep coming, until ``busy_until``), an
        entity stitched before waits until it was queued ``stitch_max_delay`` ago: the
        next batches are likely to touch it again.
        """
        cutoff = None
        if self.clock() < busy_until:
            cutoff = self.clock() - self.settings.stitch_max_delay
        work = 0
        while not self._stop.is_set():
            stitched = self.stats.stitched
            started = time.perf_counter()
            taken = self.stitch_batch(cutoff)
            if taken:
                self.stitch_done(self.stats.stitched - stitched, time.perf_counter() - started)
            work += taken
            if taken < self.settings.stitch_batch_size:
                break
        return work

    def absorb_stitch_reports(self) -> None:
        """Count what the stitching process reported it stitched (if it runs)."""
        if self.stitcher is None or not self.stitcher.running:
            return
        with self._reports_lock:
            for changed, seconds in self.stitcher.reports():
                self.stats.stitched += changed
                self.stitch_done(changed, seconds)

    def stitch_done(self, changed: int, seconds: float) -> None:
        """A batch was stitched (here or in the stitching process); for metrics."""

    def _processing_loop(self) -> None:
        while not self._stop.is_set():
            if self._guarded(self.process_batch) == 0:
                # Not _wake: the main loop owns clearing it, and waiting on a set event
                # would spin.
                self._stop.wait(self.settings.poll_interval)
