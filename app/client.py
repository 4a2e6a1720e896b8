"""A Python client for the graph API, for scripts: ``from app.client import GraphClient``.

Standard library only (``urllib``), so a script needs nothing but this file's
package. Every method returns the decoded JSON answer of the matching
``/api/graph`` endpoint (the same dicts ``catalog ... --json`` prints); exports
return the document as bytes. Errors raise :class:`GraphClientError` with
Backstage's error ``name`` and ``message`` (:class:`EntityNotFound` for 404)::

    client = GraphClient("http://localhost:7007")
    for item in client.dependents("resource:core-postgres")["items"]:
        print(item["entityRef"], item["depth"])
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from typing import Any

DEFAULT_URL = "http://127.0.0.1:7007"

Params = list[tuple[str, str]]


class GraphClientError(Exception):
    """The server refused or failed a request; ``status`` 0 means it was not reached."""

    def __init__(self, status: int, name: str, message: str):
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message


class EntityNotFound(GraphClientError):
    """404: an unknown entity, or no path between two entities."""


def base_url(url: str | None = None) -> str:
    """The server's root URL from ``url``, ``$CATALOG_URL`` or the default.

    ``http://host:7007``, ``http://host:7007/api/catalog`` and ``.../api/graph`` all
    name the same server.
    """
    url = (url or os.environ.get("CATALOG_URL") or DEFAULT_URL).rstrip("/")
    for suffix in ("/api/catalog", "/api/graph", "/api/catalog-graph"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


def _params(**values: Any) -> Params:
    """Query parameters; lists repeat, ``None`` is left out, booleans are lowercase."""
    params: Params = []
    for key, value in values.items():
        if value is None:
            continue
        items: Iterable[Any] = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if isinstance(item, bool):
                item = "true" if item else "false"
            params.append((key, str(item)))
    return params


class GraphClient:
    def __init__(self, url: str | None = None, *, timeout: float = 60.0):
        self.url = base_url(url)
        self.timeout = timeout

    # -- transport ------------------------------------------------------------

    def _get(self, path: str, params: Params) -> bytes:
        query = urllib.parse.urlencode(params)
        url = f"{self.url}{path}" + (f"?{query}" if query else "")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as error:
            raise _error(error.code, error.read()) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise GraphClientError(
                0, "ConnectionError", f"Cannot reach {self.url}: {reason}"
            ) from None

    def _json(self, path: str, params: Params) -> Any:
        return json.loads(self._get(path, params))

    # -- queries ----------------------------------------------------------------

    def dependencies(
        self,
        ref: str,
        *,
        depth: int | None = None,
        relations: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """What ``ref`` depends on, transitively (``items`` sorted by depth)."""
        return self._related("/api/graph/dependencies", ref, depth, relations, kinds, limit)

    def dependents(
        self,
        ref: str,
        *,
        depth: int | None = None,
        relations: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """What depends on ``ref``, transitively."""
        return self._related("/api/graph/dependents", ref, depth, relations, kinds, limit)

    def impact(
        self,
        ref: str,
        *,
        depth: int | None = None,
        relations: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """The dependents of ``ref`` grouped ``byOwner`` (with contacts) and ``bySystem``."""
        return self._related("/api/graph/impact", ref, depth, relations, kinds, limit)

    def _related(
        self,
        path: str,
        ref: str,
        depth: int | None,
        relations: Sequence[str] | None,
        kinds: Sequence[str] | None,
        limit: int | None,
    ) -> dict[str, Any]:
        params = _params(entityRef=ref, depth=depth, relations=relations, kinds=kinds, limit=limit)
        result: dict[str, Any] = self._json(path, params)
        return result

    def path(
        self,
        source: str,
        target: str,
        *,
        relations: Sequence[str] | None = None,
        directed: bool | None = None,
    ) -> dict[str, Any]:
        """A shortest path; raises :class:`EntityNotFound` when there is none."""
        params = _params(relations=relations, directed=directed)
        result: dict[str, Any] = self._json(
            "/api/graph/path", [("from", source), ("to", target), *params]
        )
        return result

    def paths(
        self,
        source: str,
        target: str,
        *,
        relations: Sequence[str] | None = None,
        directed: bool | None = None,
        max_length: int | None = None,
        max_paths: int | None = None,
    ) -> dict[str, Any]:
        """Simple paths, shortest first, bounded by ``max_length`` and ``max_paths``."""
        params = _params(
            relations=relations, directed=directed, maxLength=max_length, maxPaths=max_paths
        )
        result: dict[str, Any] = self._json(
            "/api/graph/paths", [("from", source), ("to", target), *params]
        )
        return result

    def cycles(
        self,
        *,
        relations: Sequence[str] | None = None,
        limit: int | None = None,
        max_length: int | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "/api/graph/cycles", _params(relations=relations, limit=limit, maxLength=max_length)
        )
        return result

    def ownership(self, ref: str) -> dict[str, Any]:
        """The owner of ``ref`` (with contact), its parent groups to the root, its members."""
        result: dict[str, Any] = self._json("/api/graph/ownership", _params(entityRef=ref))
        return result

    def owned(
        self,
        group: str,
        *,
        transitive: bool = False,
        kinds: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """What ``group`` owns; ``transitive`` adds what its child groups own."""
        params = _params(entityRef=group, transitive=transitive, kinds=kinds, limit=limit)
        result: dict[str, Any] = self._json("/api/graph/owned", params)
        return result

    def orphans(self, *, kinds: Sequence[str] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._json("/api/graph/orphans", _params(kinds=kinds))
        return result

    def most_depended_on(
        self,
        *,
        relations: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        limit: int | None = None,
        sort: str | None = None,
    ) -> dict[str, Any]:
        params = _params(relations=relations, kinds=kinds, limit=limit, sort=sort)
        result: dict[str, Any] = self._json("/api/graph/most-depended-on", params)
        return result

    def subgraph(
        self,
        roots: Sequence[str] | None = None,
        *,
        relations: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        depth: int | None = None,
        direction: str | None = None,
    ) -> dict[str, Any]:
        """Entities near ``roots`` (the whole graph without roots) and their relations."""
        params = _params(
            rootEntityRefs=list(roots or []),
            relations=relations,
            kinds=kinds,
            depth=depth,
            direction=direction,
        )
        result: dict[str, Any] = self._json("/api/graph/subgraph", params)
        return result

    def export(self, query: str = "subgraph", fmt: str = "dot", **options: Any) -> bytes:
        """Any query's subgraph as ``node-link``, ``dot``, ``graphml``, ``mermaid`` or ``svg``.

        ``query`` names the endpoint (``subgraph``, ``dependencies``, ``impact``,
        ``cycles``, ...); ``options`` are its query parameters, e.g.
        ``export("dependencies", "dot", entityRef="payments-gateway", depth=2)``.
        """
        return self._get(f"/api/graph/{query}", [*_params(**options), ("format", fmt)])

    def catalog_graph(
        self,
        roots: Sequence[str],
        *,
        relations: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        max_depth: int | None = None,
    ) -> dict[str, Any]:
        """Backstage's catalog-graph answer: ``{entities, cutoff}``."""
        params = _params(
            rootEntityRefs=list(roots), relations=relations, kinds=kinds, maxDepth=max_depth
        )
        result: dict[str, Any] = self._json("/api/catalog-graph/graph", params)
        return result

    def status(self, *, memory: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self._json("/api/graph/status", _params(memory=memory or None))
        return result


def _error(status: int, body: bytes) -> GraphClientError:
    name, message = "Error", body.decode(errors="replace")[:500] or f"HTTP {status}"
    try:
        error = json.loads(body).get("error") or {}
        name = error.get("name") or name
        message = error.get("message") or message
    except (ValueError, AttributeError):
        pass
    cls = EntityNotFound if status == 404 else GraphClientError
    return cls(status, name, message)
