"""Stitching leases its queue rows, computes outside the write lock, and stores only
what its lease still covers (app.engine.stitcher, migration 0006)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from app.engine import refresh_state as rs
from app.engine import stitcher
from app.storage.tables import refresh_state, stitch_queue
from tests.conftest import component, final_entities_by_ref, group, settle, write_yaml

SVC = "component:default/svc"


def served_description(catalog: Any, ref: str = SVC) -> str | None:
    entity = final_entities_by_ref(catalog).get(ref)
    return None if entity is None else entity["metadata"].get("description")


def described(name: str, description: str) -> dict[str, Any]:
    entity = component(name)
    entity["metadata"]["description"] = description
    return entity


def queue_rows(catalog: Any) -> dict[str, float | None]:
    with catalog.db.engine.connect() as conn:
        return {
            row.entity_ref: row.claimed_until
            for row in conn.execute(select(stitch_queue.c.entity_ref, stitch_queue.c.claimed_until))
        }


def set_processed_description(catalog: Any, ref: str, description: str) -> None:
    """What processing a new version does to the stitcher's inputs: a new processed
    entity, and the ref queued again, in one transaction."""
    db = catalog.db
    with db.transaction() as conn:
        processed = conn.execute(
            select(refresh_state.c.processed_entity).where(refresh_state.c.entity_ref == ref)
        ).scalar_one()
        entity = json.loads(processed)
        entity["metadata"]["description"] = description
        conn.execute(
            update(refresh_state)
            .where(refresh_state.c.entity_ref == ref)
            .values(processed_entity=json.dumps(entity))
        )
        rs.queue_stitch(db, conn, [ref], time.time())


@pytest.fixture
def settled(make_catalog, tmp_path: Path) -> Any:
    catalog = make_catalog([write_yaml(tmp_path / "catalog.yaml", described("svc", "v1"))])
    settle(catalog)
    assert served_description(catalog) == "v1"
    return catalog


def test_a_result_computed_from_inputs_that_changed_meanwhile_is_not_stored(settled):
    catalog, db = settled, settled.db
    with db.transaction() as conn:
        rs.queue_stitch(db, conn, [SVC], time.time())
    with db.transaction() as conn:
        refs, until = stitcher.claim_stitch_batch(db, conn, 10, time.time(), 60.0)
    assert refs == [SVC]
    assert queue_rows(catalog) == {SVC: until}
    with db.snapshot() as conn:
        plan = stitcher.plan_stitch(conn, refs)
    # Processing writes v2 while the plan (of v1's inputs) waits to be stored.
    set_processed_description(catalog, SVC, "v2")
    assert queue_rows(catalog) == {SVC: None}  # queued again: the lease is gone
    with db.transaction() as conn:
        held = stitcher.held_stitch_claims(db, conn, refs, until)
        assert held == set()
        stitcher.apply_stitch(conn, plan.only(held), time.time())
    assert queue_rows(catalog) == {SVC: None}  # still queued, for the newer inputs
    assert catalog.engine.stitch_batch() == 1
    assert served_description(catalog) == "v2"
    assert queue_rows(catalog) == {}


def test_an_intact_lease_stores_the_result_and_empties_the_queue(settled):
    catalog = settled
    set_processed_description(catalog, SVC, "v2")
    assert catalog.engine.stitch_batch() == 1
    assert served_description(catalog) == "v2"
    assert queue_rows(catalog) == {}


def test_a_claim_is_skipped_by_others_until_its_lease_ends(settled):
    """A stitcher that died after claiming leaves its rows leased; they come due again
    when the lease ends, so nothing stays unstitched."""
    catalog, db = settled, settled.db
    set_processed_description(catalog, SVC, "v2")
    now = time.time()
    with db.transaction() as conn:
        refs, _ = stitcher.claim_stitch_batch(db, conn, 10, now, 60.0)
    assert refs == [SVC]
    with db.transaction() as conn:
        assert stitcher.claim_stitch_batch(db, conn, 10, now + 30, 60.0)[0] == []
    with db.transaction() as conn:
        assert stitcher.claim_stitch_batch(db, conn, 10, now + 61, 60.0)[0] == [SVC]


def test_a_failed_stitch_gives_its_claim_back_at_once(settled, monkeypatch):
    catalog = settled
    set_processed_description(catalog, SVC, "v2")

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr("app.engine.engine.plan_stitch", broken)
    with pytest.raises(RuntimeError):
        catalog.engine.stitch_batch()
    assert queue_rows(catalog) == {SVC: None}
    monkeypatch.undo()
    assert catalog.engine.stitch_batch() == 1
    assert served_description(catalog) == "v2"


def test_while_processing_is_busy_only_new_entities_skip_the_wait(make_catalog, tmp_path):
    """An entity never stitched is stitched at once; one stitched before (which the
    next batches may well touch again) waits until it was queued long enough ago."""
    catalog = make_catalog([write_yaml(tmp_path / "catalog.yaml", described("svc", "v1"))])
    settle(catalog)
    db = catalog.db
    new = "component:default/new"
    with db.transaction() as conn:
        rs.queue_stitch(db, conn, [SVC, new], time.time())
    with db.transaction() as conn:
        refs, _ = stitcher.claim_stitch_batch(
            db, conn, 10, time.time(), 60.0, queued_before=time.time() - 5
        )
    assert refs == [new]
    with db.transaction() as conn:
        refs, _ = stitcher.claim_stitch_batch(
            db, conn, 10, time.time(), 60.0, queued_before=time.time() + 1
        )
    assert refs == [SVC]


def test_stitching_directly_takes_the_ref_from_a_stitcher_that_holds_it(settled):
    """Deleting an entity stitches it in the deleting transaction: a stitcher that had
    leased it must not bring it back."""
    catalog, db = settled, settled.db
    with db.transaction() as conn:
        rs.queue_stitch(db, conn, [SVC], time.time())
    with db.transaction() as conn:
        refs, until = stitcher.claim_stitch_batch(db, conn, 10, time.time(), 60.0)
    with db.snapshot() as conn:
        plan = stitcher.plan_stitch(conn, refs)
    with db.transaction() as conn:
        conn.execute(refresh_state.delete().where(refresh_state.c.entity_ref == SVC))
        stitcher.stitch(db, conn, [SVC], time.time())
    assert served_description(catalog) is None
    with db.transaction() as conn:
        held = stitcher.held_stitch_claims(db, conn, refs, until)
        stitcher.apply_stitch(conn, plan.only(held), time.time())
    assert served_description(catalog) is None


def test_a_claim_that_could_not_be_given_back_is_given_back_by_the_next_batch(settled, monkeypatch):
    """The database went away mid-batch: releasing fails too, so the next batch (once
    the database answers) releases the claim, instead of waiting for its lease."""
    catalog = settled
    set_processed_description(catalog, SVC, "v2")
    release = stitcher.release_stitch_claims

    def down(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr("app.engine.engine.plan_stitch", down)
    monkeypatch.setattr("app.engine.engine.release_stitch_claims", down)
    with pytest.raises(RuntimeError):
        catalog.engine.stitch_batch()
    [(ref, claimed_until)] = queue_rows(catalog).items()
    assert ref == SVC and claimed_until is not None
    monkeypatch.undo()
    assert stitcher.release_stitch_claims is release
    assert catalog.engine.stitch_batch() == 1
    assert served_description(catalog) == "v2"


def test_entities_not_processed_yet_are_not_queued_for_stitching(make_catalog, tmp_path):
    """A location's new children, and relation peers not processed yet, are stitched
    after their own processing (which queues them), not also before it: on SQLite, where
    writers take turns. PostgreSQL queues them all (see rs.worth_stitching)."""
    catalog = make_catalog(
        [write_yaml(tmp_path / "catalog.yaml", described("svc", "v1"), group("team-a"))]
    )
    db = catalog.db
    assert catalog.engine.process_batch() == 1  # the configured location only
    children = {SVC, "group:default/team-a"}
    with db.transaction() as conn:
        queued = set(queue_rows(catalog))
        kept = rs.worth_stitching(db, conn, children | {"component:default/elsewhere"})
    if db.is_postgres:
        assert children <= queued
        assert kept == children | {"component:default/elsewhere"}
    else:
        assert not children & queued
        # Unknown refs are kept: nothing says they will be stitched otherwise.
        assert kept == {"component:default/elsewhere"}

    settle(catalog)
    served = final_entities_by_ref(catalog)
    relations = {(r["type"], r["targetRef"]) for r in served["group:default/team-a"]["relations"]}
    assert ("ownerOf", SVC) in relations
    assert served_description(catalog) == "v1"
    with db.transaction() as conn:
        assert rs.worth_stitching(db, conn, children) == children
