"""Answers reused while the catalog has not changed.

Catalog UIs ask the same questions over and over (the Backstage frontend sends the
same facet requests on every page), and the catalog changes in bursts. Every read
that goes through :func:`cached` is keyed by its request and by the catalog
generation, which every change of a final entity advances (``app.engine.changes``);
a cached answer is served only for the generation it was computed at, so it is
never stale, in any process: each process keeps its own cache and checks the
generation (one indexed read) per request.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, request

from app.api.blueprint import catalog
from app.engine.changes import current_generation

# Answers larger than this are computed every time (a full listing of a large catalog).
MAX_ENTRY_BYTES = 8 * 1024 * 1024
MAX_TOTAL_BYTES = 64 * 1024 * 1024
# Headers of an answer worth keeping (Link: the next page of GET /entities).
_KEPT_HEADERS = ("Link",)


class GenerationCache:
    """A byte-bounded LRU of response bodies, per catalog generation."""

    def __init__(self, max_total: int = MAX_TOTAL_BYTES, max_entry: int = MAX_ENTRY_BYTES):
        self.max_total = max_total
        self.max_entry = max_entry
        self._entries: OrderedDict[tuple[Any, ...], tuple[bytes, str, list[tuple[str, str]]]]
        self._entries = OrderedDict()
        self._size = 0
        self._generation = -1
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...], generation: int) -> Any:
        with self._lock:
            if generation != self._generation:
                self._entries.clear()
                self._size = 0
                self._generation = generation
                return None
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return entry

    def put(
        self,
        key: tuple[Any, ...],
        generation: int,
        value: tuple[bytes, str, list[tuple[str, str]]],
    ) -> None:
        size = len(value[0])
        if size > self.max_entry:
            return
        with self._lock:
            if generation != self._generation:
                return  # the catalog moved on while this answer was computed
            if key in self._entries:
                self._size -= len(self._entries.pop(key)[0])
            self._entries[key] = value
            self._size += size
            while self._size > self.max_total and self._entries:
                _, (body, _, _) = self._entries.popitem(last=False)
                self._size -= len(body)


def _cache() -> GenerationCache:
    services = catalog()
    cache = getattr(services, "response_cache", None)
    if cache is None:
        cache = services.response_cache = GenerationCache()
    return cache  # type: ignore[no-any-return]


def cached(view: Callable[..., Response]) -> Callable[..., Response]:
    """Serve ``view``'s successful answers from the cache while the catalog is unchanged."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        cache = _cache()
        key = (request.method, request.full_path, request.get_data(cache=True))
        with catalog().db.engine.connect() as conn:
            generation = current_generation(conn)
        entry = cache.get(key, generation)
        if entry is not None:
            body, mimetype, headers = entry
            return Response(body, status=200, mimetype=mimetype, headers=headers)
        response = view(*args, **kwargs)
        if response.status_code != 200:
            return response
        mimetype = response.mimetype or "application/json"
        headers = [
            (name, response.headers[name]) for name in _KEPT_HEADERS if name in response.headers
        ]
        if not response.is_streamed:
            cache.put(key, generation, (response.get_data(), mimetype, headers))
            return response
        # Keep streaming (a listing may be large) and keep a copy if it stays small.
        chunks = response.response

        def tee() -> Any:
            parts: list[bytes] | None = []
            size = 0
            for chunk in chunks:
                data = chunk.encode() if isinstance(chunk, str) else chunk
                if parts is not None:
                    parts.append(data)
                    size += len(data)
                    if size > cache.max_entry:
                        parts = None
                yield data
            if parts is not None:
                cache.put(key, generation, (b"".join(parts), mimetype, headers))

        response.response = tee()
        return response

    return wrapper
