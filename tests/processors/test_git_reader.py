"""``git`` locations and blob URLs through the whole pipeline: real repositories, real catalogs.

Repositories are created in temporary folders and served over ``file://``, by ``git
daemon`` and by ``git http-backend`` on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.reading.git import GitReader
from tests.conftest import (
    component,
    final_entities_by_ref,
    force_due,
    location,
    processing_errors,
    settle,
    status_messages,
)
from tests.gitrepos import Remote, git, git_daemon, git_http_server


def described(entity: dict[str, Any], description: Any) -> dict[str, Any]:
    entity["metadata"]["description"] = description
    return entity


def git_extra(tmp_path: Path, **reading: Any) -> dict[str, Any]:
    return {"backend": {"reading": {"git": {"cacheDir": str(tmp_path / "cache"), **reading}}}}


def reader_of(catalog: Any) -> GitReader:
    reader = catalog.readers.get("git")
    assert isinstance(reader, GitReader)
    return reader


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    repo = Remote(tmp_path / "srv" / "org", "service", tmp_path / "work")
    repo.write_yaml(
        "catalog-info.yaml",
        described(component("payments"), {"$text": "./docs/summary.txt"}),
        location("more", "./nested/catalog-info.yaml"),
    )
    repo.write("docs/summary.txt", "first summary")
    repo.write_yaml("nested/catalog-info.yaml", component("ledger"))
    repo.commit("initial")
    return repo


def test_git_location_reads_entities_placeholders_and_nested_locations(
    make_catalog, remote, tmp_path
):
    target = f"{remote.file_url}#main:/catalog-info.yaml"
    catalog = make_catalog([{"type": "git", "target": target}], **git_extra(tmp_path))
    settle(catalog)
    entities = final_entities_by_ref(catalog)
    payments = entities["component:default/payments"]
    assert payments["metadata"]["description"] == "first summary"
    assert "component:default/ledger" in entities
    annotations = payments["metadata"]["annotations"]
    assert annotations["backstage.io/managed-by-location"] == f"git:{target}"
    # No web host is known for file:// repositories: the source is a git location.
    assert annotations["backstage.io/source-location"] == f"git:{remote.file_url}#main:/"
    assert processing_errors(catalog) == {}


def test_placeholders_resolve_against_the_commit_of_their_file(make_catalog, remote, tmp_path):
    target = f"{remote.file_url}#main:/catalog-info.yaml"
    catalog = make_catalog([{"type": "git", "target": target}], **git_extra(tmp_path))
    settle(catalog)
    reader = reader_of(catalog)
    # The branch moves after the file was read: the entity keeps the summary of its commit.
    remote.write("docs/summary.txt", "second summary")
    remote.commit("newer summary")
    force_due(catalog)
    settle(catalog)
    payments = final_entities_by_ref(catalog)["component:default/payments"]
    assert payments["metadata"]["description"] == "first summary"
    reader.invalidate(remote.file_url)
    force_due(catalog)
    settle(catalog)
    force_due(catalog)
    settle(catalog)
    payments = final_entities_by_ref(catalog)["component:default/payments"]
    assert payments["metadata"]["description"] == "second summary"


def test_unchanged_head_is_not_fetched_read_or_parsed_again(make_catalog, remote, tmp_path):
    target = f"{remote.file_url}#main:/catalog-info.yaml"
    catalog = make_catalog(
        [{"type": "git", "target": target}], **git_extra(tmp_path, headCacheTtl=0.001)
    )
    settle(catalog)
    reader = reader_of(catalog)
    before = dict(reader.stats)
    assert before["read"] >= 3  # two catalog files and the placeholder
    for _ in range(3):
        force_due(catalog)
        settle(catalog)
    after = dict(reader.stats)
    # Each pass asks the server for the head (ls-remote), and nothing else.
    assert after["fetch"] == before["fetch"]
    assert after["read"] == before["read"]
    assert after["ls-remote"] > before["ls-remote"]
    # A commit that does not touch the catalog files is fetched, but no file is read.
    remote.write("README.md", "unrelated")
    remote.commit("docs only")
    force_due(catalog)
    settle(catalog)
    later = dict(reader.stats)
    assert later["fetch"] == after["fetch"] + 1
    assert later["read"] == after["read"]


def test_git_daemon_glob_target_and_deleted_file(make_catalog, remote, tmp_path):
    remote.write_yaml("services/a/catalog-info.yaml", component("svc-a"))
    remote.write_yaml("services/b/deep/catalog-info.yaml", component("svc-b"))
    remote.commit("more services")
    with git_daemon(tmp_path / "srv") as port:
        target = f"git://127.0.0.1:{port}/org/service.git#main:/services/**/catalog-info.yaml"
        catalog = make_catalog(
            [{"type": "git", "target": target}],
            **git_extra(tmp_path, headCacheTtl=0.001),
            catalog={"orphanStrategy": "delete"},
        )
        settle(catalog)
        refs = set(final_entities_by_ref(catalog))
        assert {"component:default/svc-a", "component:default/svc-b"} <= refs
        assert "component:default/payments" not in refs
        remote.remove("services/b")
        remote.commit("remove b")
        force_due(catalog)
        settle(catalog)
        catalog.engine.cleanup_orphans()
        settle(catalog)
        refs = set(final_entities_by_ref(catalog))
        assert "component:default/svc-a" in refs
        assert "component:default/svc-b" not in refs


def test_blob_urls_of_integration_hosts_read_through_git(make_catalog, tmp_path):
    root = tmp_path / "http"
    repo = Remote(root / "org", "web", tmp_path / "work")
    repo.write_yaml("catalog-info.yaml", described(component("web"), {"$text": "./about.md"}))
    repo.write("about.md", "served over smart HTTP")
    repo.commit()
    # GitHub serves /org/web as well as /org/web.git; http-backend needs the exact folder.
    (root / "org" / "web.git").rename(root / "org" / "web")
    with git_http_server(root) as port:
        url = f"http://127.0.0.1:{port}/org/web/blob/main/catalog-info.yaml"
        catalog = make_catalog(
            [{"type": "url", "target": url}],
            **git_extra(tmp_path),
            integrations={"github": [{"host": f"127.0.0.1:{port}"}]},
        )
        settle(catalog)
        web = final_entities_by_ref(catalog)["component:default/web"]
    annotations = web["metadata"]["annotations"]
    assert web["metadata"]["description"] == "served over smart HTTP"
    assert annotations["backstage.io/view-url"] == url
    assert annotations["backstage.io/edit-url"] == url.replace("/blob/", "/edit/")


def test_scm_annotations_for_known_hosts(make_catalog, remote, tmp_path):
    with git_daemon(tmp_path / "srv") as port:
        target = f"git://127.0.0.1:{port}/org/service.git#main:/nested/catalog-info.yaml"
        catalog = make_catalog(
            [{"type": "git", "target": target}],
            **git_extra(tmp_path),
            integrations={"gitlab": [{"host": "127.0.0.1"}]},
        )
        settle(catalog)
    annotations = final_entities_by_ref(catalog)["component:default/ledger"]["metadata"][
        "annotations"
    ]
    base = "https://127.0.0.1/org/service"
    assert annotations["backstage.io/view-url"] == f"{base}/-/blob/main/nested/catalog-info.yaml"
    assert annotations["backstage.io/edit-url"] == f"{base}/-/edit/main/nested/catalog-info.yaml"
    assert annotations["backstage.io/source-location"] == f"url:{base}/-/tree/main/nested/"


def test_unreachable_repository_keeps_its_entities_with_an_error(make_catalog, remote, tmp_path):
    target = f"{remote.file_url}#main:/catalog-info.yaml"
    catalog = make_catalog(
        [{"type": "git", "target": target}], **git_extra(tmp_path, headCacheTtl=0.001)
    )
    settle(catalog)
    remote.bare.rename(remote.bare.with_name("moved.git"))
    force_due(catalog)
    settle(catalog)
    entities = final_entities_by_ref(catalog)
    assert "component:default/payments" in entities
    messages = [
        message
        for entity in entities.values()
        if entity["kind"] == "Location"
        for message in status_messages(entity)
    ]
    assert any("git ls-remote failed" in message for message in messages), messages


def test_malformed_file_fails_only_its_own_entities(make_catalog, remote, tmp_path):
    remote.write_yaml("teams/a/catalog-info.yaml", component("team-a-service"))
    remote.write_yaml("teams/b/catalog-info.yaml", component("team-b-service"))
    remote.commit()
    target = f"{remote.file_url}#main:/teams/**/catalog-info.yaml"
    catalog = make_catalog(
        [{"type": "git", "target": target}], **git_extra(tmp_path, headCacheTtl=0.001)
    )
    settle(catalog)
    remote.write("teams/b/catalog-info.yaml", "kind: Component\n  metadata: [unclosed\n")
    remote.write_yaml("teams/a/catalog-info.yaml", component("team-a-service", lifecycle="beta"))
    remote.commit("break b, change a")
    force_due(catalog)
    settle(catalog)
    entities = final_entities_by_ref(catalog)
    assert entities["component:default/team-a-service"]["spec"]["lifecycle"] == "beta"
    # b's file does not parse: its entity stays as it was, the Location shows why.
    assert entities["component:default/team-b-service"]["spec"]["lifecycle"] == "production"
    errors = [e for errors in processing_errors(catalog).values() for e in errors]
    assert any(e["name"] == "YAMLException" or "YAML" in e["message"] for e in errors), errors


def test_commit_and_tag_refs(make_catalog, remote, tmp_path):
    first = remote.head()
    remote.tag("v1")
    remote.write_yaml("nested/catalog-info.yaml", component("ledger", lifecycle="experimental"))
    remote.commit("later")
    catalog = make_catalog(
        [
            {"type": "git", "target": f"{remote.file_url}#{first}:/nested/catalog-info.yaml"},
        ],
        **git_extra(tmp_path),
    )
    settle(catalog)
    assert final_entities_by_ref(catalog)["component:default/ledger"]["spec"]["lifecycle"] == (
        "production"
    )
    reader = reader_of(catalog)
    tagged = reader.read(f"{remote.file_url}#v1:/nested/catalog-info.yaml")
    assert tagged.etag == first
    assert b"production" in tagged.data


def test_force_push_is_followed(make_catalog, remote, tmp_path):
    target = f"{remote.file_url}#main:/nested/catalog-info.yaml"
    catalog = make_catalog(
        [{"type": "git", "target": target}], **git_extra(tmp_path, headCacheTtl=0.001)
    )
    remote.write_yaml("nested/catalog-info.yaml", component("ledger", lifecycle="beta"))
    remote.commit("beta")
    settle(catalog)
    assert final_entities_by_ref(catalog)["component:default/ledger"]["spec"]["lifecycle"] == "beta"
    remote.write_yaml("nested/catalog-info.yaml", component("ledger", lifecycle="deprecated"))
    rewritten = remote.rewrite_last_commit("history rewritten")
    assert git("rev-parse", "main", cwd=remote.bare) == rewritten
    force_due(catalog)
    settle(catalog)
    assert (
        final_entities_by_ref(catalog)["component:default/ledger"]["spec"]["lifecycle"]
        == "deprecated"
    )


def test_paths_escaping_the_repository_are_refused(make_catalog, remote, tmp_path):
    target = f"{remote.file_url}#main:/catalog-info.yaml"
    catalog = make_catalog(
        [{"type": "git", "target": target}], **git_extra(tmp_path, headCacheTtl=0.001)
    )
    settle(catalog)
    before = final_entities_by_ref(catalog)
    remote.write_yaml(
        "catalog-info.yaml",
        described(component("payments"), {"$text": "../../../../../../etc/passwd"}),
        location("more", "../../outside/catalog-info.yaml"),
    )
    remote.commit("try to leave the repository")
    force_due(catalog)
    settle(catalog)
    force_due(catalog)
    settle(catalog)
    after = final_entities_by_ref(catalog)
    # Nothing read from outside; the entities keep their last good versions.
    assert after["component:default/payments"]["metadata"]["description"] == "first summary"
    assert "component:default/ledger" in after
    assert set(after) == set(before)
    messages = [
        m for errors in processing_errors(catalog).values() for e in errors for m in [e["message"]]
    ]
    assert any("leaves the repository" in m for m in messages), messages
    assert not any("root:" in m for m in messages)
