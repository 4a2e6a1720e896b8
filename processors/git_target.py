"""Which git target a location names: a ``git`` location, or a blob URL of an integration host.

Shared by the processors that read through git, so they agree on what a location means
and pin it the same way: trust is checked before anything is asked of the server.
"""

from __future__ import annotations

from app.errors import CatalogError
from app.reading import Readers
from app.reading.git import GitReader, GitTarget, GitUrlReader
from processors.base import LocationSpec


class GitLocator:
    def __init__(self, readers: Readers):
        git = readers.get("git")
        if not isinstance(git, GitReader):
            raise CatalogError("The git reader is not registered")
        self.git = git
        url = readers.get("url")
        self.urls = url if isinstance(url, GitUrlReader) else None

    def locate(self, location: LocationSpec) -> GitTarget | None:
        """The target as written, without asking the server; None when git does not read it."""
        if location.type == "git":
            return self.git.parse(location.target)
        if location.type == "url" and self.urls is not None:
            return self.urls.locate(location.target)
        return None

    def pin(self, target: GitTarget) -> GitTarget:
        """Check the repository is trusted, then split a blob URL's ref (it may hold slashes)."""
        self.git.check_trust(target.repository)
        if target.form != "git" and self.urls is not None:
            return self.urls.split_ref(target)
        return target
