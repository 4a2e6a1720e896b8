"""The git provider on real repositories, served by ``git daemon`` and over ``file://``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from app.config import AppConfig, ConfigError
from app.reading.git import GitReader
from entity_providers.git import GitEntityProvider
from tests.conftest import (
    catalog_config,
    component,
    final_entities_by_ref,
    force_due,
    settle,
    status_messages,
)
from tests.gitrepos import Remote, git_daemon

NAME = "git-provider:repos"


def provider_of(catalog: Any, name: str = NAME) -> GitEntityProvider:
    return next(p for p in catalog.engine.providers if p.get_provider_name() == name)


def reader_of(catalog: Any) -> GitReader:
    reader = catalog.readers.get("git")
    assert isinstance(reader, GitReader)
    return reader


def components(catalog: Any) -> set[str]:
    return {
        ref.split("/", 1)[1]
        for ref in final_entities_by_ref(catalog)
        if ref.startswith("component:")
    }


def ingest(catalog: Any, name: str = NAME) -> None:
    provider_of(catalog, name).sync()
    settle(catalog)


def provider_status(catalog: Any, name: str = NAME) -> dict[str, Any]:
    app = create_app(catalog.config, catalog=catalog, start=False)
    items = app.test_client().get("/api/catalog/providers").get_json()["items"]
    return next(item for item in items if item["name"] == name)


def extra(tmp_path: Path, **provider: Any) -> dict[str, Any]:
    return {
        "backend": {"reading": {"git": {"cacheDir": str(tmp_path / "cache")}}},
        "catalog": {"providers": {"git": {"repos": provider}}},
    }


@pytest.fixture
def repos(tmp_path: Path) -> list[Remote]:
    """Three repositories of one organisation; the second has nested catalog files."""
    made = []
    for name in ("alpha", "beta", "gamma"):
        remote = Remote(tmp_path / "srv" / "org", name, tmp_path / "work")
        remote.write_yaml("catalog-info.yaml", component(name))
        made.append(remote)
    made[1].write_yaml("services/api/catalog-info.yaml", component("beta-api"))
    made[1].write_yaml("services/worker/deep/catalog-info.yaml", component("beta-worker"))
    made[1].write_yaml("services/other.yaml", component("not-discovered"))
    for remote in made:
        remote.commit("initial")
    return made


@pytest.fixture
def daemon(tmp_path: Path, repos: list[Remote]) -> Iterator[int]:
    with git_daemon(tmp_path / "srv") as port:
        yield port


def daemon_urls(port: int, repos: list[Remote]) -> list[str]:
    return [f"git://127.0.0.1:{port}/org/{r.name}.git" for r in repos]


def test_discovers_every_catalog_file_of_several_repositories(
    make_catalog, tmp_path, repos, daemon
):
    catalog = make_catalog(
        **extra(
            tmp_path,
            repositories=daemon_urls(daemon, repos),
            catalogPath="/**/catalog-info.yaml",
        )
    )
    ingest(catalog)
    assert components(catalog) == {"alpha", "beta", "gamma", "beta-api", "beta-worker"}
    status = provider_status(catalog)
    assert status["entities"] == 5  # one Location per catalog file
    assert status["repositories"] == 3
    assert status["failingRepositories"] == []
    assert status["lastMutation"]["added"] == 5
    beta_api = final_entities_by_ref(catalog)["component:default/beta-api"]
    annotations = beta_api["metadata"]["annotations"]
    assert annotations["backstage.io/managed-by-location"] == (
        f"git:git://127.0.0.1:{daemon}/org/beta.git#main:/services/api/catalog-info.yaml"
    )


def test_root_catalog_path_and_branch(make_catalog, tmp_path, repos, daemon):
    catalog = make_catalog(
        **extra(tmp_path, repositories=daemon_urls(daemon, repos), branch="main")
    )
    ingest(catalog)
    assert components(catalog) == {"alpha", "beta", "gamma"}


def test_parent_folder_of_repositories(make_catalog, tmp_path, repos):
    catalog = make_catalog(**extra(tmp_path, parent=str(tmp_path / "srv")))
    ingest(catalog)
    assert components(catalog) == {"alpha", "beta", "gamma"}
    late = Remote(tmp_path / "srv" / "org" / "team", "delta", tmp_path / "work")
    late.write_yaml("catalog-info.yaml", component("delta"))
    late.commit()
    ingest(catalog)
    assert components(catalog) == {"alpha", "beta", "gamma", "delta"}


def test_a_file_deleted_in_a_later_commit_removes_its_entities(
    make_catalog, tmp_path, repos, daemon
):
    catalog = make_catalog(
        **extra(
            tmp_path,
            repositories=daemon_urls(daemon, repos),
            catalogPath="/**/catalog-info.yaml",
        )
    )
    ingest(catalog)
    repos[1].remove("services/worker")
    repos[1].commit("worker moved out")
    ingest(catalog)
    assert components(catalog) == {"alpha", "beta", "gamma", "beta-api"}
    assert provider_status(catalog)["lastMutation"]["removed"] == 1


def test_an_unchanged_head_is_not_read_again(make_catalog, tmp_path, repos, daemon):
    catalog = make_catalog(
        **extra(
            tmp_path,
            repositories=daemon_urls(daemon, repos),
            catalogPath="/**/catalog-info.yaml",
        )
    )
    ingest(catalog)
    reader = reader_of(catalog)
    first = dict(reader.stats)
    assert first["fetch"] == 3
    assert first["read"] == 5
    # Another run, and every entity processed again: heads are asked for, nothing else.
    ingest(catalog)
    force_due(catalog)
    settle(catalog)
    second = dict(reader.stats)
    assert second["ls-remote"] >= first["ls-remote"] + 3
    for counter in ("fetch", "read", "ls-tree"):
        assert second[counter] == first[counter], counter
    # One repository moves: only it is fetched, and only its changed file is read.
    repos[2].write_yaml("catalog-info.yaml", component("gamma", lifecycle="experimental"))
    repos[2].commit("gamma is experimental")
    ingest(catalog)
    third = dict(reader.stats)
    assert third["fetch"] == second["fetch"] + 1
    assert third["read"] == second["read"] + 1
    gamma = final_entities_by_ref(catalog)["component:default/gamma"]
    assert gamma["spec"]["lifecycle"] == "experimental"


def test_a_force_push_is_picked_up(make_catalog, tmp_path, repos, daemon):
    catalog = make_catalog(**extra(tmp_path, repositories=daemon_urls(daemon, repos)))
    repos[0].write_yaml("catalog-info.yaml", component("alpha", lifecycle="beta"))
    repos[0].commit("alpha beta")
    ingest(catalog)
    repos[0].write_yaml("catalog-info.yaml", component("alpha", lifecycle="deprecated"))
    repos[0].rewrite_last_commit("alpha rewritten")
    ingest(catalog)
    alpha = final_entities_by_ref(catalog)["component:default/alpha"]
    assert alpha["spec"]["lifecycle"] == "deprecated"


def test_an_unreachable_repository_keeps_its_entities_with_an_error(
    make_catalog, tmp_path, repos, daemon
):
    config = extra(
        tmp_path, repositories=daemon_urls(daemon, repos), catalogPath="/**/catalog-info.yaml"
    )
    catalog = make_catalog(**config)
    ingest(catalog)
    repos[1].bare.rename(repos[1].bare.with_name("gone.git"))
    reader_of(catalog).invalidate()
    ingest(catalog)
    force_due(catalog)
    settle(catalog)
    assert components(catalog) == {"alpha", "beta", "gamma", "beta-api", "beta-worker"}
    failing = provider_status(catalog)["failingRepositories"]
    assert [f["repository"] for f in failing] == [daemon_urls(daemon, repos)[1]]
    assert "ls-remote failed" in failing[0]["error"]
    # Its Locations say why they are stale.
    locations = [
        entity
        for entity in final_entities_by_ref(catalog).values()
        if entity["kind"] == "Location" and "/org/beta.git#" in entity["spec"]["target"]
    ]
    assert len(locations) == 3
    assert all(status_messages(entity) for entity in locations)

    # After a restart (a new process, nothing in memory) the entities stay too.
    restarted = make_catalog(**config)
    ingest(restarted)
    assert components(restarted) == {"alpha", "beta", "gamma", "beta-api", "beta-worker"}


def test_a_malformed_file_fails_only_its_own_entities(make_catalog, tmp_path, repos, daemon):
    catalog = make_catalog(
        **extra(
            tmp_path,
            repositories=daemon_urls(daemon, repos),
            catalogPath="/**/catalog-info.yaml",
        )
    )
    ingest(catalog)
    repos[1].write("services/api/catalog-info.yaml", "kind: [unclosed\n")
    repos[1].write_yaml("catalog-info.yaml", component("beta", lifecycle="experimental"))
    repos[1].commit("break one file")
    ingest(catalog)
    entities = final_entities_by_ref(catalog)
    assert entities["component:default/beta"]["spec"]["lifecycle"] == "experimental"
    assert "component:default/beta-api" in entities  # its last good version stays
    broken = next(
        e
        for e in entities.values()
        if e["kind"] == "Location"
        and e["spec"]["target"].endswith("/services/api/catalog-info.yaml")
    )
    assert any("YAML" in m or "unclosed" in m or "flow" in m for m in status_messages(broken))


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("huge", "x: " + "y" * 3000 + "\n", "more than the limit of 2048 bytes"),
        ("binary", b"\x00\x01\x02kind: Component\n", "it is a binary file"),
        ("symlink", None, "it is a symbolic link"),
    ],
)
def test_refused_catalog_files(make_catalog, tmp_path, repos, daemon, name, content, expected):
    if content is None:
        repos[0].symlink("services/x/catalog-info.yaml", "/etc/passwd")
    else:
        repos[0].write("services/x/catalog-info.yaml", content)
    repos[0].commit(name)
    config = extra(
        tmp_path, repositories=daemon_urls(daemon, repos), catalogPath="/**/catalog-info.yaml"
    )
    config["backend"]["reading"]["maxBytes"] = 2048
    catalog = make_catalog(**config)
    ingest(catalog)
    assert components(catalog) == {"alpha", "beta", "gamma", "beta-api", "beta-worker"}
    refused = next(
        e
        for e in final_entities_by_ref(catalog).values()
        if e["kind"] == "Location" and "/org/alpha.git#main:/services/x/" in e["spec"]["target"]
    )
    assert any(expected in message for message in status_messages(refused)), status_messages(
        refused
    )


def test_safe_deletions_refuse_an_empty_source(make_catalog, tmp_path, repos, daemon, caplog):
    catalog = make_catalog(**extra(tmp_path, repositories=daemon_urls(daemon, repos)))
    ingest(catalog)
    for remote in repos:
        remote.remove("catalog-info.yaml")
        remote.commit("catalog files gone")
    with caplog.at_level(logging.ERROR):
        ingest(catalog)
    assert components(catalog) == {"alpha", "beta", "gamma"}
    status = provider_status(catalog)
    assert "listed no entities" in status["lastRefusal"]["message"]
    assert status["refusals"] == 1
    assert any("listed no entities" in record.message for record in caplog.records)


def test_safe_deletions_refuse_removing_more_than_the_share(make_catalog, tmp_path, repos, daemon):
    catalog = make_catalog(**extra(tmp_path, repositories=daemon_urls(daemon, repos)))
    ingest(catalog)
    for remote in repos[:2]:
        remote.remove("catalog-info.yaml")
        remote.commit("two of three gone")
    ingest(catalog)
    assert components(catalog) == {"alpha", "beta", "gamma"}
    message = provider_status(catalog)["lastRefusal"]["message"]
    assert "delete 2 of its 3 entities (67%), more than the allowed 50%" in message


def test_safe_deletions_are_configurable(make_catalog, tmp_path, repos, daemon):
    catalog = make_catalog(
        **extra(
            tmp_path,
            repositories=daemon_urls(daemon, repos),
            safeDeletions={"maxRemovedShare": 0.7},
        )
    )
    ingest(catalog)
    for remote in repos[:2]:
        remote.remove("catalog-info.yaml")
        remote.commit("two of three gone")
    ingest(catalog)
    assert components(catalog) == {"gamma"}
    repos[2].remove("catalog-info.yaml")
    repos[2].commit("last one gone")
    ingest(catalog)
    assert components(catalog) == {"gamma"}  # empty: still refused

    unguarded = make_catalog(
        **extra(tmp_path, repositories=daemon_urls(daemon, repos), safeDeletions=False)
    )
    ingest(unguarded)
    assert components(unguarded) == set()
    assert provider_status(unguarded)["lastRefusal"] is None


@pytest.mark.parametrize(
    "url",
    [
        "--upload-pack=touch /tmp/pwned",
        "ext::sh -c touch% /tmp/pwned",
        "fd::17",
        "ssh://-oProxyCommand=touch%20/tmp/pwned/repo",
        "file:///srv/../etc/repo",
        "https://example.com/org/repo?x=1",
        "ftp://example.com/repo",
    ],
)
def test_bad_repository_urls_are_refused_at_start(database_url, tmp_path, url):
    config = catalog_config(database_url, [], extra(tmp_path, repositories=[url]))
    with pytest.raises(ConfigError, match="catalog.providers.git.repos.repositories"):
        AppConfig(config).validate()
