"""Several processes share one PostgreSQL database (issue #7).

Real ``catalog serve`` processes, a synthetic organisation (app.bench.synthetic), and
a processor plugin that records every processing (tests/multiproc.py):

* two instances share the processing work: both process batches, no entity is
  processed by both at the same time, files changed three times while they ingest end
  up served in their last version (no lost update), and the graph answers the same
  everywhere;
* one instance with three gunicorn workers: the same, the workers sharing the loop;
* two instances ingest 20,000 entities and one is killed (SIGKILL) at ~30%, in the
  middle of a claimed batch: the other takes that batch over when its lease ends,
  finishes, and the catalog equals a single-process run's;
* API-only replicas (``--no-processing``) serve what the processing instances wrote
  and never process anything themselves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests

from app.bench.synthetic import SyntheticCatalog, write_catalog
from tests.conftest import ServerProcess, fresh_database
from tests.multiproc import (
    PROCESSED,
    ROOT,
    check_settled_catalog,
    claims,
    ingest_reference,
    install_recorder,
    metric,
    overlapping,
    processed_by,
    processed_count,
    read_records,
    refresh,
    served,
    settled,
    stamp_catalog,
    start,
    synthetic_entities,
    wait_alive,
    wait_for,
)

POSTGRES = os.environ.get("CATALOG_TEST_DATABASE", "sqlite").startswith("postgres")
postgres_only = pytest.mark.skipif(
    not POSTGRES,
    reason="several processes sharing the processing loop is the PostgreSQL set-up "
    "(README, Production); an SQLite file takes one writer at a time",
)


# -- sharing the work, changes while ingesting --------------------------------------

N_SHARED = 3000
VERSIONS = ("v1", "v2", "v3")
SLOW, FINAL, SLOW_SECONDS = "slow", "final", 5.0


def shared_recorder(directory: Path) -> dict[str, Any]:
    """The recorder's settings for change_while_ingesting."""
    return {
        "file": str(directory / "processing.log"),
        "delaySeconds": 0.001,
        "slowVersion": SLOW,
        "slowSeconds": SLOW_SECONDS,
        "slowMarker": str(directory / "slow.marker"),
    }


def teams(synthetic: SyntheticCatalog) -> tuple[str, str]:
    names = sorted(r.split("/")[1] for r in synthetic.refs_by_kind["group"] if "/team-" in r)
    return names[0], names[-1]


def move_components_to(team: str) -> Callable[[dict[str, Any]], None]:
    """Every tenth component (by name) changes owner."""

    def change(entity: dict[str, Any]) -> None:
        if entity["kind"] == "Component" and entity["metadata"]["name"].endswith("0"):
            entity["spec"]["owner"] = team

    return change


def owned_by(entities: list[dict[str, Any]], team: str) -> set[str]:
    refs = set()
    for entity in entities:
        owner = (entity.get("spec") or {}).get("owner")
        if owner is not None and owner.split("/")[-1].split(":")[-1] == team:
            refs.add(f"{entity['kind']}:default/{entity['metadata']['name']}".lower())
    return refs


def shows(url: str, version: str) -> bool:
    return version in served(url).versions.values()


def change_while_ingesting(
    bases: list[str], url: str, synthetic: SyntheticCatalog, recorder: dict[str, Any]
) -> tuple[list[dict[str, Any]], str]:
    """Change the catalog files while the servers ingest and process them; return the
    entities as last written and the team that owns the moved components in the end.

    1. At 30% of the first ingestion every file changes, then again as soon as the
       change shows, three times (v1, v2, v3), the root Location refreshed through
       each server in turn; every tenth component changes owner each time.
    2. One entity changes (SLOW) and whoever processes it first takes SLOW_SECONDS
       over it (the recorder's slowVersion); meanwhile it changes again (FINAL) and
       the root is refreshed: the new version is due while the entity is claimed, and
       must wait for its claimant instead of being processed by another process too.
    """
    org = synthetic.root.parent
    owners = teams(synthetic)
    wait_for(lambda: processed_count(url) >= 0.3 * N_SHARED, 120, "30% processed")
    for round, version in enumerate(VERSIONS):
        team = owners[round % 2]
        entities = stamp_catalog(org, version, move_components_to(team))
        refresh(bases[round % len(bases)], ROOT)
        wait_for(partial(shows, url, version), 60, f"{version} shows", every=0.1)

    def all_last() -> bool:
        versions = served(url).versions
        return all(versions.get(ref) == VERSIONS[-1] for ref in synthetic.expected_refs)

    wait_for(all_last, 120, "every entity served in its last version", every=0.5)

    contested = sorted(synthetic.refs_by_kind["component"])[0]
    stamp_catalog(org, SLOW, only=contested)
    refresh(bases[0], ROOT)
    marker = Path(recorder["slowMarker"])
    wait_for(marker.exists, 30, "the contested entity is being processed", every=0.05)
    entities = stamp_catalog(org, FINAL, only=contested)
    refresh(bases[-1], ROOT)
    wait_for(partial(shows, url, FINAL), SLOW_SECONDS + 60, "the contested entity's change")

    def slow_one_done() -> bool:
        return any(r.version == SLOW for r in read_records(Path(recorder["file"])))

    wait_for(slow_one_done, SLOW_SECONDS + 30, "the slow processing is over")
    wait_for(lambda: settled(url), 60, "nothing left to process or stitch")
    return entities, team


