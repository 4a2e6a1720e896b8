"""Running benchmark scenarios and reporting them.

A scenario is one catalog size on one server: generate the catalog, start the
server cold, wait until everything is served, run the query mix, force a refresh
of the unchanged catalog, read the peak memory, stop. Each scenario gives one
column of the table; a Backstage column is followed by the ratio to ours.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import text

from app.graph.measure import graph_figures, update_visibility
from app.progress import Progress

from .queries import (
    GRAPH_KINDS,
    QUERY_KINDS,
    REPEATED_KINDS,
    build_graph_requests,
    build_requests,
    graph_root,
    has_graph_api,
    run_queries,
    wait_complete,
)
from .servers import (
    BenchDatabase,
    CatalogServer,
    ReferenceServer,
    bench_database,
    cpu_seconds,
    peak_rss_mb,
)
from .synthetic import DEFAULT_SEED, SyntheticCatalog, write_catalog


@dataclass
class Scenario:
    target: str  # "ours" | "backstage" | "url"
    entities: int
    single_file: bool = False
    database_url: str | None = None
    base_url: str | None = None

    @property
    def layout(self) -> str:
        return "1 file" if self.single_file else "files"


@dataclass
class Options:
    requests: int = 200
    seed: int = DEFAULT_SEED
    keep: bool = False
    workdir: Path | None = None
    ingest_timeout: float | None = None
    refresh: bool = True
    analyze: bool = True
    graph: bool = True
    #: Changes timed by the update-visibility figure (each one made and undone).
    updates: int = 5
    #: Before starting each server, wait until the 1-minute load average is below this.
    max_load: float | None = None
    max_load_wait: float = 1800.0

    def timeout_for(self, entities: int) -> float:
        return self.ingest_timeout or 120.0 + entities * 0.03


def run_scenario(scenario: Scenario, options: Options, log: Any = print) -> dict[str, Any]:
    """Run one scenario; the figures as a JSON-able dict (``error`` set on failure)."""
    if options.workdir:
        Path(options.workdir).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="catalog-bench-", dir=options.workdir))
    result: dict[str, Any] = {
        "target": scenario.target,
        "entities": scenario.entities,
        "single_file": scenario.single_file,
        "error": None,
        # Other work on the machine skews every figure: record how busy it was.
        "load_average_before": _load(),
    }
    try:
        started = time.monotonic()
        with Progress(f"[{_label(scenario)}] generating", unit="entities") as bar:
            bar.update(0, scenario.entities)
            with bar.ticking():
                catalog = write_catalog(
                    workdir / "catalog",
                    scenario.entities,
                    seed=options.seed,
                    single_file=scenario.single_file,
                    progress=bar.update,
                )
        result["catalog"] = {
            "files": catalog.files,
            "bytes": catalog.bytes,
            "expected_entities": catalog.expected_entities,
            "expected_relations": catalog.expected_relations,
            "generate_s": round(time.monotonic() - started, 3),
            "path": str(catalog.root) if options.keep else None,
        }
        log(
            f"[{_label(scenario)}] catalog: {catalog.expected_entities} entities, "
            f"{catalog.expected_relations} relations, {catalog.files} files"
        )
        if options.max_load is not None:
            result["load_wait_s"] = wait_for_quiet(options.max_load, options.max_load_wait, log)
            result["load_average_before"] = _load()
        if scenario.target == "ours":
            with bench_database(scenario.database_url, workdir) as database:
                result["database"] = database.label
                _run_ours(scenario, options, catalog, database, workdir, result, log)
        elif scenario.target == "backstage":
            result["database"] = "backstage (sqlite :memory:)"
            _run_server(
                ReferenceServer(workdir, catalog.root), scenario, options, catalog, result, log
            )
        else:
            result["database"] = "external"
            _run_external(scenario, options, catalog, result, log)
    except Exception as exc:  # one failed scenario must not lose the others
        result["error"] = f"{type(exc).__name__}: {exc}"
        log(f"[{_label(scenario)}] FAILED: {result['error']}")
    finally:
        result["load_average_after"] = _load()
        if options.keep:
            log(f"[{_label(scenario)}] kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def _run_ours(
    scenario: Scenario,
    options: Options,
    catalog: SyntheticCatalog,
    database: BenchDatabase,
    workdir: Path,
    result: dict[str, Any],
    log: Any,
) -> None:
    server = CatalogServer(workdir, database.url, catalog.root)
    _run_server(server, scenario, options, catalog, result, log, database=database)


def _run_server(
    server: CatalogServer | ReferenceServer,
    scenario: Scenario,
    options: Options,
    catalog: SyntheticCatalog,
    result: dict[str, Any],
    log: Any,
    database: BenchDatabase | None = None,
) -> None:
    # The clock starts when the process is spawned (the constructor returns right after).
    started = time.monotonic()
    label = _label(scenario)
    try:
        with Progress(f"[{label}] ingesting", unit="entities") as bar, bar.ticking():
            completion = wait_complete(
                server.base_url,
                catalog,
                started,
                alive=server.alive,
                timeout=options.timeout_for(scenario.entities),
                progress=_ingest_progress(bar),
            )
        ingest = asdict(completion)
        ingest["cpu_s"] = round(cpu_seconds(server.pid), 2)
        if completion.complete_s:
            ingest["entities_per_s"] = round(scenario.entities / completion.complete_s)
        result["ingest"] = _rounded(ingest)
        if completion.complete_s is None:
            raise RuntimeError(
                f"not complete after {options.timeout_for(scenario.entities):.0f}s: "
                f"{completion.entities} entities, {completion.relations} relations served\n"
                + server.log_tail()
            )
        log(f"[{_label(scenario)}] ingested in {completion.complete_s:.2f}s")
        if database is not None and database.label == "postgresql" and options.analyze:
            result["ingest"]["analyze_s"] = analyze(database)
        plan = build_requests(catalog, options.requests, options.seed)
        result["queries"] = run_queries(
            server.base_url, plan, options.requests, label=f"[{label}] "
        )
        if options.graph and database is not None:
            _run_graph(server.base_url, catalog, options, result, log, label, database)
        if database is not None and options.refresh:
            result["refresh_unchanged_s"] = force_refresh(database, server.pid, label=label)
            log(f"[{label}] unchanged refresh in {result['refresh_unchanged_s']}s")
        result["peak_rss_mb"] = round(peak_rss_mb(server.pid), 1)
    finally:
        server.stop()


def _run_external(
    scenario: Scenario,
    options: Options,
    catalog: SyntheticCatalog,
    result: dict[str, Any],
    log: Any,
) -> None:
    assert scenario.base_url is not None
    base = scenario.base_url.rstrip("/")
    completion = wait_complete(
        base, catalog, time.monotonic(), alive=lambda: True, timeout=options.timeout_for(0)
    )
    result["ingest"] = {
        "entities": completion.entities,
        "relations": completion.relations,
        "missing_refs": completion.missing_refs,
    }
    if completion.complete_s is None:
        log(
            f"[{_label(scenario)}] WARNING: the catalog at {base} does not serve the synthetic "
            f"catalog of {scenario.entities} ({completion.entities} entities, "
            f"{completion.relations} relations); latencies are not comparable"
        )
    plan = build_requests(catalog, options.requests, options.seed)
    label = _label(scenario)
    result["queries"] = run_queries(base, plan, options.requests, label=f"[{label}] ")
    if options.graph and has_graph_api(graph_root(base)):
        _run_graph(base, catalog, options, result, log, label, None)


def _ingest_progress(bar: Progress) -> Any:
    def update(served: int, expected: int, note: str) -> None:
        bar.update(served, expected, note)

    return update


def _run_graph(
    base: str,
    catalog: SyntheticCatalog,
    options: Options,
    result: dict[str, Any],
    log: Any,
    label: str,
    database: BenchDatabase | None,
) -> None:
    """The graph API's latencies; with the database: the graph's build, memory and
    how soon a changed relation shows in graph queries."""
    targets = catalog.graph
    root = graph_root(base)
    if targets is None or not has_graph_api(root):
        return
    hub = targets.most_depended_on
    graph: dict[str, Any] = {
        "most_depended_on": hub,
        "direct_dependents": targets.direct_dependents,
        "transitive_dependents": targets.transitive_dependents,
    }
    result["graph"] = graph
    # Does the server's graph agree with the generator? (Otherwise the latencies
    # would time a different question.)
    # limit=1: not the cache entry of the timed requests (their first one stays cold).
    answer = requests.get(
        root + "/api/graph/dependents", params={"entityRef": hub, "limit": "1"}, timeout=300
    )
    graph["served_dependents"] = answer.json().get("totalItems") if answer.ok else None
    if graph["served_dependents"] != targets.transitive_dependents:
        log(
            f"[{label}] WARNING: the graph serves {graph['served_dependents']} dependents of "
            f"{hub}, the catalog has {targets.transitive_dependents}"
        )
    plan = build_graph_requests(catalog, options.requests, options.seed)
    result.setdefault("queries", {}).update(
        run_queries(root, plan, 0, kinds=GRAPH_KINDS, label=f"[{label}] ")
    )
    status = requests.get(root + "/api/graph/status", timeout=300)
    if status.ok:
        graph["server"] = status.json().get("refresh")
    if database is None:
        return
    with Progress(f"[{label}] building the graph") as bar, bar.ticking():
        figures = graph_figures(database.url)
    graph["build_s"] = figures["buildSeconds"]
    graph["nodes"] = figures["nodes"]
    graph["edges"] = figures["edges"]
    graph["memory_mb"] = round(figures["memoryBytes"] / 2**20, 1)
    log(
        f"[{label}] graph: {figures['nodes']:,} nodes, {figures['edges']:,} edges, "
        f"{graph['memory_mb']} MB, built in {figures['buildSeconds']:.2f}s"
    )
    rng = random.Random(f"updates:{options.seed}:{catalog.entity_count}")
    sources = targets.independent_components
    chosen = rng.sample(sources, k=min(options.updates, len(sources)))
    seconds = []
    with Progress(f"[{label}] update visibility", unit="changes") as bar:
        for index, source in enumerate(chosen):
            try:
                seconds.append(update_visibility(root, database.url, source, hub)["seconds"])
            except (RuntimeError, TimeoutError) as exc:  # the other figures still count
                graph["update_visible_error"] = f"{type(exc).__name__}: {exc}"
                log(f"[{label}] update visibility: {graph['update_visible_error']}")
                break
            bar.update(index + 1, len(chosen))
    if seconds:
        graph["update_visible_s"] = {
            "count": len(seconds),
            "median": round(statistics.median(seconds), 4),
            "max": round(max(seconds), 4),
            "samples": seconds,
        }
        log(
            f"[{label}] a changed relation shows in graph queries after "
            f"{statistics.median(seconds) * 1000:.0f} ms (median of {len(seconds)})"
        )


def analyze(database: BenchDatabase) -> float:
    """``ANALYZE`` the fresh PostgreSQL database, as autovacuum would soon after a load.

    Without statistics PostgreSQL plans the by-query joins as if tables were nearly
    empty (seconds per request at 10,000 entities); servers with autovacuum off (like
    the test server here) would otherwise never get any.
    """
    engine = database.engine().execution_options(isolation_level="AUTOCOMMIT")
    try:
        started = time.monotonic()
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
        return round(time.monotonic() - started, 3)
    finally:
        engine.dispose()


def force_refresh(
    database: BenchDatabase, pid: int, timeout: float = 1800.0, label: str = ""
) -> float | None:
    """Make every entity due now and time until the server has finished with them.

    Done means: nothing due, nothing queued for stitching, and the server's CPU idle
    (an unchanged entity is processed but not written, so the database alone cannot
    tell when its processing ended).
    """
    engine = database.engine()
    bar = Progress(f"[{label}] refreshing" if label else "refreshing", unit="entities")
    try:
        with engine.begin() as conn:
            total = conn.execute(text("UPDATE refresh_state SET next_update_at = 0")).rowcount
        started = time.monotonic()
        last_cpu, last_t = cpu_seconds(pid), started
        idle_since: float | None = None
        idle_samples = 0
        while time.monotonic() - started < timeout:
            time.sleep(0.1)
            with engine.connect() as conn:
                due = conn.execute(
                    text("SELECT count(*) FROM refresh_state WHERE next_update_at <= :now"),
                    {"now": time.time()},
                ).scalar_one()
                queued = conn.execute(text("SELECT count(*) FROM stitch_queue")).scalar_one()
            bar.update(max(0, total - due), total)
            now, cpu = time.monotonic(), cpu_seconds(pid)
            busy = (cpu - last_cpu) / max(now - last_t, 1e-3) > 0.25
            last_cpu, last_t = cpu, now
            if due or queued or busy:
                idle_since, idle_samples = None, 0
                continue
            if idle_since is None:
                idle_since = now
            idle_samples += 1
            if idle_samples >= 3:
                return round(idle_since - started, 3)
        return None
    finally:
        bar.close()
        engine.dispose()


def wait_for_quiet(max_load: float, timeout: float, log: Any = print) -> float:
    """Wait (at most ``timeout`` s) until the 1-minute load average is below ``max_load``."""
    started = time.monotonic()
    if os.getloadavg()[0] < max_load:
        return 0.0
    load = os.getloadavg()[0]
    log(f"waiting for the 1-minute load average ({load:.2f}) to fall below {max_load}")
    with Progress("waiting for a quiet machine") as bar, bar.ticking():
        while os.getloadavg()[0] >= max_load:
            if time.monotonic() - started > timeout:
                log(f"still {os.getloadavg()[0]:.2f} after {timeout:.0f} s: running anyway")
                break
            bar.update(0, note=f"load {os.getloadavg()[0]:.2f}")
            time.sleep(2)
    return round(time.monotonic() - started, 1)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()}


# -- report ---------------------------------------------------------------------------


def _label(scenario: Scenario | dict[str, Any]) -> str:
    data = asdict(scenario) if isinstance(scenario, Scenario) else scenario
    target = data["target"]
    if target == "ours":
        url = data.get("database_url") or ""
        name = data.get("database") or ("postgresql" if url.startswith("postgres") else "sqlite")
    elif target == "backstage":
        name = "backstage"
    else:
        name = "url"
    suffix = " 1-file" if data["single_file"] else ""
    return f"{name} {data['entities']:,}{suffix}"


def _get(result: dict[str, Any], *path: str) -> Any:
    node: Any = result
    for part in path:
        if not isinstance(node, dict) or node.get(part) is None:
            return None
        node = node[part]
    return node


# (row label, path into a result, format, lower is better)
_ROWS: list[tuple[str, tuple[str, ...], str, bool]] = [
    ("entities served", ("ingest", "entities"), "{:,}", False),
    ("relations served", ("ingest", "relations"), "{:,}", False),
    ("catalog YAML files", ("catalog", "files"), "{:,}", False),
    ("HTTP up (s)", ("ingest", "http_up_s"), "{:.2f}", True),
    ("all entities served (s)", ("ingest", "entities_s"), "{:.2f}", True),
    ("INGEST: all relations served (s)", ("ingest", "complete_s"), "{:.2f}", True),
    ("ingest rate (entities/s)", ("ingest", "entities_per_s"), "{:,}", False),
    ("server CPU during ingest (s)", ("ingest", "cpu_s"), "{:.1f}", True),
    ("PostgreSQL ANALYZE after ingest (s)", ("ingest", "analyze_s"), "{:.2f}", True),
    ("refresh of unchanged catalog (s)", ("refresh_unchanged_s",), "{:.2f}", True),
    ("peak RSS, server tree (MB)", ("peak_rss_mb",), "{:,.0f}", True),
]
for _key, _description in QUERY_KINDS + GRAPH_KINDS:
    _ROWS.append((f"{_key} median (ms)", ("queries", _key, "median_ms"), "{:.1f}", True))
    _ROWS.append((f"{_key} p95 (ms)", ("queries", _key, "p95_ms"), "{:.1f}", True))
    _ROWS.append(
        (
            f"{_key} in the server, median (ms)",
            ("queries", _key, "server_median_ms"),
            "{:.2f}",
            True,
        )
    )
    if _key in REPEATED_KINDS:
        _ROWS.append((f"{_key} first request (ms)", ("queries", _key, "first_ms"), "{:.1f}", True))
    if _key == "dependents_walk":
        _ROWS.append(("dependents_walk: found", ("queries", _key, "found"), "{:,}", False))
_ROWS += [
    ("failed requests", ("queries",), "{}", False),
    ("graph: dependents served by /api/graph", ("graph", "served_dependents"), "{:,}", False),
    ("graph build from the database (s)", ("graph", "build_s"), "{:.2f}", True),
    ("graph nodes", ("graph", "nodes"), "{:,}", False),
    ("graph edges", ("graph", "edges"), "{:,}", False),
    ("graph memory (MB)", ("graph", "memory_mb"), "{:,.1f}", True),
    ("update visible to graph, median (ms)", ("graph", "update_visible_s", "median"), "ms", True),
    ("update visible to graph, max (ms)", ("graph", "update_visible_s", "max"), "ms", True),
]


def _cell(result: dict[str, Any], path: tuple[str, ...], fmt: str) -> str:
    if result.get("error") and path[0] in ("ingest",) and _get(result, *path) is None:
        return "FAILED"
    value = _get(result, *path)
    if path == ("queries",):
        return str(sum(q.get("errors", 0) for q in value.values())) if value else "-"
    if value is not None and fmt == "ms":  # stored in seconds
        return f"{value * 1000:.0f}"
    return "-" if value is None else fmt.format(value)


def _ratio(theirs: dict[str, Any], ours: dict[str, Any], path: tuple[str, ...]) -> str:
    a, b = _get(theirs, *path), _get(ours, *path)
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return ""
    return f"{a / b:.1f}x"


def _ours_for(result: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Our scenario on the same catalog (size and layout) as ``result``."""
    return next(
        (
            r
            for r in results
            if r["target"] == "ours"
            and r["entities"] == result["entities"]
            and r["single_file"] == result["single_file"]
        ),
        None,
    )


