"""Who may read which files: trusted configuration versus what callers of the API registered.

Locations listed in ``catalog.locations`` are the operator's own and may read any
file. Everything that entered through the API (a registered location, a dry run,
``validate-entity``) is untrusted: its ``file`` reads, including the targets of
Location entities it contains and ``$text``/``$json``/``$yaml`` placeholders, are
confined to the folders in ``catalog.allowedFileRoots`` after resolving ``..`` and
symbolic links. So registering ``/etc/passwd``, or a file that points at it, reads
nothing outside those folders.

Trust is a property of the processing in progress, not of the reader, so it
travels in a context variable that the orchestrator sets per entity
(:class:`app.engine.trust.TrustingOrchestrator`).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from app.errors import NotAllowedError
from app.reading import ReadResult
from app.reading.file import FileReader

# Unset means trusted, so code that reads outside any processing (the CLI, tests of
# other readers) keeps working; every path that handles API input sets it.
_TRUSTED: ContextVar[bool] = ContextVar("catalog_reads_trusted", default=True)


@contextmanager
def read_trust(trusted: bool) -> Iterator[None]:
    """Run the enclosed reads as trusted (configuration) or untrusted (API input)."""
    token = _TRUSTED.set(trusted)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def reads_trusted() -> bool:
    return _TRUSTED.get()


def not_allowed_file_message(target: str) -> str:
    return (
        f"Reading from '{target}' is not allowed. You may need to add a folder that contains "
        "it to the configured list of allowed file roots at 'catalog.allowedFileRoots'"
    )


class FileRoots:
    """Folders (already real paths) that untrusted reads may not leave."""

    def __init__(self, roots: list[str]):
        self.roots = [os.path.realpath(root) for root in roots]

    def contains(self, path: str) -> bool:
        real = os.path.realpath(path)
        return any(
            real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots
        )


def _glob_base(pattern: str) -> str:
    """The folder a glob pattern cannot leave: its leading part without wildcards."""
    parts = os.path.normpath(os.path.abspath(pattern)).split(os.sep)
    static: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        static.append(part)
    return os.sep.join(static) or os.sep


class RootedFileReader(FileReader):
    """The ``file`` reader, confining untrusted reads to ``catalog.allowedFileRoots``."""

    def __init__(
        self, roots: list[str], max_bytes: int | None = None, max_matches: int | None = None
    ):
        super().__init__(max_bytes=max_bytes, max_matches=max_matches)
        self.file_roots = FileRoots(roots)

    def check_allowed(self, target: str) -> None:
        path = _glob_base(target) if self.is_glob(target) else target
        if not target or not self.file_roots.contains(path):
            raise NotAllowedError(not_allowed_file_message(target))

    def read(self, target: str) -> ReadResult:
        if not reads_trusted():
            self.check_allowed(target)
        return super().read(target)

    def search(self, target: str) -> list[str]:
        if reads_trusted():
            return super().search(target)
        self.check_allowed(target)
        # A match may be a link to somewhere else, or (through a linked folder) a file
        # matched already: each real file inside the roots, once, by its real path.
        real = {os.path.realpath(path) for path in super().search(target)}
        return sorted(path for path in real if self.file_roots.contains(path))
