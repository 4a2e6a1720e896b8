"""``catalog bench``: cold ingestion, query latency and memory on a synthetic catalog.

Performance targets are only meaningful when measured the way users run the
catalog, so every figure comes from a real ``catalog serve`` process over HTTP,
and the same catalog and request list can be sent to the real Backstage backend
for a side-by-side table. ``catalog bench`` and ``python -m app.bench`` take the
same options (:func:`add_arguments`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Only the generator's constants here: ``catalog --help`` builds the parser, and the
# runner (HTTP, SQLAlchemy, the graph) is imported when a benchmark actually runs.
from .synthetic import DEFAULT_SEED

__all__ = ["add_arguments", "main", "run_benchmark"]


def add_arguments(parser: argparse.ArgumentParser, *, with_core: bool = True) -> None:
    """The benchmark's options; ``with_core=False`` skips those app.cli already defines."""
    if with_core:
        parser.add_argument(
            "--entities",
            type=int,
            action="append",
            help="synthetic catalog size; repeatable (default 10000)",
        )
        parser.add_argument(
            "--database-url",
            help="default: a temporary SQLite file; postgresql://...: a fresh database "
            "catalog_bench_* is created on that server and dropped afterwards",
        )
        parser.add_argument(
            "--requests", type=int, default=200, help="requests per query kind (default 200)"
        )
        parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--single-file",
        action="store_true",
        help="put all entities in one file (all.yaml) instead of a Location with many targets",
    )
    parser.add_argument(
        "--both-layouts", action="store_true", help="run every size in both file layouts"
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also run each size on the real Backstage backend (shared/reference-backend)",
    )
    parser.add_argument(
        "--base-url",
        help="also run the query mix against this running catalog "
        "(e.g. http://127.0.0.1:7051/api/catalog, loaded with --write-catalog's files)",
    )
    parser.add_argument(
        "--no-ours", action="store_true", help="skip our server (with --reference/--base-url)"
    )
    parser.add_argument(
        "--write-catalog",
        metavar="DIR",
        help="only write the synthetic catalog of the (single) size into DIR and exit",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    parser.add_argument(
        "--ingest-timeout", type=float, help="seconds to wait for ingestion (default 120 + 0.03*N)"
    )
    parser.add_argument("--no-refresh", action="store_true", help="skip the unchanged refresh")
    parser.add_argument(
        "--no-graph",
        action="store_true",
        help="skip the graph figures (graph API latencies, build, memory, update visibility)",
    )
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="PostgreSQL: do not ANALYZE after ingesting (what a server without autovacuum sees)",
    )
    parser.add_argument(
        "--max-load",
        type=float,
        metavar="LOAD",
        help="before starting each server, wait until the 1-minute load average is below "
        "LOAD (at most 30 minutes); the load is recorded in the JSON either way",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    parser.add_argument("--workdir", help="where temporary directories go (default: /tmp)")


def run_benchmark(args: argparse.Namespace) -> int:
    """Run every requested scenario, print the table; 0 if all of them completed."""
    from .runner import Options, Scenario, format_table, run_scenario, write_json
    from .synthetic import write_catalog

    sizes = list(getattr(args, "entities", None) or [10_000])
    seed = getattr(args, "seed", None)
    seed = DEFAULT_SEED if seed is None else seed
    single_file = bool(getattr(args, "single_file", False))
    if getattr(args, "write_catalog", None):
        if len(sizes) != 1:
            print("catalog bench: --write-catalog takes exactly one --entities", file=sys.stderr)
            return 2
        catalog = write_catalog(
            Path(args.write_catalog), sizes[0], seed=seed, single_file=single_file
        )
        print(
            f"wrote {catalog.root}: {catalog.expected_entities} entities, "
            f"{catalog.expected_relations} relations, {catalog.files} files"
        )
        return 0
    base_url = getattr(args, "base_url", None)
    if base_url and len(sizes) != 1:
        print("catalog bench: --base-url takes exactly one --entities", file=sys.stderr)
        return 2
    workdir = getattr(args, "workdir", None)
    options = Options(
        requests=max(1, int(getattr(args, "requests", 200) or 200)),
        seed=seed,
        keep=bool(getattr(args, "keep", False)),
        workdir=Path(workdir) if workdir else None,
        ingest_timeout=getattr(args, "ingest_timeout", None),
        refresh=not getattr(args, "no_refresh", False),
        graph=not getattr(args, "no_graph", False),
        max_load=getattr(args, "max_load", None),
        analyze=not getattr(args, "no_analyze", False),
    )
    layouts = [False, True] if getattr(args, "both_layouts", False) else [single_file]
    scenarios: list[Scenario] = []
    for layout in layouts:
        for size in sizes:
            if not getattr(args, "no_ours", False):
                scenarios.append(
                    Scenario("ours", size, layout, database_url=getattr(args, "database_url", None))
                )
            if getattr(args, "reference", False):
                scenarios.append(Scenario("backstage", size, layout))
            if base_url:
                scenarios.append(Scenario("url", size, layout, base_url=base_url))

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results = [run_scenario(scenario, options, log) for scenario in scenarios]
    print(format_table(results))
    if getattr(args, "json", None):
        write_json(args.json, results, options)
    return 1 if any(result.get("error") for result in results) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.bench", description=__doc__)
    add_arguments(parser)
    return run_benchmark(parser.parse_args(argv))
