"""``catalog validate FILES...``: lint catalog-info.yaml files offline, as the server would.

Each file goes through what ingestion does to it: the YAML reading (with
``catalog.limits``), then every document through the configured processors (the
envelope check, placeholders, the entity policies, kind validation with
Backstage's schemas, relations, Location targets) and the catalog rules. A problem
prints as ``path:line: message``, the line being where the document starts (or
where the YAML error is); messages are those the server stores in ``status.items``.

Offline means: ``$text``/``$json``/``$yaml`` placeholders pointing at URLs are not
fetched (a stand-in value is checked instead), Location targets that are URLs are
not read, and relative ``file`` targets and placeholders are checked on disk. An
entity defined twice among the files is reported at its second definition.

Files named on the command line are always checked. In a folder, the YAML files
checked are those named ``catalog-info.yaml`` (or ``.yml``) and those with a
document whose ``apiVersion`` is Backstage's (``*backstage.io/*``), so OpenAPI
definitions or Kubernetes manifests next to them are left alone.

Exit status: 0 when there is no problem, 1 when there is one, 2 on usage errors
(no such file, an unreadable file, a bad configuration).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import yaml

from app.config import AppConfig, ConfigError
from app.engine.orchestrator import ANNOTATION_LOCATION, ANNOTATION_ORIGIN_LOCATION, Orchestrator
from app.engine.parsing import parse_entities, yaml_documents_with_lines
from app.engine.rules import RulesEnforcer
from app.errors import error_message, error_name
from app.limits import Limits
from app.model import entity_ref
from app.model.refs import js_typeof
from app.plugins import PROCESSORS_GROUP, load_plugins
from app.reading import Reader, Readers, ReadResult
from app.reading.file import FileReader
from processors.base import (
    CatalogProcessor,
    Emitter,
    EntityParser,
    LocationSpec,
    ProcessorCache,
    overrides,
)

YAML_SUFFIXES = (".yaml", ".yml")
CATALOG_FILE_NAMES = ("catalog-info.yaml", "catalog-info.yml")
_BACKSTAGE_API_VERSION = re.compile(rb"^apiVersion:\s*['\"]?[\w.-]*backstage\.io/", re.MULTILINE)
# A Location target that was an absolute URL before being resolved as a file path: fine
# when the file is read from a URL (how repositories are registered), not read offline.
_RESOLVED_URL = re.compile(r"/https?:/")
# What an unfetched URL placeholder stands for while the entity is checked.
_STAND_INS: dict[str, Any] = {"text": "(not fetched: validated offline)", "json": {}, "yaml": {}}
# The content the offline URL reader answers with (NUL: no real catalog text holds one).
_NOT_FETCHED = "\x00not fetched\x00"


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class UsageError(Exception):
    """A file that cannot be linted at all (exit status 2)."""


class OfflineUrlReader(Reader):
    """Answers ``url`` reads with nothing: validation never goes on the network."""

    types = ("url",)

    def read(self, target: str) -> ReadResult:
        return ReadResult(data=_NOT_FETCHED.encode(), target=target)

    def resolve(self, base: str, relative: str) -> str:
        return urljoin(base, relative)


class TargetChecker(CatalogProcessor):
    """Stands in for the readers of Location targets: checks that local ones exist
    (reading them is linting them, which the files given on the command line are for)."""

    name = "catalog-validate"

    def __init__(self, limits: Limits):
        self.files = FileReader(max_bytes=limits.file_bytes, max_matches=limits.glob_matches)

    def read_location(
        self,
        location: LocationSpec,
        optional: bool,
        emit: Emitter,
        parser: EntityParser,
        cache: ProcessorCache,
    ) -> bool:
        if location.type != "file" or _RESOLVED_URL.search(location.target):
            return True
        try:
            matches = self.files.search(location.target)
        except Exception as exc:
            emit.error(location, exc)
            return True
        missing = not all(os.path.isfile(path) for path in matches)
        if missing and not optional and not self.files.is_glob(location.target):
            emit.not_found_error(location, f"{location.type} {location.target} does not exist")
        return True


class Linter:
    def __init__(self, config: AppConfig):
        self.config = config
        self.limits = config.limits
        readers = Readers(
            [
                FileReader(max_bytes=self.limits.file_bytes, max_matches=self.limits.glob_matches),
                OfflineUrlReader(),
            ]
        )
        processors = [
            p
            for p in load_plugins(PROCESSORS_GROUP, "catalog.processors", config, readers)
            if not overrides(p, "read_location")
        ]
        for processor in processors:
            _offline_placeholders(processor)
        self.orchestrator = Orchestrator(
            [*processors, TargetChecker(self.limits)],
            parser=lambda data, location: parse_entities(data, location, limits=self.limits),
            rules=RulesEnforcer(config.rules),
        )
        self.rules = RulesEnforcer(config.rules)
        self.seen: dict[str, tuple[str, int]] = {}

    def lint_file(self, path: str) -> list[Problem]:
        try:
            with open(path, "rb") as handle:
                data = handle.read(self.limits.file_bytes + 1)
        except OSError as exc:
            raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
        if len(data) > self.limits.file_bytes:
            return [
                Problem(
                    path,
                    1,
                    f"the file is more than {self.limits.file_bytes} bytes "
                    "(catalog.limits.fileBytes)",
                )
            ]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return [Problem(path, 1, f"the file is not UTF-8 text: {exc}")]
        problems: list[Problem] = []
        for line, document in _documents(text, self.limits, path, problems):
            problems.extend(Problem(path, line, m) for m in self.lint_document(document, path))
            if isinstance(document, dict):
                self._remember(document, path, line, problems)
        return problems

    def lint_document(self, document: Any, path: str) -> list[str]:
        if not isinstance(document, dict):
            return [f"Expected object at root, got {js_typeof(document)}"]
        location = LocationSpec("file", os.path.abspath(path))
        entity = _with_location(document, location.ref)
        outcome = self.orchestrator.process(entity)
        messages = [f"{error_name(e)}: {error_message(e)}" for e in outcome.errors]
        if outcome.ok and not self.rules.is_allowed(document, location):
            messages.append(
                f"NotAllowedError: Entity {entity_ref(document)} at {location.ref} is not of an "
                "allowed kind (catalog.rules)"
            )
        return messages

    def _remember(self, document: dict[str, Any], path: str, line: int, out: list[Problem]) -> None:
        try:
            ref = entity_ref(document)
        except Exception:
            return  # the envelope problem is reported already
        if ref in self.seen:
            first_path, first_line = self.seen[ref]
            out.append(Problem(path, line, f"{ref} is also defined at {first_path}:{first_line}"))
        else:
            self.seen[ref] = (path, line)


def _documents(
    text: str, limits: Limits, path: str, problems: list[Problem]
) -> Iterator[tuple[int, Any]]:
    """Documents with their lines; a YAML error becomes a problem and ends the file."""
    try:
        for line, document in yaml_documents_with_lines(text, limits):
            if document is not None:
                yield line, document
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"{context} {problem}" if context else str(problem)
        problems.append(Problem(path, mark.line + 1 if mark else 1, f"YAML error: {message}"))
    except RecursionError:
        problems.append(Problem(path, 1, "YAML error: the document nests too deeply"))


def _with_location(document: dict[str, Any], ref: str) -> dict[str, Any]:
    """The document as its file's Location would hand it to processing."""
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        return document
    annotations = metadata.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        return document
    merged = {
        **(annotations or {}),
        ANNOTATION_LOCATION: ref,
        ANNOTATION_ORIGIN_LOCATION: ref,
    }
    return {**document, "metadata": {**metadata, "annotations": merged}}


