"""How long the git provider takes to ingest N repositories with one catalog-info.yaml each.

    python -m tests.entity_providers.bench_git_ingest --repositories 200 [--database-url URL]

Repositories are bare repositories written with git plumbing into a temporary folder and
served by ``git daemon`` on 127.0.0.1 (the git protocol, not a file copy); the catalog is
a real one on SQLite (default) or the given PostgreSQL. Reported: the first ingest (list
heads, fetch, list trees, apply, then process and stitch until idle), and a second run
with nothing changed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from app.catalog import Catalog
from app.config import AppConfig
from tests.conftest import catalog_config, component, fresh_database, settle
from tests.gitrepos import GIT_ENV, git_daemon


def make_repository(path: Path, name: str) -> None:
    """A bare repository with one commit holding ``catalog-info.yaml`` (plumbing: fast)."""

    def run(*args: str, data: str | None = None) -> str:
        return subprocess.run(
            ["git", *args],
            cwd=path,
            env=GIT_ENV,
            input=data,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    path.mkdir(parents=True)
    run("init", "--quiet", "--bare", "--initial-branch=main")
    blob = run("hash-object", "-w", "--stdin", data=yaml.safe_dump(component(name)))
    tree = run("mktree", data=f"100644 blob {blob}\tcatalog-info.yaml\n")
    commit = run("commit-tree", tree, "-m", "initial")
    run("update-ref", "refs/heads/main", commit)


def bench(repositories: int, directory: Path, database_url: str) -> dict[str, Any]:
    root = directory / "srv"
    for index in range(repositories):
        make_repository(root / "org" / f"repo-{index:04d}.git", f"service-{index:04d}")
    with git_daemon(root) as port:
        urls = [f"git://127.0.0.1:{port}/org/repo-{i:04d}.git" for i in range(repositories)]
        extra = {
            "backend": {"reading": {"git": {"cacheDir": str(directory / "cache")}}},
            "catalog": {"providers": {"git": {"bench": {"repositories": urls}}}},
        }
        catalog = Catalog.from_config(AppConfig(catalog_config(database_url, [], extra)))
        try:
            catalog.engine.connect_providers()
            provider = next(p for p in catalog.engine.providers if hasattr(p, "sync"))
            started = time.perf_counter()
            provider.sync()
            discovered = time.perf_counter()
            settle(catalog, timeout=600)
            first = time.perf_counter()
            provider.sync()
            settle(catalog, timeout=600)
            second = time.perf_counter()
            with catalog.db.engine.connect() as conn:
                from sqlalchemy import func, select

                from app.storage.tables import final_entities

                served = conn.execute(select(func.count()).select_from(final_entities)).scalar()
            stats = dict(catalog.readers.get("git").stats)
        finally:
            catalog.stop()
    return {
        "repositories": repositories,
        "entitiesServed": served,
        "discoverySeconds": round(discovered - started, 2),
        "processingSeconds": round(first - discovered, 2),
        "firstIngestSeconds": round(first - started, 2),
        "unchangedRunSeconds": round(second - first, 2),
        "gitCalls": stats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repositories", type=int, default=200)
    parser.add_argument(
        "--database-url", help="PostgreSQL URL; SQLite in a temporary folder if omitted"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        if args.database_url:
            import os

            os.environ["CATALOG_TEST_DATABASE"] = args.database_url
        with fresh_database(directory) as url:
            print(json.dumps(bench(args.repositories, directory, url), indent=2))


if __name__ == "__main__":
    main()
