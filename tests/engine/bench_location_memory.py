"""How much memory processing one big Location takes: the synthetic root of N entities.

    python -m tests.engine.bench_location_memory --entities 100000

Writes the benchmark's synthetic catalog (``all.yaml``, a Location whose targets hold N
entities) into a temporary folder and runs the processing pipeline once on that
Location, in this process, without the database write. Reported: its children, the time
and how much the peak RSS grew, which is what a catalog of one big Location pays on
every refresh on top of its steady state.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import yaml

from app.bench.synthetic import write_catalog
from app.catalog import Catalog
from app.config import AppConfig
from tests.conftest import catalog_config

LOCATION_ANNOTATIONS = (
    "backstage.io/managed-by-location",
    "backstage.io/managed-by-origin-location",
)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        # Written by a child process, so generating it does not raise our peak.
        writer = multiprocessing.get_context("fork").Process(
            target=write_catalog, args=(root, args.entities)
        )
        writer.start()
        writer.join()
        all_yaml = root / "all.yaml"
        config = AppConfig(catalog_config(f"sqlite:///{root}/unused.db", []))
        catalog = Catalog.from_config(config)
        location = yaml.safe_load(all_yaml.read_text())
        annotations = location["metadata"].setdefault("annotations", {})
        for key in LOCATION_ANNOTATIONS:
            annotations[key] = f"file:{all_yaml}"
        before = peak_rss_mb()
        started = time.monotonic()
        outcome = catalog.orchestrator.process(location, trusted=True)
        took = time.monotonic() - started
        result = {
            "entities": args.entities,
            "children": len(outcome.children),
            "errors": len(outcome.errors),
            "seconds": round(took, 1),
            "peak_rss_growth_mb": round(peak_rss_mb() - before),
        }
        catalog.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
