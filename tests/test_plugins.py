"""Third-party plugins: a separately installed package, found through entry points.

The package is built from files in a temporary folder and installed with
``pip install --target`` into a folder of its own (never into the project's
environment); the server process sees it through ``PYTHONPATH``. Its processor and
its provider only run when the configuration has their sections.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import component, write_yaml

PLUGIN_MODULE = '''
"""A third-party catalog plugin: one processor, one entity provider."""

from entity_providers.base import DeferredEntity, EntityProvider, FullMutation
from processors.base import CatalogProcessor


class StampProcessor(CatalogProcessor):
    name = "StampProcessor"

    def __init__(self, config):
        self.value = config.get("value", "stamped")

    def post_process_entity(self, entity, location, emit, cache):
        if entity.get("kind") != "Component":
            return entity
        metadata = entity["metadata"]
        annotations = metadata.setdefault("annotations", {})
        annotations["example.com/stamp"] = self.value
        ref = f"component:{metadata.get('namespace', 'default')}/{metadata['name']}".lower()
        emit.relation(ref, "dependsOn", "resource:default/plugin-db")
        emit.relation("resource:default/plugin-db", "dependencyOf", ref)
        return entity


def processor_factory(context):
    return StampProcessor(context.config)


class StaticProvider(EntityProvider):
    def __init__(self, config):
        self.name = config.get("name", "static")

    def get_provider_name(self):
        return "StaticProvider"

    def connect(self, connection):
        key = "static:plugin"
        entity = {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Resource",
            "metadata": {
                "name": self.name,
                "annotations": {
                    "backstage.io/managed-by-location": key,
                    "backstage.io/managed-by-origin-location": key,
                },
            },
            "spec": {"type": "database", "owner": "team-a"},
        }
        connection.apply_mutation(FullMutation([DeferredEntity(entity, location_key=key)]))


def provider_factory(context):
    return StaticProvider(context.config)
'''

PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "catalog-example-plugin"
version = "0.1.0"

[project.entry-points."catalog.processors"]
stampProcessor = "catalog_example_plugin:processor_factory"

[project.entry-points."catalog.entity_providers"]
staticProvider = "catalog_example_plugin:provider_factory"

[tool.setuptools]
py-modules = ["catalog_example_plugin"]
"""


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin package, installed into a folder of its own."""
    root = tmp_path_factory.mktemp("plugin")
    package = root / "package"
    package.mkdir()
    (package / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (package / "catalog_example_plugin.py").write_text(PLUGIN_MODULE)
    site = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(package),
        ],
        check=True,
        cwd=root,
    )
    assert any(site.glob("catalog_example_plugin-0.1.0.dist-info/entry_points.txt"))
    return site


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "catalog" / "catalog-info.yaml", component("web"))


def get(server: Any, path: str) -> requests.Response:
    return requests.get(server.catalog_url + path, timeout=30)


PLUGIN_CONFIG = {
    "processors": {"stampProcessor": {"value": "hello"}},
    "providers": {"staticProvider": {"name": "plugin-db"}},
}


def test_a_configured_plugin_runs(start_server, plugin_site, catalog_file):
    server = start_server(
        [catalog_file], env={"PYTHONPATH": str(plugin_site)}, catalog=PLUGIN_CONFIG
    )

    web = get(server, "/entities/by-name/component/default/web").json()
    assert web["metadata"]["annotations"]["example.com/stamp"] == "hello"
    assert {"type": "dependsOn", "targetRef": "resource:default/plugin-db"} in web["relations"]

    # The provider's entity, processed like any other, with the reverse relation.
    db = get(server, "/entities/by-name/resource/default/plugin-db")
    assert db.status_code == 200
    db_entity = db.json()
    assert {"type": "dependencyOf", "targetRef": "component:default/web"} in db_entity["relations"]
    assert (
        db_entity["metadata"]["annotations"]["backstage.io/managed-by-location"] == "static:plugin"
    )
    assert "backstage.io/orphan" not in db_entity["metadata"]["annotations"]
    # Emitted by a provider directly: no parents.
    ancestry = get(server, "/entities/by-name/resource/default/plugin-db/ancestry").json()
    assert [item["parentEntityRefs"] for item in ancestry["items"]] == [[]]
    # Built-ins keep working beside it.
    assert get(server, "/entities?filter=kind=location").json() != []


def test_an_installed_plugin_without_config_is_not_active(start_server, plugin_site, catalog_file):
    server = start_server([catalog_file], env={"PYTHONPATH": str(plugin_site)})

    web = get(server, "/entities/by-name/component/default/web").json()
    assert "example.com/stamp" not in web["metadata"]["annotations"]
    assert web["relations"] == [{"type": "ownedBy", "targetRef": "group:default/team-a"}]
    assert get(server, "/entities/by-name/resource/default/plugin-db").status_code == 404


def test_a_plugin_can_be_switched_off(start_server, plugin_site, catalog_file):
    server = start_server(
        [catalog_file],
        env={"PYTHONPATH": str(plugin_site)},
        catalog={
            "processors": {"stampProcessor": {"enabled": False, "value": "hello"}},
            "providers": {"staticProvider": False},
        },
    )

    web = get(server, "/entities/by-name/component/default/web").json()
    assert "example.com/stamp" not in web["metadata"]["annotations"]
    assert get(server, "/entities/by-name/resource/default/plugin-db").status_code == 404


def test_the_plugin_is_not_installed_in_the_project_environment():
    from importlib.metadata import entry_points

    assert "stampProcessor" not in {ep.name for ep in entry_points(group="catalog.processors")}
