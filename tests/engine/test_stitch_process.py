"""The stitching process: a real child process on the test's database (SQLite file or
PostgreSQL), started, killed and restarted the way a server's engine does it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.engine.engine import EngineSettings
from app.engine.stitch_process import StitcherProcess, StitcherSpec
from app.storage.tables import stitch_queue
from tests.conftest import component, final_entities_by_ref, launch_server, wait_for, write_yaml

REPO = Path(__file__).resolve().parents[2]


def queued(catalog: Any) -> int:
    with catalog.db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(stitch_queue)).scalar_one())


def process_only(catalog: Any) -> None:
    """Process everything due, leaving the stitching to someone else."""
    while catalog.engine.process_batch():
        pass


def title_of(catalog: Any, ref: str) -> str | None:
    return final_entities_by_ref(catalog)[ref]["metadata"].get("title")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is dead too.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


@pytest.fixture
def stitcher(make_catalog: Any) -> Any:
    made: list[StitcherProcess] = []

    def make(catalog: Any) -> StitcherProcess:
        process = StitcherProcess(StitcherSpec(catalog.db.url, 30.0))
        process.start(EngineSettings(poll_interval=0.05))
        made.append(process)
        return process

    yield make
    for process in made:
        process.stop()


def test_it_stitches_what_was_processed_reports_back_and_is_restarted(
    make_catalog, stitcher, tmp_path: Path
):
    names = [f"svc-{i}" for i in range(30)]
    path = write_yaml(tmp_path / "catalog.yaml", *(component(n) for n in names))
    catalog = make_catalog([path])
    process_only(catalog)
    assert queued(catalog) > 0
    assert final_entities_by_ref(catalog) == {}

    child = stitcher(catalog)
    wait_for(lambda: queued(catalog) == 0)
    served = final_entities_by_ref(catalog)
    assert {f"component:default/{n}" for n in names} <= set(served)
    reports = wait_for(lambda: list(child.reports()))
    assert sum(changed for changed, _ in reports) >= len(names)
    assert child.last_error is None

    first = child._process.pid
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not child._process.is_alive())
    child.ensure_running()
    assert child.restarts == 1
    assert child.last_error == "the stitching process exited with status -9"
    assert child._process.pid != first

    path.write_text(path.read_text().replace("name: svc-0\n", "name: svc-0\n  title: T\n"))
    catalog.engine.schedule_now(
        [ref for ref in final_entities_by_ref(catalog) if ref.startswith("location:")]
    )
    process_only(catalog)
    wait_for(lambda: title_of(catalog, "component:default/svc-0") == "T")

    child.stop()
    assert not child.running
    assert not alive(first)


def test_it_dies_with_its_parent(database_url: str, tmp_path: Path):
    """SIGKILL of the server process takes the stitching process along (PDEATHSIG)."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from app.engine.engine import EngineSettings
        from app.engine.stitch_process import StitcherProcess, StitcherSpec
        from app.storage.database import Database

        if __name__ == "__main__":
            Database({database_url!r}).migrate()
            child = StitcherProcess(StitcherSpec({database_url!r}, 30.0))
            child.start(EngineSettings())
            print(child._process.pid, flush=True)
            time.sleep(120)
        """
    )
    (tmp_path / "parent.py").write_text(script)
    parent = subprocess.Popen(
        [sys.executable, str(tmp_path / "parent.py")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert alive(child_pid)
        parent.kill()
        parent.wait(10)
        wait_for(lambda: not alive(child_pid), timeout=10)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_failing_stitching_process_makes_the_catalog_unready(make_catalog, tmp_path):
    catalog = make_catalog([write_yaml(tmp_path / "catalog.yaml", component("svc"))])
    catalog.engine.run_until_idle(60)
    assert catalog.engine.is_ready() == (True, "ok")
    catalog.engine.stitcher = StitcherProcess(StitcherSpec(catalog.db.url, 30.0))
    catalog.engine.stitcher.last_error = "database is locked"
    assert catalog.engine.is_ready() == (
        False,
        "the stitching process is failing: database is locked",
    )


def test_signals_for_its_process_group_leave_its_stop_to_its_parent(
    make_catalog, stitcher, tmp_path: Path
):
    """SIGTERM and SIGINT (a service manager or Ctrl-C stopping the whole group) do not
    stop the child; its parent's stop() does, at once."""
    path = write_yaml(tmp_path / "catalog.yaml", component("before"))
    catalog = make_catalog([path])
    child = stitcher(catalog)
    # The handlers are set once it stitched something.
    process_only(catalog)
    wait_for(lambda: "component:default/before" in final_entities_by_ref(catalog))

    for sent in (signal.SIGTERM, signal.SIGINT):
        os.kill(child._process.pid, sent)
    write_yaml(path, component("before"), component("after"))
    catalog.engine.schedule_now(
        [ref for ref in final_entities_by_ref(catalog) if ref.startswith("location:")]
    )
    process_only(catalog)
    wait_for(lambda: "component:default/after" in final_entities_by_ref(catalog))
    assert child._process.is_alive()

    process = child._process
    child.stop(timeout=10)
    assert process.exitcode == 0  # stopped by its parent's signal, not killed


def test_a_server_stopped_as_a_process_group_stops_once(database_url: str, tmp_path: Path):
    """``kill -TERM -<pgid>`` (systemd's default way to stop a service): every process of
    the server ends, and the stitching process is not restarted on the way out."""
    server = launch_server(
        database_url,
        tmp_path,
        [write_yaml(tmp_path / "catalog.yaml", component("svc"))],
        new_session=True,
    )
    try:
        tree = descendants(server.process.pid)
        assert len(tree) >= 2, tree  # the worker, its stitching process (and helpers)
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(30)
        wait_for(lambda: not any(alive(pid) for pid in tree), timeout=15)
    finally:
        if server.process.poll() is None:
            server.kill()
        server.stop()
    log = server.log_path.read_text()
    assert "Stitching in process" in log and "starting a new one" not in log, log[-3000:]


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (Linux /proc)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [p for child in children for p in (int(child), *descendants(int(child)))]
