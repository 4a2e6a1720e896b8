"""Configuration in Backstage's ``app-config.yaml`` shape.

Files given with ``--config`` are merged in order (later files win; objects merge
key by key, arrays and scalars replace), on top of the built-in defaults. Strings
may use ``${VAR}`` to read the environment, and ``{$env: VAR}`` / ``{$file: path}``
work as in Backstage. Flags and ``CATALOG_DATABASE_URL`` override the files.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engine.parsing import load_yaml

DEFAULT_PORT = 7007
DEFAULT_HOST = "127.0.0.1"
DEFAULT_SQLITE_PATH = "var/catalog.sqlite"

ALL_BUILTIN_KINDS = [
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

# What `catalog serve` uses before any file or flag: the sample catalog on SQLite.
DEFAULTS: dict[str, Any] = {
    "backend": {
        "listen": {"host": DEFAULT_HOST, "port": DEFAULT_PORT},
        "database": {"client": "better-sqlite3", "connection": {"filename": DEFAULT_SQLITE_PATH}},
    },
    "catalog": {
        "rules": [{"allow": ALL_BUILTIN_KINDS}],
        "locations": [{"type": "file", "target": "catalog/all.yaml"}],
        "orphanStrategy": "keep",
    },
}

_ENV_PATTERN = re.compile(r"\$(\$?)\{([^}]*)\}")


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message says which and why."""


def deep_merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base.get(key), value) if key in base else value
        return merged
    return copy.deepcopy(override)


def _substitute(value: Any, base_dir: Path, env: dict[str, str]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(1):  # "$${X}" is an escaped literal "${X}"
                return "${" + match.group(2) + "}"
            return env.get(match.group(2).strip(), "")

        return _ENV_PATTERN.sub(replace, value)
    if isinstance(value, list):
        return [_substitute(item, base_dir, env) for item in value]
    if isinstance(value, dict):
        if len(value) == 1 and "$env" in value:
            return env.get(str(value["$env"]))
        if len(value) == 1 and "$file" in value:
            path = base_dir / str(value["$file"])
            try:
                return path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"Config $file {path} could not be read: {exc}") from exc
        return {k: _substitute(v, base_dir, env) for k, v in value.items()}
    return value


