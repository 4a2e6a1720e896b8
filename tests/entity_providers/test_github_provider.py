"""GitHub organisation discovery.

GitHub itself cannot be reached from here (no network but package registries), so the
REST API is a local HTTP server on 127.0.0.1 that answers the documented shapes of
``GET /orgs/{org}/repos``: JSON pages linked by ``Link: <...>; rel="next"``, ``ETag`` and
304 for ``If-None-Match``, ``X-RateLimit-Remaining``/``X-RateLimit-Reset``, and 403/429
with ``Retry-After``. Everything after the listing runs on real git repositories served
by ``git daemon``, exactly as with github.com.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from app import create_app
from app.reading.git_config import GithubFilters
from entity_providers.github import GithubEntityProvider, passes
from tests.api.test_events import SECRET, sign
from tests.conftest import component, final_entities_by_ref, settle
from tests.gitrepos import Remote, git_daemon
from tests.httpserver import running

NAME = "github-provider:acme"
PAGE_SIZE = 2


@dataclass
class FakeGithub:
    """The organisation's repositories, and what to answer instead of them, in order."""

    repositories: list[dict[str, Any]] = field(default_factory=list)
    #: (status, headers) answered to the next requests, before the real answer.
    interruptions: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    #: Headers added to every real answer.
    extra_headers: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str], int]] = field(default_factory=list)
    link_host: str | None = None
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def github() -> Iterator[FakeGithub]:
    state = FakeGithub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            status = self._answer()
            state.requests.append((self.path, dict(self.headers), status))

        def _answer(self) -> int:
            if state.interruptions:
                status, headers = state.interruptions.pop(0)
                return self._send(status, {"message": "API rate limit exceeded"}, headers)
            parts = urlsplit(self.path)
            if not re.fullmatch(r"/orgs/acme/repos", parts.path):
                return self._send(404, {"message": "Not Found"}, {})
            query = parse_qs(parts.query)
            page = int(query.get("page", ["1"])[0])
            items = state.repositories[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
            pages = max(1, -(-len(state.repositories) // PAGE_SIZE))
            headers = dict(state.extra_headers)
            host = state.link_host or state.base
            if page < pages:
                headers["Link"] = (
                    f'<{host}/orgs/acme/repos?per_page=100&page={page + 1}>; rel="next", '
                    f'<{host}/orgs/acme/repos?per_page=100&page={pages}>; rel="last"'
                )
            body = json.dumps(items).encode()
            etag = '"' + hashlib.sha1(body + headers.get("Link", "").encode()).hexdigest() + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return 304
            headers["ETag"] = etag
            return self._send(200, items, headers)

        def _send(self, status: int, data: Any, headers: dict[str, str]) -> int:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return status

        def log_message(self, *args: Any) -> None:
            pass

    with running(Handler) as port:
        state.port = port
        yield state


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[int]:
    for name in ("api", "web", "legacy", "fork-of-web", "tools"):
        remote = Remote(tmp_path / "srv" / "acme", name, tmp_path / "work")
        remote.write_yaml("catalog-info.yaml", component(name))
        remote.commit("initial")
    with git_daemon(tmp_path / "srv") as port:
        yield port


def repository(port: int, name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "full_name": f"acme/{name}",
        "clone_url": f"git://127.0.0.1:{port}/acme/{name}.git",
        "html_url": f"https://github.example.com/acme/{name}",
        "default_branch": "main",
        "archived": False,
        "fork": False,
        "topics": ["catalog"],
        "visibility": "private",
        **fields,
    }


def organisation(port: int) -> list[dict[str, Any]]:
    return [
        repository(port, "api"),
        repository(port, "web", visibility="public"),
        repository(port, "legacy", archived=True),
        repository(port, "fork-of-web", fork=True),
        repository(port, "tools", topics=["internal"]),
    ]


def config(tmp_path: Path, github: FakeGithub, **provider: Any) -> dict[str, Any]:
    return {
        "backend": {"reading": {"git": {"cacheDir": str(tmp_path / "cache")}}},
        "catalog": {
            "providers": {
                "github": {
                    "acme": {
                        "organization": "acme",
                        "apiBaseUrl": github.base,
                        "token": "ghp_test_token",
                        "filters": {"allowForks": False},
                        **provider,
                    }
                }
            }
        },
    }


def provider_of(catalog: Any) -> GithubEntityProvider:
    return next(p for p in catalog.engine.providers if p.get_provider_name() == NAME)


def components(catalog: Any) -> set[str]:
    return {
        ref.split("/", 1)[1]
        for ref in final_entities_by_ref(catalog)
        if ref.startswith("component:")
    }


def ingest(catalog: Any) -> None:
    provider_of(catalog).sync()
    settle(catalog)


def status(catalog: Any) -> dict[str, Any]:
    app = create_app(catalog.config, catalog=catalog, start=False)
    items = app.test_client().get("/api/catalog/providers").get_json()["items"]
    return next(item for item in items if item["name"] == NAME)


def test_lists_every_page_and_reads_the_repositories_through_git(
    make_catalog, tmp_path, github, daemon
):
    github.repositories = organisation(daemon)
    catalog = make_catalog(**config(tmp_path, github))
    ingest(catalog)
    # Archived repositories and forks (allowForks: false) are left out.
    assert components(catalog) == {"api", "web", "tools"}
    paths = [path for path, _, _ in github.requests]
    assert paths == [f"/orgs/acme/repos?per_page=100&page={n}" for n in (1, 2, 3)]
    headers = github.requests[0][1]
    assert headers["Authorization"] == "Bearer ghp_test_token"
    assert headers["Accept"] == "application/vnd.github+json"
    web = final_entities_by_ref(catalog)["component:default/web"]
    assert web["metadata"]["annotations"]["backstage.io/view-url"] == (
        "https://github.example.com/acme/web/blob/main/catalog-info.yaml"
    )

    # Nothing changed: every page answers 304 and no repository is fetched or read.
    reader = catalog.readers.get("git")
    before = dict(reader.stats)
    ingest(catalog)
    assert [status for _, _, status in github.requests[3:]] == [304, 304, 304]
    assert all("If-None-Match" in headers for _, headers, _ in github.requests[3:])
    assert provider_of(catalog).client.not_modified == 3
    after = dict(reader.stats)
    assert (after["fetch"], after["read"]) == (before["fetch"], before["read"])


def test_filters():
    repo = {"name": "svc-api", "topics": ["backstage", "team-a"], "visibility": "internal"}
    assert passes(repo, GithubFilters(repository=re.compile("^svc-")))
    assert not passes(repo, GithubFilters(repository=re.compile("^web-")))
    assert passes(repo, GithubFilters(topic_include=("backstage",)))
    assert not passes(repo, GithubFilters(topic_include=("other",)))
    assert not passes(repo, GithubFilters(topic_exclude=("team-a",)))
    assert passes(repo, GithubFilters(visibility=("internal",)))
    assert not passes(repo, GithubFilters(visibility=("public",)))
    assert not passes({**repo, "archived": True}, GithubFilters())
    assert passes({**repo, "archived": True}, GithubFilters(allow_archived=True))
    assert passes({**repo, "fork": True}, GithubFilters())
    assert not passes({**repo, "fork": True}, GithubFilters(allow_forks=False))


def test_configured_filters(make_catalog, tmp_path, github, daemon):
    github.repositories = organisation(daemon)
    catalog = make_catalog(
        **config(
            tmp_path,
            github,
            filters={"repository": "^(api|web|tools)$", "topic": {"include": ["catalog"]}},
        )
    )
    ingest(catalog)
    assert components(catalog) == {"api", "web"}


def test_retry_after_and_rate_limit_reset_are_respected(make_catalog, tmp_path, github, daemon):
    github.repositories = organisation(daemon)
    catalog = make_catalog(**config(tmp_path, github))
    client = provider_of(catalog).client
    now = [1_000_000.0]
    slept: list[float] = []
    client.clock = lambda: now[0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    client.sleep = sleep
    github.interruptions = [
        (429, {"Retry-After": "3"}),
        (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(now[0]) + 7)}),
    ]
    ingest(catalog)
    # Retry-After is relative; the reset is a moment, 4 s after the 3 s already waited.
    assert slept == [3.0, 4.0]
    assert components(catalog) == {"api", "web", "tools"}
    # A 200 that spends the last request makes the next one wait for the reset.
    github.extra_headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(now[0]) + 5)}
    slept.clear()
    client._cache.clear()
    ingest(catalog)
    assert slept[:1] == [5.0]


