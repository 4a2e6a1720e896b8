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
from typing import TYPE_CHECKING, Any

from app.auth import AuthConfigError, AuthSettings, parse_auth_config
from app.engine.parsing import load_yaml
from app.limits import Limits

if TYPE_CHECKING:
    from app.reading.git import GitSettings
    from app.reading.git_config import GithubProviderConfig, GitProviderConfig

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


@dataclass(frozen=True)
class CorsConfig:
    """``backend.cors``: the options of the express ``cors`` middleware Backstage uses.

    ``origin`` holds minimatch-style globs (``http://localhost:*``); None answers any
    origin with ``*``, as Backstage does when ``backend.cors`` has no ``origin``.
    """

    origin: list[str] | None = None
    methods: list[str] | None = None
    allowed_headers: list[str] | None = None
    exposed_headers: list[str] | None = None
    credentials: bool = False
    max_age: int | None = None
    preflight_continue: bool = False
    options_success_status: int = 204


@dataclass
class Overrides:
    port: int | None = None
    host: str | None = None
    database_url: str | None = None
    locations: list[str] | None = None
    log_format: str | None = None
    access_log: bool | None = None
    #: ``--no-processing``: False makes this process an API-only replica.
    processing: bool | None = None


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
        for section in ("backend", "catalog"):
            if section in data and not isinstance(data[section], dict):
                raise ConfigError(f"{section} must be a mapping, got {data[section]!r}")
        overrides = overrides or Overrides()
        database_url = overrides.database_url or env.get("CATALOG_DATABASE_URL")
        if database_url:
            backend = data.setdefault("backend", {})
            previous = backend.get("database")
            # The URL replaces the connection settings, not how long SQLite waits for locks.
            keep = previous.get("busyTimeout") if isinstance(previous, dict) else None
            backend["database"] = {"url": database_url}
            if keep is not None:
                backend["database"]["busyTimeout"] = keep
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
        logging_section = data["backend"].get("logging")
        if overrides.log_format is not None or overrides.access_log:
            logging_section = dict(logging_section) if isinstance(logging_section, dict) else {}
            if overrides.log_format is not None:
                logging_section["format"] = overrides.log_format
            if overrides.access_log:
                logging_section["accessLog"] = True
            data["backend"]["logging"] = logging_section
        if overrides.processing is not None:
            catalog_section = data.setdefault("catalog", {})
            processing = catalog_section.get("processing")
            processing = dict(processing) if isinstance(processing, dict) else {}
            processing["enabled"] = overrides.processing
            catalog_section["processing"] = processing
        return cls(data).validate()

    def validate(self) -> AppConfig:
        """Read every typed setting once, so a bad value fails at start-up as a ConfigError
        (and not later, inside a server worker, as a traceback)."""
        _ = (self.listen_host, self.listen_port, self.database_url, self.locations)
        _ = (self.rules, self.processing_interval, self.orphan_strategy, self.readonly)
        _ = (self.processing_enabled, self.claim_lease, self.database_busy_timeout)
        _ = self.stitch_process
        _ = self.cors
        _ = (self.allowed_location_types, self.reading_allow, self.reading_timeout)
        _ = self.reading_max_bytes
        _ = (self.limits, self.auth, self.log_format, self.access_log)
        _ = (self.git_reading, self.git_providers, self.github_providers, self.events_secret)
        for section in ("catalog.processors", "catalog.providers"):
            if self.get(section) is not None and not isinstance(self.get(section), dict):
                raise ConfigError(f"{section} must be a mapping")
        return self

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
        return _port(self.get("backend.listen.port") or DEFAULT_PORT)

    @property
    def database_url(self) -> str:
        database = self.get("backend.database") or {}
        if not isinstance(database, dict):
            raise ConfigError(f"backend.database must be a mapping, got {database!r}")
        return database_url_from_config(database)

    @property
    def database_busy_timeout(self) -> float:
        """``backend.database.busyTimeout`` (SQLite): how long to wait for another
        process's lock on the file before a statement fails and is retried."""
        value = self.get("backend.database.busyTimeout")
        if value is None:
            return 30.0
        return duration_seconds(value, "backend.database.busyTimeout")

    @property
    def locations(self) -> list[dict[str, Any]]:
        locations = self.get("catalog.locations") or []
        if not isinstance(locations, list):
            raise ConfigError("catalog.locations must be a list")
        result = []
        for index, location in enumerate(locations):
            if not isinstance(location, dict) or not location.get("target"):
                raise ConfigError(f"catalog.locations[{index}] needs a target")
            if not isinstance(location["target"], str):
                raise ConfigError(f"catalog.locations[{index}].target must be a string")
            location = dict(location)
            location.setdefault("type", "url")
            if location["type"] == "file":
                location["target"] = os.path.abspath(location["target"])
            result.append(location)
        return result

    @property
    def rules(self) -> list[dict[str, Any]] | None:
        rules = self.get("catalog.rules")
        if rules is None:
            return None
        if not isinstance(rules, list) or not all(
            isinstance(rule, dict)
            and isinstance(rule.get("allow"), list)
            and all(isinstance(kind, str) for kind in rule["allow"])
            for rule in rules
        ):
            raise ConfigError("catalog.rules must be a list of {allow: [Kind, ...]} rules")
        return rules

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
    def processing_enabled(self) -> bool:
        """``catalog.processing.enabled``: whether this process runs the processing loop
        (and the entity providers). False: an API-only replica of a shared database."""
        section = self.get("catalog.processing")
        if section is None:
            return True
        if not isinstance(section, dict):
            raise ConfigError("catalog.processing must be a mapping")
        enabled = section.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"catalog.processing.enabled must be true or false, got {enabled!r}")
        return enabled

    @property
    def stitch_process(self) -> bool:
        """``catalog.processing.stitchProcess``: whether a processing server stitches in
        a child process of its own (on the second core) rather than in a thread."""
        value = self.get("catalog.processing.stitchProcess")
        if value is None:
            return True
        if not isinstance(value, bool):
            raise ConfigError(
                f"catalog.processing.stitchProcess must be true or false, got {value!r}"
            )
        return value

    @property
    def claim_lease(self) -> float:
        """``catalog.processing.claimLease``: how long a claimed batch stays reserved for the
        process that claimed it; if that process dies, others take the batch after this."""
        value = self.get("catalog.processing.claimLease")
        if value is None:
            return 60.0
        return duration_seconds(value, "catalog.processing.claimLease")

    @property
    def orphan_strategy(self) -> str:
        strategy = self.get("catalog.orphanStrategy") or "keep"
        if strategy not in ("keep", "delete"):
            raise ConfigError("catalog.orphanStrategy must be 'keep' or 'delete'")
        return str(strategy)

    @property
    def readonly(self) -> bool:
        return bool(self.get("catalog.readonly", False))

    @property
    def allowed_file_roots(self) -> list[str]:
        """``catalog.allowedFileRoots``: the folders API-registered ``file`` locations may read.

        Empty (the default) means ``file`` locations cannot be registered through the API
        at all; ``catalog.locations`` entries are trusted and need no root.
        """
        roots = self.get("catalog.allowedFileRoots") or []
        if not isinstance(roots, list) or not all(isinstance(r, str) and r for r in roots):
            raise ConfigError("catalog.allowedFileRoots must be a list of folder paths")
        return [os.path.realpath(root) for root in roots]

    @property
    def allowed_location_types(self) -> list[str]:
        """Types ``POST /locations`` accepts: ``url``, plus ``file`` once roots are set.

        ``catalog.allowedLocationTypes`` overrides this (Backstage sets the same list in
        code, with ``["url"]`` as its default).
        """
        explicit = self.get("catalog.allowedLocationTypes")
        if explicit is not None:
            if not isinstance(explicit, list) or not all(isinstance(t, str) for t in explicit):
                raise ConfigError("catalog.allowedLocationTypes must be a list of strings")
            return list(explicit)
        return ["url", "file"] if self.allowed_file_roots else ["url"]

    @property
    def reading_allow(self) -> list[dict[str, Any]]:
        """``backend.reading.allow``: ``[{host, paths?}]``, the hosts ``url`` reads may reach."""
        rules = self.get("backend.reading.allow") or []
        if not isinstance(rules, list):
            raise ConfigError("backend.reading.allow must be a list of {host, paths?} entries")
        for index, rule in enumerate(rules):
            if not isinstance(rule, dict) or not isinstance(rule.get("host"), str):
                raise ConfigError(f"backend.reading.allow[{index}] needs a host")
            paths = rule.get("paths")
            if paths is not None and (
                not isinstance(paths, list) or not all(isinstance(p, str) for p in paths)
            ):
                raise ConfigError(f"backend.reading.allow[{index}].paths must be a list of paths")
        return [dict(rule) for rule in rules]

    @property
    def reading_timeout(self) -> float:
        """``backend.reading.timeout``: seconds a ``url`` read may take (default 30)."""
        value = self.get("backend.reading.timeout")
        return 30.0 if value is None else duration_seconds(value, "backend.reading.timeout")

    @property
    def reading_max_bytes(self) -> int:
        """``backend.reading.maxBytes``: the largest file a ``url`` read accepts (10 MiB)."""
        value = self.get("backend.reading.maxBytes", 10 * 1024 * 1024)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError("backend.reading.maxBytes must be a positive number of bytes")
        return value

    @property
    def limits(self) -> Limits:
        """``catalog.limits``: bounds on request and catalog-file sizes (``app.limits``)."""
        try:
            return Limits.from_config(self.get("catalog.limits"))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def auth(self) -> AuthSettings:
        """``backend.auth``: static bearer tokens as Backstage's ``externalAccess``."""
        try:
            return parse_auth_config(self.get("backend.auth"))
        except AuthConfigError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def log_format(self) -> str:
        """``backend.logging.format``: ``text`` (default) or ``json``, one object a line."""
        value = self.get("backend.logging.format") or "text"
        if value not in ("text", "json"):
            raise ConfigError("backend.logging.format must be 'text' or 'json'")
        return str(value)

    @property
    def git_reading(self) -> GitSettings:
        """``backend.reading.git`` and ``integrations``: the git reader (app/reading/git.py)."""
        from app.reading.git_config import git_settings

        return git_settings(self)

    @property
    def git_providers(self) -> list[GitProviderConfig]:
        """``catalog.providers.git.<id>``: repositories to discover catalog files in."""
        from app.reading.git_config import git_providers

        return git_providers(self)

    @property
    def github_providers(self) -> list[GithubProviderConfig]:
        """``catalog.providers.github.<id>``: GitHub organisations to discover."""
        from app.reading.git_config import github_providers

        return github_providers(self)

    @property
    def events_secret(self) -> str | None:
        """``catalog.events.secret``: the HMAC-SHA256 secret of ``/events/*`` (push events)."""
        from app.reading.git_config import events_secret

        return events_secret(self)

    @property
    def access_log(self) -> bool:
        """``backend.logging.accessLog``: one log record per request (``--access-log``)."""
        value = self.get("backend.logging.accessLog", False)
        if not isinstance(value, bool):
            raise ConfigError("backend.logging.accessLog must be true or false")
        return value

    @property
    def cors(self) -> CorsConfig | None:
        """``backend.cors`` as Backstage reads it; None when absent (no CORS headers at all)."""
        value = self.get("backend.cors")
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ConfigError("backend.cors must be a mapping")

        def strings(key: str) -> list[str] | None:
            # Backstage accepts a string or a list of strings for every list setting.
            item = value.get(key)
            if item is None or item == "":
                return None
            items = [item] if isinstance(item, str) else item
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise ConfigError(f"backend.cors.{key} must be a string or a list of strings")
            return list(items)

        def flag(key: str) -> bool:
            item = value.get(key, False)
            if not isinstance(item, bool):
                raise ConfigError(f"backend.cors.{key} must be true or false")
            return item

        def number(key: str) -> int | None:
            item = value.get(key)
            if item is not None and (isinstance(item, bool) or not isinstance(item, int)):
                raise ConfigError(f"backend.cors.{key} must be a whole number")
            return item

        return CorsConfig(
            origin=strings("origin"),
            methods=strings("methods"),
            allowed_headers=strings("allowedHeaders"),
            exposed_headers=strings("exposedHeaders"),
            credentials=flag("credentials"),
            max_age=number("maxAge"),
            preflight_continue=flag("preflightContinue"),
            options_success_status=number("optionsSuccessStatus") or 204,
        )


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
        return {"host": host or DEFAULT_HOST, "port": _port(port)}
    if isinstance(listen, int):
        return {"host": DEFAULT_HOST, "port": _port(listen)}
    return {"host": DEFAULT_HOST, "port": DEFAULT_PORT}


def _port(value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if isinstance(value, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"backend.listen.port must be a port number, got {value!r}")
    return port


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
