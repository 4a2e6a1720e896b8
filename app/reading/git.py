"""Reading files from git repositories, at a branch, a tag or a commit.

Targets of the ``git`` location type name a repository, a ref and a path::

    <repository-url>#<ref>:<path>       e.g.  git://git.internal/org/repo.git#main:/catalog-info.yaml

where the repository URL is ``file://``, ``git://``, ``http(s)://`` or ``ssh://``, the ref
a branch, a tag or a full commit id (refs cannot contain ``:``), and the path is relative
to the repository root (a glob with ``*``/``**`` matches several files). ``url`` targets of
hosts configured under ``integrations.github`` / ``integrations.gitlab`` read the same way
(:class:`GitUrlReader`): ``https://git.example.com/org/repo/blob/main/catalog-info.yaml``.

How it stays cheap: a ref resolves to a commit with one ``git ls-remote`` (remembered for
``headCacheTtl``; push events forget it); a commit is fetched once, shallowly, into a bare
clone under the cache folder; files are read from that commit's tree with ``git ls-tree`` /
``git cat-file``, never from a working tree. The commit id is the :class:`ReadResult` etag,
so a processor that already holds the entities of that commit reads nothing.

How it stays safe: every git call is an argument list (never a shell) with ``--`` before
URLs, a timeout, ``GIT_TERMINAL_PROMPT=0`` and ``protocol.allow=never`` except the five
transports above, so ``ext::`` and option injection (``--upload-pack=...``) are refused
twice. Paths may not leave the repository; symbolic links, submodules, binary files and
files over the size limit are refused. Reads by API callers are limited to the hosts of
``backend.reading.allow`` and integrations, ``file://`` repositories below
``catalog.allowedFileRoots``, and repositories the operator configured providers for.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import posixpath
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from app.errors import CatalogError, InputError, NotAllowedError, NotFoundError, NotModifiedError
from app.reading import Reader, ReadResult
from app.reading.access import FileRoots, reads_trusted
from app.reading.url import ParsedUrl, allow_predicate

log = logging.getLogger(__name__)

ALLOWED_SCHEMES = ("file", "git", "http", "https", "ssh")
_COMMIT_ID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# Characters git forbids in ref names (git check-ref-format), plus whitespace.
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.|\.lock$|\.lock/|^/|/$|\.$")
_GLOB_CHARS = frozenset("*?[")
# Environment variables that would point git somewhere else than the cache folder.
_GIT_ENV_DROPPED = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_ALLOW_PROTOCOL",
    "GIT_PROTOCOL_FROM_USER",
)
_SECURITY_CONFIG = [
    "protocol.allow=never",
    *(f"protocol.{scheme}.allow=always" for scheme in ALLOWED_SCHEMES),
    # An allowed host must not bounce a fetch to another one.
    "http.followRedirects=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "fetch.recurseSubmodules=false",
    "core.fsmonitor=false",
    "protocol.version=2",
]
# Tree entries kept in memory across listings (the listings of the last commits read).
MAX_LISTED_ENTRIES = 200_000
SYMLINK_MODE = "120000"
SUBMODULE_MODE = "160000"


class GitError(CatalogError):
    """A git command failed (unreachable repository, timeout, refused fetch)."""


# -- what targets look like ----------------------------------------------------------------


def check_repository_url(url: Any) -> str:
    """Validate a repository URL and return it normalised (scheme and host lowercase).

    Refuses anything git could take for an option or a helper transport: a leading
    ``-``, ``ext::``/``fd::`` and any scheme but the five allowed ones, hosts or users
    starting with ``-`` (ssh option injection), control characters and ``..`` segments.
    """
    if not isinstance(url, str) or not url:
        raise InputError("A git repository URL must be a non-empty string")
    if len(url) > 2048:
        raise InputError("The git repository URL is too long")
    if url.startswith("-"):
        raise InputError(f"Refusing git repository URL '{url}': it looks like a command option")
    if "::" in url.split("/", 1)[0]:
        raise InputError(
            f"Refusing git repository URL '{url}': the transport '{url.split('::', 1)[0]}::' "
            f"is not allowed (allowed: {', '.join(ALLOWED_SCHEMES)})"
        )
    if any(ord(ch) < 0x21 or ch == "\x7f" for ch in url):
        raise InputError(
            "Refusing git repository URL: it contains whitespace or control characters"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InputError(f"Invalid git repository URL '{url}'") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise InputError(
            f"Refusing git repository URL '{url}': only "
            f"{', '.join(s + '://' for s in ALLOWED_SCHEMES)} repositories can be read"
        )
    if parts.query or parts.fragment:
        raise InputError(f"Invalid git repository URL '{url}': no query or fragment allowed")
    host = parts.hostname or ""
    if scheme == "file":
        if host not in ("", "localhost"):
            raise InputError(f"Invalid git repository URL '{url}': file URLs have no host")
        netloc = ""
    else:
        if not host or host.startswith("-") or (parts.username or "").startswith("-"):
            raise InputError(f"Invalid git repository URL '{url}': it needs a valid host")
        netloc = host if port is None else f"{host}:{port}"
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
    path = parts.path
    if not path.startswith("/") or path == "/":
        raise InputError(f"Invalid git repository URL '{url}': it needs a repository path")
    segments = unquote(path).split("/")
    if any(segment in ("..", ".") for segment in segments):
        raise InputError(f"Refusing git repository URL '{url}': '..' paths are not allowed")
    return f"{scheme}://{netloc}{path.rstrip('/')}"


def repository_key(url: str) -> str:
    """The identity of a repository, whatever URL spelling names it (for keys and matching).

    Scheme, credentials, a trailing ``.git`` and slashes do not matter:
    ``https://host/org/repo.git`` and ``ssh://git@host/org/repo`` are the same repository.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    path = parts.path.rstrip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    if parts.scheme.lower() == "file":
        return f"file://{path}"
    return f"{host}{path}"


