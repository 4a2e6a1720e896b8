"""Cached answers are served only while the catalog is unchanged."""

from __future__ import annotations

import time

import requests

from tests.conftest import component, write_yaml


def test_answers_follow_every_catalog_change(start_server, tmp_path):
    path = write_yaml(tmp_path / "catalog-info.yaml", component("one"))
    server = start_server([path], catalog={"processingInterval": {"hours": 0, "seconds": 1}})
    facets_url = f"{server.catalog_url}/entity-facets?facet=metadata.name&filter=kind=component"
    query_url = (
        f"{server.catalog_url}/entities/by-query?filter=kind=component"
        "&orderField=metadata.name,asc&fields=metadata.name"
    )

    def facet_names() -> list[str]:
        facets = requests.get(facets_url, timeout=10).json()["facets"]["metadata.name"]
        return sorted(item["value"] for item in facets)

    def query_names() -> list[str]:
        items = requests.get(query_url, timeout=10).json()["items"]
        return [item["metadata"]["name"] for item in items]

    assert facet_names() == ["one"] and query_names() == ["one"]
    assert facet_names() == ["one"] and query_names() == ["one"]  # now from the cache
    write_yaml(path, component("one"), component("two"))
    # The file is read again within a second or so; both answers must follow.
    deadline = time.monotonic() + 30
    while facet_names() != ["one", "two"]:
        assert time.monotonic() < deadline, "the cached facets never changed"
    assert query_names() == ["one", "two"]


def test_the_cache_keeps_entries_of_one_generation_within_its_bounds():
    from app.api.cache import GenerationCache

    cache = GenerationCache(max_total=10, max_entry=6)
    assert cache.get(("a",), 1) is None
    cache.put(("a",), 1, (b"12345", "application/json", []))
    cache.put(("b",), 1, (b"1234567", "application/json", []))  # too big: not kept
    cache.put(("c",), 1, (b"12345", "application/json", []))
    assert cache.get(("b",), 1) is None
    assert cache.get(("a",), 1) is not None and cache.get(("c",), 1) is not None
    cache.put(("d",), 1, (b"123", "application/json", []))  # over 10 bytes: oldest goes
    assert cache.get(("a",), 1) is None
    cache.put(("e",), 0, (b"1", "application/json", []))  # computed at an older generation
    assert cache.get(("e",), 1) is None
    assert cache.get(("c",), 2) is None  # a new generation empties the cache
