"""JSON encoding in one place: compact wire form, and stable hashes of values."""

from __future__ import annotations

import hashlib
import json
from typing import Any

_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_stable = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
)
loads = json.loads


def dumps(value: Any) -> str:
    return _compact.encode(value)


def stable_dumps(value: Any) -> str:
    """Key-sorted JSON: equal values give equal text, whatever their key order."""
    return _stable.encode(value)


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()