def format_table(results: list[dict[str, Any]]) -> str:
    """One row per metric, one column per scenario; Backstage columns get a ratio column.

    The ratio is Backstage's figure divided by ours on the same catalog (for times:
    how many times faster we are; above 1 is better for us).
    """
    columns: list[tuple[str, Any]] = []
    for result in results:
        columns.append((_label(result), result))
        if result["target"] in ("backstage", "url"):
            ours = _ours_for(result, results)
            if ours is not None:
                columns.append((f"{_label(result).split()[0]}/ours", (result, ours)))
    header = ["metric"] + [label for label, _ in columns]
    rows = [header]
    for label, path, fmt, lower_is_better in _ROWS:
        row = [label]
        for _, data in columns:
            if isinstance(data, tuple):
                # Only costs (times, memory) have a meaningful "how many times ours" ratio.
                row.append(_ratio(data[0], data[1], path) if lower_is_better else "")
            else:
                row.append(_cell(data, path, fmt))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [
        "",
        "INGEST: seconds from spawning the server process until every entity and relation",
        "of the synthetic catalog is served (verified by a full listing).",
        _wrap(
            "IN THE SERVER: the time the server reports in its Server-Timing header (ours: "
            "from the first to the last Flask request hook), without the HTTP server, the "
            "network and the client; '-' where the server sends no such header.",
            indent="",
        ),
        _wrap(
            "REPEATED requests (" + ", ".join(REPEATED_KINDS) + ") ask the same few questions "
            "again: ours answers them from a cache kept per catalog generation after the "
            "first time; 'first request' is the answer computed (one sample, the untimed "
            "warm-up request of the kind).",
            indent="",
        ),
    ]
    for key, description in QUERY_KINDS + GRAPH_KINDS:
        notes.append(_wrap(f"  {key}: {description}", indent="    "))
    notes.extend(_graph_notes(results))
    failures = [f"{_label(r)}: {r['error']}" for r in results if r.get("error")]
    if failures:
        notes.append("")
        notes.extend(f"FAILED {line.splitlines()[0]}" for line in failures)
    return "\n".join(lines + notes)


