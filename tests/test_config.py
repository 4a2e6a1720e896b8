"""app-config loading: Backstage's file shape, merging, substitutions, flags and errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import AppConfig, ConfigError, Overrides, database_url_from_config


def write(path: Path, data: Any) -> str:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def load(
    tmp_path: Path, *documents: Any, env: dict[str, str] | None = None, **overrides: Any
) -> AppConfig:
    files = [write(tmp_path / f"app-config-{i}.yaml", doc) for i, doc in enumerate(documents)]
    return AppConfig.load(files, Overrides(**overrides), env=env or {})


# -- defaults and merging --------------------------------------------------------------------


def test_defaults_serve_the_sample_catalog_on_sqlite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = AppConfig.load([], env={})
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 7007)
    assert config.database_url == f"sqlite:///{tmp_path / 'var' / 'catalog.sqlite'}"
    assert config.locations == [{"type": "file", "target": str(tmp_path / "catalog" / "all.yaml")}]
    assert config.processing_interval == (100.0, 150.0)
    assert config.orphan_strategy == "keep"
    assert config.readonly is False


def test_later_files_win_objects_merge_and_arrays_replace(tmp_path):
    config = load(
        tmp_path,
        {
            "backend": {"listen": {"host": "0.0.0.0", "port": 7010}},
            "catalog": {
                "rules": [{"allow": ["Component"]}, {"allow": ["API"]}],
                "locations": [
                    {"type": "file", "target": "/a.yaml"},
                    {"type": "file", "target": "/b.yaml"},
                ],
                "orphanStrategy": "delete",
            },
        },
        {
            "backend": {"listen": {"port": 7011}},
            "catalog": {"locations": [{"type": "file", "target": "/c.yaml"}]},
        },
    )
    # Objects merge key by key: the host stays, the port is replaced.
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 7011)
    # Arrays are replaced whole, not merged or appended.
    assert config.locations == [{"type": "file", "target": "/c.yaml"}]
    # Untouched keys of earlier files survive.
    assert config.rules == [{"allow": ["Component"]}, {"allow": ["API"]}]
    assert config.orphan_strategy == "delete"


def test_an_empty_file_changes_nothing(tmp_path):
    config = load(tmp_path, {"backend": {"listen": {"port": 7012}}}, "")
    assert config.listen_port == 7012


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        (":7020", ("127.0.0.1", 7020)),
        ("0.0.0.0:7021", ("0.0.0.0", 7021)),
        (7022, ("127.0.0.1", 7022)),
    ],
)
def test_listen_shorthands(tmp_path, listen, expected):
    config = load(tmp_path, {"backend": {"listen": listen}})
    assert (config.listen_host, config.listen_port) == expected


# -- substitutions -----------------------------------------------------------------------------


def test_environment_substitution(tmp_path):
    config = load(
        tmp_path,
        {
            "backend": {"listen": {"port": "${PORT}"}, "database": {"url": "${DB_URL}"}},
            "catalog": {
                "locations": [{"type": "file", "target": "/${WHERE}/catalog-info.yaml"}],
                "note": "$${NOT_SUBSTITUTED}",
                "fromEnv": {"$env": "SECRET"},
            },
        },
        env={
            "PORT": "7030",
            "DB_URL": "sqlite:////tmp/x.sqlite",
            "WHERE": "srv",
            "SECRET": "s3cr3t",
        },
    )
    assert config.listen_port == 7030
    assert config.database_url == "sqlite:////tmp/x.sqlite"
    assert config.locations[0]["target"] == "/srv/catalog-info.yaml"
    assert config.get("catalog.note") == "${NOT_SUBSTITUTED}"
    assert config.get("catalog.fromEnv") == "s3cr3t"


def test_file_substitution_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token.txt").write_text("t0k3n")
    config = load(tmp_path, {"catalog": {"token": {"$file": "secrets/token.txt"}}})
    assert config.get("catalog.token") == "t0k3n"
    with pytest.raises(ConfigError, match="Config \\$file .*missing.txt could not be read"):
        load(tmp_path, {"catalog": {"token": {"$file": "missing.txt"}}})


# -- flags and environment overrides --------------------------------------------------------------


def test_flags_override_the_files(tmp_path):
    config = load(
        tmp_path,
        {
            "backend": {
                "listen": {"port": 7040},
                "database": {"client": "pg", "connection": "postgresql://db/x"},
            },
            "catalog": {"locations": [{"type": "file", "target": "/from-file.yaml"}]},
        },
        port=7041,
        host="0.0.0.0",
        database_url="sqlite:////tmp/flag.sqlite",
        locations=[
            "relative/catalog-info.yaml",
            "file:/abs/other.yaml",
            "https://example.com/c.yaml",
        ],
    )
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 7041)
    assert config.database_url == "sqlite:////tmp/flag.sqlite"
    assert config.locations == [
        {"type": "file", "target": os.path.abspath("relative/catalog-info.yaml")},
        {"type": "file", "target": "/abs/other.yaml"},
        {"type": "url", "target": "https://example.com/c.yaml"},
    ]


def test_catalog_database_url_environment_variable(tmp_path):
    document = {"backend": {"database": {"client": "pg", "connection": "postgresql://db/x"}}}
    env = {"CATALOG_DATABASE_URL": "postgresql://env-host/catalog"}
    assert load(tmp_path, document, env=env).database_url == "postgresql://env-host/catalog"
    # The flag beats the environment variable.
    flagged = load(tmp_path, document, env=env, database_url="sqlite:////tmp/flag.sqlite")
    assert flagged.database_url == "sqlite:////tmp/flag.sqlite"


# -- backend.database --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("database", "expected"),
    [
        (
            {"client": "better-sqlite3", "connection": {"filename": "/data/catalog.db"}},
            "sqlite:////data/catalog.db",
        ),
        (
            {"client": "better-sqlite3", "connection": {"directory": "/data"}},
            "sqlite:////data/backstage_plugin_catalog.sqlite",
        ),
        (
            {"client": "better-sqlite3", "connection": "/data/file.sqlite"},
            "sqlite:////data/file.sqlite",
        ),
        (
            {"client": "pg", "connection": "postgresql://u:p@h:5433/db"},
            "postgresql://u:p@h:5433/db",
        ),
        (
            {"client": "pg", "connection": {"connectionString": "postgresql://h/db"}},
            "postgresql://h/db",
        ),
        (
            {
                "client": "pg",
                "connection": {
                    "host": "db",
                    "port": 5433,
                    "user": "cat",
                    "password": "pw",
                    "database": "c",
                },
            },
            "postgresql://cat:pw@db:5433/c",
        ),
        (
            {"client": "pg", "connection": {"host": "db"}},
            "postgresql://postgres@db:5432/backstage_plugin_catalog",
        ),
        (
            {"url": "postgresql://explicit/db", "client": "better-sqlite3"},
            "postgresql://explicit/db",
        ),
    ],
)
def test_backend_database_translation(database, expected):
    assert database_url_from_config(database) == expected


def test_relative_sqlite_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load(
        tmp_path,
        {
            "backend": {
                "database": {"client": "better-sqlite3", "connection": {"filename": "db/c.sqlite"}}
            }
        },
    )
    assert config.database_url == f"sqlite:///{tmp_path / 'db' / 'c.sqlite'}"


# -- processingInterval -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"seconds": 30}, (30.0, 30.0)),
        ({"minutes": 3}, (180.0, 180.0)),
        ({"hours": 1, "minutes": 30}, (5400.0, 5400.0)),
        ({"milliseconds": 1500}, (1.5, 1.5)),
        (45, (45.0, 45.0)),
        (False, None),
    ],
)
def test_processing_interval(tmp_path, value, expected):
    config = load(tmp_path, {"catalog": {"processingInterval": value}})
    assert config.processing_interval == expected


def test_processing_settings(tmp_path):
    defaults = load(tmp_path, {})
    assert (defaults.processing_enabled, defaults.claim_lease) == (True, 60.0)
    assert defaults.database_busy_timeout == 30.0
    config = load(
        tmp_path,
        {
            "backend": {"database": {"busyTimeout": {"seconds": 2}}},
            "catalog": {"processing": {"enabled": False, "claimLease": {"seconds": 5}}},
        },
    )
    assert (config.processing_enabled, config.claim_lease) == (False, 5.0)
    assert config.database_busy_timeout == 2.0
    # --processing / --no-processing win over the files; --database-url keeps busyTimeout.
    flagged = load(
        tmp_path,
        {
            "backend": {"database": {"client": "pg", "busyTimeout": 3}},
            "catalog": {"processing": {"enabled": False, "claimLease": 9}},
        },
        processing=True,
        database_url="sqlite:////tmp/x.sqlite",
    )
    assert (flagged.processing_enabled, flagged.claim_lease) == (True, 9.0)
    assert (flagged.database_url, flagged.database_busy_timeout) == ("sqlite:////tmp/x.sqlite", 3)
    assert load(tmp_path, {}, processing=False).processing_enabled is False


# -- invalid configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"catalog": {"processingInterval": "5m"}},
            "catalog.processingInterval must be a duration",
        ),
        (
            {"catalog": {"processingInterval": {"fortnights": 1}}},
            "catalog.processingInterval must be a duration",
        ),
        (
            {"catalog": {"processingInterval": {"minutes": "x"}}},
            "catalog.processingInterval has a non-numeric value",
        ),
        ({"catalog": {"processingInterval": 0}}, "catalog.processingInterval must be positive"),
        (
            {"catalog": {"processingInterval": True}},
            "catalog.processingInterval must be a duration",
        ),
        ({"catalog": {"processing": "off"}}, "catalog.processing must be a mapping"),
        (
            {"catalog": {"processing": {"enabled": "no"}}},
            "catalog.processing.enabled must be true or false",
        ),
        (
            {"catalog": {"processing": {"claimLease": 0}}},
            "catalog.processing.claimLease must be positive",
        ),
        (
            {"backend": {"database": {"busyTimeout": "long"}}},
            "backend.database.busyTimeout must be a duration",
        ),
        (
            {"catalog": {"orphanStrategy": "nuke"}},
            "catalog.orphanStrategy must be 'keep' or 'delete'",
        ),
        ({"catalog": {"locations": "catalog-info.yaml"}}, "catalog.locations must be a list"),
        ({"catalog": {"locations": [{"type": "file"}]}}, "catalog.locations[0] needs a target"),
        (
            {"catalog": {"locations": [{"type": "file", "target": 5}]}},
            "catalog.locations[0].target must be a string",
        ),
        ({"catalog": {"rules": "Component"}}, "catalog.rules must be a list"),
        ({"catalog": {"rules": [{"allow": "Component"}]}}, "catalog.rules must be a list"),
        ({"catalog": {"processors": ["x"]}}, "catalog.processors must be a mapping"),
        ({"catalog": {"providers": "x"}}, "catalog.providers must be a mapping"),
        ({"catalog": "x"}, "catalog must be a mapping"),
        ({"backend": ["x"]}, "backend must be a mapping"),
        ({"backend": {"listen": {"port": "http"}}}, "backend.listen.port must be a port number"),
        ({"backend": {"listen": {"port": 70000}}}, "backend.listen.port must be a port number"),
        ({"backend": {"listen": "localhost:http"}}, "backend.listen.port must be a port number"),
        ({"backend": {"database": "sqlite"}}, "backend.database must be a mapping"),
        (
            {"backend": {"database": {"client": "mysql2"}}},
            "Unsupported backend.database.client 'mysql2'",
        ),
        (
            {"backend": {"database": {"client": "better-sqlite3", "connection": ":memory:"}}},
            "':memory:' is not supported",
        ),
    ],
)
def test_invalid_values_are_config_errors(tmp_path, document, message):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, document)
    assert message in str(error.value)


def test_postgres_needs_a_connection():
    with pytest.raises(ConfigError, match="backend.database.connection is required for PostgreSQL"):
        database_url_from_config({"client": "pg"})


def test_unreadable_and_malformed_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="could not be read"):
        AppConfig.load([str(tmp_path / "missing.yaml")], env={})
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load(tmp_path, "catalog: [unclosed\n")
    with pytest.raises(ConfigError, match="must contain a mapping at its root"):
        load(tmp_path, "- a\n- b\n")
