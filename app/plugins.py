"""Finding processors and entity providers through Python entry points.

Built-ins register in ``pyproject.toml`` exactly as third-party packages do, in the
groups ``catalog.processors`` and ``catalog.entity_providers``. Each entry point
names a factory ``factory(context)`` that returns a plugin, a list of plugins, or
``None`` (nothing to do with this configuration).

Which ones run is configuration, in Backstage's vocabulary:

* built-ins (entry points of this distribution) are on unless
  ``catalog.processors.<name>: false`` / ``catalog.providers.<name>: false``;
* third-party plugins are on when their section exists, e.g.
  ``catalog.processors.myProcessor: {}`` or ``catalog.providers.github: {...}``,
  and off with ``enabled: false`` in that section.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from app.config import AppConfig, ConfigError
from app.reading import Readers

log = logging.getLogger(__name__)

PROCESSORS_GROUP = "catalog.processors"
PROVIDERS_GROUP = "catalog.entity_providers"
BUILTIN_DISTRIBUTION = "pycatalog"


@dataclass
class PluginContext:
    """What a plugin factory receives."""

    name: str
    config: dict[str, Any]
    app_config: AppConfig
    readers: Readers
    services: dict[str, Any]


def _is_builtin(entry_point: EntryPoint) -> bool:
    dist = getattr(entry_point, "dist", None)
    return dist is not None and dist.metadata["Name"] == BUILTIN_DISTRIBUTION


def load_plugins(
    group: str,
    config_section: str,
    app_config: AppConfig,
    readers: Readers,
    services: dict[str, Any] | None = None,
) -> list[Any]:
    section = app_config.get(config_section) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{config_section} must be a mapping")
    plugins: list[Any] = []
    seen: set[str] = set()
    for entry_point in sorted(entry_points(group=group), key=lambda ep: ep.name):
        if entry_point.name in seen:
            continue
        seen.add(entry_point.name)
        plugin_config = section.get(entry_point.name)
        if plugin_config is False:
            continue
        if isinstance(plugin_config, dict) and plugin_config.get("enabled") is False:
            continue
        if plugin_config is None and not _is_builtin(entry_point):
            log.debug("Plugin %s (%s) is installed but not configured", entry_point.name, group)
            continue
        factory = entry_point.load()
        context = PluginContext(
            name=entry_point.name,
            config=plugin_config if isinstance(plugin_config, dict) else {},
            app_config=app_config,
            readers=readers,
            services=services or {},
        )
        produced = factory(context)
        if produced is None:
            continue
        items = produced if isinstance(produced, list) else [produced]
        plugins.extend(items)
        log.info("Loaded %s plugin %s (%d)", group, entry_point.name, len(items))
    return plugins
