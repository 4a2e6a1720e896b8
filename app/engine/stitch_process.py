"""Stitching in a process of its own, beside the one that processes and serves.

Processing and stitching are both CPU-bound Python; in one process they take turns on
one core (the GIL). A processing server therefore stitches in a child process: it is
spawned, not forked, so it shares nothing with its parent but the database, where the
two already meet (the stitch queue and its leases, see :mod:`app.engine.stitcher`).
What the parent needs back travels over a queue: how much was stitched and how long
it took (for ``/metrics``), and the child's last error (for readiness). The parent
tells it through shared memory until when processing is busy (see
``EngineSettings.stitch_max_delay``), wakes it through a pipe, stops it with SIGUSR1
(when it exits, too), restarts it if it dies, and takes it along when it dies itself.

The child ignores SIGTERM and SIGINT: a service manager stopping the server (systemd's
default ``KillMode=control-group``) or Ctrl-C in a terminal signals the whole process
group, and a child that obeyed would only be restarted by a parent still finishing
its requests. Nothing the two share has a lock the child could die holding
(multiprocessing's Event has: a killed waiter leaves the next ``set()`` hanging), and
a restarted child gets a new queue and pipe.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import queue
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from .engine import EngineSettings

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
#: How the parent tells the child to stop (see the module's docstring).
STOP_SIGNAL = signal.SIGUSR1


@dataclass(frozen=True)
class StitcherSpec:
    """What the child needs to open the database and log like its parent."""

    database_url: str
    busy_timeout: float
    log_format: str = "text"


class StitcherProcess:
    """The parent's handle on its stitching child."""

    def __init__(self, spec: StitcherSpec):
        self.spec = spec
        self._context = get_context("spawn")
        self._busy_until = self._context.Value("d", 0.0, lock=False)
        self._reports: Any = None
        self._wake: Any = None
        self._stopping = False
        self._process: Any = None
        self._settings: EngineSettings | None = None
        #: The child's last error, None while it works (readiness reports it).
        self.last_error: str | None = None
        self.restarts = 0
        self._stop_at_exit = False

    @property
    def running(self) -> bool:
        return self._process is not None

    def start(self, settings: EngineSettings) -> None:
        self._settings = settings
        self._stopping = False
        if not self._stop_at_exit:
            # Before multiprocessing's own exit handler (registered earlier, so run
            # later), which would send the SIGTERM the child ignores and wait forever.
            atexit.register(self.stop)
            self._stop_at_exit = True
        self._reports = self._context.Queue()
        wake_reader, self._wake = self._context.Pipe(duplex=False)
        # A full pipe means wake-ups are pending already: never wait to add one.
        os.set_blocking(self._wake.fileno(), False)
        self._process = self._context.Process(
            target=run_stitcher,
            args=(
                self.spec,
                settings,
                logging.getLogger().getEffectiveLevel(),
                os.getpid(),
                self._busy_until,
                wake_reader,
                self._reports,
            ),
            name="catalog-stitcher",
            # Terminated when this process exits normally; PDEATHSIG covers the rest.
            daemon=True,
        )
        self._process.start()
        wake_reader.close()
        log.info("Stitching in process %d", self._process.pid)

    def ensure_running(self) -> None:
        """Start the child again if it died (an out-of-memory kill, say)."""
        process = self._process
        if process is None or process.is_alive() or self._stopping:
            return
        self.last_error = f"the stitching process exited with status {process.exitcode}"
        log.error(
            "The stitching process %d exited (%s); starting a new one",
            process.pid,
            process.exitcode,
        )
        self.restarts += 1
        self._close_channels()
        assert self._settings is not None
        self.start(self._settings)

    def _close_channels(self) -> None:
        for channel in (self._wake, self._reports):
            with contextlib.suppress(OSError, ValueError):
                channel.close()

    def busy_until(self, until: float) -> None:
        self._busy_until.value = until

    def poke(self) -> None:
        """There is new work in the queue: stop waiting for the next poll."""
        with contextlib.suppress(BlockingIOError, OSError, AttributeError):  # full, or none
            self._wake.send_bytes(b"w")

    def reports(self) -> Iterator[tuple[int, float]]:
        """(entities changed, seconds) of each batch stitched since the last call."""
        while True:
            try:
                report = self._reports.get_nowait()
            except (queue.Empty, OSError, ValueError):
                return
            if report[0] == "stitched":
                yield report[1], report[2]
            else:
                self.last_error = report[1]

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        self._stopping = True
        if process.is_alive():
            with contextlib.suppress(ProcessLookupError):  # it finishes its batch, exits
                os.kill(process.pid, STOP_SIGNAL)
            process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join(5)
        self._close_channels()


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when its parent dies, SIGKILL included."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent's exit handler remains
        return
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os._exit(0)


def run_stitcher(
    spec: StitcherSpec,
    settings: EngineSettings,
    level: int,
    parent_pid: int,
    busy_until: Any,
    wake: Any,
    reports: Any,
) -> None:
    """The child: stitch whatever is queued until its parent says stop (STOP_SIGNAL)."""
    # Signals for the whole process group: the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent(parent_pid)

    from app.logs import configure_logging
    from app.storage.database import Database

    from .engine import CatalogEngine
    from .orchestrator import Orchestrator

    configure_logging(spec.log_format, level)

    class ReportingEngine(CatalogEngine):
        def stitch_done(self, changed: int, seconds: float) -> None:
            reports.put(("stitched", changed, seconds))

    db = Database(spec.database_url, busy_timeout=spec.busy_timeout, pool_size=2)
    # Only ever stitches (start() is never called): there is nothing to process with.
    engine = ReportingEngine(db, cast(Orchestrator, None), [], settings)
    # The stop signal ends the loop, and a stitch_pending run between two batches.
    # (Before this, its default action ends the process: no database work begun yet.)
    signal.signal(STOP_SIGNAL, lambda *_: engine._stop.set())
    sent: str | None = None
    try:
        while not engine._stop.is_set():
            work = engine._guarded(lambda: engine.stitch_pending(busy_until.value))
            if engine.stats.last_error != sent:
                sent = engine.stats.last_error
                reports.put(("status", sent))
            if work == 0 and wake.poll(settings.poll_interval):
                while wake.poll(0):
                    wake.recv_bytes()
    finally:
        db.dispose()