def test_a_rate_limit_longer_than_the_maximum_fails_the_run_and_keeps_everything(
    make_catalog, tmp_path, github, daemon
):
    github.repositories = organisation(daemon)
    catalog = make_catalog(**config(tmp_path, github, rateLimitMaxWait={"seconds": 10}))
    ingest(catalog)
    github.interruptions = [(403, {"Retry-After": "3600"})]
    ingest(catalog)
    assert components(catalog) == {"api", "web", "tools"}
    run = status(catalog)["lastRun"]
    assert "rate limited" in run["error"]["message"]
    assert "rateLimitMaxWait" in run["error"]["message"]


def test_an_empty_listing_is_refused(make_catalog, tmp_path, github, daemon):
    github.repositories = organisation(daemon)
    catalog = make_catalog(**config(tmp_path, github))
    ingest(catalog)
    github.repositories = []
    ingest(catalog)
    assert components(catalog) == {"api", "web", "tools"}
    refusal = status(catalog)["lastRefusal"]
    assert "listed no entities, which would delete all 3" in refusal["message"]


def test_an_unreachable_api_keeps_everything(make_catalog, tmp_path, github, daemon):
    github.repositories = organisation(daemon)
    catalog = make_catalog(**config(tmp_path, github))
    ingest(catalog)
    github.interruptions = [(500, {})]
    ingest(catalog)
    assert components(catalog) == {"api", "web", "tools"}
    assert "GitHub API answered 500" in status(catalog)["lastRun"]["error"]["message"]