def check_graph_everywhere(
    bases: list[str], url: str, entities: list[dict[str, Any]], team: str, asks: int
) -> None:
    """Every server (every worker: a new connection per request) answers graph queries
    from the catalog as committed: the same generation, the moved components owned."""
    generation = served(url).generation
    expected = owned_by(entities, team)
    for base in bases:
        for _ in range(asks):
            status = requests.get(f"{base}/api/graph/status", timeout=30).json()
            assert status["generation"] == generation
            owned = requests.get(
                f"{base}/api/graph/owned",
                params={"entityRef": f"group:default/{team}", "limit": 1000},
                timeout=30,
            ).json()
            assert {item["entityRef"] for item in owned["items"]} == expected


@postgres_only
def test_two_instances_share_the_work_without_overlaps_or_lost_updates(
    database_url: str, tmp_path: Path, servers: list[ServerProcess]
):
    synthetic = write_catalog(tmp_path / "org", N_SHARED, per_file=250)
    site = install_recorder(tmp_path / "site")
    recorder = shared_recorder(tmp_path)
    started = time.monotonic()
    pair = [
        start(servers, database_url, tmp_path, synthetic.root, site=site, recorder=recorder)
        for _ in range(2)
    ]
    for server in pair:
        wait_alive(server)
    bases = [server.base for server in pair]
    entities, team = change_while_ingesting(bases, database_url, synthetic, recorder)
    elapsed = time.monotonic() - started

    records = read_records(Path(recorder["file"]))
    assert overlapping(records) == []
    check_settled_catalog(database_url, synthetic, entities)
    # Both processed batches: by their own counters, and by who ran the processors.
    counts = [metric(base, PROCESSED) for base in bases]
    assert min(counts) >= 0.1 * sum(counts), counts
    assert sum(counts) == len(records)
    assert len(processed_by(records)) == 2
    check_graph_everywhere(bases, database_url, entities, team, asks=3)
    print(f"two instances: processed {counts} entities, settled in {elapsed:.1f} s")


@postgres_only
def test_gunicorn_workers_share_the_loop(
    database_url: str, tmp_path: Path, servers: list[ServerProcess]
):
    synthetic = write_catalog(tmp_path / "org", N_SHARED, per_file=250)
    site = install_recorder(tmp_path / "site")
    recorder = shared_recorder(tmp_path)
    server = start(
        servers,
        database_url,
        tmp_path,
        synthetic.root,
        site=site,
        recorder=recorder,
        extra_args=["--workers", "3", "--threads", "4"],
    )
    wait_alive(server)
    entities, team = change_while_ingesting([server.base], database_url, synthetic, recorder)

    records = read_records(Path(recorder["file"]))
    assert overlapping(records) == []
    check_settled_catalog(database_url, synthetic, entities)
    by_worker = processed_by(records)
    # Every worker runs the loop (README, Production): all three took batches.
    assert len(by_worker) == 3, by_worker
    # The workers' counters, summed whichever worker answers.
    assert metric(server.base, PROCESSED) == len(records)
    check_graph_everywhere([server.base], database_url, entities, team, asks=12)
    print(f"three workers: processed {sorted(by_worker.values())} entities")


# -- one of two instances killed ------------------------------------------------------

N_FAULT = 20_000
LEASE_SECONDS = 10


