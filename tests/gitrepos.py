"""Real git repositories for tests, served over ``file://``, ``git daemon`` and smart HTTP.

Each :class:`Remote` is a bare repository (what a server serves) plus a working clone
that commits and pushes to it, so tests change repositories the way people do: commit,
push, force-push, delete a file in a later commit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import free_port

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    # A developer's ~/.gitconfig (signing, hooks, default branch) must not change the tests.
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_TERMINAL_PROMPT": "0",
}


def git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


class Remote:
    """A bare repository at ``<root>/<name>.git`` and a working clone that pushes to it."""

    def __init__(self, root: Path, name: str, work: Path, branch: str = "main"):
        self.name = name
        self.bare = root / f"{name}.git"
        self.work = work / name
        self.branch = branch
        self.bare.parent.mkdir(parents=True, exist_ok=True)
        git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(self.bare))
        git("init", "--quiet", f"--initial-branch={branch}", str(self.work))
        git("remote", "add", "origin", str(self.bare), cwd=self.work)

    @property
    def file_url(self) -> str:
        return f"file://{self.bare}"

    def write(self, path: str, content: str | bytes) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)

    def write_yaml(self, path: str, *documents: Any) -> None:
        self.write(path, yaml.safe_dump_all(list(documents), sort_keys=False))

    def symlink(self, path: str, points_to: str) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(points_to, target)

    def remove(self, path: str) -> None:
        git("rm", "--quiet", "-r", "--", path, cwd=self.work)

    def commit(self, message: str = "change", *, push: bool = True, force: bool = False) -> str:
        git("add", "--all", cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work)
        if push:
            args = ["push", "--quiet", "origin", f"HEAD:refs/heads/{self.branch}"]
            if force:
                args.insert(1, "--force")
            git(*args, cwd=self.work)
        return self.head()

    def rewrite_last_commit(self, message: str = "rewritten") -> str:
        """Drop the last commit and commit the working tree again: pushing needs --force."""
        git("reset", "--quiet", "--soft", "HEAD~1", cwd=self.work)
        return self.commit(message, force=True)

    def tag(self, name: str) -> None:
        git("tag", "-a", "-m", name, name, cwd=self.work)
        git("push", "--quiet", "origin", f"refs/tags/{name}", cwd=self.work)

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.work)


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@contextlib.contextmanager
def git_daemon(root: Path) -> Iterator[int]:
    """``git daemon`` serving every repository below ``root`` on 127.0.0.1; yields its port."""
    port = free_port()
    process = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            f"--base-path={root}",
            "--reuseaddr",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def git_http_server(root: Path) -> Iterator[int]:
    """Smart HTTP (``git http-backend``) for the repositories below ``root``; yields its port.

    Repositories are served at ``/<path below root>``, so ``<root>/org/repo`` (a bare
    repository without ``.git``) is ``http://127.0.0.1:<port>/org/repo``, as on GitHub.
    """

    class Handler(BaseHTTPRequestHandler):
        def _cgi(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {
                "PATH": os.environ.get("PATH", ""),
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "REMOTE_ADDR": "127.0.0.1",
            }
            result = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60
            )
            head, _, payload = result.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = result.stdout.partition(b"\n\n")
            status = 200
            headers = []
            for line in head.decode("latin-1").splitlines():
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.strip().split()[0])
                elif key:
                    headers.append((key, value.strip()))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _cgi  # noqa: N815 - http.server's naming
        do_POST = _cgi  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()