def test_a_next_page_on_another_host_is_refused(make_catalog, tmp_path, github, daemon):
    github.repositories = organisation(daemon)
    github.link_host = "http://attacker.example"
    catalog = make_catalog(**config(tmp_path, github))
    ingest(catalog)
    assert components(catalog) == set()
    assert "another host" in status(catalog)["lastRun"]["error"]["message"]
    assert len(github.requests) == 1  # the token never went to the other host


def test_a_push_for_a_new_repository_of_the_organisation_lists_again(
    make_catalog, tmp_path, github, daemon
):
    github.repositories = organisation(daemon)[:2]
    settings = config(tmp_path, github)
    settings["catalog"]["events"] = {"secret": SECRET}
    catalog = make_catalog(**settings)
    ingest(catalog)
    assert components(catalog) == {"api", "web"}
    github.repositories = organisation(daemon)
    client = create_app(catalog.config, catalog=catalog, start=False).test_client()
    body = json.dumps(
        {
            "ref": "refs/heads/main",
            "repository": {
                "full_name": "acme/tools",
                "clone_url": f"git://127.0.0.1:{daemon}/acme/tools.git",
                "owner": {"login": "acme"},
            },
        }
    ).encode()
    response = client.post(
        "/api/catalog/events/github",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": sign(body),
        },
    )
    assert response.status_code == 202
    assert response.get_json()["providers"] == [NAME]
    deadline = time.monotonic() + 10
    while "tools" not in components(catalog) and time.monotonic() < deadline:
        settle(catalog)
        time.sleep(0.05)
    assert components(catalog) == {"api", "web", "tools"}


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ({}, "catalog.providers.github.acme.organization is required"),
        ({"organization": "--org"}, "not a valid organisation name"),
        ({"organization": "acme", "filters": {"repository": "(["}}, "not a valid regular"),
        ({"organization": "acme", "filters": {"visibility": ["secret"]}}, "visibility accepts"),
        ({"organization": "acme", "apiBaseUrl": "file:///etc"}, "must be an http(s) URL"),
        ({"organization": "acme", "catalogPath": "../x.yaml"}, "leaves the repository"),
        ({"organization": "acme", "branch": "--force"}, "not a valid branch"),
        ({"organization": "acme", "safeDeletions": {"maxRemovedShare": 2}}, "from 0 to 1"),
        ({"organization": "acme", "schedule": {"frequency": "often"}}, "must be a duration"),
    ],
)
def test_bad_configuration_is_refused_at_start(database_url, provider, message):
    from app.config import AppConfig, ConfigError
    from tests.conftest import catalog_config

    settings = catalog_config(
        database_url, [], {"catalog": {"providers": {"github": {"acme": provider}}}}
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        AppConfig(settings).validate()
