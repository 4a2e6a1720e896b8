"""The servers a benchmark talks to, started the way users start them.

Ours is a real ``catalog serve`` process (gunicorn) on a fresh database, so the
figures include process start-up, migrations, the HTTP stack and the GIL shared
between request threads and the processing loop. The reference is the real
Backstage backend from ``shared/reference-backend``. Both are only ever stopped
by the pid we started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine

from app.config import ALL_BUILTIN_KINDS
from app.storage.database import created_database, normalise_url

REFERENCE_PORTS = range(7051, 7060)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# -- /proc ----------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (gunicorn's master and workers, say)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mb(pid: int) -> float:
    """Sum of VmHWM (peak resident set) over the process tree, in MiB."""
    return sum(_status_kb(p, "VmHWM") for p in process_tree(pid)) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process tree so far."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total / _CLOCK_TICKS


# -- databases ------------------------------------------------------------------


@dataclass
class BenchDatabase:
    url: str  # what the server is given
    label: str  # "sqlite" or "postgresql"

    def engine(self) -> Any:
        return create_engine(normalise_url(self.url))


@contextmanager
def bench_database(admin_url: str | None, workdir: Path) -> Iterator[BenchDatabase]:
    """A fresh database: a SQLite file in ``workdir``, or a new PostgreSQL database.

    For PostgreSQL a database ``catalog_bench_<random>`` is created on the server of
    ``admin_url`` and dropped afterwards; the database named in the URL is untouched.
    """
    if admin_url is None or not normalise_url(admin_url).startswith("postgresql"):
        path = workdir / "catalog.sqlite"
        url = admin_url or f"sqlite:///{path}"
        yield BenchDatabase(url, "sqlite")
        return
    with created_database(admin_url, "catalog_bench") as url:
        yield BenchDatabase(url, "postgresql")


# -- our server -----------------------------------------------------------------


class CatalogServer:
    """``catalog serve --config <file>`` as a child process."""

    kind = "ours"

    def __init__(self, workdir: Path, database_url: str, catalog_file: Path):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/api/catalog"
        config = {
            "backend": {
                "listen": {"host": "127.0.0.1", "port": self.port},
                "database": {"url": database_url},
            },
            "catalog": {
                "rules": [{"allow": ALL_BUILTIN_KINDS}],
                "locations": [{"type": "file", "target": str(catalog_file)}],
                # As the reference backend runs: nothing becomes due again on its own
                # during the run; the refresh figure forces it instead.
                "processingInterval": {"hours": 1},
            },
        }
        self.config_path = workdir / "app-config.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        binary = shutil.which("catalog", path=str(Path(sys.executable).parent))
        command = ([binary, "serve"] if binary else [sys.executable, "-m", "app.cli", "serve"]) + [
            "--config",
            str(self.config_path),
        ]
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, cwd=str(workdir)
        )
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, size: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-size:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# -- the reference backend ----------------------------------------------------------


def reference_dir() -> Path | None:
    """``shared/reference-backend`` next to the repository, if there is one."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "reference-backend"
        if (candidate / "start.sh").exists():
            return candidate
    return None


class ReferenceServer:
    """The real Backstage catalog backend, via ``shared/reference-backend/start.sh``."""

    kind = "backstage"

    def __init__(self, workdir: Path, catalog_file: Path, port: int | None = None):
        scripts = reference_dir()
        if scripts is None:
            raise RuntimeError("shared/reference-backend not found next to the repository")
        self.scripts = scripts
        if port is None:
            port = next((p for p in REFERENCE_PORTS if _port_is_free(p)), None)
            if port is None:
                raise RuntimeError("no free port in 7051-7059 for the reference backend")
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/api/catalog"
        self.run_dir = workdir / "backstage-run"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "BACKSTAGE_RUN_DIR": str(self.run_dir), "BACKSTAGE_NO_WAIT": "1"}
        subprocess.run(
            [str(scripts / "start.sh"), str(catalog_file), str(port)],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        pid_file = self.run_dir / f"backstage-{port}.pid"
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pid = int(pid_file.read_text().strip())
        self.log_path = self.run_dir / f"backstage-{port}.log"

    def alive(self) -> bool:
        return Path(f"/proc/{self.pid}").exists()

    def log_tail(self, size: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-size:] if self.log_path.exists() else ""

    def stop(self) -> None:
        subprocess.run(
            [str(self.scripts / "stop.sh"), str(self.port)],
            env=self.env,
            check=False,
            stdout=subprocess.DEVNULL,
        )
