"""The ``catalog`` command as the README documents it, run as a real process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, component, free_port, write_yaml

CATALOG = shutil.which("catalog", path=str(Path(sys.executable).parent)) or "catalog"


def clean_env() -> dict[str, str]:
    """The caller's environment without catalog settings that would change the defaults."""
    return {k: v for k, v in os.environ.items() if k != "CATALOG_DATABASE_URL"}


def run(
    *args: str, cwd: Path | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CATALOG, *args],
        cwd=cwd or REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Served:
    def __init__(self, args: list[str], cwd: Path, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.log = cwd / f"serve-{port}.log"
        self._log = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [CATALOG, "serve", "--port", str(port), *args],
            cwd=cwd,
            env=clean_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"catalog serve exited early:\n{self.log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.base}/.backstage/health/v1/readiness", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(self.log.read_text()[-3000:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture
def serve() -> Iterator:
    started: list[Served] = []

    def start(*args: str, cwd: Path) -> Served:
        served = Served(list(args), cwd, free_port())
        started.append(served)
        served.wait_ready()
        return served

    yield start
    for served in started:
        served.stop()


def test_serve_with_no_config_serves_the_sample_catalog_from_sqlite(serve, tmp_path):
    # The documented default: catalog/all.yaml from the working directory, stored in
    # var/catalog.sqlite, served at http://127.0.0.1:<port>/api/catalog.
    shutil.copytree(REPO / "catalog", tmp_path / "catalog")
    served = serve(cwd=tmp_path)

    entities = requests.get(f"{served.base}/api/catalog/entities", timeout=30).json()
    assert len(entities) >= 80
    kinds = {entity["kind"] for entity in entities}
    assert {
        "Component",
        "API",
        "Resource",
        "System",
        "Domain",
        "Group",
        "User",
        "Location",
        "Template",
    } <= kinds
    origins = {
        e["metadata"]["annotations"]["backstage.io/managed-by-origin-location"] for e in entities
    }
    assert origins == {f"file:{tmp_path / 'catalog' / 'all.yaml'}"}
    assert (tmp_path / "var" / "catalog.sqlite").is_file()
    assert all("status" not in entity for entity in entities)


def test_serve_with_location_and_database_url(serve, tmp_path, database_url):
    path = write_yaml(tmp_path / "mine" / "catalog-info.yaml", component("mine"))
    served = serve("--location", str(path), "--database-url", database_url, cwd=tmp_path)

    entities = requests.get(
        f"{served.base}/api/catalog/entities", params={"filter": "kind=component"}, timeout=30
    ).json()
    assert [entity["metadata"]["name"] for entity in entities] == ["mine"]
    # Not the default SQLite file: the given database.
    assert not (tmp_path / "var").exists()


def test_serve_with_a_relative_location(serve, tmp_path, database_url):
    write_yaml(tmp_path / "here.yaml", component("here"))
    served = serve("--location", "here.yaml", "--database-url", database_url, cwd=tmp_path)
    entity = requests.get(
        f"{served.base}/api/catalog/entities/by-name/component/default/here", timeout=30
    )
    assert entity.status_code == 200
    assert entity.json()["metadata"]["annotations"]["backstage.io/managed-by-location"] == (
        f"file:{tmp_path / 'here.yaml'}"
    )


def test_serve_with_config_files(serve, tmp_path, database_url):
    path = write_yaml(tmp_path / "catalog-info.yaml", component("configured"))
    (tmp_path / "base.yaml").write_text(
        f"catalog:\n  locations:\n    - type: file\n      target: {tmp_path / 'nothing.yaml'}\n"
    )
    (tmp_path / "local.yaml").write_text(
        "backend:\n  database:\n    url: ${TEST_DB}\n"
        f"catalog:\n  locations:\n    - type: file\n      target: {path}\n"
    )
    os.environ["TEST_DB"] = database_url
    try:
        served = serve("--config", "base.yaml", "--config", "local.yaml", cwd=tmp_path)
    finally:
        del os.environ["TEST_DB"]
    names = [
        e["metadata"]["name"]
        for e in requests.get(
            f"{served.base}/api/catalog/entities?filter=kind=component", timeout=30
        ).json()
    ]
    assert names == ["configured"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("catalog: [unclosed\n", "is not valid YAML"),
        ("- a list\n", "must contain a mapping at its root"),
        (
            "catalog:\n  orphanStrategy: sometimes\n",
            "catalog.orphanStrategy must be 'keep' or 'delete'",
        ),
        ("backend:\n  database: sqlite\n", "backend.database must be a mapping"),
        ("catalog:\n  rules: Component\n", "catalog.rules must be a list"),
        ("catalog:\n  processingInterval: 5m\n", "catalog.processingInterval must be a duration"),
    ],
)
def test_a_broken_config_exits_1_with_a_readable_message(tmp_path, content, message):
    (tmp_path / "app-config.yaml").write_text(content)
    result = run("serve", "--config", "app-config.yaml", "--port", str(free_port()), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("catalog: configuration error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_invalid_port_exits_1(tmp_path):
    (tmp_path / "app-config.yaml").write_text("backend:\n  listen:\n    port: http\n")
    result = run("serve", "--config", "app-config.yaml", cwd=tmp_path, timeout=30)
    assert result.returncode == 1
    assert (
        "catalog: configuration error: backend.listen.port must be a port number" in result.stderr
    )


def test_a_missing_config_file_exits_1(tmp_path):
    result = run("serve", "--config", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "catalog: configuration error: Config file nope.yaml could not be read" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--bogus"],
        ["serve", "--port", "abc"],
        ["frobnicate"],
        [],
        ["openapi", "--check", "--write"],
    ],
)
def test_usage_errors_exit_2(args):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: catalog")


def test_openapi_check_passes_on_the_committed_spec():
    result = run("openapi", "--check")
    assert result.returncode == 0, result.stderr


def test_openapi_prints_the_spec():
    result = run("openapi")
    assert result.returncode == 0
    assert result.stdout.startswith("openapi: ") or "\nopenapi: " in result.stdout
    assert "/api/catalog/entities/by-query:" in result.stdout
