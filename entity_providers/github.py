"""GitHub organisation discovery: every repository of an organisation, filtered, read via git.

``catalog.providers.github.<id>`` lists ``organization``'s repositories with the REST API
(``GET /orgs/{org}/repos``, 100 a page, following ``Link: rel="next"``), keeps those
that pass ``filters`` (a name regex, topics to include or exclude, archived, forks,
visibility), and then works exactly as the git provider: the catalog files matching
``catalogPath`` on each repository's default branch (or ``branch``) become Location
entities read through the git reader.

The listing is polite: every page is asked with the ETag of its last answer
(``If-None-Match``; a 304 costs no rate limit), ``X-RateLimit-Remaining: 0`` waits for
``X-RateLimit-Reset``, and a 403/429 with ``Retry-After`` waits that long, each at most
``rateLimitMaxWait`` (60 s): beyond it the run fails, the entities stay, and the next
run tries again.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.errors import CatalogError, InputError
from app.reading.git import GitHost, GitReader, check_repository_url, repository_key
from app.reading.git_config import GithubFilters, GithubProviderConfig
from app.storage.database import Database
from entity_providers.base import EntityProvider
from entity_providers.git import Repository, RepositoryDiscoveryProvider

log = logging.getLogger(__name__)

MAX_PAGES = 1000
MAX_ATTEMPTS = 4
MAX_PAGE_BYTES = 20 * 1024 * 1024
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class GithubApiError(CatalogError):
    pass


@dataclass
class _Cached:
    etag: str
    data: Any
    next_url: str | None


class GithubClient:
    """The few REST calls discovery needs, with ETags, pagination and rate limits."""

    def __init__(
        self,
        api_base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        self.api_base_url = api_base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.max_wait = max_wait
        self.sleep = sleep
        self.clock = clock
        self._cache: dict[str, _Cached] = {}
        self._blocked_until: float | None = None
        self._lock = threading.Lock()
        #: Requests sent, and how many of them were answered 304 Not Modified.
        self.requests = 0
        self.not_modified = 0

    def list_organization_repositories(self, organization: str) -> list[dict[str, Any]]:
        url: str | None = f"{self.api_base_url}/orgs/{organization}/repos?per_page=100&page=1"
        repositories: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if url is None:
                return repositories
            page, url = self.get(url)
            if not isinstance(page, list):
                raise GithubApiError("GitHub answered the repository listing with something else")
            repositories.extend(item for item in page if isinstance(item, dict))
        raise GithubApiError(f"The repository listing has more than {MAX_PAGES} pages")

    def get(self, url: str) -> tuple[Any, str | None]:
        """GET a JSON document; return it and the URL of the next page, if any."""
        with self._lock:
            for _attempt in range(MAX_ATTEMPTS):
                self._wait_for_quota()
                cached = self._cache.get(url)
                try:
                    status, headers, body = self._request(url, cached.etag if cached else None)
                except OSError as exc:
                    raise GithubApiError(
                        f"GitHub API at {url} could not be reached: {exc}"
                    ) from exc
                self._note_quota(headers)
                if status == 304 and cached is not None:
                    self.not_modified += 1
                    return cached.data, cached.next_url
                if status == 200:
                    try:
                        data = json.loads(body)
                    except ValueError as exc:
                        raise GithubApiError(f"GitHub API at {url} answered invalid JSON") from exc
                    next_url = self._next(headers.get("Link"))
                    etag = headers.get("ETag")
                    if etag:
                        self._cache[url] = _Cached(etag, data, next_url)
                    return data, next_url
                if status in (403, 429):
                    self._back_off(url, status, headers)
                    continue
                raise GithubApiError(f"GitHub API answered {status} for {url}: {_message(body)}")
            raise GithubApiError(f"GitHub API kept refusing {url} (rate limited)")

    def _request(self, url: str, etag: str | None) -> tuple[int, Any, bytes]:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "pycatalog",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if etag:
            headers["If-None-Match"] = etag
        self.requests += 1
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.headers, response.read(MAX_PAGE_BYTES)
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read(64 * 1024)

    def _note_quota(self, headers: Any) -> None:
        remaining = headers.get("X-RateLimit-Remaining")
        reset = headers.get("X-RateLimit-Reset")
        if remaining == "0" and reset and reset.isdigit():
            self._blocked_until = float(reset)

    def _wait_for_quota(self) -> None:
        if self._blocked_until is None:
            return
        delay = self._blocked_until - self.clock()
        self._blocked_until = None
        if delay > 0:
            self._pause(delay, "the rate limit resets")

    def _back_off(self, url: str, status: int, headers: Any) -> None:
        retry_after = headers.get("Retry-After")
        if retry_after and retry_after.strip().isdigit():
            self._pause(float(retry_after), f"Retry-After of a {status}")
            return
        if headers.get("X-RateLimit-Remaining") == "0":
            self._wait_for_quota()
            return
        raise GithubApiError(f"GitHub API refused {url} with {status}")

    def _pause(self, seconds: float, why: str) -> None:
        if seconds > self.max_wait:
            until = time.strftime("%H:%M:%S", time.gmtime(self.clock() + seconds))
            raise GithubApiError(
                f"GitHub API is rate limited until {until} UTC ({seconds:.0f} s, longer than "
                f"rateLimitMaxWait of {self.max_wait:g} s); the next run tries again"
            )
        log.info("GitHub API: waiting %.1f s until %s", seconds, why)
        self.sleep(seconds)

    def _next(self, link: str | None) -> str | None:
        match = _LINK_NEXT.search(link or "")
        if match is None:
            return None
        url = match.group(1)
        base, target = urlsplit(self.api_base_url), urlsplit(url)
        # Pages stay on the API host: a forged Link must not send our token elsewhere.
        if (base.scheme, base.netloc) != (target.scheme, target.netloc):
            raise GithubApiError(f"GitHub API pointed the next page at another host: {url}")
        return url


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
        return str(data.get("message")) if isinstance(data, dict) else body[:200].decode()
    except (ValueError, UnicodeDecodeError):
        return body[:200].decode("utf-8", "replace")


def passes(repository: dict[str, Any], filters: GithubFilters) -> bool:
    """Whether a listed repository is one to discover."""
    name = repository.get("name")
    if not isinstance(name, str):
        return False
    if filters.repository is not None and not filters.repository.search(name):
        return False
    if repository.get("archived") and not filters.allow_archived:
        return False
    if repository.get("fork") and not filters.allow_forks:
        return False
    if filters.visibility and repository.get("visibility") not in filters.visibility:
        return False
    topics = set(repository.get("topics") or [])
    if filters.topic_include and not topics & set(filters.topic_include):
        return False
    return not topics & set(filters.topic_exclude)


class GithubEntityProvider(RepositoryDiscoveryProvider):
    kind = "github"

    def __init__(
        self,
        config: GithubProviderConfig,
        reader: GitReader,
        db: Database | None = None,
        client: GithubClient | None = None,
    ):
        super().__init__(config, reader, db)
        self.github_config = config
        self.client = client or GithubClient(
            config.api_base_url, config.token, max_wait=config.rate_limit_max_wait
        )
        # The organisation's repositories are this provider's own source; its host's web
        # URLs are GitHub's (view and edit links of what it discovers).
        reader.allow_repository_prefix(f"{config.host}/{config.organization}")
        reader.web_hosts.append(GitHost(config.host, "github"))

    def list_repositories(self) -> list[Repository]:
        listed = self.client.list_organization_repositories(self.github_config.organization)
        repositories = []
        for item in listed:
            if not passes(item, self.github_config.filters):
                continue
            try:
                url = check_repository_url(item.get("clone_url"))
            except InputError as exc:
                log.warning(
                    "Provider %s skips %s: %s", self.get_provider_name(), item.get("full_name"), exc
                )
                continue
            branch = self.config.branch or item.get("default_branch") or None
            html_url = item.get("html_url")
            if isinstance(html_url, str) and html_url.startswith(("https://", "http://")):
                self.reader.web_bases[repository_key(url)] = (html_url.rstrip("/"), "github")
            repositories.append(Repository(url, branch, str(item.get("full_name") or url)))
        return repositories


def factory(context) -> list[EntityProvider]:
    reader = context.readers.get("git")
    if not isinstance(reader, GitReader):
        return []
    configs = context.app_config.github_providers
    return [GithubEntityProvider(c, reader, context.services.get("database")) for c in configs]
