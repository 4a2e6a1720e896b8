"""The git reader on real repositories: refs, caching, access and everything it refuses."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import InputError, NotAllowedError, NotFoundError, NotModifiedError
from app.reading.access import read_trust
from app.reading.git import (
    GitError,
    GitHost,
    GitReader,
    GitSettings,
    GitUrlReader,
    check_path,
    check_ref,
    check_repository_url,
    glob_regex,
    parse_git_target,
    repository_key,
    resolve_relative,
)
from app.reading.url import UrlReader
from tests.gitrepos import Remote, git_daemon


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    repo = Remote(tmp_path / "srv" / "org", "repo", tmp_path / "work")
    repo.write("catalog-info.yaml", "kind: Component\n")
    repo.write("a/b/catalog-info.yaml", "kind: API\n")
    repo.write("a/other.yaml", "x: 1\n")
    repo.commit("initial")
    return repo


@pytest.fixture
def reader(tmp_path: Path) -> GitReader:
    return GitReader(GitSettings(cache_dir=str(tmp_path / "cache"), timeout=10, max_bytes=1024))


def test_reads_a_file_at_a_branch_and_caches_by_commit(reader, remote):
    target = f"{remote.file_url}#main:/catalog-info.yaml"
    result = reader.read(target)
    assert result.data == b"kind: Component\n"
    assert result.etag == remote.head()
    assert result.target == target
    # Same commit: NotModified, nothing fetched or read again.
    stats = dict(reader.stats)
    with pytest.raises(NotModifiedError):
        reader.read(target, etag=result.etag)
    assert reader.stats["fetch"] == stats["fetch"]
    assert reader.stats["read"] == stats["read"]


def test_the_head_is_remembered_for_the_ttl_and_forgotten_on_demand(tmp_path, remote):
    reader = GitReader(GitSettings(cache_dir=str(tmp_path / "cache"), head_ttl=3600))
    target = f"{remote.file_url}#main:/catalog-info.yaml"
    first = reader.read(target)
    remote.write("catalog-info.yaml", "kind: System\n")
    newer = remote.commit()
    assert reader.read(target).etag == first.etag  # still the remembered head
    assert reader.stats["ls-remote"] == 1
    reader.invalidate(remote.file_url)
    assert reader.read(target).etag == newer
    assert reader.stats["ls-remote"] == 2


def test_glob_search_across_folders(reader, remote):
    found = reader.search(f"{remote.file_url}#main:/**/catalog-info.yaml")
    assert found == [
        f"{remote.file_url}#main:/a/b/catalog-info.yaml",
        f"{remote.file_url}#main:/catalog-info.yaml",
    ]
    assert reader.search(f"{remote.file_url}#main:/a/*.yaml") == [
        f"{remote.file_url}#main:/a/other.yaml"
    ]


def test_glob_patterns():
    assert glob_regex("/**/catalog-info.yaml").match("/catalog-info.yaml")
    assert glob_regex("/**/catalog-info.yaml").match("/x/y/catalog-info.yaml")
    assert not glob_regex("/*/catalog-info.yaml").match("/x/y/catalog-info.yaml")
    assert not glob_regex("/catalog-info.yaml").match("/x/catalog-info.yaml")
    assert glob_regex("/services/*/catalog-info.y?ml").match("/services/a/catalog-info.yaml")


def test_tags_annotated_and_commits(reader, remote):
    first = remote.head()
    remote.tag("v1.0")
    remote.write("catalog-info.yaml", "kind: Group\n")
    remote.commit()
    assert reader.read(f"{remote.file_url}#v1.0:/catalog-info.yaml").etag == first
    pinned = reader.read(f"{remote.file_url}#{first}:/catalog-info.yaml")
    assert pinned.data == b"kind: Component\n"
    assert reader.read(f"{remote.file_url}#main:/catalog-info.yaml").data == b"kind: Group\n"


def test_missing_files_refs_and_repositories(reader, remote, tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        reader.read(f"{remote.file_url}#main:/nope.yaml")
    with pytest.raises(NotFoundError, match="ref 'nope' was not found"):
        reader.read(f"{remote.file_url}#nope:/catalog-info.yaml")
    with pytest.raises(GitError, match="git ls-remote failed"):
        reader.read(f"file://{tmp_path}/missing.git#main:/catalog-info.yaml")
    with pytest.raises(InputError, match="it is a folder"):
        reader.read(f"{remote.file_url}#main:/a")


def test_git_daemon_and_a_force_push(reader, remote, tmp_path):
    with git_daemon(tmp_path / "srv") as port:
        target = f"git://127.0.0.1:{port}/org/repo.git#main:/catalog-info.yaml"
        remote.write("catalog-info.yaml", "kind: System\n")
        remote.commit("to be rewritten")
        assert reader.read(target).data == b"kind: System\n"
        remote.write("catalog-info.yaml", "kind: Domain\n")
        rewritten = remote.rewrite_last_commit()
        reader.invalidate()
        result = reader.read(target)
        assert (result.data, result.etag) == (b"kind: Domain\n", rewritten)


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("--upload-pack=touch /tmp/pwned", "looks like a command option"),
        ("-oProxyCommand=x", "looks like a command option"),
        ("ext::sh -c touch% /tmp/pwned", "transport 'ext::' is not allowed"),
        ("fd::3", "transport 'fd::' is not allowed"),
        ("ssh://-oProxyCommand=touch%20x/repo", "needs a valid host"),
        ("ssh://-user@host/repo", "needs a valid host"),
        ("ftp://example.com/repo.git", "only file://, git://, http://, https://, ssh://"),
        ("file://remote-host/srv/repo.git", "file URLs have no host"),
        ("file:///srv/a/../../etc", "'..' paths are not allowed"),
        ("https://host/org/%2e%2e/x", "'..' paths are not allowed"),
        ("https://host/org/repo\nx", "whitespace or control characters"),
        ("https://host/org/repo?upload-pack=x", "no query or fragment"),
        ("https://host", "needs a repository path"),
        ("", "non-empty string"),
    ],
)
def test_repository_urls_that_are_refused(url, message):
    with pytest.raises(InputError, match=message.replace("?", r"\?")):
        check_repository_url(url)


@pytest.mark.parametrize(
    "ref", ["--output=/tmp/x", "-b", "a..b", "a b", "ref:path", "a^{tree}", "x@{1}", "a.lock"]
)
def test_refs_that_are_refused(ref):
    with pytest.raises(InputError, match="not a valid branch, tag or commit"):
        check_ref(ref)


@pytest.mark.parametrize("path", ["../etc/passwd", "/a/../../x", "a/../../x", "/.git/config"])
def test_paths_that_leave_the_repository_are_refused(path):
    with pytest.raises(InputError, match="leaves the repository|.git is not part"):
        check_path(path)


def test_relative_paths_stay_inside_the_repository(remote):
    base = parse_git_target(f"{remote.file_url}#main:/a/b/catalog-info.yaml")
    assert resolve_relative(base, "../other.yaml").path == "/a/other.yaml"
    assert resolve_relative(base, "/docs/x.md").path == "/docs/x.md"
    with pytest.raises(InputError, match="leaves the repository"):
        resolve_relative(base, "../../../outside.yaml")
    with pytest.raises(InputError, match="not a path relative"):
        resolve_relative(base, "https://elsewhere/x")


def test_git_itself_refuses_helper_transports(reader, tmp_path):
    # Validation stops these first; protocol.allow=never is the second line of defence.
    marker = tmp_path / "pwned"
    with pytest.raises(GitError, match="transport 'ext' not allowed"):
        reader._git(["ls-remote", "--", f"ext::sh -c touch% {marker}"], what="ls-remote")
    assert not marker.exists()


def test_symlinks_huge_and_binary_files_are_refused(reader, remote):
    remote.symlink("escape.yaml", "/etc/passwd")
    remote.symlink("up/catalog-info.yaml", "../../../../etc/passwd")
    remote.write("big.yaml", "x" * 2000)
    remote.write("binary.yaml", b"PK\x03\x04\x00\x00binary")
    remote.commit("bad files")
    base = f"{remote.file_url}#main:"
    with pytest.raises(InputError, match="symbolic link"):
        reader.read(base + "/escape.yaml")
    with pytest.raises(InputError, match="symbolic link"):
        reader.read(base + "/up/catalog-info.yaml")
    with pytest.raises(InputError, match="2000 bytes, more than the limit of 1024"):
        reader.read(base + "/big.yaml")
    with pytest.raises(InputError, match="binary file"):
        reader.read(base + "/binary.yaml")
    assert b"root:" not in reader.read(base + "/catalog-info.yaml").data


def test_untrusted_reads_stay_within_allowed_repositories(tmp_path, remote):
    target = f"{remote.file_url}#main:/catalog-info.yaml"
    reader = GitReader(GitSettings(cache_dir=str(tmp_path / "cache")))
    assert reader.read(target).data  # trusted (configuration): anything
    with read_trust(False), pytest.raises(NotAllowedError, match="is not allowed"):
        reader.read(target)
    rooted = GitReader(
        GitSettings(cache_dir=str(tmp_path / "cache")), file_roots=[str(tmp_path / "srv")]
    )
    with read_trust(False):
        assert rooted.read(target).data
    hosts = GitReader(
        GitSettings(cache_dir=str(tmp_path / "cache")), allow=[{"host": "git.example.com"}]
    )
    assert hosts.repository_allowed("ssh://git@git.example.com/org/repo.git")
    assert not hosts.repository_allowed("ssh://git@git.example.com:2222/org/repo.git")
    assert not hosts.repository_allowed("https://other.example.com/org/repo.git")
    hosts.allow_repository("https://other.example.com/org/repo")
    assert hosts.repository_allowed("https://other.example.com/org/repo.git")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers: a git server that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def test_every_git_call_has_a_timeout(tmp_path, silent_server):
    reader = GitReader(GitSettings(cache_dir=str(tmp_path / "cache"), timeout=1))
    started = time.monotonic()
    with pytest.raises(GitError, match="no answer within 1 seconds"):
        reader.read(f"git://127.0.0.1:{silent_server}/org/repo.git#main:/catalog-info.yaml")
    assert time.monotonic() - started < 5


def test_repository_keys_ignore_spelling():
    assert repository_key("https://Host.example.com/org/repo.git") == "host.example.com/org/repo"
    assert repository_key("ssh://git@host.example.com/org/repo") == "host.example.com/org/repo"
    assert repository_key("file:///srv/repo.git/") == "file:///srv/repo"


def test_blob_urls_of_integration_hosts(tmp_path, remote):
    reader = GitReader(
        GitSettings(
            cache_dir=str(tmp_path / "cache"),
            hosts=[GitHost("git.example.com", "github"), GitHost("gitlab.example.com", "gitlab")],
        )
    )
    urls = GitUrlReader(UrlReader([]), reader)
    located = urls.locate("https://git.example.com/org/repo/blob/main/a/catalog-info.yaml")
    assert located is not None
    assert (located.repository, located.ref, located.path) == (
        "https://git.example.com/org/repo",
        "main",
        "/a/catalog-info.yaml",
    )
    gitlab = urls.locate("https://gitlab.example.com/group/sub/repo/-/blob/v1/catalog-info.yaml")
    assert gitlab is not None
    assert gitlab.repository == "https://gitlab.example.com/group/sub/repo"
    assert urls.locate("https://elsewhere.example.com/org/repo/blob/main/x.yaml") is None
    assert urls.locate("https://git.example.com/org/repo/issues/1") is None
    base = "https://git.example.com/org/repo/blob/main/a/catalog-info.yaml"
    assert urls.resolve(base, "../docs/x.md") == (
        "https://git.example.com/org/repo/blob/main/docs/x.md"
    )
    with pytest.raises(InputError, match="leaves the repository"):
        urls.resolve(base, "../../../x")
    # Integration hosts are readable by API callers, as in Backstage.
    urls.check_allowed(base)
    with pytest.raises(NotAllowedError):
        urls.check_allowed("https://elsewhere.example.com/x.yaml")


def test_refs_with_slashes_in_blob_urls(tmp_path, remote):
    from tests.gitrepos import git, git_http_server

    git("push", "--quiet", "origin", "HEAD:refs/heads/feature/new-api", cwd=remote.work)
    http_root = tmp_path / "http"
    (http_root / "org").mkdir(parents=True)
    remote.bare.rename(http_root / "org" / "repo")
    with git_http_server(http_root) as port:
        reader = GitReader(
            GitSettings(cache_dir=str(tmp_path / "cache"), hosts=[GitHost(f"127.0.0.1:{port}")])
        )
        urls = GitUrlReader(UrlReader([]), reader)
        url = f"http://127.0.0.1:{port}/org/repo/blob/feature/new-api/a/b/catalog-info.yaml"
        assert urls.read(url).data == b"kind: API\n"
