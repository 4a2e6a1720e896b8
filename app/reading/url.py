"""Reading ``url`` locations over HTTP(S), within ``backend.reading.allow``.

The allow list works as Backstage's ``FetchUrlReader``: each entry names a
``host`` (``example.com``, ``*.example.com`` for subdomains, ``host:port`` or
``host:8000-8100`` for ports; without a port only the scheme's default port
matches) and optionally ``paths``, each matching that path or anything below it.
Nothing is allowed without an entry. Redirects are followed by hand, at most
``catalog.limits.urlRedirects`` (five), and every hop must be allowed too, so an
allowed host cannot bounce a read to an internal address.

Unlike Backstage, every read has a deadline (``backend.reading.timeout``) and a size
limit (``backend.reading.maxBytes``): a location is something any API caller can
register, so a slow or endless response must not tie up the processing loop.
"""

from __future__ import annotations

import posixpath
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from app.errors import CatalogError, NotAllowedError, NotFoundError, NotModifiedError
from app.reading import Reader, ReadResult

MAX_REDIRECTS = 5
REDIRECT_STATUSES = (301, 302, 307, 308)
_CHUNK = 64 * 1024


def not_allowed_url_message(url: str) -> str:
    return (
        f"Reading from '{url}' is not allowed. You may need to configure an integration for "
        "the target host, or add it to the configured list of allowed hosts at "
        "'backend.reading.allow'"
    )


@dataclass(frozen=True)
class ParsedUrl:
    scheme: str
    hostname: str
    port: int | None
    path: str


