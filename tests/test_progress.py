"""Progress bars of long commands: drawn on a terminal, silent in scripts."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.progress import Progress, progress_enabled
from tests.conftest import component, location, write_yaml


def test_a_bar_draws_counts_rate_and_completion():
    out = io.StringIO()
    with Progress("ingesting", unit="entities", stream=out, enabled=True, interval=0) as bar:
        bar.update(5, 10)
        bar.update(10, 10)
    text = out.getvalue()
    assert "\r" in text and text.endswith("\n")
    assert "ingesting [" in text
    assert " 50% 5/10 entities" in text
    assert "100% 10/10 entities" in text


def test_without_a_total_it_spins_and_counts():
    out = io.StringIO()
    bar = Progress("exporting", stream=out, enabled=True, interval=0)
    bar.update(3)
    bar.close("")
    assert "exporting | 3" in out.getvalue() or "exporting / 3" in out.getvalue()
    assert out.getvalue().endswith("\r")  # erased: the next output starts on a clean line


def test_a_disabled_bar_writes_nothing():
    out = io.StringIO()
    with Progress("quiet", stream=out, enabled=False) as bar:
        bar.update(1, 2)
        with bar.ticking():
            time.sleep(0.01)
    assert out.getvalue() == ""


def test_ticking_redraws_while_a_long_call_runs():
    out = io.StringIO()
    with Progress("waiting", stream=out, enabled=True, interval=0.01) as bar, bar.ticking():
        time.sleep(0.2)
    assert out.getvalue().count("\r") >= 5


def test_only_terminals_get_bars(monkeypatch):
    monkeypatch.delenv("CATALOG_PROGRESS", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert progress_enabled(io.StringIO()) is False
    master, slave = pty.openpty()
    with os.fdopen(slave, "w") as tty:
        assert progress_enabled(tty) is True
        monkeypatch.setenv("TERM", "dumb")
        assert progress_enabled(tty) is False
        monkeypatch.setenv("CATALOG_PROGRESS", "0")
        monkeypatch.setenv("TERM", "xterm")
        assert progress_enabled(tty) is False
    os.close(master)
    monkeypatch.setenv("CATALOG_PROGRESS", "1")
    assert progress_enabled(io.StringIO()) is True


# -- the commands ------------------------------------------------------------------------


@pytest.fixture
def catalog_files(tmp_path: Path) -> Path:
    for i in range(4):
        write_yaml(tmp_path / f"part{i}.yaml", *(component(f"c{i}-{j}") for j in range(50)))
    return write_yaml(
        tmp_path / "all.yaml", location("all", *(f"./part{i}.yaml" for i in range(4)))
    )


def catalog_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


def run_on_a_terminal(command: list[str], env: dict[str, str]) -> tuple[int, str, bytes]:
    """Run with stderr on a pseudo-terminal; (status, what the terminal showed, stdout)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    shown = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    stdout = process.stdout.read() if process.stdout else b""
    status = process.wait(120)
    os.close(master)
    return status, shown.decode(errors="replace"), stdout


def test_ingest_shows_a_bar_on_a_terminal(catalog_files, database_url):
    env = {**os.environ, "TERM": "xterm"}
    env.pop("CATALOG_PROGRESS", None)
    status, shown, _ = run_on_a_terminal(
        catalog_command("ingest", "--database-url", database_url, "--location", str(catalog_files)),
        env,
    )
    assert status == 0, shown
    assert "ingesting [" in shown and "\r" in shown
    # 200 components, the Location "all" and the one generated for --location.
    assert "100% 202/202 entities" in shown
    assert "ingested: 202 processed, 0 failed" in shown
    assert "Loaded catalog.processors" not in shown  # plugin chatter only with -v


def test_ingest_is_quiet_in_scripts(catalog_files, database_url):
    env = {**os.environ}
    env.pop("CATALOG_PROGRESS", None)
    result = subprocess.run(
        catalog_command("ingest", "--database-url", database_url, "--location", str(catalog_files)),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "ingesting [" not in result.stderr
    assert result.stderr.splitlines() == [
        line for line in result.stderr.splitlines() if line.startswith("ingested: 202 processed")
    ]
    assert result.stdout == ""
    # What was ingested is in the database for a server (or the graph commands) to use.
    export = subprocess.run(
        catalog_command("graph", "export", "--database-url", database_url, "--format", "json"),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert export.returncode == 0, export.stderr
    assert export.stdout.lstrip().startswith("{") and "c3-49" in export.stdout
    assert "\r" not in export.stderr