def refresh_key(repository: str) -> str:
    """The refresh key every entity read from ``repository`` registers (push events use it)."""
    return f"git-repo:{repository_key(repository)}"


def check_ref(ref: Any) -> str:
    """Validate a branch, tag or commit name the way ``git check-ref-format`` would."""
    if not isinstance(ref, str) or not ref:
        raise InputError("A git ref (branch, tag or commit) must be a non-empty string")
    if ref.startswith("-") or len(ref) > 255 or _BAD_REF.search(ref) or ref == "@":
        raise InputError(f"Refusing git ref '{ref}': it is not a valid branch, tag or commit name")
    return ref


def check_path(path: Any, *, allow_root: bool = False) -> str:
    """A repository-relative path, normalised with a leading ``/``; refuses escaping it."""
    if not isinstance(path, str):
        raise InputError("A path inside a git repository must be a string")
    if "\x00" in path or "\\" in path:
        raise InputError(f"Refusing path '{path}': NUL and backslashes are not allowed")
    stripped = path.lstrip("/")
    if not stripped:
        if allow_root:
            return "/"
        raise InputError("A path inside the git repository is required")
    if any(segment == ".." for segment in stripped.split("/")):
        normal = posixpath.normpath(stripped)
        if normal == ".." or normal.startswith("../"):
            raise InputError(f"Refusing path '{path}': it leaves the repository")
    normal = posixpath.normpath(stripped)
    if normal == ".":
        if allow_root:
            return "/"
        raise InputError("A path inside the git repository is required")
    if any(part == ".git" for part in normal.split("/")):
        raise InputError(f"Refusing path '{path}': .git is not part of a repository's tree")
    return "/" + normal


def is_glob(path: str) -> bool:
    return any(ch in _GLOB_CHARS for ch in path)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """``/**/catalog-info.yaml`` style globs: ``**`` spans folders (also none), ``*`` does not."""
    pattern = "/" + pattern.lstrip("/")
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("/**/", i):
            out.append("(?:/.*)?/")
            i += 4
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
                i += 1
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(ch))
            i += 1
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class GitHost:
    """An integration host: how its web URLs look (``github`` or ``gitlab``) and its token."""

    host: str
    style: str = "github"
    token: str | None = None
    api_base_url: str | None = None

    def matches(self, hostname: str, port: int | None) -> bool:
        name, _, wanted_port = self.host.lower().partition(":")
        if name != hostname.lower():
            return False
        return not wanted_port or (port is not None and str(port) == wanted_port)


WELL_KNOWN_HOSTS = (GitHost("github.com", "github"), GitHost("gitlab.com", "gitlab"))


