"""Claims, leases and the stitch queue when several processes share one database.

Two catalogs built on one database stand for two processes (each has its own engine
and connection pool). A test steps into the middle of one's batch (its orchestrator
calls back while it holds a claim) and lets the other act there, so the interleavings
that matter happen every time instead of once in a thousand runs.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from app.catalog import Catalog
from app.config import AppConfig
from app.engine import refresh_state as rs
from app.storage.tables import refresh_state, refresh_state_references, stitch_queue
from tests.conftest import (
    catalog_config,
    component,
    final_entities_by_ref,
    generated_location_ref,
    settle,
    write_yaml,
)

POSTGRES = os.environ.get("CATALOG_TEST_DATABASE", "sqlite").startswith("postgres")
SVC = "component:default/svc"


def svc(version: str) -> dict[str, Any]:
    entity = component("svc")
    entity["metadata"]["description"] = version
    return entity


def served_description(catalog: Any) -> str | None:
    entity = final_entities_by_ref(catalog).get(SVC)
    return None if entity is None else entity["metadata"].get("description")


def intercept_processing(catalog: Any, kind: str, action) -> list[str]:
    """Run ``action`` once, in the middle of ``catalog``'s batch, just before the first
    entity of ``kind`` goes through the processors (its claim held); returns a list
    that records the descriptions of the entities of ``kind`` processed."""
    original = catalog.engine.orchestrator.process
    seen: list[str] = []

    def process(unprocessed: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if unprocessed["kind"] == kind:
            seen.append(unprocessed["metadata"].get("description"))
            if len(seen) == 1:
                action()
        return original(unprocessed, *args, **kwargs)

    catalog.engine.orchestrator.process = process
    return seen


def test_an_entity_made_due_while_claimed_stays_with_its_claimant(make_catalog, tmp_path: Path):
    """A new version emitted while another process works on the entity waits for it:
    nobody else processes the entity meanwhile, and its claimant processes it again
    right after writing, so the newer version wins."""
    path = write_yaml(tmp_path / "catalog.yaml", svc("v1"))
    first, second = make_catalog([path]), make_catalog([path])
    assert first.engine.process_batch() == 1  # the configured location: svc is now due

    def meanwhile() -> None:
        write_yaml(path, svc("v2"))
        second.engine.schedule_now([generated_location_ref(path)])
        assert second.engine.process_batch() == 1  # the location, which re-read the file
        assert second.engine.process_batch() == 0  # svc v2 is due, but first holds it

    seen = intercept_processing(first, "Component", meanwhile)
    assert first.engine.process_batch() == 1  # v1, written
    assert first.engine.process_batch() == 1  # v2, due again at once
    settle(first)
    assert seen == ["v1", "v2"]
    assert served_description(first) == "v2"


def test_a_result_written_after_another_process_took_over_is_dropped(make_catalog, tmp_path: Path):
    """A claimant so slow that its lease ran out, and another process claimed and
    processed the newer version meanwhile, must not write its older result over it."""
    path = write_yaml(tmp_path / "catalog.yaml", svc("v1"))
    first, second = make_catalog([path]), make_catalog([path])
    first.engine.settings.claim_lease = 0.2
    assert first.engine.process_batch() == 1

    def meanwhile() -> None:
        time.sleep(0.3)  # first's lease runs out
        write_yaml(path, svc("v2"))
        second.engine.schedule_now([generated_location_ref(path)])
        # The location (svc v2 is emitted), and svc itself, first's lease being over.
        assert second.engine.process_batch() == 2
        settle(second)
        assert served_description(second) == "v2"

    intercept_processing(first, "Component", meanwhile)
    assert first.engine.process_batch() == 0  # its v1 result was dropped
    settle(first)
    assert served_description(first) == "v2"


def test_a_batch_that_failed_to_write_is_retried_without_waiting_for_its_lease(
    make_catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The database went away during the write: the claims are released as soon as it
    answers again, instead of a minute later when the lease ends."""
    path = write_yaml(tmp_path / "catalog.yaml", svc("v1"))
    catalog = make_catalog([path])
    assert catalog.engine.settings.claim_lease == 60.0
    assert catalog.engine.process_batch() == 1
    write_results = rs.write_results

    def fail_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(rs, "write_results", write_results)
        raise OperationalError("UPDATE refresh_state ...", {}, Exception("server closed"))

    monkeypatch.setattr(rs, "write_results", fail_once)
    with pytest.raises(OperationalError):
        catalog.engine.process_batch()
    assert catalog.engine.process_batch() == 1
    settle(catalog, timeout=10)
    assert served_description(catalog) == "v1"
    with catalog.db.engine.connect() as conn:
        claimed = conn.execute(
            select(func.count()).where(refresh_state.c.claimed_until.is_not(None))
        ).scalar_one()
    assert claimed == 0


@pytest.mark.skipif(
    not POSTGRES, reason="PostgreSQL only: SQLite runs one write transaction at a time"
)
def test_a_stitcher_never_takes_a_queued_entity_whose_new_version_is_not_committed(
    make_catalog, tmp_path: Path
):
    """A writer queues an entity that is already queued, and a stitcher (another
    process) claims the queue before the writer commits: the stitcher must not consume
    the queue row and stitch the old version, or the new one is never served."""
    path = write_yaml(tmp_path / "catalog.yaml", svc("v1"))
    catalog = make_catalog([path])
    settle(catalog)
    db = catalog.db
    with db.transaction() as conn:
        rs.queue_stitch(db, conn, [SVC], time.time())
    with db.engine.connect() as writer:
        transaction = writer.begin()
        processed = writer.execute(
            select(refresh_state.c.processed_entity).where(refresh_state.c.entity_ref == SVC)
        ).scalar_one()
        entity = json.loads(processed)
        entity["metadata"]["description"] = "v2"
        writer.execute(
            update(refresh_state)
            .where(refresh_state.c.entity_ref == SVC)
            .values(processed_entity=json.dumps(entity))
        )
        rs.queue_stitch(db, writer, [SVC], time.time())
        assert catalog.engine.stitch_batch() == 0  # the row is the writer's until it commits
        transaction.commit()
    with db.engine.connect() as conn:
        assert conn.execute(select(stitch_queue.c.entity_ref)).scalars().all() == [SVC]
    settle(catalog)
    assert served_description(catalog) == "v2"


@pytest.mark.skipif(
    not POSTGRES, reason="PostgreSQL only: SQLite runs one write transaction at a time"
)
def test_processes_connecting_the_same_providers_at_once_write_each_reference_once(
    database_url: str, tmp_path: Path
):
    """Every worker connects the configured providers when it starts; their full
    mutations of one provider must not both insert its references."""
    paths = [write_yaml(tmp_path / f"c{i}.yaml", component(f"svc-{i}")) for i in range(20)]
    config = AppConfig(catalog_config(database_url, paths))
    catalogs = [Catalog.from_config(config) for _ in range(4)]
    barrier = threading.Barrier(len(catalogs))
    errors: list[BaseException] = []

    def connect(catalog: Catalog) -> None:
        try:
            barrier.wait()
            catalog.engine.connect_providers()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    try:
        threads = [threading.Thread(target=connect, args=(c,)) for c in catalogs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        with catalogs[0].db.engine.connect() as conn:
            rows = conn.execute(
                select(
                    refresh_state_references.c.source_key,
                    refresh_state_references.c.target_entity_ref,
                )
            ).all()
        assert len(rows) == len(set(rows)) == len(paths)
        settle(catalogs[0])
        assert len(final_entities_by_ref(catalogs[0])) == 2 * len(paths)
    finally:
        for catalog in catalogs:
            catalog.stop()
