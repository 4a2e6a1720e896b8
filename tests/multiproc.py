"""What the multi-process and crash tests share.

* ``install_recorder``: a processor plugin that appends one line per processed entity
  (ref, process id, thread, start, end, version) to a file, installed as a distribution
  of its own (a ``.dist-info`` folder with its entry point, no pip) that servers see
  through ``PYTHONPATH``;
* ``served`` and ``leftovers``: what a catalog database serves (refs, relations,
  versions) and what is left in its processing tables (unprocessed rows, claims, due
  rows, the stitch queue, duplicated references, processed entities never stitched);
* ``stamp_catalog``: rewrite a synthetic organisation's files with a new version;
* ``start`` a server on a synthetic organisation, ``check_settled_catalog`` what it
  serves in the end;
* ``TcpProxy``: a TCP proxy to PostgreSQL whose ``cut`` is a real outage for its
  clients (connections dropped, new ones refused) until ``restore``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from sqlalchemy import create_engine, text

from app.bench.synthetic import SyntheticCatalog, expected_relations, generate_entities
from app.storage.database import normalise_url
from tests.conftest import ServerProcess, launch_server

VERSION_ANNOTATION = "test.example/version"

RECORDER_MODULE = '''
"""Records each processing of an entity: "ref pid thread start end version" lines."""

import os
import threading
import time

from app.model.refs import entity_ref
from processors.base import CatalogProcessor

VERSION_ANNOTATION = "test.example/version"
_started = threading.local()


class RecordingProcessor(CatalogProcessor):
    name = "RecordingProcessor"

    def __init__(self, config):
        self.path = config["file"]
        self.delay = float(config.get("delaySeconds", 0))
        self.slow_version = config.get("slowVersion")
        self.slow_seconds = float(config.get("slowSeconds", 0))
        self.slow_marker = config.get("slowMarker")
        self.freeze_when = config.get("freezeWhen")
        self.frozen_marker = config.get("frozenMarker")

    def pre_process_entity(self, entity, location, emit, origin, cache):
        _started.at = time.time()
        if self.freeze_when and os.path.exists(self.freeze_when):
            # Asked to freeze: say which entity this process holds (claimed, mid-batch),
            # then never finish it; the test kills the process.
            with open(self.frozen_marker + ".tmp", "w") as marker:
                marker.write(f"{entity_ref(entity)} {os.getpid()}")
            os.rename(self.frozen_marker + ".tmp", self.frozen_marker)
            while True:
                time.sleep(60)
        if self.delay:
            time.sleep(self.delay)
        annotations = entity["metadata"].get("annotations") or {}
        if self.slow_version and annotations.get(VERSION_ANNOTATION) == self.slow_version:
            # The first process to see this version is slow with it, once, and says so.
            try:
                fd = os.open(self.slow_marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                return entity
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            time.sleep(self.slow_seconds)
        return entity

    def post_process_entity(self, entity, location, emit, cache):
        version = (entity["metadata"].get("annotations") or {}).get(VERSION_ANNOTATION, "-")
        line = (
            f"{entity_ref(entity)} {os.getpid()} {threading.get_ident()} "
            f"{_started.at!r} {time.time()!r} {version}\\n"
        )
        # One write(2) per line on an O_APPEND file: lines of several processes never mix.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        return entity


def factory(context):
    return RecordingProcessor(context.config)
'''


def install_recorder(directory: Path) -> Path:
    """Install the recording processor into ``directory``; returns it, for PYTHONPATH.

    Servers load it when their config has ``catalog.processors.testRecorder:
    {file: <path>, delaySeconds: <seconds spent in each entity>}``; with ``slowVersion``,
    ``slowSeconds`` and ``slowMarker``, the first processing of an entity of that
    version anywhere creates the marker file (holding its pid) and lasts that long; with
    ``freezeWhen`` and ``frozenMarker``, once the first file exists, the next entity the
    process handles is written to the marker ("ref pid") and never finished.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "catalog_test_recorder.py").write_text(RECORDER_MODULE)
    info = directory / "catalog_test_recorder-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: catalog-test-recorder\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[catalog.processors]\ntestRecorder = catalog_test_recorder:factory\n"
    )
    return directory


@dataclass(frozen=True)
class Processing:
    ref: str
    pid: int
    thread: int
    start: float
    end: float
    version: str


def read_records(path: Path) -> list[Processing]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        ref, pid, thread, start, end, version = line.split(" ")
        records.append(Processing(ref, int(pid), int(thread), float(start), float(end), version))
    return records


def overlapping(records: list[Processing]) -> list[tuple[Processing, Processing]]:
    """Pairs of processings of one entity that ran at the same time."""
    by_ref: dict[str, list[Processing]] = defaultdict(list)
    for record in records:
        by_ref[record.ref].append(record)
    found = []
    for runs in by_ref.values():
        runs.sort(key=lambda r: r.start)
        latest = runs[0]
        for run in runs[1:]:
            if run.start < latest.end:
                found.append((latest, run))
            if run.end > latest.end:
                latest = run
    return found


