"""Helpers the graph, API, client and CLI tests share: databases and servers per module.

The sample catalog takes a few seconds to ingest; the tests that only read it
share one database (and one server) per module instead of one per test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from app.catalog import Catalog
from app.config import AppConfig
from tests.conftest import (
    REPO,
    SHARED,
    ServerProcess,
    catalog_config,
    free_port,
    settle,
)

SAMPLE = REPO / "catalog" / "all.yaml"
EXAMPLES = SHARED / "backstage" / "examples"


def ingest(database_url: str, locations: list[Any], **extra: Any) -> None:
    """Load ``locations`` into the database with an in-process engine, then let go of it."""
    catalog = Catalog.from_config(AppConfig(catalog_config(database_url, locations, extra)))
    try:
        catalog.engine.connect_providers()
        settle(catalog)
    finally:
        catalog.stop()


@contextlib.contextmanager
def serve(
    database_url: str,
    directory: Path,
    locations: list[Any],
    *,
    extra_args: list[str] | None = None,
    **extra: Any,
) -> Iterator[ServerProcess]:
    """``catalog serve`` on the database, ready (catalog processed) when yielded."""
    port = free_port()
    config = catalog_config(database_url, locations, extra)
    config["backend"]["listen"] = {"host": "127.0.0.1", "port": port}
    config_path = directory / f"app-config-{port}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    server = ServerProcess(config_path, port, directory / f"server-{port}.log", extra_args or [])
    try:
        server.wait_ready(120)
        yield server
    finally:
        server.stop()


def examples_location(directory: Path, targets: list[str]) -> Path:
    """One Location over files of Backstage's examples (as the recorder builds it)."""
    path = directory / "catalog.yaml"
    lines = [
        "apiVersion: backstage.io/v1alpha1",
        "kind: Location",
        "metadata:",
        "  name: graph-compat",
        "spec:",
        "  targets:",
        *[f"    - {EXAMPLES / target}" for target in targets],
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
