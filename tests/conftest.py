"""Shared fixtures: real databases, real catalogs, real server processes.

The whole suite runs once per database. ``CATALOG_TEST_DATABASE`` selects it:
``sqlite`` (default; a file per test) or a PostgreSQL URL such as
``postgresql://postgres@127.0.0.1:5432/test``, in which case every test gets a
database of its own, created from that server and dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.catalog import Catalog
from app.config import AppConfig, deep_merge
from app.storage.database import normalise_url

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
ALL_KINDS = ["Component", "API", "Resource", "System", "Domain", "Group", "User", "Location", "Template"]


def _postgres_admin_url() -> str | None:
    setting = os.environ.get("CATALOG_TEST_DATABASE", "sqlite")
    if setting.startswith("postgres"):
        return normalise_url(setting)
    return None


def pytest_report_header(config: pytest.Config) -> str:
    return f"catalog test database: {os.environ.get('CATALOG_TEST_DATABASE', 'sqlite')}"


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for this test."""
    admin = _postgres_admin_url()
    if admin is None:
        yield f"sqlite:///{tmp_path / 'catalog.sqlite'}"
        return
    name = f"catalog_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        engine.dispose()


def catalog_config(
    database_url: str, locations: list[Any] | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An app-config dict: all kinds allowed, the given file locations, no schedule noise."""
    data: dict[str, Any] = {
        "backend": {"database": {"url": database_url}},
        "catalog": {
            "rules": [{"allow": ALL_KINDS}],
            "locations": [
                loc if isinstance(loc, dict) else {"type": "file", "target": str(loc)}
                for loc in (locations or [])
            ],
            "processingInterval": {"hours": 1},
        },
    }
    return deep_merge(data, extra or {})


@pytest.fixture
def make_catalog(database_url: str) -> Iterator[Callable[..., Catalog]]:
    """Build catalogs on this test's database; processing runs when the test says so."""
    built: list[Catalog] = []

    def make(locations: list[Any] | None = None, **extra: Any) -> Catalog:
        config = AppConfig(catalog_config(database_url, locations, extra))
        catalog = Catalog.from_config(config)
        catalog.engine.connect_providers()
        built.append(catalog)
        return catalog

    yield make
    for catalog in built:
        catalog.stop()


def settle(catalog: Catalog, timeout: float = 120.0) -> None:
    """Process and stitch until nothing is left to do."""
    catalog.engine.run_until_idle(timeout)


def write_yaml(path: Path, *documents: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(list(documents), sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``catalog serve`` in a child process, as users run it."""

    def __init__(self, config_path: Path, port: int, log_path: Path, extra_args: list[str]):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.catalog_url = f"{self.base}/api/catalog"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        catalog_bin = shutil.which("catalog", path=str(Path(sys.executable).parent))
        command = [catalog_bin or "catalog", "serve", "--config", str(config_path), *extra_args]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                response = requests.get(f"{self.base}/.backstage/health/v1/readiness", timeout=2)
                if response.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture
def start_server(database_url: str, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real server processes on this test's database; stopped at the end."""
    servers: list[ServerProcess] = []

    def start(
        locations: list[Any] | None = None,
        *,
        extra_args: list[str] | None = None,
        wait: bool = True,
        **extra: Any,
    ) -> ServerProcess:
        port = free_port()
        config = catalog_config(database_url, locations, extra)
        config["backend"]["listen"] = {"host": "127.0.0.1", "port": port}
        config_path = tmp_path / f"app-config-{port}.yaml"
        config_path.write_text(yaml.safe_dump(config))
        server = ServerProcess(config_path, port, tmp_path / f"server-{port}.log", extra_args or [])
        servers.append(server)
        if wait:
            server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()
