"""``catalog bench`` end to end at a tiny size: it runs, and reports every figure.

Performance is measured, not asserted: these tests check that the benchmark
itself works (a real server is started, the synthetic catalog is fully served,
every query kind answers, the graph agrees with the generator), so that the
figures it prints can be trusted. The second-server test stands in for
``--reference``: the same request mix against another catalog's base URL
(another ``catalog serve`` here; Node is not started in the unit tests).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from app.bench import run_benchmark, runner
from app.bench.queries import (
    GRAPH_KINDS,
    QUERY_KINDS,
    build_graph_requests,
    graph_root,
    server_duration_ms,
)
from app.bench.runner import format_table
from app.bench.servers import CatalogServer
from app.bench.synthetic import (
    dependency_edges,
    expected_relations,
    generate_entities,
    graph_targets,
    write_catalog,
)
from app.cli import build_parser
from tests.conftest import _postgres_admin_url


def test_generator_is_deterministic(tmp_path: Path) -> None:
    first = write_catalog(tmp_path / "a", 300)
    second = write_catalog(tmp_path / "b", 300)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.yaml"))
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.yaml"))
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert first.expected_relations == second.expected_relations
    assert first.graph == second.graph
    # A different size is a different organisation, not a prefix of this one.
    assert generate_entities(301)[:5] != generate_entities(300)[:5]


def test_generator_mix_and_expectations(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    catalog = write_catalog(
        tmp_path, 1000, per_file=100, progress=lambda done, total: seen.append((done, total))
    )
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
    # Progress is reported per file written, up to every entity.
    assert seen[-1] == (1000, 1000)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)

    single = write_catalog(tmp_path / "single", 1000, single_file=True)
    assert single.files == 1
    assert single.expected_entities == 1001
    assert single.expected_relations == catalog.expected_relations


def test_the_most_depended_on_resource_is_well_defined() -> None:
    entities = generate_entities(1000)
    targets = graph_targets(entities)
    # Shared by 40% of the components, well ahead of the other shared resources.
    assert targets.most_depended_on == "resource:default/shared-postgres"
    depends = dependency_edges(entities)
    direct = {
        ref
        for ref, targets_of in depends.items()
        if "resource:default/shared-postgres" in targets_of
    }
    assert targets.direct_dependents == len(direct) > 100
    assert targets.transitive_dependents > targets.direct_dependents
    components = {ref for ref in depends if ref.startswith("component:")}
    assert set(targets.dependent_components) <= components
    assert {ref for ref in direct if ref in components} <= set(targets.dependent_components)
    # The update-visibility changes add a dependency that is not there yet.
    assert targets.independent_components
    assert not set(targets.independent_components) & direct
    # The graph requests ask about it; path sources really depend on it.
    catalog_refs = {"component": sorted(components)}
    plan = build_graph_requests(_catalog_stub(targets, catalog_refs), 7, seed=1)
    assert {kind for kind, _ in GRAPH_KINDS} == set(plan)
    assert all(len(requests_of_kind) == 7 for requests_of_kind in plan.values())
    for request in plan["graph_path"]:
        params = dict(request.params)
        assert params["to"] == targets.most_depended_on
        assert params["from"] in targets.dependent_components
    limits = [dict(r.params)["limit"] for r in plan["graph_dependents_uncached"]]
    assert len(set(limits)) == len(limits)  # never the cached answer


def _catalog_stub(targets, refs_by_kind):
    return argparse.Namespace(graph=targets, refs_by_kind=refs_by_kind, entity_count=1000)


def test_catalog_bench_takes_every_benchmark_option() -> None:
    args = build_parser().parse_args(
        [
            "bench",
            "--entities",
            "1000",
            "--entities",
            "2000",
            "--single-file",
            "--both-layouts",
            "--reference",
            "--base-url",
            "http://127.0.0.1:7051/api/catalog",
            "--no-ours",
            "--seed",
            "11",
            "--keep",
            "--write-catalog",
            "out",
            "--ingest-timeout",
            "30",
            "--no-refresh",
            "--no-graph",
            "--no-analyze",
            "--workdir",
            "/tmp",
            "--max-load",
            "1.5",
            "--requests",
            "3",
            "--json",
            "b.json",
        ]
    )
    assert args.entities == [1000, 2000]
    assert args.single_file and args.both_layouts and args.reference and args.no_ours
    assert args.base_url == "http://127.0.0.1:7051/api/catalog"
    assert (args.seed, args.keep, args.write_catalog) == (11, True, "out")
    assert (args.ingest_timeout, args.no_refresh, args.no_graph, args.no_analyze) == (
        30.0,
        True,
        True,
        True,
    )
    assert (args.workdir, args.requests, args.json) == ("/tmp", 3, "b.json")
    assert args.max_load == 1.5
    assert graph_root(args.base_url) == "http://127.0.0.1:7051"


def test_write_catalog_option_writes_the_benchmarked_catalog(tmp_path: Path, capsys) -> None:
    args = build_parser().parse_args(
        ["bench", "--entities", "120", "--seed", "5", "--write-catalog", str(tmp_path / "c")]
    )
    assert run_benchmark(args) == 0
    assert "122 entities" in capsys.readouterr().out
    expected = write_catalog(tmp_path / "again", 120, seed=5)
    assert (tmp_path / "c" / "all.yaml").exists()
    assert sorted(p.name for p in (tmp_path / "c").rglob("*.yaml")) == sorted(
        p.name for p in (tmp_path / "again").rglob("*.yaml")
    )
    assert expected.files == len(list((tmp_path / "c").rglob("*.yaml")))


def test_bench_end_to_end_with_a_second_server(tmp_path: Path, capsys) -> None:
    """Ours on a fresh database, and the same mix against a second server's base URL."""
    size, seed = 200, 4242
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    build = build_parser().parse_args
    assert (
        run_benchmark(
            build(
                [
                    "bench",
                    "--entities",
                    str(size),
                    "--seed",
                    str(seed),
                    "--write-catalog",
                    str(other_dir / "catalog"),
                ]
            )
        )
        == 0
    )
    capsys.readouterr()
    other = CatalogServer(
        other_dir, f"sqlite:///{other_dir / 'other.sqlite'}", other_dir / "catalog" / "all.yaml"
    )
    report = tmp_path / "bench.json"
    argv = ["bench", "--entities", str(size), "--seed", str(seed), "--requests", "5"]
    argv += ["--json", str(report), "--base-url", other.base_url, "--max-load", "1000"]
    admin = _postgres_admin_url()
    if admin:
        argv += ["--database-url", admin]
    try:
        assert run_benchmark(build(argv)) == 0
    finally:
        other.stop()

    out, err = capsys.readouterr()
    assert "\r" not in err  # not a terminal: no progress bars
    database = "postgresql" if admin else "sqlite"
    assert f"{database} 200" in out and "url 200" in out and "url/ours" in out
    for row in (
        "INGEST: all relations served (s)",
        "graph_dependents median (ms)",
        "by_query first request (ms)",
        "graph memory (MB)",
        "update visible to graph, median (ms)",
        "by_name in the server, median (ms)",
    ):
        assert row in out, row
    assert "GRAPH (" in out and "resource:default/shared-postgres" in out

    data = json.loads(report.read_text())
    ours, url = data["scenarios"]
    assert ours["target"] == "ours" and url["target"] == "url"
    for scenario in (ours, url):
        assert scenario["error"] is None
        assert scenario["load_average_before"] and scenario["load_average_after"]
        assert scenario["load_wait_s"] == 0.0
    assert ours["database"] == database
    catalog, ingest = ours["catalog"], ours["ingest"]
    assert ingest["entities"] == catalog["expected_entities"] == 202
    assert ingest["relations"] == catalog["expected_relations"] > 0
    assert ingest["missing_refs"] == 0
    for figure in ("http_up_s", "entities_s", "complete_s", "cpu_s", "entities_per_s"):
        assert ingest[figure] > 0, figure
    assert ours["refresh_unchanged_s"] is not None
    assert ours["peak_rss_mb"] > 0
    # The second server serves the same catalog: every query kind, graph ones included.
    assert url["ingest"]["entities"] == 202 and url["ingest"]["missing_refs"] == 0
    assert url["ingest"]["relations"] == catalog["expected_relations"]
    for scenario in (ours, url):
        for key, _ in QUERY_KINDS + GRAPH_KINDS:
            summary = scenario["queries"][key]
            assert summary["errors"] == 0, key
            assert summary["count"] == 5, key
            assert summary["median_ms"] > 0 and summary["p95_ms"] >= summary["median_ms"], key
            if key not in ("by_query_cursor", "dependents_walk"):  # no warm-up request
                assert summary["first_ms"] > 0, key
                assert 1 <= summary["distinct_requests"] <= 5, key
            # Both are ours: each request says what it cost in the server (a walk is
            # many requests, and gets no such figure).
            if key == "dependents_walk":
                assert "server_median_ms" not in summary
            else:
                assert 0 < summary["server_median_ms"] < summary["median_ms"], key

    graph = ours["graph"]
    assert ours["queries"]["by_query"]["distinct_requests"] == 1  # a repeated request
    assert graph["most_depended_on"] == "resource:default/shared-postgres"
    # The server's graph, the client-side walk and the generator agree.
    assert graph["served_dependents"] == graph["transitive_dependents"] > graph["direct_dependents"]
    assert ours["queries"]["dependents_walk"]["found"] == graph["transitive_dependents"]
    assert url["queries"]["dependents_walk"]["found"] == graph["transitive_dependents"]
    assert graph["nodes"] == catalog["expected_entities"] and graph["edges"] > graph["nodes"]
    assert graph["memory_mb"] > 0 and graph["build_s"] > 0
    visible = graph["update_visible_s"]
    assert visible["count"] == 5 and 0 < visible["median"] <= visible["max"]
    # Without a database of its own, the second server gets latencies only.
    assert url["graph"]["served_dependents"] == graph["transitive_dependents"]
    assert "memory_mb" not in url["graph"] and "update_visible_s" not in url["graph"]