def processed_by(records: list[Processing]) -> dict[int, int]:
    """How many entities each process ran through the processors."""
    counts: dict[int, int] = defaultdict(int)
    for record in records:
        counts[record.pid] += 1
    return dict(counts)


# -- the database -----------------------------------------------------------------------


@dataclass
class Served:
    refs: list[str]
    relations: set[tuple[str, str, str]]
    versions: dict[str, str]
    generation: int

    @property
    def ref_set(self) -> set[str]:
        return set(self.refs)


def _query(url: str, work: Callable[[Any], Any]) -> Any:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return work(conn)
    finally:
        engine.dispose()


def served(url: str) -> Served:
    """What the catalog in ``url`` serves: every final entity, as the API would."""

    def read(conn: Any) -> Served:
        refs: list[str] = []
        relations: set[tuple[str, str, str]] = set()
        versions: dict[str, str] = {}
        for ref, body in conn.execute(text("SELECT entity_ref, final_entity FROM final_entities")):
            entity = json.loads(body)
            refs.append(ref)
            for relation in entity.get("relations") or []:
                relations.add((ref, relation["type"], relation["targetRef"]))
            annotations = entity["metadata"].get("annotations") or {}
            versions[ref] = annotations.get(VERSION_ANNOTATION, "-")
        generation = conn.execute(
            text("SELECT value FROM catalog_state WHERE key = 'generation'")
        ).scalar()
        return Served(refs, relations, versions, int(generation or 0))

    result: Served = _query(url, read)
    return result


def processed_count(url: str) -> int:
    """Entities processed at least once."""
    count = _query(
        url,
        lambda conn: conn.execute(
            text("SELECT count(*) FROM refresh_state WHERE processed_at IS NOT NULL")
        ).scalar(),
    )
    return int(count or 0)


def claims(url: str) -> dict[str, float]:
    """The claimed rows: entity ref -> until when."""

    def read(conn: Any) -> dict[str, float]:
        rows = conn.execute(
            text(
                "SELECT entity_ref, claimed_until FROM refresh_state "
                "WHERE claimed_until IS NOT NULL"
            )
        )
        return {ref: until for ref, until in rows}

    result: dict[str, float] = _query(url, read)
    return result


def leftovers(url: str) -> dict[str, Any]:
    """Everything that says the catalog in ``url`` has work left or lost some; every
    value is 0 in a settled catalog."""
    now = time.time()
    queries = {
        "unprocessed": "SELECT count(*) FROM refresh_state WHERE processed_at IS NULL",
        "claimed": "SELECT count(*) FROM refresh_state WHERE claimed_until IS NOT NULL",
        "due": f"SELECT count(*) FROM refresh_state WHERE next_update_at <= {now!r}",
        "queued": "SELECT count(*) FROM stitch_queue",
        # Processed but never served: a stitch lost on the way.
        "unserved": "SELECT count(*) FROM refresh_state r WHERE processed_entity IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM final_entities f WHERE f.entity_id = r.entity_id)",
        # Served though its row is gone.
        "stale": "SELECT count(*) FROM final_entities f WHERE NOT EXISTS "
        "(SELECT 1 FROM refresh_state r WHERE r.entity_id = f.entity_id)",
        "duplicate_references": "SELECT count(*) FROM (SELECT 1 FROM refresh_state_references "
        "GROUP BY source_key, source_entity_ref, target_entity_ref HAVING count(*) > 1) d",
        "duplicate_relations": "SELECT count(*) FROM (SELECT 1 FROM relations GROUP BY "
        "originating_entity_id, source_entity_ref, type, target_entity_ref "
        "HAVING count(*) > 1) d",
    }

    def read(conn: Any) -> dict[str, Any]:
        counts: dict[str, Any] = {
            name: int(conn.execute(text(sql)).scalar() or 0) for name, sql in queries.items()
        }
        latest = conn.execute(text("SELECT max(next_update_at) FROM refresh_state")).scalar()
        counts["latest_next_update_in"] = None if latest is None else latest - now
        return counts

    result: dict[str, Any] = _query(url, read)
    return result


def settled(url: str) -> bool:
    counts = leftovers(url)
    return not any(counts[k] for k in ("unprocessed", "claimed", "due", "queued"))