def _offline_placeholders(processor: CatalogProcessor) -> None:
    """Let a URL placeholder stand for a neutral value instead of failing or fetching."""
    resolvers = getattr(processor, "resolvers", None)
    if not isinstance(resolvers, dict):
        return
    for key, resolve in list(resolvers.items()):
        resolvers[key] = _stand_in(key, resolve)


def _stand_in(key: str, resolve: Any) -> Any:
    def resolver(name: str, content: str) -> Any:
        if content == _NOT_FETCHED and key in _STAND_INS:
            return _STAND_INS[key]
        return resolve(name, content)

    return resolver


def _is_catalog_file(path: Path) -> bool:
    if path.name in CATALOG_FILE_NAMES:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(64 * 1024)
    except OSError:
        return True  # let lint_file report it
    return bool(_BACKSTAGE_API_VERSION.search(head))


def expand(paths: list[str]) -> list[str]:
    """Files as given, and the catalog files below any folder given (sorted)."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(
                str(p)
                for p in Path(path).rglob("*")
                if p.suffix in YAML_SUFFIXES and p.is_file() and _is_catalog_file(p)
            )
            files.extend(found)
        elif os.path.exists(path):
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    return files


def run(args: argparse.Namespace, config: AppConfig) -> int:
    # Which plugins load is the configuration's business, not the linter's output.
    logging.getLogger("app.plugins").setLevel(logging.WARNING)
    try:
        files = expand(args.files)
        linter = Linter(config)
        problems: list[Problem] = []
        for path in files:
            problems.extend(linter.lint_file(path))
    except (UsageError, ConfigError) as exc:
        print(f"catalog: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    files_with = len({p.path for p in problems})
    if problems:
        print(
            f"{len(problems)} problem(s) in {files_with} of {len(files)} file(s)",
            file=sys.stderr,
        )
        return 1
    if not args.quiet:
        print(f"{len(files)} file(s) valid", file=sys.stderr)
    return 0
