"""``GitReaderProcessor``: reads ``git`` locations and blob URLs of integration hosts.

A target is read at the commit its ref points at now, and everything about that read is
cached by commit: when the head has not moved, the cached entities are emitted again
without fetching, listing or parsing anything. When it moved, files whose blob (and
whose placeholders' blobs) did not change are not read either. Relative ``$text``,
``$json`` and ``$yaml`` placeholders are resolved here, at the same commit as the file
that holds them (anything they fail on is left for the PlaceholderProcessor to report).

A repository that cannot be reached fails the location the way an unreadable file does:
the error shows on the Location and the entities read before are kept. Entities read
through git get ``backstage.io/view-url``, ``edit-url`` and ``source-location``
(GitHub- and GitLab-style links for known hosts).
"""

from __future__ import annotations

from typing import Any

from app.errors import CatalogError, InputError, NotFoundError
from app.reading import Readers
from app.reading.git import (
    GitTarget,
    is_glob,
    refresh_key,
    resolve_relative,
    scm_annotations,
)
from processors.base import CatalogProcessor, Emitter, EntityParser, LocationSpec, ProcessorCache
from processors.git_target import GitLocator
from processors.placeholder import PlaceholderProcessor

CACHE_KEY = "v1"
# Placeholders one file may resolve here; more are left to the PlaceholderProcessor.
MAX_PLACEHOLDERS = 100


class _Unresolvable(Exception):
    pass