@dataclass(frozen=True)
class GitTarget:
    """A file or glob in a repository at a ref, and how to write it back as a target."""

    repository: str
    ref: str
    path: str
    #: "git" for ``<repo>#<ref>:<path>``; "github"/"gitlab" for blob URLs of an integration.
    form: str = "git"
    #: For blob URLs: ``scheme://host/org/repo``, the web address the URL was built on.
    web_base: str | None = None

    @property
    def text(self) -> str:
        if self.form == "git":
            return f"{self.repository}#{self.ref}:{self.path}"
        marker = "/-/blob/" if self.form == "gitlab" else "/blob/"
        return f"{self.web_base}{marker}{self.ref}{self.path}"

    @property
    def location_type(self) -> str:
        return "git" if self.form == "git" else "url"

    def with_path(self, path: str) -> GitTarget:
        return replace(self, path=path)

    def with_ref(self, ref: str) -> GitTarget:
        return replace(self, ref=ref)


def parse_git_target(target: str) -> GitTarget:
    """Parse ``<repository-url>#<ref>:<path>`` (the ``git`` location type)."""
    repository, hash_sign, rest = target.partition("#")
    if not hash_sign:
        raise InputError(
            f"Invalid git target '{target}': expected <repository-url>#<ref>:<path>, "
            "e.g. git://git.example.com/org/repo.git#main:/catalog-info.yaml"
        )
    ref, colon, path = rest.partition(":")
    if not colon:
        raise InputError(f"Invalid git target '{target}': expected #<ref>:<path> after the URL")
    return GitTarget(check_repository_url(repository), check_ref(ref), check_path(path))


def web_base_of(repository: str, hosts: Iterable[GitHost]) -> tuple[str, str] | None:
    """``(web base URL, style)`` of a repository on a known host, for view and edit links."""
    parts = urlsplit(repository)
    hostname = (parts.hostname or "").lower()
    if not hostname:
        return None
    for host in [*hosts, *WELL_KNOWN_HOSTS]:
        if host.matches(hostname, parts.port) or host.host.lower() == hostname:
            path = parts.path.rstrip("/")
            if path.endswith(".git"):
                path = path[: -len(".git")]
            if parts.scheme in ("http", "https"):
                netloc = hostname if parts.port is None else f"{hostname}:{parts.port}"
                return f"{parts.scheme}://{netloc}{path}", host.style
            return f"https://{host.host.lower()}{path}", host.style
    return None


def scm_annotations(
    target: GitTarget,
    hosts: Iterable[GitHost],
    web_bases: dict[str, tuple[str, str]] | None = None,
) -> dict[str, str]:
    """``backstage.io/view-url``, ``edit-url`` and ``source-location`` of a file in git.

    ``web_bases`` (repository key to web URL and style) wins over host patterns: a GitHub
    provider knows each repository's ``html_url`` even where clones come from elsewhere.
    """
    folder = posixpath.dirname(target.path).rstrip("/") + "/"
    known = (web_bases or {}).get(repository_key(target.repository))
    if known is None and target.form == "git":
        known = web_base_of(target.repository, hosts)
    if target.form != "git":
        known = (target.web_base or "", target.form)
    if known is None:
        return {"backstage.io/source-location": f"git:{target.repository}#{target.ref}:{folder}"}
    base, style = known
    dash = "/-" if style == "gitlab" else ""
    return {
        "backstage.io/view-url": f"{base}{dash}/blob/{target.ref}{target.path}",
        "backstage.io/edit-url": f"{base}{dash}/edit/{target.ref}{target.path}",
        "backstage.io/source-location": f"url:{base}{dash}/tree/{target.ref}{folder}",
    }


# -- running git ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    type: str
    oid: str
    size: int | None
    path: str


@dataclass
class _Head:
    commit: str
    at: float
    #: The full ref name it came from (refs/heads/main), None for a commit id.
    refname: str | None


@dataclass
class GitSettings:
    cache_dir: str = "var/git-cache"
    timeout: float = 60.0
    max_bytes: int = 10 * 1024 * 1024
    head_ttl: float = 30.0
    shallow: bool = True
    hosts: list[GitHost] = field(default_factory=list)


def _redact(text: str) -> str:
    """Credentials never go into logs or error messages."""
    return re.sub(r"(://)[^/@\s]+@", r"\1***@", text)


