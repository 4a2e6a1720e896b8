"""The git parts of app-config: reader settings, integrations, providers, event secrets.

Parsed here (and reached through :class:`app.config.AppConfig` accessors, which its
``validate()`` reads at start-up) so a bad value stops ``catalog serve`` with a
ConfigError naming the setting, not a traceback inside a worker.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.config import ConfigError, duration_seconds
from app.reading.git import GitHost, GitSettings, check_path, check_ref, check_repository_url

if TYPE_CHECKING:
    from app.config import AppConfig

DEFAULT_CACHE_DIR = "var/git-cache"
DEFAULT_CATALOG_PATH = "/catalog-info.yaml"
DEFAULT_FREQUENCY = 30 * 60.0


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a mapping")
    return value


def _string(value: Any, name: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise ConfigError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string")
    return value


def _flag(value: Any, name: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false")
    return value


def _positive_int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive whole number")
    return value


def integrations(config: AppConfig) -> list[GitHost]:
    """``integrations.github`` and ``integrations.gitlab``: hosts whose blob URLs read via git."""
    hosts: list[GitHost] = []
    for style in ("github", "gitlab"):
        entries = config.get(f"integrations.{style}") or []
        if not isinstance(entries, list):
            raise ConfigError(f"integrations.{style} must be a list of {{host, token?}} entries")
        for index, entry in enumerate(entries):
            name = f"integrations.{style}[{index}]"
            entry = _mapping(entry, name)
            host = _string(entry.get("host"), f"{name}.host", required=True)
            assert host is not None
            if not re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?", host):
                raise ConfigError(f"{name}.host must be a host name, optionally with :port")
            hosts.append(
                GitHost(
                    host=host.lower(),
                    style=style,
                    token=_string(entry.get("token"), f"{name}.token"),
                    api_base_url=_string(entry.get("apiBaseUrl"), f"{name}.apiBaseUrl"),
                )
            )
    return hosts


def git_settings(config: AppConfig) -> GitSettings:
    """``backend.reading.git``: the clone cache, timeouts, and how long heads are trusted."""
    section = _mapping(config.get("backend.reading.git"), "backend.reading.git")
    cache_dir = _string(section.get("cacheDir"), "backend.reading.git.cacheDir")
    timeout = section.get("timeout")
    ttl = section.get("headCacheTtl")
    return GitSettings(
        cache_dir=os.path.abspath(cache_dir or DEFAULT_CACHE_DIR),
        timeout=60.0
        if timeout is None
        else duration_seconds(timeout, "backend.reading.git.timeout"),
        max_bytes=config.reading_max_bytes,
        head_ttl=30.0 if ttl is None else duration_seconds(ttl, "backend.reading.git.headCacheTtl"),
        shallow=_flag(section.get("shallow"), "backend.reading.git.shallow", True),
        hosts=integrations(config),
    )


@dataclass(frozen=True)
class SafeDeletions:
    """When a provider's full run may not replace its entity set (see the README)."""

    enabled: bool = True
    #: Refuse a run that would remove more than this share of the provider's entities.
    max_removed_share: float = 0.5
    #: Refuse a run whose source listed nothing while the provider has entities.
    allow_empty: bool = False


def safe_deletions(value: Any, name: str) -> SafeDeletions:
    if value is False:
        return SafeDeletions(enabled=False)
    section = _mapping(value, name)
    share = section.get("maxRemovedShare", 0.5)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ConfigError(f"{name}.maxRemovedShare must be a number from 0 to 1")
    return SafeDeletions(
        enabled=_flag(section.get("enabled"), f"{name}.enabled", True),
        max_removed_share=float(share),
        allow_empty=_flag(section.get("allowEmpty"), f"{name}.allowEmpty", False),
    )


@dataclass(frozen=True)
class Schedule:
    frequency: float = DEFAULT_FREQUENCY
    #: A run still going after this many seconds keeps the unfinished repositories as they were.
    timeout: float | None = None


def schedule(value: Any, name: str) -> Schedule:
    section = _mapping(value, name)
    if not section:
        return Schedule()
    if "frequency" not in section:
        # A bare duration ({minutes: 5}) is the frequency.
        return Schedule(frequency=duration_seconds(section, f"{name}"))
    timeout = section.get("timeout")
    return Schedule(
        frequency=duration_seconds(section["frequency"], f"{name}.frequency"),
        timeout=None if timeout is None else duration_seconds(timeout, f"{name}.timeout"),
    )


@dataclass(frozen=True)
class RepositoryProviderConfig:
    """What every repository-discovering provider shares."""

    id: str
    catalog_path: str = DEFAULT_CATALOG_PATH
    branch: str | None = None
    schedule: Schedule = field(default_factory=Schedule)
    safe_deletions: SafeDeletions = field(default_factory=SafeDeletions)
    webhook_secret: str | None = None
    #: Repositories worked on at once during a run.
    concurrency: int = 8


def _common(provider_id: str, section: dict[str, Any], name: str) -> dict[str, Any]:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", provider_id):
        raise ConfigError(f"{name}: provider ids may use letters, digits, '.', '_' and '-'")
    catalog_path = _string(section.get("catalogPath"), f"{name}.catalogPath")
    branch = _string(section.get("branch"), f"{name}.branch")
    try:
        path = check_path(catalog_path or DEFAULT_CATALOG_PATH)
        if branch is not None:
            check_ref(branch)
    except Exception as exc:
        raise ConfigError(f"{name}: {exc}") from exc
    return {
        "id": provider_id,
        "catalog_path": path,
        "branch": branch,
        "schedule": schedule(section.get("schedule"), f"{name}.schedule"),
        "safe_deletions": safe_deletions(section.get("safeDeletions"), f"{name}.safeDeletions"),
        "webhook_secret": _string(section.get("webhookSecret"), f"{name}.webhookSecret"),
        "concurrency": _positive_int(section.get("concurrency"), f"{name}.concurrency", 8),
    }