class GitReaderProcessor(CatalogProcessor):
    name = "git-reader"
    # Before url-reader (20), so blob URLs of integration hosts are read through git.
    priority = 15

    def __init__(self, readers: Readers):
        self.readers = readers
        self.locator = GitLocator(readers)
        self.git = self.locator.git
        self.resolvers = PlaceholderProcessor(readers).resolvers

    # -- reading ---------------------------------------------------------------------------

    def read_location(
        self,
        location: LocationSpec,
        optional: bool,
        emit: Emitter,
        parser: EntityParser,
        cache: ProcessorCache,
    ) -> bool:
        target = self.locator.locate(location)
        if target is None:
            return False
        previous = cache.get(CACHE_KEY)
        previous = previous if isinstance(previous, dict) else {}
        try:
            target = self.locator.pin(target)
            commit = self.git.head(target.repository, target.ref)
        except NotFoundError as exc:
            if not optional:
                emit.not_found_error(location, f"Unable to read {location.type}, {exc}")
            return True
        except CatalogError as exc:
            self._unreadable(location, previous, exc, emit)
            return True
        emit.refresh(refresh_key(target.repository))
        emit.refresh(location.ref)
        if previous.get("commit") == commit and previous.get("target") == location.target:
            self._emit_cached(previous, location, emit)
            cache.set(CACHE_KEY, previous)
            return True
        try:
            commit = self.git.ensure_commit(target.repository, target.ref, commit)
            if is_glob(target.path):
                paths = self.git.match(target.repository, commit, target.path)
            else:
                paths = [target.path]
        except CatalogError as exc:
            self._unreadable(location, previous, exc, emit)
            return True
        files, complete = self._read_files(
            target, commit, paths, optional, previous, location, emit, parser
        )
        # An incomplete read keeps what it could read (to reuse blobs, and to keep those
        # entities if the repository fails next time) but not the commit: it is read again.
        cache.set(
            CACHE_KEY,
            {
                "commit": commit if complete else None,
                "target": location.target,
                "ref": target.ref,
                "files": files,
            },
        )
        return True

    def _read_files(
        self,
        target: GitTarget,
        commit: str,
        paths: list[str],
        optional: bool,
        previous: dict[str, Any],
        location: LocationSpec,
        emit: Emitter,
        parser: EntityParser,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Read, parse and emit each file; reuse the previous result of an unchanged blob."""
        before = {item["path"]: item for item in previous.get("files") or [] if "path" in item}
        tree: dict[str, str] | None = None
        files: list[dict[str, Any]] = []
        complete = True
        for path in paths:
            file_target = target.with_path(path)
            file_location = LocationSpec(target.location_type, file_target.text)
            old = before.get(path)
            if old is not None and old.get("deps"):
                if tree is None:
                    tree = {
                        "/" + e.path: e.oid for e in self.git.list_tree(target.repository, commit)
                    }
                if all(tree.get(dep) == oid for dep, oid in old["deps"].items()):
                    for entity in old["entities"]:
                        emit.entity(file_location, entity)
                    files.append(old)
                    continue
            try:
                entry = self.git.entry(target.repository, commit, path)
                data = self.git.read_file(target.repository, commit, path, entry)
            except NotFoundError:
                if not optional and not is_glob(target.path):
                    emit.not_found_error(
                        location, f"Unable to read {location.type}, no such file {file_target.text}"
                    )
                complete = False
                continue
            except CatalogError as exc:
                emit.error(file_location, self._wrap(file_location, exc))
                complete = False
                continue
            deps = {path: entry.oid}
            entities: list[dict[str, Any]] = []
            for entity, error in parser(data, file_location):
                if error is not None:
                    emit.error(file_location, error)
                    complete = False
                elif entity is not None:
                    entity = self._placeholders(entity, file_target, commit, deps, [0])
                    entities.append(entity)
                    emit.entity(file_location, entity)
            files.append({"path": path, "deps": deps, "entities": entities})
        return files, complete

    def _previous_target(
        self, location: LocationSpec, previous: dict[str, Any]
    ) -> GitTarget | None:
        """The target as last read: a blob URL's ref may have needed the server to split."""
        target = self.locator.locate(location)
        ref = previous.get("ref")
        return target.with_ref(ref) if target is not None and isinstance(ref, str) else target

    def _emit_cached(self, previous: dict[str, Any], location: LocationSpec, emit: Emitter) -> None:
        target = self._previous_target(location, previous)
        assert target is not None
        for item in previous.get("files") or []:
            spec = LocationSpec(target.location_type, target.with_path(item["path"]).text)
            for entity in item["entities"]:
                emit.entity(spec, entity)

    def _wrap(self, location: LocationSpec, cause: BaseException) -> InputError:
        # The orchestrator's wording for a failed read: it keeps that file's entities.
        return InputError(
            f"Processor {self.name} threw an error while reading {location.ref}", cause=cause
        )

    def _unreadable(
        self,
        location: LocationSpec,
        previous: dict[str, Any],
        cause: BaseException,
        emit: Emitter,
    ) -> None:
        """The repository failed: report it, and keep every file's entities read before."""
        emit.error(location, self._wrap(location, cause))
        target = self._previous_target(location, previous)
        for item in previous.get("files") or []:
            if target is None or "path" not in item:
                continue
            spec = LocationSpec(target.location_type, target.with_path(item["path"]).text)
            if spec.ref != location.ref:
                emit.error(spec, self._wrap(spec, cause))

    # -- placeholders at the same commit -------------------------------------------------

    def _placeholders(
        self, data: Any, base: GitTarget, commit: str, deps: dict[str, str], count: list[int]
    ) -> Any:
        if isinstance(data, list):
            return [self._placeholders(item, base, commit, deps, count) for item in data]
        if not isinstance(data, dict):
            return data
        if len(data) == 1:
            ((key, value),) = data.items()
            if isinstance(key, str) and key.startswith("$") and key[1:] in self.resolvers:
                try:
                    return self._resolve(key[1:], value, base, commit, deps, count)
                except _Unresolvable:
                    return data
        return {k: self._placeholders(v, base, commit, deps, count) for k, v in data.items()}

    def _resolve(
        self,
        key: str,
        value: Any,
        base: GitTarget,
        commit: str,
        deps: dict[str, str],
        count: list[int],
    ) -> Any:
        if not isinstance(value, str) or "://" in value or count[0] >= MAX_PLACEHOLDERS:
            raise _Unresolvable()
        count[0] += 1
        try:
            path = resolve_relative(base, value).path
            entry = self.git.entry(base.repository, commit, path)
            content = self.git.read_file(base.repository, commit, path, entry).decode("utf-8")
            result = self.resolvers[key](key, content)
        except Exception:
            # The PlaceholderProcessor tries again and reports the error on the entity.
            raise _Unresolvable() from None
        deps[path] = entry.oid
        return result

    # -- annotations -----------------------------------------------------------------------

    def pre_process_entity(
        self,
        entity: dict[str, Any],
        location: LocationSpec,
        emit: Emitter,
        origin_location: LocationSpec,
        cache: ProcessorCache,
    ) -> dict[str, Any]:
        if location.type != "git":
            return entity
        try:
            target = self.git.parse(location.target)
        except CatalogError:
            return entity
        metadata = entity.get("metadata")
        if not isinstance(metadata, dict):
            return entity
        annotations = metadata.get("annotations")
        if annotations is not None and not isinstance(annotations, dict):
            return entity
        # Values written in the entity file win, as for url locations.
        merged = {
            **scm_annotations(target, [*self.git.hosts, *self.git.web_hosts], self.git.web_bases),
            **(annotations or {}),
        }
        if merged == annotations:
            return entity
        return {**entity, "metadata": {**metadata, "annotations": merged}}


def factory(context) -> CatalogProcessor | None:
    if context.readers.get("git") is None:
        return None
    return GitReaderProcessor(context.readers)
