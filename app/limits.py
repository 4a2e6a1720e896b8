"""``catalog.limits``: a bound on everything a caller or a catalog file controls.

A catalog is fed from repositories anyone can edit and from an API anyone on the
network may call, so every input that costs memory or time has a ceiling. Each
violation is a clear error: a 400/413 on the request, or an error in the
``status.items`` of the entity (or Location) it concerns, never a crash or a hang.

Defaults are generous for real catalogs (a generated file with thousands of
users, a Location listing hundreds of repositories) and small enough that one
hostile file cannot exhaust the server.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    #: Bytes of a request body (413 above it).
    request_body_bytes: int = 5 * MiB
    #: Entity refs in one ``POST /entities/by-refs``.
    by_refs: int = 10_000
    #: ``limit`` of one page (``/entities``, ``/entities/by-query``, ``/locations/by-query``).
    page_size: int = 10_000
    #: Bytes of one catalog file (or placeholder target) handed to the YAML parser.
    file_bytes: int = 10 * MiB
    #: YAML documents (entities) in one file.
    documents_per_file: int = 20_000
    #: Mappings and sequences nested in one YAML document (the root mapping is level 1).
    nesting_depth: int = 64
    #: Nodes of one YAML document once its aliases are expanded ("billion laughs").
    yaml_nodes: int = 100_000
    #: ``$text``/``$json``/``$yaml`` placeholders read while processing one entity.
    placeholder_reads: int = 50
    #: Targets of one Location entity.
    location_targets: int = 1_000
    #: Files one glob target may match.
    glob_matches: int = 10_000
    #: HTTP redirects one ``url`` read follows.
    url_redirects: int = 5

    @classmethod
    def from_config(cls, value: Any) -> Limits:
        """Parse ``catalog.limits``; raises ValueError naming the bad key."""
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise ValueError("catalog.limits must be a mapping")
        by_key = {config_key(f.name): f.name for f in fields(cls)}
        unknown = sorted(set(value) - set(by_key))
        if unknown:
            raise ValueError(
                f"catalog.limits has unknown keys {', '.join(unknown)}; "
                f"known: {', '.join(sorted(by_key))}"
            )
        for key, item in value.items():
            minimum = 0 if key == "urlRedirects" else 1
            if isinstance(item, bool) or not isinstance(item, int) or item < minimum:
                raise ValueError(f"catalog.limits.{key} must be a whole number >= {minimum}")
        return cls(**{by_key[key]: item for key, item in value.items()})


def config_key(field_name: str) -> str:
    """``request_body_bytes`` -> ``requestBodyBytes``, the key in ``catalog.limits``."""
    head, *rest = field_name.split("_")
    return head + "".join(part.title() for part in rest)


DEFAULT_LIMITS = Limits()