def test_bench_single_file_layout_with_progress_bars(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALOG_PROGRESS", "1")  # as on a terminal
    report = tmp_path / "bench.json"
    args = argparse.Namespace(
        entities=[150],
        requests=2,
        json=str(report),
        database_url=None,
        single_file=True,
        no_refresh=True,
        no_graph=True,
    )
    assert run_benchmark(args) == 0
    [scenario] = json.loads(report.read_text())["scenarios"]
    assert scenario["single_file"] is True
    assert scenario["ingest"]["entities"] == scenario["catalog"]["expected_entities"] == 151
    assert "refresh_unchanged_s" not in scenario
    assert "graph" not in scenario and "graph_dependents" not in scenario["queries"]
    out, err = capsys.readouterr()
    assert "sqlite 150 1-file" in out
    for bar in ("generating [", "ingesting ", "by_name [", "list_all ["):
        assert f"[sqlite 150 1-file] {bar}" in err, bar
    assert "\r" not in out  # the table stays clean


def test_table_compares_a_catalog_without_graph_api() -> None:
    ours = {
        "target": "ours",
        "entities": 1000,
        "single_file": False,
        "database": "sqlite",
        "error": None,
        "ingest": {"complete_s": 2.0},
        "queries": {
            "dependents_walk": {"median_ms": 50.0, "p95_ms": 60.0},
            "graph_dependents": {"median_ms": 1.0, "p95_ms": 2.0},
            "graph_dependents_uncached": {"median_ms": 5.0, "p95_ms": 6.0},
        },
        "graph": {
            "most_depended_on": "resource:default/shared-postgres",
            "transitive_dependents": 600,
            "direct_dependents": 200,
            "served_dependents": 600,
            "memory_mb": 1.5,
            "nodes": 1002,
            "edges": 4000,
            "build_s": 0.02,
            "update_visible_s": {"median": 0.004, "max": 0.01},
        },
    }
    theirs = {
        "target": "backstage",
        "entities": 1000,
        "single_file": False,
        "error": None,
        "ingest": {"complete_s": 10.0},
        "queries": {"dependents_walk": {"median_ms": 200.0, "p95_ms": 300.0}},
    }
    table = format_table([ours, theirs])
    lines = {line.split("  ")[0]: line for line in table.splitlines()}
    assert lines["INGEST: all relations served (s)"].rstrip().endswith("5.0x")
    assert lines["dependents_walk median (ms)"].rstrip().endswith("4.0x")
    assert "update visible to graph, median (ms)" in table
    notes = " ".join(table.split())  # the closing notes are wrapped
    assert "a changed relation visible after 4 ms median" in notes
    assert "graph 1.5 MB for 1,002 nodes" in notes
    assert "takes 200.0 ms median" in notes and "(40x)" in notes


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("app;dur=0.734", 0.734),
        ('db;dur=2, app;desc="catalog";dur=12.5', 12.5),
        ("app", None),
        ("app;dur=soon", None),
        ("cache;dur=1", None),
        ("", None),
    ],
)
def test_server_timing_header(header: str, expected: float | None) -> None:
    assert server_duration_ms(header) == expected


def test_waiting_for_a_quiet_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = iter([3.0, 3.0, 2.0, 1.2, 1.2, 1.2])
    monkeypatch.setattr(runner.os, "getloadavg", lambda: (next(loads), 0.0, 0.0))
    monkeypatch.setattr(runner.time, "sleep", lambda seconds: None)
    messages: list[str] = []
    assert runner.wait_for_quiet(1.5, 60, messages.append) >= 0
    assert "to fall below 1.5" in messages[0]
    assert next(loads) == 1.2  # it stopped polling once the load was low enough
