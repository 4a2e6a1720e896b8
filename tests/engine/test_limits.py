"""``catalog.limits`` on what catalog files control: every hostile file becomes an error on
the entity or Location it concerns, quickly, and the rest of the catalog is ingested."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from app.engine.parsing import YamlLimitError, load_yaml_documents
from app.errors import CatalogError
from app.limits import Limits
from app.reading.file import FileReader
from app.reading.url import UrlReader
from tests.conftest import (
    component,
    final_entities_by_ref,
    generated_location_ref,
    location,
    processing_errors,
    settle,
    status_messages,
    write_yaml,
)
from tests.httpserver import Route, file_server

BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
        *(
            f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]"
            for i in range(9)
        ),
    ]
)


def messages_of(catalog: Any, ref: str) -> list[str]:
    served = final_entities_by_ref(catalog).get(ref)
    if served is not None:
        return status_messages(served)
    return [error["message"] for error in processing_errors(catalog).get(ref, [])]


def ingest_with_good_neighbour(
    make_catalog: Any, tmp_path: Path, hostile: Path, **limits: int
) -> tuple[Any, list[str]]:
    """A Location with the hostile file and a good one; the good one must be ingested."""
    write_yaml(tmp_path / "good.yaml", component("good"))
    root = write_yaml(tmp_path / "root.yaml", location("root", f"./{hostile.name}", "./good.yaml"))
    extra = {"catalog": {"limits": limits}} if limits else {}
    catalog = make_catalog([root], **extra)
    started = time.monotonic()
    settle(catalog, timeout=60)
    assert time.monotonic() - started < 30
    assert "component:default/good" in final_entities_by_ref(catalog)
    return catalog, messages_of(catalog, "location:default/root")


def test_a_billion_laughs_file_is_refused_not_expanded(make_catalog, tmp_path):
    hostile = tmp_path / "laughs.yaml"
    hostile.write_text(BILLION_LAUGHS)
    _, messages = ingest_with_good_neighbour(make_catalog, tmp_path, hostile)
    assert any(
        f"YAML error at file:{hostile}, the document has more than 100000 nodes with its "
        "aliases expanded (catalog.limits.yamlNodes)" in m
        for m in messages
    ), messages


def test_a_self_referencing_alias_is_refused(make_catalog, tmp_path):
    hostile = tmp_path / "loop.yaml"
    hostile.write_text("apiVersion: v1\nkind: Component\nmetadata: &m {name: loop, self: *m}\n")
    _, messages = ingest_with_good_neighbour(make_catalog, tmp_path, hostile)
    assert any("nests deeper than 64 levels (catalog.limits.nestingDepth)" in m for m in messages)


def test_deep_nesting_is_refused(make_catalog, tmp_path):
    hostile = tmp_path / "deep.yaml"
    hostile.write_text("a: " + "[" * 500 + "]" * 500 + "\n")
    _, messages = ingest_with_good_neighbour(make_catalog, tmp_path, hostile, nestingDepth=20)
    assert any("nests deeper than 20 levels (catalog.limits.nestingDepth)" in m for m in messages)


def test_nesting_beyond_libyaml_is_a_yaml_error_not_a_crash(make_catalog, tmp_path):
    hostile = tmp_path / "deeper.yaml"
    hostile.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    _, messages = ingest_with_good_neighbour(make_catalog, tmp_path, hostile)
    assert any("exceeded maximum nesting depth" in m for m in messages), messages


def test_too_many_documents_in_one_file(make_catalog, tmp_path):
    hostile = write_yaml(tmp_path / "many.yaml", *(component(f"m{i}") for i in range(12)))
    _, messages = ingest_with_good_neighbour(make_catalog, tmp_path, hostile, documentsPerFile=10)
    assert any(
        "the stream has more than 10 documents (catalog.limits.documentsPerFile)" in m
        for m in messages
    )


def test_a_file_over_the_size_limit(make_catalog, tmp_path):
    hostile = write_yaml(tmp_path / "big.yaml", component("big", description="x" * 5000))
    _, messages = ingest_with_good_neighbour(make_catalog, tmp_path, hostile, fileBytes=2048)
    assert any("more than the limit of 2048 (catalog.limits.fileBytes)" in m for m in messages)


def test_a_location_with_too_many_targets_fails_as_a_whole(make_catalog, tmp_path):
    write_yaml(tmp_path / "one.yaml", component("one"))
    targets = ["./one.yaml"] + [f"./missing-{i}.yaml" for i in range(20)]
    root = write_yaml(tmp_path / "root.yaml", location("root", *targets))
    catalog = make_catalog([root], catalog={"limits": {"locationTargets": 10}})
    settle(catalog)
    assert "component:default/one" not in final_entities_by_ref(catalog)
    messages = messages_of(catalog, "location:default/root")
    assert any(
        "Location has 21 targets, more than the limit of 10 (catalog.limits.locationTargets)" in m
        for m in messages
    ), messages


def test_a_glob_matching_too_many_files(make_catalog, tmp_path):
    for i in range(8):
        write_yaml(tmp_path / "many" / f"c{i}.yaml", component(f"c{i}"))
    root = write_yaml(tmp_path / "root.yaml", location("root", "./many/*.yaml"))
    catalog = make_catalog([root], catalog={"limits": {"globMatches": 5}})
    settle(catalog)
    messages = messages_of(catalog, "location:default/root")
    assert any("matches more than 5 files (catalog.limits.globMatches)" in m for m in messages)
    assert not [r for r in final_entities_by_ref(catalog) if r.startswith("component:")]


def test_placeholder_reads_are_capped_per_entity(make_catalog, tmp_path):
    (tmp_path / "text.txt").write_text("hello")
    entity = component("chatty")
    entity["metadata"]["annotations"] = {f"x/{i}": {"$text": "./text.txt"} for i in range(4)}
    path = write_yaml(tmp_path / "chatty.yaml", entity)
    catalog = make_catalog([path], catalog={"limits": {"placeholderReads": 3}})
    settle(catalog)
    messages = messages_of(catalog, "component:default/chatty")
    assert any(
        "Placeholder $text exceeds the limit of 3 placeholder reads per entity "
        "(catalog.limits.placeholderReads)" in m
        for m in messages
    ), messages


def test_placeholders_do_not_recurse(make_catalog, tmp_path):
    """Resolved content is never searched for placeholders: a file that includes itself,
    or includes a file that points back, is read once and its placeholders stay data."""
    (tmp_path / "self.yaml").write_text("nested:\n  $yaml: ./self.yaml\n")
    entity = component("recursive")
    entity["spec"]["extra"] = {"$yaml": "./self.yaml"}
    entity["spec"]["text"] = {"$text": "./self.yaml"}
    path = write_yaml(tmp_path / "recursive.yaml", entity)
    catalog = make_catalog([path])
    settle(catalog)
    served = final_entities_by_ref(catalog)["component:default/recursive"]
    assert served["spec"]["extra"] == {"nested": {"$yaml": "./self.yaml"}}
    assert served["spec"]["text"] == "nested:\n  $yaml: ./self.yaml\n"
    assert status_messages(served) == []


def test_a_placeholder_yaml_file_is_held_to_the_yaml_limits(make_catalog, tmp_path):
    (tmp_path / "laughs.yaml").write_text(BILLION_LAUGHS)
    entity = component("laughing")
    entity["spec"]["extra"] = {"$yaml": "./laughs.yaml"}
    path = write_yaml(tmp_path / "laughing.yaml", entity)
    catalog = make_catalog([path])
    settle(catalog)
    messages = messages_of(catalog, "component:default/laughing")
    assert any("catalog.limits.yamlNodes" in m for m in messages), messages
    assert status_messages(final_entities_by_ref(catalog)[generated_location_ref(path)]) == []


def test_url_redirects_are_limited():
    with file_server() as server:
        for hop in range(4):
            server.routes[f"/hop{hop}"] = Route(status=302, headers={"Location": f"/hop{hop + 1}"})
        server.serve("/hop4", "kind: Component")
        allow = [{"host": server.host}]
        assert UrlReader(allow, max_redirects=4).read(server.url("/hop0")).data == (
            b"kind: Component"
        )
        with pytest.raises(
            CatalogError, match=r"Too many redirects \(max 3\).*catalog.limits.urlRedirects"
        ):
            UrlReader(allow, max_redirects=3).read(server.url("/hop0"))
        with pytest.raises(CatalogError, match=r"Too many redirects \(max 0\)"):
            UrlReader(allow, max_redirects=0).read(server.url("/hop3"))


def test_a_glob_stops_walking_at_the_limit(tmp_path):
    for i in range(50):
        (tmp_path / f"f{i}.yaml").write_text("x: 1")
    reader = FileReader(max_matches=10)
    with pytest.raises(CatalogError, match="matches more than 10 files"):
        reader.search(str(tmp_path / "*.yaml"))
    assert len(FileReader(max_matches=50).search(str(tmp_path / "*.yaml"))) == 50


def test_the_yaml_limits_cost_time_bounded_by_the_limit_not_the_expansion():
    # Twenty levels of nine-fold aliases would be 9**20 nodes; refused in milliseconds.
    text = 'a0: &a0 ["x"]\n' + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 21)
    )
    started = time.monotonic()
    with pytest.raises(YamlLimitError):
        list(load_yaml_documents(text, Limits(yaml_nodes=100_000)))
    assert time.monotonic() - started < 1.0
    # A document within the limits, with aliases, loads as before.
    [doc] = list(load_yaml_documents("a: &x {k: v}\nb: *x\n"))
    assert doc == {"a": {"k": "v"}, "b": {"k": "v"}}
