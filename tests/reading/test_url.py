"""The ``url`` reader against a real HTTP server: allow rules, redirects, limits, ETags."""

from __future__ import annotations

import time

import pytest

from app.errors import CatalogError, NotAllowedError, NotFoundError, NotModifiedError
from app.reading.url import UrlReader, allow_predicate, parse_url
from tests.httpserver import Route, file_server


def allowed(rules, url: str) -> bool:
    return allow_predicate(rules)(parse_url(url))


@pytest.mark.parametrize(
    ("rules", "url", "expected"),
    [
        ([], "https://example.com/x.yaml", False),
        ([{"host": "example.com"}], "https://example.com/x.yaml", True),
        ([{"host": "example.com"}], "https://EXAMPLE.com/x.yaml", True),
        ([{"host": "example.com"}], "https://example.com:8443/x.yaml", False),
        ([{"host": "example.com"}], "https://sub.example.com/x.yaml", False),
        ([{"host": "*.example.com"}], "https://sub.example.com/x.yaml", True),
        ([{"host": "*.example.com"}], "https://example.com/x.yaml", False),
        ([{"host": "example.com:8443"}], "https://example.com:8443/x.yaml", True),
        ([{"host": "example.com:443"}], "https://example.com/x.yaml", True),
        ([{"host": "example.com:8000-8100"}], "http://example.com:8080/x", True),
        ([{"host": "example.com:8000-8100"}], "http://example.com:9000/x", False),
        ([{"host": "example.com", "paths": ["/catalog"]}], "https://example.com/catalog/x", True),
        ([{"host": "example.com", "paths": ["/catalog"]}], "https://example.com/catalog", True),
        ([{"host": "example.com", "paths": ["/catalog"]}], "https://example.com/catalogs/x", False),
        (
            [{"host": "example.com", "paths": ["/catalog/"]}],
            "https://example.com/catalog/../x",
            False,
        ),
        ([{"host": "example.com"}], "ftp://example.com/x.yaml", False),
    ],
)
def test_allow_rules_match_backstage(rules, url, expected):
    assert allowed(rules, url) is expected


def test_invalid_urls_are_refused():
    reader = UrlReader([{"host": "example.com"}])
    for target in ("not a url", "/etc/passwd", "https://", "http://exa mple.com/x"):
        with pytest.raises(CatalogError, match="Invalid URL"):
            reader.check_allowed(target)


def test_reads_files_and_follows_allowed_redirects():
    with file_server() as server:
        url = server.serve("/catalog-info.yaml", "kind: Component\n", etag='"v1"')
        server.routes["/moved"] = Route(status=302, headers={"Location": "/catalog-info.yaml"})
        reader = UrlReader([{"host": server.host}])
        result = reader.read(url)
        assert result.data == b"kind: Component\n"
        assert result.etag == '"v1"' and result.target == url
        assert reader.read(server.url("/moved")).data == b"kind: Component\n"
        with pytest.raises(NotModifiedError):
            reader.read(url, etag='"v1"')
        assert server.requests[-1][1].get("If-None-Match") == '"v1"'
        with pytest.raises(NotFoundError, match=r"could not read .*/nope.yaml, 404 Not Found"):
            reader.read(server.url("/nope.yaml"))


def test_hosts_outside_the_allow_list_are_not_read():
    with file_server() as server:
        url = server.serve("/x.yaml", "a: 1")
        with pytest.raises(NotAllowedError) as caught:
            UrlReader([{"host": "example.com"}]).read(url)
        assert str(caught.value) == (
            f"Reading from '{url}' is not allowed. You may need to configure an integration "
            "for the target host, or add it to the configured list of allowed hosts at "
            "'backend.reading.allow'"
        )
        assert server.requests == []


def test_a_redirect_to_a_host_outside_the_allow_list_is_not_followed():
    with file_server() as inner, file_server() as outer:
        secret = inner.serve("/secret", "token: 1")
        outer.routes["/bounce"] = Route(status=301, headers={"Location": secret})
        reader = UrlReader([{"host": outer.host}])
        with pytest.raises(CatalogError, match="URL not allowed by backend.reading.allow"):
            reader.read(outer.url("/bounce"))
        assert inner.requests == []


def test_redirect_loops_stop():
    with file_server() as server:
        server.routes["/loop"] = Route(status=307, headers={"Location": "/loop"})
        with pytest.raises(CatalogError, match=r"Too many redirects \(max 5\)"):
            UrlReader([{"host": server.host}]).read(server.url("/loop"))


def test_size_limit():
    with file_server() as server:
        url = server.serve("/big.yaml", b"x" * 2048)
        with pytest.raises(CatalogError, match="larger than the limit of 1024 bytes"):
            UrlReader([{"host": server.host}], max_bytes=1024).read(url)
        # Without a Content-Length the limit still holds while reading.
        assert UrlReader([{"host": server.host}], max_bytes=4096).read(url).data == b"x" * 2048


def test_timeouts_bound_slow_servers():
    with file_server() as server:
        slow_start = server.serve("/slow.yaml", "a: 1", delay=3)
        trickle = server.serve("/trickle.yaml", b"y" * 400, chunk_delay=0.2)
        reader = UrlReader([{"host": server.host}], timeout=0.5)
        for url in (slow_start, trickle):
            started = time.monotonic()
            with pytest.raises(CatalogError, match="no answer within 0.5 seconds"):
                reader.read(url)
            assert time.monotonic() - started < 2.5


def test_unreachable_hosts_fail_cleanly():
    with file_server() as server:
        port = server.port
    reader = UrlReader([{"host": f"127.0.0.1:{port}"}], timeout=2)
    with pytest.raises(CatalogError, match=rf"Unable to read http://127.0.0.1:{port}/x.yaml"):
        reader.read(f"http://127.0.0.1:{port}/x.yaml")