@postgres_only
def test_the_survivor_of_two_instances_finishes_the_catalog(
    database_url: str, tmp_path: Path, servers: list[ServerProcess]
):
    synthetic = write_catalog(tmp_path / "org", N_FAULT)
    with fresh_database(tmp_path / "reference") as reference_url:
        reference_seconds = ingest_reference(reference_url, synthetic.root)
        reference = served(reference_url)
    assert len(reference.refs) == synthetic.expected_entities

    site = install_recorder(tmp_path / "site")
    record = tmp_path / "processing.log"
    lease = {"processing": {"claimLease": {"seconds": LEASE_SECONDS}}}
    # The victim is killed mid-batch: once `freeze` exists, its processing stops inside
    # an entity of a claimed batch and names it in `frozen`.
    freeze, frozen = tmp_path / "freeze", tmp_path / "frozen"
    victim = start(
        servers,
        database_url,
        tmp_path,
        synthetic.root,
        site=site,
        recorder={"file": str(record), "freezeWhen": str(freeze), "frozenMarker": str(frozen)},
        catalog=lease,
    )
    survivor = start(
        servers, database_url, tmp_path, synthetic.root, site=site, record=record, catalog=lease
    )
    for server in (victim, survivor):
        wait_alive(server)
    wait_for(lambda: processed_count(database_url) >= 0.3 * N_FAULT, 180, "30% processed", 0.05)
    victim_processed = metric(victim.base, PROCESSED)
    freeze.touch()
    wait_for(frozen.exists, 60, "the victim stops mid-batch", 0.05)
    held, victim_pid = frozen.read_text().split()
    victim.kill()
    killed_at, killed_at_wall = time.monotonic(), time.time()
    at_kill = processed_count(database_url)
    # The victim's batch stays claimed (one lease for the whole batch) until the lease
    # ends: nobody processes it meanwhile.
    leases = claims(database_url)
    assert leases.get(held, 0) > killed_at_wall, f"{held}: not claimed at the kill"
    orphaned = {ref for ref, until in leases.items() if until == leases[held]}

    wait_for(lambda: settled(database_url), 180, "the survivor settles the catalog")
    recovered = time.monotonic() - killed_at
    assert survivor.process.poll() is None
    requests.get(f"{survivor.base}/.backstage/health/v1/readiness", timeout=10).raise_for_status()

    final = served(database_url)
    assert sorted(final.refs) == sorted(reference.refs)
    assert final.relations == reference.relations
    check_settled_catalog(database_url, synthetic, synthetic_entities(synthetic))
    records = read_records(record)
    assert overlapping(records) == []
    # The survivor processed the victim's batch once its lease ended.
    retaken = [r for r in records if r.ref in orphaned and r.start >= killed_at_wall]
    assert {r.ref for r in retaken} == orphaned
    assert all(r.pid != int(victim_pid) for r in retaken)
    assert min(r.start for r in retaken) >= leases[held]
    survivor_processed = metric(survivor.base, PROCESSED)
    print(
        f"20,000 entities: reference run {reference_seconds:.1f} s; victim killed at "
        f"{at_kill} processed (its own count {victim_processed:.0f}), {len(orphaned)} claims "
        f"orphaned; survivor processed {survivor_processed:.0f}, all settled "
        f"{recovered:.1f} s after the kill (lease {LEASE_SECONDS} s)"
    )


# -- API-only replicas ----------------------------------------------------------------


def test_api_only_replicas_serve_and_never_process(
    database_url: str, tmp_path: Path, servers: list[ServerProcess]
):
    """``--no-processing`` (or ``catalog.processing.enabled: false``): ready as soon as
    the database answers, serves what the processing instance wrote, and leaves every
    batch, provider and write to it."""
    synthetic = write_catalog(tmp_path / "org", 300, per_file=100)
    site = install_recorder(tmp_path / "site")
    record = tmp_path / "processing.log"
    replicas = [
        start(
            servers,
            database_url,
            tmp_path,
            synthetic.root,
            site=site,
            record=record,
            extra_args=["--no-processing"],
        ),
        start(
            servers,
            database_url,
            tmp_path,
            synthetic.root,
            site=site,
            record=record,
            catalog={"processing": {"enabled": False}},
        ),
    ]
    for replica in replicas:
        replica.wait_ready()
    time.sleep(1)
    assert served(database_url).refs == []  # nobody processes yet
    processing = start(servers, database_url, tmp_path, synthetic.root, site=site, record=record)
    processing.wait_ready()

    for replica in replicas:
        body = requests.get(
            f"{replica.catalog_url}/entities", params={"fields": "metadata.name"}, timeout=30
        ).json()
        assert len(body) == synthetic.expected_entities
    # A refresh asked of a replica is done by the processing instance.
    stamp_catalog(synthetic.root.parent, "v1")
    refresh(replicas[0].base, ROOT)

    def changed() -> bool:
        versions = served(database_url).versions
        return all(versions.get(ref) == "v1" for ref in synthetic.expected_refs)

    wait_for(changed, 60, "the change asked of a replica served")
    for replica in replicas:
        assert metric(replica.base, PROCESSED) == 0
    assert list(processed_by(read_records(record))) == [processing_pid(processing)]
    assert "Processing: off" in replicas[0].log_path.read_text()


def processing_pid(server: ServerProcess) -> int:
    """The pid of the (only) gunicorn worker of ``server``."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    (pid,) = children.read_text().split()
    return int(pid)