class GitReader(Reader):
    """Reads ``git`` targets; shared by processors and providers of one process."""

    types = ("git",)

    def __init__(
        self,
        settings: GitSettings | None = None,
        *,
        allow: list[dict[str, Any]] | None = None,
        file_roots: list[str] | None = None,
    ):
        self.settings = settings or GitSettings()
        self.cache_dir = Path(self.settings.cache_dir).resolve()
        self.hosts = list(self.settings.hosts)
        #: Hosts known only for their web links (a GitHub provider's host), not for reading.
        self.web_hosts: list[GitHost] = []
        #: Web URL and style by repository key, from providers that know them (html_url).
        self.web_bases: dict[str, tuple[str, str]] = {}
        self._host_allowed = allow_predicate(allow or [])
        self._file_roots = FileRoots(file_roots or [])
        self._allowed_repositories: set[str] = set()
        self._allowed_prefixes: set[str] = set()
        self._heads: dict[tuple[str, str], _Head] = {}
        self._listings: OrderedDict[tuple[str, str], list[TreeEntry]] = OrderedDict()
        self._present: set[tuple[str, str]] = set()
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        #: What the reader did: ls-remote, fetch, ls-tree, read (file contents), by name.
        self.stats: Counter[str] = Counter()

    # -- who may read what ---------------------------------------------------------------

    def allow_repository(self, repository: str) -> None:
        """Let API-originated processing read this repository (a provider's own source)."""
        self._allowed_repositories.add(repository_key(repository))

    def allow_repository_prefix(self, prefix: str) -> None:
        """Let processing read every repository whose key starts with ``prefix``."""
        self._allowed_prefixes.add(prefix.rstrip("/") + "/")

    def repository_allowed(self, repository: str) -> bool:
        key = repository_key(repository)
        if key in self._allowed_repositories or any(
            key.startswith(prefix) for prefix in self._allowed_prefixes
        ):
            return True
        parts = urlsplit(repository)
        if parts.scheme == "file":
            return self._file_roots.contains(unquote(parts.path))
        hostname = (parts.hostname or "").lower()
        if any(host.matches(hostname, parts.port) for host in self.hosts):
            return True
        # backend.reading.allow speaks of web hosts; a host rule covers every transport.
        return self._host_allowed(ParsedUrl("https", hostname, parts.port, parts.path or "/"))

    def check_repository(self, repository: str) -> None:
        if not self.repository_allowed(repository):
            raise NotAllowedError(
                f"Reading from git repository '{_redact(repository)}' is not allowed. Add its "
                "host to 'backend.reading.allow' or 'integrations', or a folder that contains "
                "it to 'catalog.allowedFileRoots'"
            )

    def check_allowed(self, target: str) -> None:
        self.check_repository(parse_git_target(target).repository)

    def check_trust(self, repository: str) -> None:
        """Refuse ``repository`` to untrusted processing (API input) unless it is allowed."""
        if not reads_trusted():
            self.check_repository(repository)

    # -- Reader interface --------------------------------------------------------------------

    def parse(self, target: str) -> GitTarget:
        return parse_git_target(target)

    def read(self, target: str, etag: str | None = None) -> ReadResult:
        """The file at the ref's current commit; NotModifiedError when that commit is ``etag``."""
        parsed = self.parse(target)
        self.check_trust(parsed.repository)
        commit = self.head(parsed.repository, parsed.ref)
        if etag is not None and etag == commit:
            raise NotModifiedError("")
        data = self.read_file(parsed.repository, commit, parsed.path)
        return ReadResult(data=data, target=parsed.text, etag=commit)

    def is_glob(self, target: str) -> bool:
        return is_glob(self.parse(target).path)

    def search(self, target: str) -> list[str]:
        parsed = self.parse(target)
        if not is_glob(parsed.path):
            return [parsed.text]
        self.check_trust(parsed.repository)
        commit = self.head(parsed.repository, parsed.ref)
        return [
            parsed.with_path(p).text for p in self.match(parsed.repository, commit, parsed.path)
        ]

    def resolve(self, base: str, relative: str) -> str:
        if "://" in relative:
            return self.parse(relative).text  # already absolute: another repository
        return resolve_relative(self.parse(base), relative).text

    # -- refs and commits --------------------------------------------------------------------

    def invalidate(self, repository: str | None = None) -> None:
        """Forget resolved heads (of one repository, or all): the next read asks the server."""
        with self._lock:
            if repository is None:
                self._heads.clear()
                return
            key = repository_key(repository)
            for cached in [k for k in self._heads if repository_key(k[0]) == key]:
                del self._heads[cached]

    def cached_head(self, repository: str, ref: str) -> str | None:
        entry = self._heads.get((repository, ref))
        return entry.commit if entry else None

    def head(self, repository: str, ref: str, *, fresh: bool = False) -> str:
        """The commit ``ref`` points at: asked with ls-remote, remembered for ``headCacheTtl``."""
        repository = check_repository_url(repository)
        check_ref(ref)
        if _COMMIT_ID.match(ref):
            return ref
        now = time.monotonic()
        entry = self._heads.get((repository, ref))
        if entry is not None and not fresh and now - entry.at < self.settings.head_ttl:
            return entry.commit
        commit, refname = self._ls_remote(repository, ref)
        with self._lock:
            self._heads[(repository, ref)] = _Head(commit, time.monotonic(), refname)
        return commit

    def default_branch(self, repository: str) -> tuple[str, str]:
        """``(branch, commit)`` of the remote's HEAD, in one ls-remote (branch ``HEAD`` if the
        server does not say which branch it is)."""
        repository = check_repository_url(repository)
        output = self._git(["ls-remote", "--symref", "--", repository, "HEAD"], what="ls-remote")
        self.stats["ls-remote"] += 1
        branch, commit = "HEAD", None
        for line in output.decode("utf-8", "replace").splitlines():
            if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
                branch = line[len("ref: refs/heads/") : -len("\tHEAD")]
            elif line.endswith("\tHEAD"):
                commit = line.partition("\t")[0]
        if commit is None:
            raise NotFoundError(
                f"{_redact(repository)} has no default branch (an empty repository?)"
            )
        refname = "HEAD" if branch == "HEAD" else f"refs/heads/{branch}"
        with self._lock:
            self._heads[(repository, branch)] = _Head(commit, time.monotonic(), refname)
        return branch, commit

    def _ls_remote(self, repository: str, ref: str) -> tuple[str, str]:
        if ref == "HEAD" or ref.startswith("refs/"):
            patterns = [ref, f"{ref}^{{}}"]
        else:
            patterns = [f"refs/heads/{ref}", f"refs/tags/{ref}", f"refs/tags/{ref}^{{}}"]
        output = self._git(["ls-remote", "--", repository, *patterns], what="ls-remote")
        self.stats["ls-remote"] += 1
        found: dict[str, str] = {}
        for line in output.decode("utf-8", "replace").splitlines():
            sha, _, name = line.partition("\t")
            found[name] = sha
        for name in (p for p in patterns if not p.endswith("^{}")):
            # An annotated tag names a tag object: the commit is its peeled ("^{}") value.
            commit = found.get(f"{name}^{{}}") or found.get(name)
            if commit:
                return commit, name
        raise NotFoundError(f"git ref '{ref}' was not found in {_redact(repository)}")

    def remote_refs(self, repository: str) -> set[str]:
        """Short names of every branch and tag (to split ``/blob/<ref>/<path>`` URLs)."""
        output = self._git(["ls-remote", "--heads", "--tags", "--", repository], what="ls-remote")
        self.stats["ls-remote"] += 1
        names: set[str] = set()
        for line in output.decode("utf-8", "replace").splitlines():
            name = line.partition("\t")[2].removesuffix("^{}")
            for prefix in ("refs/heads/", "refs/tags/"):
                if name.startswith(prefix):
                    names.add(name[len(prefix) :])
        return names

    # -- the cache of bare clones ----------------------------------------------------------

    def cache_path(self, repository: str) -> Path:
        # One clone per URL (without credentials): two servers may serve the same path.
        key = re.sub(r"://[^/@]*@", "://", check_repository_url(repository)).removesuffix(".git")
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        slug = re.sub(r"[^A-Za-z0-9._-]", "_", key.rsplit("/", 1)[-1])[:40] or "repo"
        return self.cache_dir / f"{slug}-{digest}.git"

    def _repo_lock(self, path: Path) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(str(path), threading.Lock())

    def _ensure_clone(self, path: Path) -> None:
        if (path / "HEAD").exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.init-{os.getpid()}-{threading.get_ident()}")
        self._git(["init", "--bare", "--quiet", "--", str(temporary)], what="init")
        try:
            os.rename(temporary, path)
        except OSError:
            # Another process initialised it first: theirs is as good as ours.
            shutil.rmtree(temporary, ignore_errors=True)

    def has_commit(self, repository: str, commit: str) -> bool:
        path = self.cache_path(repository)
        if (str(path), commit) in self._present:
            return True
        if not (path / "HEAD").exists():
            return False
        result = self._run(["-C", str(path), "cat-file", "-e", f"{commit}^{{commit}}"])
        if result.returncode == 0:
            self._note_present(path, commit)
        return result.returncode == 0

    def _note_present(self, path: Path, commit: str) -> None:
        # Objects are never removed from the clones (gc.auto=0): present stays present.
        with self._lock:
            if len(self._present) > 100_000:
                self._present.clear()
            self._present.add((str(path), commit))

    def ensure_commit(self, repository: str, ref: str, commit: str) -> str:
        """Make ``commit`` (what ``ref`` resolved to) available locally; fetch if needed.

        Returns the commit now held for ``ref``: the same, or a newer one if the branch
        moved between ``ls-remote`` and the fetch (then the head cache learns it too).
        """
        repository = check_repository_url(repository)
        path = self.cache_path(repository)
        with self._repo_lock(path):
            if self.has_commit(repository, commit):
                return commit
            self._ensure_clone(path)
            entry = self._heads.get((repository, ref))
            refname = entry.refname if entry is not None and entry.commit == commit else None
            local = "refs/catalog/" + hashlib.sha256(f"{ref}".encode()).hexdigest()[:16]
            source = refname or commit
            args = ["-C", str(path), "fetch", "--quiet", "--no-tags", "--no-write-fetch-head"]
            if self.settings.shallow:
                args.append("--depth=1")
            args += ["--", repository, f"+{source}:{local}"]
            self._git_retrying(args, what="fetch")
            self.stats["fetch"] += 1
            fetched = self._git(["-C", str(path), "rev-parse", "--verify", f"{local}^{{commit}}"])
            got = fetched.decode().strip()
            self._note_present(path, got)
        if got != commit and refname is not None:
            with self._lock:
                self._heads[(repository, ref)] = _Head(got, time.monotonic(), refname)
        return got

    def snapshot(self, repository: str, ref: str, *, fresh: bool = False) -> str:
        """Resolve ``ref`` and make its commit available locally; return the commit."""
        commit = self.head(repository, ref, fresh=fresh)
        return self.ensure_commit(repository, ref, commit)

    # -- trees and files ---------------------------------------------------------------------

    def list_tree(self, repository: str, commit: str) -> list[TreeEntry]:
        """Every file of ``commit`` (recursively), remembered for a few commits."""
        key = (str(self.cache_path(repository)), commit)
        with self._lock:
            if key in self._listings:
                self._listings.move_to_end(key)
                return self._listings[key]
        path = self.cache_path(repository)
        output = self._git(
            ["-C", str(path), "ls-tree", "-r", "-l", "-z", "--full-tree", commit], what="ls-tree"
        )
        self.stats["ls-tree"] += 1
        entries = [_tree_entry(item) for item in output.split(b"\x00") if item]
        with self._lock:
            self._listings[key] = entries
            # Bounded by files, not commits: many small repositories fit, few huge ones.
            while len(self._listings) > 1 and (
                sum(len(v) for v in self._listings.values()) > MAX_LISTED_ENTRIES
            ):
                self._listings.popitem(last=False)
        return entries

    def match(self, repository: str, commit: str, pattern: str) -> list[str]:
        """Paths (``/a/b.yaml``) of the files at ``commit`` matching a glob, sorted.

        Submodules never match; symbolic links do, so that reading them fails visibly.
        """
        self.ensure_local(repository, commit)
        regex = glob_regex(check_path(pattern))
        return sorted(
            "/" + entry.path
            for entry in self.list_tree(repository, commit)
            if entry.type == "blob" and regex.match("/" + entry.path)
        )

    def ensure_local(self, repository: str, commit: str) -> None:
        if not self.has_commit(repository, commit):
            self.ensure_commit(repository, commit, commit)

    def entry(self, repository: str, commit: str, path: str) -> TreeEntry:
        """What ``path`` is at ``commit`` (from a listing of that commit if one is at hand)."""
        self.ensure_local(repository, commit)
        clone = self.cache_path(repository)
        relative = check_path(path).lstrip("/")
        with self._lock:
            listing = self._listings.get((str(clone), commit))
        if listing is not None:
            for entry in listing:
                if entry.path == relative:
                    return entry
            if not any(e.path.startswith(relative + "/") for e in listing):
                raise NotFoundError(
                    f"{relative} does not exist in {_redact(repository)} at commit {commit[:12]}"
                )
        output = self._git(
            ["-C", str(clone), "ls-tree", "-l", "-z", "--full-tree", commit, "--", relative],
            what="ls-tree",
        )
        self.stats["ls-tree"] += 1
        for item in output.split(b"\x00"):
            if item:
                entry = _tree_entry(item)
                if entry.path == relative:
                    return entry
        raise NotFoundError(
            f"{relative} does not exist in {_redact(repository)} at commit {commit[:12]}"
        )

    def read_file(
        self, repository: str, commit: str, path: str, entry: TreeEntry | None = None
    ) -> bytes:
        """The content of one file at ``commit``, if it is a regular, textual, small file."""
        if entry is None:
            entry = self.entry(repository, commit, path)
        where = f"{entry.path} in {_redact(repository)}"
        if entry.mode == SYMLINK_MODE:
            raise InputError(f"Refusing {where}: it is a symbolic link, which is never followed")
        if entry.mode == SUBMODULE_MODE or entry.type == "commit":
            raise InputError(f"Refusing {where}: it is a submodule")
        if entry.type != "blob":
            raise InputError(f"Refusing {where}: it is a folder, not a file")
        if entry.size is not None and entry.size > self.settings.max_bytes:
            raise InputError(
                f"Refusing {where}: it is {entry.size} bytes, more than the limit of "
                f"{self.settings.max_bytes} bytes (backend.reading.maxBytes)"
            )
        data = self._git(
            ["-C", str(self.cache_path(repository)), "cat-file", "blob", entry.oid], what="read"
        )
        self.stats["read"] += 1
        if b"\x00" in data[:8000]:
            raise InputError(f"Refusing {where}: it is a binary file, not YAML or text")
        return data

    # -- subprocesses ----------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROPPED}
        env.update(
            GIT_TERMINAL_PROMPT="0",
            GIT_LITERAL_PATHSPECS="1",
            GCM_INTERACTIVE="never",
            GIT_SSH_COMMAND=os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
        )
        headers = [(host.host.lower(), host.token) for host in self.hosts if host.token is not None]
        # Tokens travel in the environment (not argv, which other users can list).
        for index, (host, token) in enumerate(headers):
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            env[f"GIT_CONFIG_KEY_{index}"] = f"http.https://{host}/.extraHeader"
            env[f"GIT_CONFIG_VALUE_{index}"] = f"Authorization: Basic {basic}"
        if headers:
            env["GIT_CONFIG_COUNT"] = str(len(headers))
        return env

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[bytes]:
        command = ["git"]
        for setting in _SECURITY_CONFIG:
            command += ["-c", setting]
        command += args
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._environment(),
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=self.settings.timeout)
        except subprocess.TimeoutExpired:
            # git spawns helpers (ssh, remote-http, upload-pack): end the whole group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise GitError(
                f"git {args[2] if args[0] == '-C' else args[0]} gave no answer within "
                f"{self.settings.timeout:g} seconds"
            ) from None
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

    def _git(self, args: list[str], *, what: str | None = None) -> bytes:
        result = self._run(args)
        if result.returncode != 0:
            message = _redact(result.stderr.decode("utf-8", "replace").strip())
            lines = [line for line in message.splitlines() if line.strip()]
            detail = "; ".join(lines[-3:]) or f"exit status {result.returncode}"
            raise GitError(f"git {what or args[0]} failed: {detail}")
        return result.stdout

    def _git_retrying(self, args: list[str], *, what: str) -> bytes:
        """Run a fetch, once more if another process held the clone's lock files."""
        try:
            return self._git(args, what=what)
        except GitError as exc:
            if ".lock" not in str(exc):
                raise
            time.sleep(0.5)
            return self._git(args, what=what)