def wait_for(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> float:
    """Poll ``condition`` until it holds; return the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(every)
    return time.monotonic() - started


def ingest_reference(url: str, root: Path, timeout: float = 600) -> float:
    """The uninterrupted single-process run: ``catalog ingest`` into ``url``; its seconds."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "ingest", "--database-url", url, "--location", str(root)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return time.monotonic() - started


# -- catalog files ----------------------------------------------------------------------

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: type = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def stamp_catalog(
    root: Path,
    version: str,
    change: Callable[[dict[str, Any]], None] | None = None,
    only: str | None = None,
) -> list[dict[str, Any]]:
    """Rewrite the entity files of the synthetic organisation under ``root`` (its
    ``all.yaml``'s folder) with ``version`` in an annotation and ``change`` applied, to
    every entity or ``only`` the one of that ref; returns every entity as now written."""
    entities: list[dict[str, Any]] = []
    for path in sorted(root.rglob("*.yaml")):
        if path.name == "all.yaml":
            continue
        documents = list(yaml.load_all(path.read_text(), Loader=_Loader))
        entities.extend(documents)
        touched = False
        for entity in documents:
            if only is not None and ref_of(entity) != only:
                continue
            touched = True
            entity["metadata"].setdefault("annotations", {})[VERSION_ANNOTATION] = version
            if change is not None:
                change(entity)
        if not touched:
            continue
        # Written whole, then renamed: a reader never sees half a file.
        scratch = path.with_suffix(".tmp")
        scratch.write_text(yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False))
        scratch.replace(path)
    return entities


def ref_of(entity: dict[str, Any]) -> str:
    namespace = entity["metadata"].get("namespace", "default")
    return f"{entity['kind']}:{namespace}/{entity['metadata']['name']}".lower()


def version_of(entity: dict[str, Any]) -> str:
    return str((entity["metadata"].get("annotations") or {}).get(VERSION_ANNOTATION, "-"))


# -- servers ----------------------------------------------------------------------------


def metric(base: str, name: str) -> float:
    """A sample without labels from ``/metrics`` of the server at ``base``."""
    for line in requests.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ")[1])
    raise KeyError(name)


def refresh(base: str, ref: str) -> None:
    response = requests.post(f"{base}/api/catalog/refresh", json={"entityRef": ref}, timeout=30)
    assert response.status_code in (200, 204), response.text


# -- servers on a synthetic organisation ------------------------------------------------

#: The tests' processing interval (tests/conftest.py): nothing comes due by itself.
INTERVAL_SECONDS = 3600
#: The synthetic organisation's root Location entity.
ROOT = "location:default/bench-root"
PROCESSED = "catalog_entities_processed_total"


def start(
    started: list[ServerProcess],
    database_url: str,
    directory: Path,
    root: Path,
    *,
    site: Path | None = None,
    record: Path | None = None,
    recorder: dict[str, Any] | None = None,
    extra_args: list[str] | None = None,
    catalog: dict[str, Any] | None = None,
    backend: dict[str, Any] | None = None,
) -> ServerProcess:
    """``catalog serve`` on the synthetic organisation at ``root``, not waiting for it,
    in a session of its own (``kill`` reaches its workers); with the recorder writing to
    ``record`` (or set by ``recorder``); ``catalog`` and ``backend`` add configuration."""
    section: dict[str, Any] = dict(catalog or {})
    if record is not None:
        recorder = {"file": str(record)}
    if recorder is not None:
        section["processors"] = {"testRecorder": recorder}
    server = launch_server(
        database_url,
        directory,
        [root],
        extra_args=extra_args,
        env={"PYTHONPATH": str(site)} if site else None,
        wait=False,
        new_session=True,
        catalog=section,
        backend=backend or {},
    )
    started.append(server)
    return server


def wait_alive(server: ServerProcess, timeout: float = 60) -> None:
    def alive() -> bool:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited:\n{server.log()}")
        try:
            url = f"{server.base}/.backstage/health/v1/liveness"
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_for(alive, timeout, "liveness")


def check_settled_catalog(url: str, synthetic: SyntheticCatalog, entities: list[dict]) -> None:
    """Served: exactly the organisation (plus its two Location entities), its relations
    as ``entities`` now say, every entity in its last version; nothing left over."""
    final = served(url)
    assert len(final.refs) == len(set(final.refs)) == synthetic.expected_entities
    assert {r for r in final.refs if not r.startswith("location:")} == synthetic.expected_refs
    assert final.relations == expected_relations(entities)
    versions = {r: v for r, v in final.versions.items() if not r.startswith("location:")}
    assert versions == {ref_of(entity): version_of(entity) for entity in entities}
    counts = leftovers(url)
    assert counts.pop("latest_next_update_in") <= INTERVAL_SECONDS + 60
    assert counts == dict.fromkeys(counts, 0)


def synthetic_entities(synthetic: SyntheticCatalog) -> list[dict[str, Any]]:
    """The organisation's entities as write_catalog wrote them (never stamped)."""
    return generate_entities(synthetic.entity_count)


# -- a PostgreSQL that goes away --------------------------------------------------------


class TcpProxy:
    """127.0.0.1:<port> forwarded to ``target``; ``cut`` drops every connection and
    refuses new ones (nothing listens) until ``restore``."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._sockets.discard(source)
            self._sockets.discard(sink)
        source.close()
        sink.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
