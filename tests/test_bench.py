"""``catalog bench`` end to end at a tiny size: it runs, and reports every figure.

Performance is measured, not asserted: these tests check that the benchmark
itself works (a real server is started, the synthetic catalog is fully served,
every query kind answers), so that the figures it prints can be trusted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.bench import run_benchmark
from app.bench.queries import QUERY_KINDS
from app.bench.synthetic import expected_relations, generate_entities, write_catalog
from app.cli import build_parser


def test_generator_is_deterministic(tmp_path: Path) -> None:
    first = write_catalog(tmp_path / "a", 300)
    second = write_catalog(tmp_path / "b", 300)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.yaml"))
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.yaml"))
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert first.expected_relations == second.expected_relations
    # A different size is a different organisation, not a prefix of this one.
    assert generate_entities(301)[:5] != generate_entities(300)[:5]


def test_generator_mix_and_expectations(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path, 1000, per_file=100)
    kinds = {kind: len(refs) for kind, refs in catalog.refs_by_kind.items()}
    assert sum(kinds.values()) == catalog.entity_count == 1000
    assert set(kinds) == {"group", "user", "domain", "system", "component", "api", "resource"}
    # The root Location and the configured location's generated entity come on top.
    assert catalog.expected_entities == 1002
    assert catalog.files == len(list(tmp_path.rglob("*.yaml")))
    # Every relation points at an entity that exists, so all of them are served.
    triples = expected_relations(generate_entities(1000))
    assert {t for _, _, t in triples} <= catalog.expected_refs
    assert catalog.relations_of["resource:default/shared-postgres"] > 100

    single = write_catalog(tmp_path / "single", 1000, single_file=True)
    assert single.files == 1
    assert single.expected_entities == 1001
    assert single.expected_relations == catalog.expected_relations


def test_bench_end_to_end(tmp_path: Path, capsys) -> None:
    report = tmp_path / "bench.json"
    args = build_parser().parse_args(
        ["bench", "--entities", "200", "--requests", "5", "--json", str(report)]
    )
    assert run_benchmark(args) == 0

    table = capsys.readouterr().out
    assert "INGEST: all relations served (s)" in table
    assert "sqlite 200" in table
    data = json.loads(report.read_text())
    [scenario] = data["scenarios"]
    assert scenario["error"] is None
    assert scenario["database"] == "sqlite"
    catalog, ingest = scenario["catalog"], scenario["ingest"]
    assert ingest["entities"] == catalog["expected_entities"] == 202
    assert ingest["relations"] == catalog["expected_relations"] > 0
    assert ingest["missing_refs"] == 0
    for figure in ("http_up_s", "entities_s", "complete_s", "cpu_s", "entities_per_s"):
        assert ingest[figure] > 0, figure
    assert scenario["refresh_unchanged_s"] is not None
    assert scenario["peak_rss_mb"] > 0
    for key, _ in QUERY_KINDS:
        summary = scenario["queries"][key]
        assert summary["errors"] == 0, key
        assert summary["count"] == 5, key
        assert summary["median_ms"] > 0 and summary["p95_ms"] >= summary["median_ms"], key


def test_bench_single_file_layout(tmp_path: Path, capsys) -> None:
    report = tmp_path / "bench.json"
    args = argparse.Namespace(
        entities=[150],
        requests=2,
        json=str(report),
        database_url=None,
        single_file=True,
        no_refresh=True,
    )
    assert run_benchmark(args) == 0
    [scenario] = json.loads(report.read_text())["scenarios"]
    assert scenario["single_file"] is True
    assert scenario["ingest"]["entities"] == scenario["catalog"]["expected_entities"] == 151
    assert "refresh_unchanged_s" not in scenario
    assert "sqlite 150 1-file" in capsys.readouterr().out