def parse_url(url: str) -> ParsedUrl:
    """Split an absolute http(s) URL; raise CatalogError("Invalid URL") like ``new URL``."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise CatalogError("Invalid URL") from None
    scheme = parts.scheme.lower()
    # As the WHATWG parser: a scheme is required, and web schemes need a host.
    if not scheme or any(c.isspace() for c in url.strip()):
        raise CatalogError("Invalid URL")
    if scheme in ("http", "https", "ws", "wss", "ftp") and not parts.hostname:
        raise CatalogError("Invalid URL")
    return ParsedUrl(scheme, (parts.hostname or "").lower(), port, parts.path or "/")


def _port_predicate(spec: str | None) -> Callable[[ParsedUrl], bool]:
    if not spec:
        return lambda url: url.port is None
    low_text, sep, high_text = spec.partition("-")
    try:
        low = int(low_text)
        high = int(high_text) if sep else low
    except ValueError:
        raise ValueError(f"Port range is not valid: {spec}") from None
    if low <= 0 or high <= 0 or low > high:
        raise ValueError(f"Port range is not valid: [{low}, {high}]")

    def check(url: ParsedUrl) -> bool:
        port = url.port
        if port is None:
            port = {"http": 80, "https": 443}.get(url.scheme)
        return port is not None and low <= port <= high

    return check


def _path_predicate(paths: list[str] | None) -> Callable[[ParsedUrl], bool]:
    if paths is None:
        return lambda url: True

    def check(url: ParsedUrl) -> bool:
        target = posixpath.normpath(url.path)
        if url.path.endswith("/") and target != "/":
            target += "/"
        for allowed in paths:
            prefix = allowed if allowed.endswith("/") else allowed + "/"
            if target == allowed or target.startswith(prefix):
                return True
        return False

    return check


@dataclass(frozen=True)
class _AllowRule:
    hostname: str
    port: Callable[[ParsedUrl], bool]
    path: Callable[[ParsedUrl], bool]

    def __call__(self, url: ParsedUrl) -> bool:
        if self.hostname.startswith("*."):
            host_ok = url.hostname.endswith(self.hostname[1:])
        else:
            host_ok = url.hostname == self.hostname
        return host_ok and self.port(url) and self.path(url)


def allow_predicate(rules: list[dict[str, Any]]) -> Callable[[ParsedUrl], bool]:
    """``backend.reading.allow`` as one predicate over parsed URLs."""
    checks: list[_AllowRule] = []
    for rule in rules:
        hostname, _, port = str(rule["host"]).lower().partition(":")
        checks.append(
            _AllowRule(hostname, _port_predicate(port), _path_predicate(rule.get("paths")))
        )
    return lambda url: url.scheme in ("http", "https") and any(check(url) for check in checks)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Hand every redirect back to the reader, which checks the next hop first."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class UrlReader(Reader):
    types = ("url",)

    def __init__(
        self,
        allow: list[dict[str, Any]] | None = None,
        *,
        timeout: float = 30.0,
        max_bytes: int = 10 * 1024 * 1024,
        max_redirects: int = MAX_REDIRECTS,
    ):
        self.allowed = allow_predicate(allow or [])
        self.timeout = timeout
        self.max_bytes = max_bytes
        #: Redirects one read follows (``catalog.limits.urlRedirects``).
        self.max_redirects = max_redirects
        self._opener = urllib.request.build_opener(_NoRedirects())

    def is_allowed(self, url: str) -> bool:
        return self.allowed(parse_url(url))

    def check_allowed(self, target: str) -> None:
        if not self.is_allowed(target):
            raise NotAllowedError(not_allowed_url_message(target))

    def search(self, target: str) -> list[str]:
        if any(c in parse_url(target).path for c in "*?"):
            raise CatalogError("Unsupported search pattern URL")
        return [target]

    def resolve(self, base: str, relative: str) -> str:
        return urljoin(base, relative)

    def read(self, target: str, etag: str | None = None) -> ReadResult:
        """GET ``target``; NotModifiedError when ``etag`` still matches, NotFoundError on 404."""
        self.check_allowed(target)
        deadline = time.monotonic() + self.timeout
        url = target
        # The first request and then one per redirect followed.
        for _ in range(self.max_redirects + 1):
            if url != target and not self.is_allowed(url):
                raise CatalogError(f"URL not allowed by backend.reading.allow configuration: {url}")
            headers = {"User-Agent": "pycatalog", "Accept": "*/*"}
            if etag:
                headers["If-None-Match"] = etag
            request = urllib.request.Request(url, headers=headers, method="GET")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timed_out(url)
            try:
                response = self._opener.open(request, timeout=remaining)
            except urllib.error.HTTPError as error:
                location = error.headers.get("Location") if error.headers else None
                if error.code in REDIRECT_STATUSES and location:
                    error.close()
                    url = urljoin(url, location)
                    continue
                error.close()
                if error.code == 304:
                    raise NotModifiedError("") from None
                message = f"could not read {url}, {error.code} {error.reason}"
                if error.code == 404:
                    raise NotFoundError(message) from None
                raise CatalogError(message) from None
            except TimeoutError:
                raise self._timed_out(url) from None
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                raise CatalogError(f"Unable to read {url}, {reason}") from None
            with response:
                data = self._body(response, url, deadline)
                return ReadResult(data=data, target=target, etag=response.headers.get("ETag"))
        raise CatalogError(
            f"Too many redirects (max {self.max_redirects}) when reading {target} "
            "(catalog.limits.urlRedirects)"
        )

    def _body(self, response: Any, url: str, deadline: float) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_large(url)
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise self._timed_out(url)
            try:
                # read1: what has arrived, so a trickling body still meets the deadline.
                chunk = response.read1(_CHUNK)
            except TimeoutError:
                raise self._timed_out(url) from None
            except OSError as exc:
                raise CatalogError(f"Unable to read {url}, {exc}") from None
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large(url)
            chunks.append(chunk)

    def _timed_out(self, url: str) -> CatalogError:
        return CatalogError(f"Unable to read {url}, no answer within {self.timeout:g} seconds")

    def _too_large(self, url: str) -> CatalogError:
        return CatalogError(
            f"Unable to read {url}, the response is larger than the limit of "
            f"{self.max_bytes} bytes (backend.reading.maxBytes)"
        )
