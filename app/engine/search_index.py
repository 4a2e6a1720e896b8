"""Flattening a final entity into ``search`` rows, with Backstage's exact rules.

Filters, ordering and facets all read these rows, so what is (and is not) indexed
here decides what a query can match: keys are dot-joined paths, lowercased; array
items share their parent's key and string items add ``<key>.<item> = true``; values
are stringified and lowercased, with the original kept for facets; keys or values
over 200 characters are dropped or nulled; ``status``, ``relations`` and
``attachments`` are not walked. Relations match as ``relations.<type> = <target
ref>``, answered from the relations table rather than stored here.
"""

from __future__ import annotations

from typing import Any

from app.errors import InputError

MAX_KEY_LENGTH = 200
MAX_VALUE_LENGTH = 200

# Paths the generic walk skips; the first four are added explicitly below.
_SKIPPED_PATHS = frozenset(
    {
        "attachments",
        "relations",
        "status",
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "metadata.etag",
    }
)

SearchRow = tuple[str, str | None, str | None]  # (key, value, original_value)


def _stringify(value: Any) -> str | None:
    if value is None:
        return None
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _walk(path: str, value: Any, out: list[tuple[str, Any]]) -> None:
    if path in _SKIPPED_PATHS:
        return
    if isinstance(value, dict):
        for key, child in value.items():
            _walk(f"{path}.{key}" if path else key, child, out)
    elif isinstance(value, list):
        seen_items: set[str] = set()
        for item in value:
            _walk(path, item, out)
            if isinstance(item, str):
                lowered = item.lower()
                if lowered not in seen_items:
                    seen_items.add(lowered)
                    out.append((f"{path}.{item}", True))
    else:
        out.append((path, value))


def build_search_rows(entity: dict[str, Any]) -> list[SearchRow]:
    """The search rows of one final entity. Raises InputError on case-colliding keys.

    ``relations.<type>`` rows are not among them: the relations table answers those
    keys (``app.storage.filters``). Their keys still take part in the casing check.
    """
    raw: list[tuple[str, Any]] = []
    _walk("", entity, raw)

    metadata = entity.get("metadata") or {}
    raw.append(("metadata.name", metadata.get("name")))
    raw.append(("metadata.namespace", metadata.get("namespace")))
    raw.append(("metadata.uid", metadata.get("uid")))
    if not metadata.get("namespace"):
        raw.append(("metadata.namespace", "default"))

    # Keys are matched case-insensitively; two spellings of one key in the same
    # entity would make filters ambiguous, so Backstage refuses the entity.
    keys = {key for key, _ in raw}
    keys.update(f"relations.{relation['type']}" for relation in entity.get("relations") or ())
    lowered_keys = {key.lower() for key in keys}
    if len(keys) != len(lowered_keys):
        duplicates: list[str] = []
        for key in keys:
            lowered = key.lower()
            if lowered in lowered_keys:
                lowered_keys.discard(lowered)
            elif lowered not in duplicates:
                duplicates.append(lowered)
        listed = "', '".join(sorted(duplicates))
        raise InputError(f"Entity has duplicate keys that vary only in casing, '{listed}'")

    rows: list[SearchRow] = []
    seen: set[tuple[str, str | None]] = set()
    for key, value in raw:
        # NUL cannot be stored in PostgreSQL text (nor sent in a query): drop it.
        lowered_key = key.lower().replace("\x00", "")
        if len(lowered_key) > MAX_KEY_LENGTH:
            continue
        text = _stringify(value)
        if text is not None:
            text = text.replace("\x00", "")
        row: SearchRow
        if text is None or len(text) > MAX_VALUE_LENGTH:
            row = (lowered_key, None, None)
        else:
            row = (lowered_key, text.lower(), text)
        # Duplicate array items give identical rows; keep one.
        marker = (row[0], row[1])
        if marker not in seen:
            seen.add(marker)
            rows.append(row)
    return rows
