"""The opt-in CODEOWNERS processor: ``spec.owner`` from the repository, at the same ref."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from processors.codeowners import normalize_owner, owner_for
from tests.conftest import component, final_entities_by_ref, force_due, processing_errors, settle
from tests.gitrepos import Remote

CODEOWNERS = """\
# Default owners
*                       @acme/platform
/services/payments/     @acme/payments-team @someone
docs/*                  writer@example.com
*.md                    @docs-person
"""


@pytest.mark.parametrize(
    ("path", "owner"),
    [
        ("/catalog-info.yaml", "group:platform"),
        ("/services/payments/catalog-info.yaml", "group:payments-team"),
        ("/services/payments/deep/catalog-info.yaml", "group:payments-team"),
        ("/services/ledger/catalog-info.yaml", "group:platform"),
        ("/docs/catalog-info.yaml", "user:writer"),
        ("/docs/nested/catalog-info.yaml", "group:platform"),
        ("/README.md", "user:docs-person"),
    ],
)
def test_the_last_matching_rule_wins(path, owner):
    assert owner_for(CODEOWNERS, path) == owner


def test_owner_forms():
    assert normalize_owner("@acme/team-a") == "group:team-a"
    assert normalize_owner("@jdoe") == "user:jdoe"
    assert normalize_owner("jane@example.com") == "user:jane"
    assert normalize_owner("nonsense") is None
    assert owner_for("", "/catalog-info.yaml") is None


def ownerless(name: str) -> dict[str, Any]:
    entity = component(name)
    del entity["spec"]["owner"]
    return entity


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    repo = Remote(tmp_path / "srv" / "org", "repo", tmp_path / "work")
    repo.write(".github/CODEOWNERS", CODEOWNERS)
    repo.write_yaml("catalog-info.yaml", ownerless("platform-thing"), component("owned"))
    repo.write_yaml("services/payments/catalog-info.yaml", ownerless("payments"))
    repo.commit()
    return repo


def locations(remote: Remote) -> list[dict[str, str]]:
    return [{"type": "git", "target": f"{remote.file_url}#main:/**/catalog-info.yaml"}]


def git_cache(tmp_path: Path, **reading: Any) -> dict[str, Any]:
    return {"reading": {"git": {"cacheDir": str(tmp_path / "cache"), **reading}}}


def test_fills_missing_owners_from_codeowners(make_catalog, remote, tmp_path):
    catalog = make_catalog(
        locations(remote),
        backend=git_cache(tmp_path, headCacheTtl=0.001),
        catalog={"processors": {"codeowners": {}}},
    )
    settle(catalog)
    entities = final_entities_by_ref(catalog)
    assert entities["component:default/platform-thing"]["spec"]["owner"] == "group:platform"
    assert entities["component:default/payments"]["spec"]["owner"] == "group:payments-team"
    assert entities["component:default/owned"]["spec"]["owner"] == "team-a"
    relations = {
        (r["type"], r["targetRef"]) for r in entities["component:default/payments"]["relations"]
    }
    assert ("ownedBy", "group:default/payments-team") in relations

    # Unchanged head: CODEOWNERS is not read again.
    reads = catalog.readers.get("git").stats["read"]
    force_due(catalog)
    settle(catalog)
    assert catalog.readers.get("git").stats["read"] == reads

    remote.write(".github/CODEOWNERS", "* @acme/new-owners\n")
    remote.commit("new owners")
    force_due(catalog)
    settle(catalog)
    force_due(catalog)
    settle(catalog)
    entities = final_entities_by_ref(catalog)
    assert entities["component:default/payments"]["spec"]["owner"] == "group:new-owners"


def test_it_is_off_unless_configured(make_catalog, remote, tmp_path):
    catalog = make_catalog(locations(remote), backend=git_cache(tmp_path))
    settle(catalog)
    assert "component:default/payments" not in final_entities_by_ref(catalog)
    errors = processing_errors(catalog)["component:default/payments"]
    assert any("owner" in error["message"] for error in errors)
