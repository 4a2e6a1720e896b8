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
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

from .queries import QUERY_KINDS, build_requests, run_queries, wait_complete
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

    def timeout_for(self, entities: int) -> float:
        return self.ingest_timeout or 120.0 + entities * 0.03


def run_scenario(scenario: Scenario, options: Options, log: Any = print) -> dict[str, Any]:
    """Run one scenario; the figures as a JSON-able dict (``error`` set on failure)."""
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
        catalog = write_catalog(
            workdir / "catalog",
            scenario.entities,
            seed=options.seed,
            single_file=scenario.single_file,
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
    try:
        completion = wait_complete(
            server.base_url,
            catalog,
            started,
            alive=server.alive,
            timeout=options.timeout_for(scenario.entities),
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
        result["queries"] = run_queries(server.base_url, plan, options.requests)
        if database is not None and options.refresh:
            result["refresh_unchanged_s"] = force_refresh(database, server.pid)
            log(f"[{_label(scenario)}] unchanged refresh in {result['refresh_unchanged_s']}s")
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
    result["queries"] = run_queries(base, plan, options.requests)


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


def force_refresh(database: BenchDatabase, pid: int, timeout: float = 1800.0) -> float | None:
    """Make every entity due now and time until the server has finished with them.

    Done means: nothing due, nothing queued for stitching, and the server's CPU idle
    (an unchanged entity is processed but not written, so the database alone cannot
    tell when its processing ended).
    """
    engine = database.engine()
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE refresh_state SET next_update_at = 0"))
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
        engine.dispose()


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
for _key, _description in QUERY_KINDS:
    _ROWS.append((f"{_key} median (ms)", ("queries", _key, "median_ms"), "{:.1f}", True))
    _ROWS.append((f"{_key} p95 (ms)", ("queries", _key, "p95_ms"), "{:.1f}", True))
_ROWS.append(("failed requests", ("queries",), "{}", False))


def _cell(result: dict[str, Any], path: tuple[str, ...], fmt: str) -> str:
    if result.get("error") and path[0] in ("ingest",) and _get(result, *path) is None:
        return "FAILED"
    value = _get(result, *path)
    if path == ("queries",):
        return str(sum(q.get("errors", 0) for q in value.values())) if value else "-"
    return "-" if value is None else fmt.format(value)


def _ratio(theirs: dict[str, Any], ours: dict[str, Any], path: tuple[str, ...]) -> str:
    a, b = _get(theirs, *path), _get(ours, *path)
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return ""
    return f"{a / b:.1f}x"


def format_table(results: list[dict[str, Any]]) -> str:
    """One row per metric, one column per scenario; Backstage columns get a ratio column.

    The ratio is Backstage's figure divided by ours on the same catalog (for times:
    how many times faster we are; above 1 is better for us).
    """
    columns: list[tuple[str, Any]] = []
    for result in results:
        columns.append((_label(result), result))
        if result["target"] in ("backstage", "url"):
            ours = next(
                (
                    r
                    for r in results
                    if r["target"] == "ours"
                    and r["entities"] == result["entities"]
                    and r["single_file"] == result["single_file"]
                ),
                None,
            )
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
    ]
    for key, description in QUERY_KINDS:
        notes.append(f"  {key}: {description}")
    failures = [f"{_label(r)}: {r['error']}" for r in results if r.get("error")]
    if failures:
        notes.append("")
        notes.extend(f"FAILED {line.splitlines()[0]}" for line in failures)
    return "\n".join(lines + notes)


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_json(path: str, results: list[dict[str, Any]], options: Options) -> None:
    payload = {
        "environment": environment(),
        "options": {"requests": options.requests, "seed": options.seed},
        "scenarios": [{"label": _label(r), **r} for r in results],
    }
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")
