"""Keyset pages of filtered queries, with and without the probe window (SQLite).

    python -m tests.storage.bench_query_pages --entities 50000

Ingests the benchmark's synthetic catalog in this process, then walks cursor pages of 50
(``query_page`` as the by-query endpoint calls it, without HTTP) sorted by
``metadata.name`` for a common filter (kind=component), mid-size and rare ones, once
with the plan the reader chooses and once with the ``IN`` plan alone, and prints the
median milliseconds per page of each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from app.bench.synthetic import write_catalog
from app.catalog import Catalog
from app.config import AppConfig
from app.storage import entities as entities_module
from app.storage.entities import EntityReader, OrderField
from app.storage.filters import FieldIn, Filter
from tests.conftest import catalog_config, fresh_database, settle

FILTERS: dict[str, Filter] = {
    "kind=component": FieldIn("kind", ("component",)),
    "kind=api": FieldIn("kind", ("api",)),
    "kind=system": FieldIn("kind", ("system",)),
    "kind=domain": FieldIn("kind", ("domain",)),
    "spec.type=nothing": FieldIn("spec.type", ("nothing",)),
}
ORDER = OrderField("metadata.name", "asc")
LIMIT = 50


def walk(reader: EntityReader, node: Filter, pages: int) -> list[float]:
    """Milliseconds of each cursor page (the first page is not counted), restarting."""
    samples: list[float] = []
    with reader.connect() as conn:
        # What a cursor carries as totalItems.
        matches = reader.count(conn, node, ORDER, None)
        last = None
        while len(samples) < pages:
            started = time.perf_counter()
            rows, more = reader.query_page(
                conn, node, ORDER, None, limit=LIMIT, after=last, matches=matches
            )
            if last is not None:
                samples.append((time.perf_counter() - started) * 1000)
            if not more:
                if last is None:  # a single page: time that one instead
                    samples.append((time.perf_counter() - started) * 1000)
                last = None
                continue
            last = (rows[-1].sort_value, rows[-1].entity_id)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=50_000)
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_catalog(root / "catalog", args.entities)
        with fresh_database(root) as url:
            config = catalog_config(url, [root / "catalog" / "all.yaml"])
            catalog = Catalog.from_config(AppConfig(config))
            catalog.engine.connect_providers()
            started = time.monotonic()
            settle(catalog, timeout=3600)
            print(f"ingested {args.entities} entities in {time.monotonic() - started:.1f} s")
            reader = EntityReader(catalog.db)
            result = {}
            for name, node in FILTERS.items():
                figures = {}
                for plan, max_limit in (("in_only", 0), ("chosen", 1000)):
                    entities_module._PROBE_MAX_LIMIT = max_limit
                    walk(reader, node, 5)  # warm the page cache
                    figures[plan] = round(statistics.median(walk(reader, node, args.pages)), 2)
                result[name] = figures
                print(
                    f"{name:20} IN plan {figures['in_only']:7.2f} ms   "
                    f"chosen {figures['chosen']:7.2f} ms"
                )
            catalog.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