@dataclass(frozen=True)
class GitProviderConfig(RepositoryProviderConfig):
    repositories: tuple[str, ...] = ()
    #: A local folder whose git repositories (bare or not) are listed on every run.
    parent: str | None = None


def git_providers(config: AppConfig) -> list[GitProviderConfig]:
    """``catalog.providers.git.<id>``: repositories by URL, or every repository in a folder."""
    section = config.get("catalog.providers.git")
    if section is False or section is None:
        return []
    section = _mapping(section, "catalog.providers.git")
    result = []
    for provider_id, value in section.items():
        name = f"catalog.providers.git.{provider_id}"
        if provider_id == "enabled" and isinstance(value, bool):
            continue
        entry = _mapping(value, name)
        repositories = entry.get("repositories") or []
        if not isinstance(repositories, list):
            raise ConfigError(f"{name}.repositories must be a list of repository URLs")
        try:
            checked = tuple(check_repository_url(url) for url in repositories)
        except Exception as exc:
            raise ConfigError(f"{name}.repositories: {exc}") from exc
        parent = _string(entry.get("parent"), f"{name}.parent")
        if parent is not None:
            parent = os.path.realpath(parent.removeprefix("file://"))
        if not checked and parent is None:
            raise ConfigError(f"{name} needs repositories (a list of URLs) or parent (a folder)")
        result.append(
            GitProviderConfig(
                **_common(str(provider_id), entry, name), repositories=checked, parent=parent
            )
        )
    return result


@dataclass(frozen=True)
class GithubFilters:
    repository: re.Pattern[str] | None = None
    topic_include: tuple[str, ...] = ()
    topic_exclude: tuple[str, ...] = ()
    allow_archived: bool = False
    allow_forks: bool = True
    visibility: tuple[str, ...] = ()


@dataclass(frozen=True)
class GithubProviderConfig(RepositoryProviderConfig):
    organization: str = ""
    host: str = "github.com"
    api_base_url: str = "https://api.github.com"
    token: str | None = None
    filters: GithubFilters = field(default_factory=GithubFilters)
    #: The longest the provider waits for a rate limit to reset before failing the run.
    rate_limit_max_wait: float = 60.0


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{name} must be a list of strings")
    return tuple(value)


def github_filters(value: Any, name: str) -> GithubFilters:
    section = _mapping(value, name)
    pattern = _string(section.get("repository"), f"{name}.repository")
    try:
        regex = re.compile(pattern) if pattern else None
    except re.error as exc:
        raise ConfigError(f"{name}.repository is not a valid regular expression: {exc}") from exc
    topic = _mapping(section.get("topic"), f"{name}.topic")
    visibility = _strings(section.get("visibility"), f"{name}.visibility")
    for item in visibility:
        if item not in ("public", "private", "internal"):
            raise ConfigError(f"{name}.visibility accepts public, private and internal")
    return GithubFilters(
        repository=regex,
        topic_include=_strings(topic.get("include"), f"{name}.topic.include"),
        topic_exclude=_strings(topic.get("exclude"), f"{name}.topic.exclude"),
        allow_archived=_flag(section.get("allowArchived"), f"{name}.allowArchived", False),
        allow_forks=_flag(section.get("allowForks"), f"{name}.allowForks", True),
        visibility=visibility,
    )


def github_providers(config: AppConfig) -> list[GithubProviderConfig]:
    """``catalog.providers.github.<id>``: every repository of an organisation, filtered."""
    section = config.get("catalog.providers.github")
    if section is False or section is None:
        return []
    section = _mapping(section, "catalog.providers.github")
    hosts = {host.host: host for host in integrations(config) if host.style == "github"}
    result = []
    for provider_id, value in section.items():
        name = f"catalog.providers.github.{provider_id}"
        if provider_id == "enabled" and isinstance(value, bool):
            continue
        entry = _mapping(value, name)
        organization = _string(entry.get("organization"), f"{name}.organization", required=True)
        assert organization is not None
        if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?", organization):
            raise ConfigError(f"{name}.organization is not a valid organisation name")
        host = (_string(entry.get("host"), f"{name}.host") or "github.com").lower()
        integration = hosts.get(host)
        default_api = "https://api.github.com" if host == "github.com" else f"https://{host}/api/v3"
        api = (
            _string(entry.get("apiBaseUrl"), f"{name}.apiBaseUrl")
            or (integration.api_base_url if integration else None)
            or default_api
        )
        if not api.startswith(("http://", "https://")):
            raise ConfigError(f"{name}.apiBaseUrl must be an http(s) URL")
        wait = entry.get("rateLimitMaxWait")
        result.append(
            GithubProviderConfig(
                **_common(str(provider_id), entry, name),
                organization=organization,
                host=host,
                api_base_url=api.rstrip("/"),
                token=_string(entry.get("token"), f"{name}.token")
                or (integration.token if integration else None),
                filters=github_filters(entry.get("filters"), f"{name}.filters"),
                rate_limit_max_wait=60.0
                if wait is None
                else duration_seconds(wait, f"{name}.rateLimitMaxWait"),
            )
        )
    return result


def events_secret(config: AppConfig) -> str | None:
    """``catalog.events.secret``: the HMAC secret of push events for every provider."""
    section = _mapping(config.get("catalog.events"), "catalog.events")
    return _string(section.get("secret"), "catalog.events.secret")
