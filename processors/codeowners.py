"""``CodeOwnersProcessor`` (opt-in): ``spec.owner`` from the repository's CODEOWNERS.

Enabled by a ``catalog.processors.codeowners: {}`` section. A Component, API, Resource,
System or Domain read from git (a ``git`` location or a blob URL of an integration
host) that names no owner gets the first owner of the last CODEOWNERS rule matching its
catalog file, read at the same ref from ``.github/CODEOWNERS``, ``CODEOWNERS`` or
``docs/CODEOWNERS`` (GitHub's order): ``@org/team`` becomes ``group:team``, ``@user``
becomes ``user:user`` and ``name@example.com`` becomes ``user:name``. An owner written in
the entity always wins. The result is cached by commit, so an unchanged head reads
nothing; when the repository cannot be reached, the last owner found is kept.
"""

from __future__ import annotations

import re
from typing import Any

from app.errors import CatalogError, NotFoundError
from app.reading import Readers
from app.reading.git import GitTarget
from processors.base import CatalogProcessor, Emitter, LocationSpec, ProcessorCache
from processors.git_target import GitLocator

CACHE_KEY = "v1"
CODEOWNERS_PATHS = ("/.github/CODEOWNERS", "/CODEOWNERS", "/docs/CODEOWNERS")
KINDS = frozenset({"component", "api", "resource", "system", "domain"})


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A CODEOWNERS pattern (gitignore-like) as a regex over ``/a/b/file`` paths."""
    anchored = pattern.startswith("/") or "/" in pattern.rstrip("/")
    body = pattern.strip("/")
    directory = pattern.endswith("/")
    out = []
    i = 0
    while i < len(body):
        if body.startswith("**", i):
            out.append(".*")
            i += 2
        elif body[i] == "*":
            out.append("[^/]*")
            i += 1
        elif body[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(body[i]))
            i += 1
    prefix = "/" if anchored else "(?:.*/)?"
    if directory:
        suffix = "/.*"
    elif body.endswith("/*"):
        suffix = ""  # docs/* owns the files in docs, not those of its subfolders
    else:
        suffix = "(?:/.*)?"
    return re.compile(prefix + "".join(out) + suffix + r"\Z")


def parse_codeowners(text: str) -> list[tuple[re.Pattern[str], list[str]]]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = re.split(r"\s+#", line, maxsplit=1)[0]
        parts = line.split()
        pattern = parts[0].replace("\\#", "#")
        rules.append((_pattern_regex(pattern), parts[1:]))
    return rules


def owner_for(text: str, path: str) -> str | None:
    """The first owner of the last rule that matches ``path`` (``/folder/file``), as a ref."""
    owners: list[str] = []
    for regex, rule_owners in parse_codeowners(text):
        if regex.match(path):
            owners = rule_owners
    return normalize_owner(owners[0]) if owners else None


def normalize_owner(owner: str) -> str | None:
    if owner.startswith("@"):
        name = owner[1:]
        if "/" in name:
            return f"group:{name.split('/', 1)[1]}"
        return f"user:{name}" if name else None
    if "@" in owner:
        return f"user:{owner.split('@', 1)[0]}"
    return None


class CodeOwnersProcessor(CatalogProcessor):
    name = "CodeOwnersProcessor"

    def __init__(self, readers: Readers):
        self.locator = GitLocator(readers)
        self.git = self.locator.git

    def pre_process_entity(
        self,
        entity: dict[str, Any],
        location: LocationSpec,
        emit: Emitter,
        origin_location: LocationSpec,
        cache: ProcessorCache,
    ) -> dict[str, Any]:
        spec = entity.get("spec")
        kind = entity.get("kind")
        if not isinstance(spec, dict) or spec.get("owner") or not isinstance(kind, str):
            return entity
        if kind.lower() not in KINDS:
            return entity
        try:
            target = self.locator.locate(location)
        except CatalogError:
            return entity  # a malformed target is the reader's error to report
        if target is None:
            return entity
        previous = cache.get(CACHE_KEY)
        previous = previous if isinstance(previous, dict) else {}
        try:
            target = self.locator.pin(target)
            commit = self.git.head(target.repository, target.ref)
            if previous.get("commit") == commit and previous.get("path") == target.path:
                owner = previous.get("owner")
            else:
                owner = self._find(target, commit)
            cache.set(CACHE_KEY, {"commit": commit, "path": target.path, "owner": owner})
        except CatalogError:
            # The repository is unreachable right now: the last owner found still holds.
            owner = previous.get("owner")
            if previous:
                cache.set(CACHE_KEY, previous)
        if not owner:
            return entity
        return {**entity, "spec": {**spec, "owner": owner}}

    def _find(self, target: GitTarget, commit: str) -> str | None:
        self.git.ensure_local(target.repository, commit)
        for path in CODEOWNERS_PATHS:
            try:
                data = self.git.read_file(target.repository, commit, path)
            except NotFoundError:
                continue
            return owner_for(data.decode("utf-8", "replace"), target.path)
        return None


def factory(context) -> CatalogProcessor | None:
    # Opt-in although built in: only with a catalog.processors.codeowners section.
    if context.app_config.get("catalog.processors.codeowners") is None:
        return None
    if context.readers.get("git") is None:
        return None
    return CodeOwnersProcessor(context.readers)
