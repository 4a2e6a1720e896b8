"""Reading ``file`` locations from the local file system."""

from __future__ import annotations

import glob
import itertools
import os

from app.errors import InputError, NotFoundError
from app.reading import Reader, ReadResult

_GLOB_CHARS = frozenset("*?[")


class FileReader(Reader):
    types = ("file",)

    def __init__(self, max_bytes: int | None = None, max_matches: int | None = None):
        self.max_bytes = max_bytes
        #: Files one glob may match (``catalog.limits.globMatches``); None: no limit.
        self.max_matches = max_matches

    def read(self, target: str) -> ReadResult:
        path = os.path.abspath(target)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise NotFoundError(f"file {target} does not exist") from None
        except OSError as exc:
            raise InputError(f"Unable to read file {target}, {exc.strerror}") from exc
        if not os.path.isfile(path):
            raise InputError(f"Unable to read file {target}, it is not a regular file")
        if self.max_bytes is not None and stat.st_size > self.max_bytes:
            raise InputError(
                f"Unable to read file {target}, it is {stat.st_size} bytes, "
                f"more than the limit of {self.max_bytes} (catalog.limits.fileBytes)"
            )
        with open(path, "rb") as handle:
            data = handle.read()
        return ReadResult(data=data, target=path, etag=f"{stat.st_mtime_ns}-{stat.st_size}")

    def is_glob(self, target: str) -> bool:
        return any(ch in _GLOB_CHARS for ch in target)

    def search(self, target: str) -> list[str]:
        if not self.is_glob(target):
            return [os.path.abspath(target)]
        files = (m for m in glob.iglob(target, recursive=True) if os.path.isfile(m))
        if self.max_matches is None:
            return sorted(os.path.abspath(m) for m in files)
        # Stop walking at the first file past the limit: a glob such as /**/*.yaml must
        # not list a whole file system before it is refused.
        matches = list(itertools.islice(files, self.max_matches + 1))
        if len(matches) > self.max_matches:
            raise InputError(
                f"The glob {target} matches more than {self.max_matches} files "
                "(catalog.limits.globMatches)"
            )
        return sorted(os.path.abspath(m) for m in matches)

    def resolve(self, base: str, relative: str) -> str:
        if os.path.isabs(relative):
            return os.path.normpath(relative)
        return os.path.normpath(os.path.join(os.path.dirname(base), relative))
