"""The ingest benchmark (``python -m tests.entity_providers.bench_git_ingest``) keeps working."""

from __future__ import annotations

from tests.entity_providers.bench_git_ingest import bench


def test_benchmark_on_a_few_repositories(database_url, tmp_path):
    result = bench(4, tmp_path, database_url)
    # One generated Location and one Component per repository.
    assert result["entitiesServed"] == 8
    assert result["gitCalls"]["fetch"] == 4
    assert result["gitCalls"]["read"] == 4