def load_config_file(path: str | Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Config file {path} could not be read: {exc.strerror}") from exc
    try:
        data = load_yaml(text)
    except Exception as exc:
        raise ConfigError(f"Config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must contain a mapping at its root")
    return _substitute(data, path.parent.resolve(), dict(os.environ) if env is None else env)


@dataclass
class Overrides:
    port: int | None = None
    host: str | None = None
    database_url: str | None = None
    locations: list[str] | None = None


class AppConfig:
    """Read access to the merged configuration by dotted path."""

    def __init__(self, data: dict[str, Any], base_dir: Path | None = None):
        self.data = data
        self.base_dir = base_dir or Path.cwd()

    @classmethod
    def load(
        cls,
        files: list[str] | None = None,
        overrides: Overrides | None = None,
        env: dict[str, str] | None = None,
        defaults: bool = True,
    ) -> AppConfig:
        env = dict(os.environ) if env is None else env
        data: dict[str, Any] = copy.deepcopy(DEFAULTS) if defaults else {}
        for file in files or []:
            data = deep_merge(data, load_config_file(file, env))
        overrides = overrides or Overrides()
        database_url = overrides.database_url or env.get("CATALOG_DATABASE_URL")
        if database_url:
            data.setdefault("backend", {})["database"] = {"url": database_url}
        listen = data.setdefault("backend", {}).get("listen")
        listen = _normalise_listen(listen)
        if overrides.port is not None:
            listen["port"] = overrides.port
        if overrides.host is not None:
            listen["host"] = overrides.host
        data["backend"]["listen"] = listen
        if overrides.locations:
            data.setdefault("catalog", {})["locations"] = [
                location_from_argument(arg) for arg in overrides.locations
            ]
        return cls(data)

    def get(self, path: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    # Typed accessors for the settings the catalog itself reads.

    @property
    def listen_host(self) -> str:
        return str(self.get("backend.listen.host") or DEFAULT_HOST)

    @property
    def listen_port(self) -> int:
        return int(self.get("backend.listen.port") or DEFAULT_PORT)

    @property
    def database_url(self) -> str:
        return database_url_from_config(self.get("backend.database") or {})

    @property
    def locations(self) -> list[dict[str, Any]]:
        locations = self.get("catalog.locations") or []
        if not isinstance(locations, list):
            raise ConfigError("catalog.locations must be a list")
        result = []
        for index, location in enumerate(locations):
            if not isinstance(location, dict) or not location.get("target"):
                raise ConfigError(f"catalog.locations[{index}] needs a target")
            location = dict(location)
            location.setdefault("type", "url")
            if location["type"] == "file":
                location["target"] = os.path.abspath(location["target"])
            result.append(location)
        return result

    @property
    def rules(self) -> list[dict[str, Any]] | None:
        return self.get("catalog.rules")

    @property
    def processing_interval(self) -> tuple[float, float] | None:
        """(min, max) seconds between two processings of an entity; None disables it."""
        value = self.get("catalog.processingInterval")
        if value is None:
            return (100.0, 150.0)
        if value is False:
            return None
        seconds = duration_seconds(value, "catalog.processingInterval")
        return (seconds, seconds)

    @property
    def orphan_strategy(self) -> str:
        strategy = self.get("catalog.orphanStrategy") or "keep"
        if strategy not in ("keep", "delete"):
            raise ConfigError("catalog.orphanStrategy must be 'keep' or 'delete'")
        return str(strategy)

    @property
    def readonly(self) -> bool:
        return bool(self.get("catalog.readonly", False))


_DURATION_UNITS = {
    "years": 365 * 86400,
    "months": 30 * 86400,
    "weeks": 7 * 86400,
    "days": 86400,
    "hours": 3600,
    "minutes": 60,
    "seconds": 1,
    "milliseconds": 0.001,
}


def duration_seconds(value: Any, name: str) -> float:
    """A Backstage HumanDuration (``{minutes: 3}``) or a number of seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a duration such as {{seconds: 30}}")
    if isinstance(value, int | float):
        total = float(value)
    elif isinstance(value, dict) and value and set(value) <= set(_DURATION_UNITS):
        try:
            total = sum(float(v) * _DURATION_UNITS[k] for k, v in value.items())
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name} has a non-numeric value: {value}") from exc
    else:
        raise ConfigError(f"{name} must be a duration such as {{seconds: 30}}, got {value!r}")
    if total <= 0:
        raise ConfigError(f"{name} must be positive")
    return total


def _normalise_listen(listen: Any) -> dict[str, Any]:
    """``backend.listen`` may be ``{host, port}``, ``":7007"`` or ``"0.0.0.0:7007"``."""
    if isinstance(listen, dict):
        return dict(listen)
    if isinstance(listen, str):
        host, _, port = listen.rpartition(":")
        return {"host": host or DEFAULT_HOST, "port": int(port)}
    if isinstance(listen, int):
        return {"host": DEFAULT_HOST, "port": listen}
    return {"host": DEFAULT_HOST, "port": DEFAULT_PORT}


def location_from_argument(argument: str) -> dict[str, str]:
    if argument.startswith(("http://", "https://")):
        return {"type": "url", "target": argument}
    if argument.startswith("file:"):
        argument = argument[len("file:") :]
    return {"type": "file", "target": os.path.abspath(argument)}


def database_url_from_config(database: dict[str, Any]) -> str:
    """Translate Backstage's ``backend.database`` into an SQLAlchemy URL."""
    if database.get("url"):
        return str(database["url"])
    client = database.get("client", "better-sqlite3")
    connection = database.get("connection")
    if client in ("better-sqlite3", "sqlite3", "sqlite"):
        if connection == ":memory:":
            raise ConfigError(
                "backend.database.connection ':memory:' is not supported: the API and the "
                "processing loop share the database across threads; use a file"
            )
        if isinstance(connection, str):
            return f"sqlite:///{os.path.abspath(connection)}"
        if isinstance(connection, dict):
            if connection.get("filename"):
                return f"sqlite:///{os.path.abspath(connection['filename'])}"
            if connection.get("directory"):
                path = Path(connection["directory"]) / "backstage_plugin_catalog.sqlite"
                return f"sqlite:///{path.resolve()}"
        return f"sqlite:///{os.path.abspath(DEFAULT_SQLITE_PATH)}"
    if client in ("pg", "postgres", "postgresql"):
        if isinstance(connection, str):
            return connection
        if isinstance(connection, dict):
            if connection.get("connectionString"):
                return str(connection["connectionString"])
            user = connection.get("user", "postgres")
            password = connection.get("password")
            auth = f"{user}:{password}" if password else str(user)
            host = connection.get("host", "127.0.0.1")
            port = connection.get("port", 5432)
            name = connection.get("database", "backstage_plugin_catalog")
            return f"postgresql://{auth}@{host}:{port}/{name}"
        raise ConfigError("backend.database.connection is required for PostgreSQL")
    raise ConfigError(f"Unsupported backend.database.client '{client}' (use better-sqlite3 or pg)")
