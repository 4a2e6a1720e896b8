"""``POST /analyze-location``: what the catalog-import page should offer for a URL.

Backstage's ``RepoLocationAnalyzer`` asks SCM-specific analyzers for the catalog
files of a repository and, when there are none (or no analyzer knows the host),
suggests a Component named after the repository, with a ``<host>/project-slug``
annotation for GitHub, GitLab and Azure DevOps. We analyze any URL our reader may
fetch: the target itself if it names a YAML file, else ``<target>/catalog-info.yaml``
(or the requested file name). Entities found there come back as existing files,
with ``isRegistered`` telling whether that URL is registered already.

Where nothing could be looked at (a host outside ``backend.reading.allow``, a
network failure), the answer is Backstage's suggestion exactly, with an empty
``fields`` list. Where we did look and found no catalog file, the suggestion also
lists the fields the user must fill in (``spec.owner``), which Backstage leaves to
the frontend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.errors import CatalogError, InputError
from app.model import validate_envelope
from app.reading import Readers
from app.storage.database import Database
from app.storage.locations import find_location
from processors.base import EntityParser, LocationSpec

DEFAULT_CATALOG_FILENAME = "catalog-info.yaml"
# Hosts Backstage has integrations for out of the box, and their annotation prefixes.
INTEGRATION_PREFIXES = {
    "github.com": "github.com",
    "gitlab.com": "gitlab.com",
    "dev.azure.com": "dev.azure.com",
}
# Path segments after which a git web URL stops naming the repository.
_REPO_END_MARKERS = ("-", "blob", "tree", "src", "raw", "edit", "commit", "commits", "browse")
_SCP_LIKE = re.compile(r"^[\w.-]+@([\w.-]+):(.+)$")


class NotAUrlError(InputError):
    pass


@dataclass(frozen=True)
class GitUrl:
    host: str | None
    owner: str
    name: str


def parse_git_url(target: str) -> GitUrl:
    """Owner and repository name of a git hosting URL, the way ``git-url-parse`` reads them."""
    scp = _SCP_LIKE.match(target)
    if scp:
        # user@host:owner/repo.git names no web host Backstage has an integration for.
        return _from_segments(None, [s for s in scp.group(2).split("/") if s])
    try:
        parts = urlsplit(target)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise NotAUrlError("The given location.target is not a URL") from None
    if not parts.scheme or not parts.netloc or " " in parts.netloc:
        raise NotAUrlError("The given location.target is not a URL")
    host = (parts.hostname or "").lower()
    return _from_segments(host, [s for s in parts.path.split("/") if s])


def _from_segments(host: str | None, segments: list[str]) -> GitUrl:
    if "_git" in segments:  # Azure DevOps: org/project/_git/repo
        index = segments.index("_git")
        owner = segments[index - 1] if index > 0 else ""
        name = segments[index + 1] if index + 1 < len(segments) else ""
        return GitUrl(host, owner, _strip_git(name))
    if host == "github.com":
        repo = segments[:2]
    else:
        end = next(
            (i for i, s in enumerate(segments) if i > 0 and s in _REPO_END_MARKERS), len(segments)
        )
        repo = segments[:end]
    name = repo[-1] if repo else ""
    return GitUrl(host, "/".join(repo[:-1]), _strip_git(name))


def _strip_git(name: str) -> str:
    return name[: -len(".git")] if name.endswith(".git") else name


class LocationAnalyzer:
    def __init__(
        self,
        readers: Readers,
        parser: EntityParser,
        db: Database,
        integrations: dict[str, str] | None = None,
    ):
        self.readers = readers
        self.parser = parser
        self.db = db
        self.integrations = {**INTEGRATION_PREFIXES, **(integrations or {})}

    def analyze(
        self, location_type: str, target: str, catalog_filename: str | None = None
    ) -> dict[str, Any]:
        git = parse_git_url(target)
        looked, existing = self._existing_files(location_type, target, catalog_filename)
        if existing:
            return {"existingEntityFiles": existing, "generateEntities": []}
        metadata: dict[str, Any] = {"name": git.name}
        prefix = self.integrations.get(git.host or "")
        if prefix:
            metadata["annotations"] = {f"{prefix}/project-slug": f"{git.owner}/{git.name}"}
        entity = {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": metadata,
            "spec": {"type": "other", "lifecycle": "unknown"},
        }
        fields: list[dict[str, Any]] = []
        if looked:
            fields.append(
                {
                    "field": "spec.owner",
                    "state": "needsUserInput",
                    "value": None,
                    "description": "No catalog file was found at this location; choose the "
                    "group or user that owns the component",
                }
            )
        return {
            "existingEntityFiles": [],
            "generateEntities": [{"entity": entity, "fields": fields}],
        }

    def _existing_files(
        self, location_type: str, target: str, catalog_filename: str | None
    ) -> tuple[bool, list[dict[str, Any]]]:
        """(whether the location could be looked into, the catalog entities found there)."""
        reader = self.readers.get("url")
        if location_type != "url" or reader is None:
            return False, []
        path = urlsplit(target).path
        if path.endswith((".yaml", ".yml")):
            candidate = target
        else:
            candidate = f"{target.rstrip('/')}/{catalog_filename or DEFAULT_CATALOG_FILENAME}"
        try:
            reader.check_allowed(candidate)
            result = reader.read(candidate)
        except CatalogError as exc:
            return getattr(exc, "name", "") == "NotFoundError", []
        entities = []
        for entity, error in self.parser(result.data, LocationSpec("url", candidate)):
            if error is not None or entity is None:
                # Not a catalog file (an HTML page, say): nothing we can vouch for.
                return False, []
            try:
                validate_envelope(entity)
            except Exception:
                return False, []
            entities.append(entity)
        with self.db.engine.connect() as conn:
            registered = find_location(conn, "url", candidate) is not None
        return True, [
            {
                "location": {"type": "url", "target": candidate},
                "isRegistered": registered,
                "entity": entity,
            }
            for entity in entities
        ]
