"""A progress bar for long commands, on a terminal only.

Drawn on stderr when stderr is a terminal (and ``TERM`` is not ``dumb``), silent
otherwise, so scripts and CI logs get the command's output and nothing else.
``CATALOG_PROGRESS=0`` turns it off, ``=1`` on (for terminals that are not ttys).

Hand-written rather than tqdm or rich: one redrawn line is all the CLI needs, and
the server's dependencies stay what the server uses.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TextIO

_SPINNER = "|/-\\"


def progress_enabled(stream: TextIO) -> bool:
    setting = os.environ.get("CATALOG_PROGRESS")
    if setting is not None:
        return setting not in ("", "0", "false", "no")
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """``with Progress("ingesting", unit="entities") as bar: bar.update(done, total)``."""

    def __init__(
        self,
        label: str,
        *,
        unit: str = "",
        stream: TextIO | None = None,
        enabled: bool | None = None,
        interval: float = 0.1,
    ):
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = progress_enabled(self.stream) if enabled is None else enabled
        self.interval = interval
        self.done = 0
        self.total: int | None = None
        self.note = ""
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self._frame = 0
        self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # On an error, erase the line: the error message follows on a clean one.
        self.close("" if exc_type is not None else None)

    def update(self, done: int, total: int | None = None, note: str = "") -> None:
        """Set the count (and the total, when known); redraws at most every ``interval``."""
        self.done, self.note = done, note
        if total is not None:
            self.total = total
        now = time.monotonic()
        if self.enabled and now - self._drawn_at >= self.interval:
            self._drawn_at = now
            self._draw(self.render(now))

    @contextmanager
    def ticking(self) -> Iterator[None]:
        """Keep redrawing (the spinner and elapsed time) while one long call runs."""
        if not self.enabled:
            yield
            return
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(self.interval):
                self.update(self.done, note=self.note)

        thread = threading.Thread(target=tick, name="progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def render(self, now: float | None = None) -> str:
        """The line as drawn: label, bar (or spinner), count, rate, remaining time."""
        elapsed = max(1e-9, (now or time.monotonic()) - self.started)
        unit = f" {self.unit}" if self.unit else ""
        rate = self.done / elapsed
        tail = f" {self.note}" if self.note else ""
        columns = shutil.get_terminal_size((80, 24)).columns
        if self.total:
            share = min(1.0, self.done / self.total)
            remaining = (self.total - self.done) / rate if rate > 0 else None
            eta = f" ETA {_duration(remaining)}" if remaining is not None and share < 1 else ""
            counts = f" {share:4.0%} {self.done}/{self.total}{unit} {rate:.0f}/s{eta}{tail}"
            width = max(10, min(40, columns - len(self.label) - len(counts) - 4))
            filled = int(width * share)
            bar = "#" * filled + "-" * (width - filled)
            line = f"{self.label} [{bar}]{counts}"
        else:
            self._frame += 1
            spin = _SPINNER[self._frame % len(_SPINNER)]
            line = f"{self.label} {spin} {self.done}{unit} {_duration(elapsed)}{tail}"
        return line[: columns - 1]

    def _draw(self, line: str) -> None:
        pad = " " * max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write(f"\r{line}{pad}")
        self.stream.flush()

    def close(self, message: str | None = None) -> None:
        """Draw the final state and end the line (or erase it when ``message`` is "")."""
        if not self.enabled:
            return
        if message == "":
            self._draw("")
            self.stream.write("\r")
        else:
            self._draw(message if message is not None else self.render())
            self.stream.write("\n")
        self.stream.flush()
        self.enabled = False