def _tree_entry(item: bytes) -> TreeEntry:
    meta, _, raw_path = item.partition(b"\t")
    mode, kind, oid, size = meta.decode().split(maxsplit=3)
    return TreeEntry(
        mode=mode,
        type=kind,
        oid=oid,
        size=int(size) if size.strip().isdigit() else None,
        path=raw_path.decode("utf-8", "surrogateescape"),
    )


def resolve_relative(base: GitTarget, relative: str) -> GitTarget:
    """``relative`` against the file ``base``: same repository and ref; never outside it."""
    if "://" in relative or "#" in relative:
        raise InputError(
            f"'{relative}' is not a path relative to {base.text}; use an absolute target"
        )
    if relative.startswith("/"):
        return base.with_path(check_path(relative))
    # Joined without the leading "/", so "../" past the root shows instead of being clamped.
    folder = posixpath.dirname(base.path).lstrip("/")
    joined = posixpath.normpath(posixpath.join(folder, relative)) if folder else relative
    joined = posixpath.normpath(joined)
    if joined == ".." or joined.startswith("../"):
        raise InputError(f"Refusing path '{relative}': it leaves the repository of {base.text}")
    return base.with_path(check_path(joined))


# -- url targets on integration hosts ------------------------------------------------------


class GitUrlReader(Reader):
    """The ``url`` reader: blob URLs of integration hosts through git, the rest over HTTP."""

    types = ("url",)

    def __init__(self, http: Reader, git: GitReader):
        self.http = http
        self.git = git

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)

    def locate(self, url: str) -> GitTarget | None:
        """The git target behind a blob URL of an integration host, or None."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        if parts.scheme not in ("http", "https") or parts.query or parts.fragment:
            return None
        hostname = (parts.hostname or "").lower()
        host = next((h for h in self.git.hosts if h.matches(hostname, port)), None)
        if host is None:
            return None
        segments = parts.path.split("/")[1:]
        if host.style == "gitlab":
            if "-" not in segments:
                return None
            cut = segments.index("-")
            repo, rest = segments[:cut], segments[cut + 1 :]
        else:
            repo, rest = segments[:2], segments[2:]
        if len(repo) < 2 or len(rest) < 2 or rest[0] not in ("blob", "tree"):
            return None
        netloc = hostname if port is None else f"{hostname}:{port}"
        web_base = f"{parts.scheme}://{netloc}/{'/'.join(repo)}"
        ref_and_path = rest[1:]
        ref, path = ref_and_path[0], "/" + "/".join(ref_and_path[1:])
        return GitTarget(
            check_repository_url(web_base),
            check_ref(ref),
            check_path(path, allow_root=True),
            form=host.style,
            web_base=web_base,
        )

    def split_ref(self, target: GitTarget) -> GitTarget:
        """Blob URLs do not say where a ref with slashes ends: find the longest existing ref."""
        try:
            self.git.head(target.repository, target.ref)
            return target
        except NotFoundError:
            segments = (target.ref + target.path).split("/")
            if len(segments) < 3:
                raise
            names = self.git.remote_refs(target.repository)
            for cut in range(len(segments) - 1, 1, -1):
                ref = "/".join(segments[:cut])
                if ref in names:
                    return replace(target, ref=ref, path=check_path("/".join(segments[cut:])))
            raise

    def read(self, target: str, etag: str | None = None) -> ReadResult:
        located = self.locate(target)
        if located is None:
            return self.http.read(target, etag=etag)  # type: ignore[call-arg]
        located = self.split_ref(located)
        commit = self.git.head(located.repository, located.ref)
        if etag is not None and etag == commit:
            raise NotModifiedError("")
        data = self.git.read_file(located.repository, commit, located.path)
        return ReadResult(data=data, target=target, etag=commit)

    def check_allowed(self, target: str) -> None:
        located = self.locate(target)
        if located is None:
            self.http.check_allowed(target)
        else:
            self.git.check_repository(located.repository)

    def search(self, target: str) -> list[str]:
        located = self.locate(target)
        if located is None:
            return self.http.search(target)
        if not is_glob(located.path):
            return [target]
        located = self.split_ref(located)
        commit = self.git.head(located.repository, located.ref)
        return [
            located.with_path(p).text
            for p in self.git.match(located.repository, commit, located.path)
        ]

    def is_glob(self, target: str) -> bool:
        located = self.locate(target)
        return located is not None and is_glob(located.path)

    def resolve(self, base: str, relative: str) -> str:
        located = self.locate(base)
        if located is None or relative.startswith(("http://", "https://")):
            return self.http.resolve(base, relative)
        return resolve_relative(located, relative).text