def _graph_notes(results: list[dict[str, Any]]) -> list[str]:
    """The closing note: per scenario with a graph, the figures issue #4 asks for."""
    notes: list[str] = []
    for result in results:
        graph = result.get("graph")
        if not graph:
            continue
        line = [
            f"GRAPH ({_label(result)}): {graph['most_depended_on']} has "
            f"{graph['transitive_dependents']:,} dependents ({graph['direct_dependents']:,} direct)"
        ]
        cached = _get(result, "queries", "graph_dependents", "median_ms")
        computed = _get(result, "queries", "graph_dependents_uncached", "median_ms")
        if cached is not None:
            text = f"over HTTP {cached:.1f} ms median"
            if computed is not None:
                text += f" ({computed:.1f} ms when computed)"
            line.append(text)
        visible = _get(graph, "update_visible_s", "median")
        if visible is not None:
            line.append(f"a changed relation visible after {visible * 1000:.0f} ms median")
        if graph.get("memory_mb") is not None:
            line.append(
                f"graph {graph['memory_mb']:,.1f} MB for {graph['nodes']:,} nodes and "
                f"{graph['edges']:,} edges, built in {graph['build_s']:.2f} s"
            )
        notes.append("")
        notes.append(_wrap("; ".join(line) + "."))
    for result in results:
        # A catalog without a graph API answers "what depends on X?" only by walking.
        walk = _get(result, "queries", "dependents_walk", "median_ms")
        if result.get("graph") or result["target"] == "ours" or walk is None:
            continue
        ours = _ours_for(result, results)
        computed = _get(ours or {}, "queries", "graph_dependents_uncached", "median_ms")
        if ours is None or computed is None:
            continue
        cached = _get(ours, "queries", "graph_dependents", "median_ms")
        notes.append("")
        notes.append(
            _wrap(
                f"DEPENDENTS ({_label(result)}, no graph API): walking the catalog API for the "
                f"dependents of {ours['graph']['most_depended_on']} takes {walk:,.1f} ms median; "
                f"{_label(ours)} answers with one /api/graph/dependents request in "
                f"{computed:.1f} ms computed ({walk / computed:,.0f}x), {cached:.1f} ms cached."
            )
        )
    return notes


def _wrap(text: str, indent: str = "  ") -> str:
    return textwrap.fill(text, width=100, subsequent_indent=indent, break_on_hyphens=False)


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **_source_version(),
    }


def _source_version() -> dict[str, Any]:
    """The commit measured, and the files of app/ that differed from it (read-only git)."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "app"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    if not commit:
        return {}
    changed = [
        line[3:] + (" (untracked)" if line.startswith("??") else "")
        for line in status.splitlines()
        if line
    ]
    return {"commit": commit, "modified": changed}


def write_json(path: str, results: list[dict[str, Any]], options: Options) -> None:
    payload = {
        "environment": environment(),
        "options": {"requests": options.requests, "seed": options.seed},
        "scenarios": [{"label": _label(r), **r} for r in results],
    }
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")
