"""Shared fixtures: real databases, real catalogs, real server processes.

The whole suite runs once per database. ``CATALOG_TEST_DATABASE`` selects it:
``sqlite`` (default; a file per test) or a PostgreSQL URL such as
``postgresql://postgres@127.0.0.1:5432/test``, in which case every test gets a
database of its own, created from that server and dropped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from sqlalchemy import select, text

from app.catalog import Catalog
from app.config import AppConfig, deep_merge
from app.storage.database import created_database, normalise_url

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
ALL_KINDS = [
    "Component",
    "API",
    "Resource",
    "System",
    "Domain",
    "Group",
    "User",
    "Location",
    "Template",
]


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
    with fresh_database(tmp_path) as url:
        yield url


@contextlib.contextmanager
def fresh_database(directory: Path) -> Iterator[str]:
    """A new empty database (an SQLite file in ``directory``, or a PostgreSQL database)."""
    admin = _postgres_admin_url()
    if admin is None:
        yield f"sqlite:///{directory / 'catalog.sqlite'}"
        return
    with created_database(admin, "catalog_test") as url:
        yield url


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


def wait_for(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


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

    def __init__(
        self,
        config_path: Path,
        port: int,
        log_path: Path,
        extra_args: list[str],
        env: dict[str, str] | None = None,
        new_session: bool = False,
    ):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.catalog_url = f"{self.base}/api/catalog"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        catalog_bin = shutil.which("catalog", path=str(Path(sys.executable).parent))
        command = [catalog_bin or "catalog", "serve", "--config", str(config_path), *extra_args]
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env} if env else None,
            # A session (and process group) of its own, so kill() reaches every worker.
            start_new_session=new_session,
        )
        self.new_session = new_session

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

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: its workers too if it has a session of its
        own (gunicorn's workers outlive a killed master otherwise)."""
        if self.new_session:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        else:
            self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def launch_server(
    database_url: str,
    directory: Path,
    locations: list[Any] | None = None,
    *,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    wait: bool = True,
    new_session: bool = False,
    **extra: Any,
) -> ServerProcess:
    """``catalog serve`` on ``database_url`` with a config written to ``directory``.

    ``env`` adds environment variables to the server process (e.g. ``PYTHONPATH``);
    ``new_session`` lets :meth:`ServerProcess.kill` kill its workers too.
    """
    port = free_port()
    config = catalog_config(database_url, locations, extra)
    config["backend"]["listen"] = {"host": "127.0.0.1", "port": port}
    config_path = directory / f"app-config-{port}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    server = ServerProcess(
        config_path, port, directory / f"server-{port}.log", extra_args or [], env, new_session
    )
    if wait:
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
    return server


@pytest.fixture
def start_server(database_url: str, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real server processes on this test's database; stopped at the end."""
    servers: list[ServerProcess] = []

    def start(
        locations: list[Any] | None = None,
        *,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        wait: bool = True,
        **extra: Any,
    ) -> ServerProcess:
        server = launch_server(
            database_url,
            tmp_path,
            locations,
            extra_args=extra_args,
            env=env,
            wait=False,
            **extra,
        )
        servers.append(server)
        if wait:
            server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """A list for the servers a test launches itself (``launch_server``); every one
    still running at the end is stopped."""
    launched: list[ServerProcess] = []
    yield launched
    for server in launched:
        server.stop()


@contextlib.contextmanager
def shared_server(
    tmp_path_factory: pytest.TempPathFactory, locations: list[Any], **extra: Any
) -> Iterator[ServerProcess]:
    """One server on its own fresh database, for a module-scoped fixture to share."""
    directory = tmp_path_factory.mktemp("server")
    with fresh_database(directory) as url:
        server = launch_server(url, directory, locations, **extra)
        try:
            yield server
        finally:
            server.stop()


# -- reading what the engine wrote ------------------------------------------------------


def final_entities_by_ref(catalog: Catalog) -> dict[str, dict[str, Any]]:
    """Every served (stitched) entity, by canonical ref."""
    from app.storage.tables import final_entities

    with catalog.db.engine.connect() as conn:
        rows = conn.execute(select(final_entities.c.entity_ref, final_entities.c.final_entity))
        return {row.entity_ref: json.loads(row.final_entity) for row in rows}


def processing_errors(catalog: Catalog) -> dict[str, list[dict[str, Any]]]:
    """The stored processing errors of every entity that has any, by canonical ref."""
    from app.storage.tables import refresh_state

    with catalog.db.engine.connect() as conn:
        rows = conn.execute(select(refresh_state.c.entity_ref, refresh_state.c.errors))
        return {row.entity_ref: json.loads(row.errors) for row in rows if row.errors}


def status_messages(entity: dict[str, Any]) -> list[str]:
    """The ``status.items[].message`` of an entity."""
    return [item["message"] for item in (entity.get("status") or {}).get("items") or []]


def force_due(catalog: Catalog) -> None:
    """Make every entity due for processing now."""
    with catalog.db.engine.begin() as conn:
        conn.execute(text("UPDATE refresh_state SET next_update_at = 0"))


def reprocess(catalog: Catalog) -> None:
    """Process everything once more (twice: children of re-read files come due too)."""
    force_due(catalog)
    settle(catalog)
    force_due(catalog)
    settle(catalog)


# -- building catalog files -----------------------------------------------------------


def component(name: str, namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    """A valid Component (service, production, owned by team-a) with ``spec`` overrides."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    full_spec = {"type": "service", "lifecycle": "production", "owner": "team-a", **spec}
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": metadata,
        "spec": {k: v for k, v in full_spec.items() if v is not None},
    }


def group(name: str, **spec: Any) -> dict[str, Any]:
    """A valid Group (a team with no children) with ``spec`` overrides."""
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Group",
        "metadata": {"name": name},
        "spec": {"type": "team", "children": [], **spec},
    }


def location(name: str, *targets: str, **spec: Any) -> dict[str, Any]:
    """A Location entity with relative or absolute ``targets``."""
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Location",
        "metadata": {"name": name},
        "spec": {"targets": list(targets), **spec},
    }


def generated_location_ref(path: Path) -> str:
    """The ref of the Location entity generated for a configured ``file`` location."""
    from app.model.locations import generated_location_name

    return f"location:default/{generated_location_name('file', str(path))}"
