"""Entity ids: UUIDs (they become ``metadata.uid``) that sort by creation time.

A random (version 4) UUID lands anywhere in every index keyed by it, so bulk
ingestion touches pages all over the search, relation and final-entity indexes. A
version 7 layout (48 bits of milliseconds, then random bits) keeps new ids next
to each other, and they are still ordinary, unique, unguessable-enough UUIDs.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_sequence = 0


def new_entity_id() -> str:
    global _last_ms, _sequence
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            # Same millisecond (or a clock step back): count up within the last one so
            # ids stay ordered in this process.
            now_ms = _last_ms
            _sequence = (_sequence + 1) & 0xFFF
            if _sequence == 0:
                now_ms += 1
        else:
            _sequence = int.from_bytes(os.urandom(2), "big") & 0x3FF
        _last_ms = now_ms
        sequence = _sequence
    random_tail = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (now_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | sequence << 64 | 0b10 << 62 | random_tail
    return str(uuid.UUID(int=value))
