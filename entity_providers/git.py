"""Discovering ``catalog-info.yaml`` files in git repositories.

``catalog.providers.git.<id>`` names repositories (``repositories``: URLs, or ``parent``:
a local folder whose repositories are listed on every run), a ``branch`` (default: each
repository's default branch) and a ``catalogPath`` glob (``/catalog-info.yaml``,
``/**/catalog-info.yaml``). Each run resolves every repository's head with one
``ls-remote``; only a repository whose head moved is fetched and listed again. Every
matching file becomes a Location entity (``git:<repo>#<branch>:<path>``, its own
location key), which the engine reads through the git reader: a file that disappears
takes its Location and that file's entities with it.

What a hiccup cannot do: a repository that fails keeps the files it had (with its error
in ``GET /api/catalog/providers``), and the engine's deletion guard refuses a run whose
source listed nothing or that would remove more than ``safeDeletions.maxRemovedShare``.

Runs happen on ``schedule`` in a thread of their own (the processing loop only starts
them), and for single repositories when a push event names them
(``POST /api/catalog/events/...``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from app import jsonutil
from app.errors import CatalogError, error_message
from app.model.locations import location_entity_for
from app.reading.git import (
    GitReader,
    GitTarget,
    check_repository_url,
    parse_git_target,
    refresh_key,
    repository_key,
)
from app.reading.git_config import GitProviderConfig, RepositoryProviderConfig
from app.storage.database import Database
from app.storage.tables import refresh_state, refresh_state_references
from entity_providers.base import (
    DeferredEntity,
    DeletionGuard,
    EntityProvider,
    EntityProviderConnection,
    FullMutation,
)
from processors.base import LocationSpec

log = logging.getLogger(__name__)

# How deep ``parent`` is searched for repositories (org/team/repo.git is three).
PARENT_DEPTH = 3


@dataclass(frozen=True)
class Repository:
    url: str
    #: The branch to read, or None for the repository's default branch.
    branch: str | None = None
    name: str = ""


@dataclass
class RepositoryState:
    branch: str | None = None
    commit: str | None = None
    files: list[str] = field(default_factory=list)
    error: str | None = None
    error_since: float | None = None


def _iso(at: float | None) -> str | None:
    return None if at is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


class RepositoryDiscoveryProvider(EntityProvider):
    """Turns the catalog files of a set of repositories into Location entities."""

    kind = "repository"

    def __init__(
        self, config: RepositoryProviderConfig, reader: GitReader, db: Database | None = None
    ):
        self.config = config
        self.reader = reader
        self.db = db
        self._connection: EntityProviderConnection | None = None
        self._lock = threading.Lock()
        self._thread_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._repositories: dict[str, Repository] = {}
        self._states: dict[str, RepositoryState] = {}
        self._applied: set[str] | None = None
        self._loaded = False
        self._last_started: float | None = None
        self._status: dict[str, Any] = {}

    # -- the provider interface ------------------------------------------------------------

    def get_provider_name(self) -> str:
        return f"{self.kind}-provider:{self.config.id}"

    def connect(self, connection: EntityProviderConnection) -> None:
        self._connection = connection

    def refresh_interval(self) -> float | None:
        return self.config.schedule.frequency

    def deletion_guard(self) -> DeletionGuard | None:
        guard = self.config.safe_deletions
        if not guard.enabled:
            return None
        return DeletionGuard(guard.max_removed_share, guard.allow_empty)

    def run(self) -> None:
        """Start a scheduled pass in the background, unless one ran within the frequency."""
        started = self._last_started
        if started is not None and time.time() - started < self.config.schedule.frequency:
            return
        self._in_background(None, "schedule")

    def _in_background(self, only: list[str] | None, trigger: str) -> None:
        with self._thread_lock:
            busy = self._thread is not None and self._thread.is_alive()
            if busy and trigger == "schedule":
                return
            thread = threading.Thread(
                target=self._guarded, args=(only, trigger), name=self.get_provider_name()
            )
            thread.daemon = True
            self._thread = thread
            thread.start()

    def _guarded(self, only: list[str] | None, trigger: str) -> None:
        try:
            self.sync(only, trigger)
        except Exception:  # a background run must never end its thread silently
            log.exception("Provider %s failed", self.get_provider_name())

    # -- what subclasses provide ---------------------------------------------------------------

    def list_repositories(self) -> list[Repository]:
        raise NotImplementedError

    def owns(self, urls: list[str]) -> list[str]:
        """Of these repository URLs, the keys of those this provider reads."""
        keys = {repository_key(url) for url in urls}
        return sorted(keys & set(self._repositories))

    # -- runs ----------------------------------------------------------------------------

    def refresh_repositories(self, urls: list[str], *, wait: bool = False) -> None:
        """Check these repositories now (push events); ``wait`` runs it in this thread."""
        if wait:
            self.sync(urls, "push")
        else:
            self._in_background(urls, "push")

    def sync(self, only: list[str] | None = None, trigger: str = "manual") -> None:
        """One pass: over every repository, or only those named (by URL)."""
        with self._lock:
            self._sync(only, trigger)

    def _sync(self, only: list[str] | None, trigger: str) -> None:
        started = time.time()
        self._last_started = started
        run: dict[str, Any] = {"trigger": trigger, "startedAt": _iso(started)}
        self._status["lastRun"] = run
        try:
            self._load_existing()
            wanted = {repository_key(url) for url in only or []}
            if only is None or not wanted <= set(self._repositories):
                listing = self.list_repositories()
                self._repositories = {repository_key(r.url): r for r in listing}
                for repository in listing:
                    self.reader.allow_repository(repository.url)
            todo = [
                repo
                for key, repo in self._repositories.items()
                if only is None or key in wanted or key not in self._states
            ]
            moved = self._check_all(todo)
            self._apply()
        except Exception as exc:
            run.update(self._finished(started, error=exc))
            log.error("Provider %s: %s", self.get_provider_name(), error_message(exc))
            return
        if self._connection is not None:
            keys = {refresh_key(self._repositories[k].url) for k in moved}
            keys |= {
                refresh_key(self._repositories[k].url) for k in wanted if k in self._repositories
            }
            if keys:
                self._connection.refresh(sorted(keys))
        run.update(self._finished(started, checked=len(todo), moved=len(moved)))
        self._status["lastSuccessAt"] = run["finishedAt"]

    def _finished(self, started: float, *, error: BaseException | None = None, **counts: Any):
        now = time.time()
        result: dict[str, Any] = {
            "finishedAt": _iso(now),
            "durationMs": round((now - started) * 1000),
            "error": None
            if error is None
            else {
                "name": getattr(error, "name", type(error).__name__),
                "message": error_message(error),
            },
        }
        return {**result, **counts}

    def _check_all(self, todo: list[Repository]) -> set[str]:
        """Resolve, fetch and list each repository; return the keys whose head moved."""
        moved: set[str] = set()
        if not todo:
            return moved
        timeout = self.config.schedule.timeout
        pool = ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(todo)))
        try:
            futures = {pool.submit(self._check, repo): repo for repo in todo}
            done, pending = wait(futures, timeout=timeout)
            for future in done:
                key, did_move = future.result()
                if did_move:
                    moved.add(key)
            for future in pending:
                repo = futures[future]
                self._fail(
                    repository_key(repo.url),
                    CatalogError(f"not checked within the run's timeout of {timeout:g} seconds"),
                )
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return moved

    def _check(self, repo: Repository) -> tuple[str, bool]:
        key = repository_key(repo.url)
        previous = self._states.get(key)
        try:
            branch = repo.branch or self.config.branch
            if branch is None:
                branch, commit = self.reader.default_branch(repo.url)
            else:
                commit = self.reader.head(repo.url, branch, fresh=True)
            if (
                previous is not None
                and previous.commit == commit
                and previous.branch == branch
                and previous.error is None
            ):
                return key, False
            commit = self.reader.ensure_commit(repo.url, branch, commit)
            files = self.reader.match(repo.url, commit, self.config.catalog_path)
        except CatalogError as exc:
            self._fail(key, exc)
            return key, False
        self._states[key] = RepositoryState(branch=branch, commit=commit, files=files)
        return key, previous is not None and previous.commit not in (None, commit)

    def _fail(self, key: str, error: BaseException) -> None:
        """Keep what the repository had, with the error and since when it fails."""
        previous = self._states.get(key) or RepositoryState()
        message = error_message(error)
        log.warning("Provider %s: repository %s: %s", self.get_provider_name(), key, message)
        self._states[key] = RepositoryState(
            branch=previous.branch,
            commit=previous.commit,
            files=previous.files,
            error=message,
            error_since=previous.error_since or time.time(),
        )

    def location_specs(self) -> list[LocationSpec]:
        specs = []
        for key, repo in sorted(self._repositories.items()):
            state = self._states.get(key)
            if state is None or state.branch is None:
                continue
            for path in state.files:
                target = GitTarget(check_repository_url(repo.url), state.branch, path)
                specs.append(LocationSpec("git", target.text))
        return specs

    def _apply(self) -> None:
        specs = self.location_specs()
        refs = {spec.ref for spec in specs}
        if refs == self._applied or self._connection is None:
            return
        deferred = [DeferredEntity(location_entity_for(s), location_key=s.ref) for s in specs]
        # Raises DeletionRefusedError when the guard refuses: nothing changes then.
        self._connection.apply_mutation(FullMutation(deferred))
        self._applied = refs

    def _load_existing(self) -> None:
        """After a restart: the files this provider's Locations name, from the database.

        So a repository that fails on the first run keeps its entities instead of the
        full mutation deleting them.
        """
        if self._loaded or self.db is None:
            self._loaded = True
            return
        query = (
            select(refresh_state.c.unprocessed_entity)
            .select_from(
                refresh_state_references.join(
                    refresh_state,
                    refresh_state.c.entity_ref == refresh_state_references.c.target_entity_ref,
                )
            )
            .where(refresh_state_references.c.source_key == self.get_provider_name())
        )
        with self.db.engine.connect() as conn:
            rows = [row[0] for row in conn.execute(query)]
        for text in rows:
            try:
                target = parse_git_target(jsonutil.loads(text)["spec"]["target"])
            except (CatalogError, KeyError, TypeError, ValueError):
                continue
            key = repository_key(target.repository)
            state = self._states.setdefault(key, RepositoryState(branch=target.ref))
            state.files.append(target.path)
            self._repositories.setdefault(key, Repository(target.repository, target.ref))
            self.reader.allow_repository(target.repository)
        self._loaded = True

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        failing = [
            {
                "repository": self._repositories[key].url if key in self._repositories else key,
                "error": state.error,
                "since": _iso(state.error_since),
            }
            for key, state in sorted(self._states.items())
            if state.error is not None
        ]
        return {
            **self._status,
            "repositories": len(self._repositories),
            "files": sum(len(s.files) for s in self._states.values()),
            "failingRepositories": failing,
        }


class GitEntityProvider(RepositoryDiscoveryProvider):
    kind = "git"

    def __init__(self, config: GitProviderConfig, reader: GitReader, db: Database | None = None):
        super().__init__(config, reader, db)
        self.git_config = config
        for url in config.repositories:
            reader.allow_repository(url)
        if config.parent is not None:
            reader.allow_repository_prefix(f"file://{config.parent}")

    def list_repositories(self) -> list[Repository]:
        urls = list(self.git_config.repositories)
        if self.git_config.parent is not None:
            urls += list_parent(self.git_config.parent)
        seen: dict[str, Repository] = {}
        for url in urls:
            seen.setdefault(repository_key(url), Repository(url, name=url))
        return list(seen.values())


def _is_repository(path: str) -> bool:
    if os.path.isdir(os.path.join(path, ".git")):
        return True
    return all(os.path.exists(os.path.join(path, part)) for part in ("HEAD", "objects", "refs"))


def list_parent(parent: str) -> list[str]:
    """``file://`` URLs of the repositories in ``parent`` (bare or not), without following links."""
    if not os.path.isdir(parent):
        raise CatalogError(f"The folder of repositories {parent} does not exist")
    found: list[str] = []

    def walk(folder: str, depth: int) -> None:
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                if _is_repository(entry.path):
                    found.append(f"file://{os.path.abspath(entry.path)}")
                elif depth < PARENT_DEPTH:
                    walk(entry.path, depth + 1)

    walk(parent, 1)
    return found


def factory(context) -> list[EntityProvider]:
    reader = context.readers.get("git")
    if not isinstance(reader, GitReader):
        return []
    configs = context.app_config.git_providers
    return [GitEntityProvider(c, reader, context.services.get("database")) for c in configs]
