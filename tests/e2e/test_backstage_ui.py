"""The real Backstage 1.55 frontend, in Chromium, against our server on the sample catalog.

One stack serves every set-up (ports PORT_BASE to PORT_BASE+5, default 7081-7086):

- ``same-origin``: serve.js forwards the app's ``/api/catalog`` to us (no CORS involved);
- ``backstage-proxy``: the frontend's discovery sends the catalog plugin to the real
  Backstage backend's proxy endpoint ``/api/proxy/catalog-under-test``, which forwards to
  us: the way an adopter serves us to their Backstage;
- ``cross-origin``: the app calls us directly from another origin, allowed by our
  ``backend.cors``; ``refused-origin``: the same from an origin it does not list.

The driver (driver.js) runs every set-up's pages at once, in the background, and records
what the browser shows plus every request; the tests below compare that with the sample
catalog's YAML (sample.py). Screenshots, logs and request lists go to test-artifacts/e2e/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
import requests
import yaml

from tests.e2e import stack
from tests.e2e.conftest import REQUEST_REPORT
from tests.e2e.sample import Row, SampleCatalog

pytestmark = pytest.mark.browser

PORT = stack.PORT_BASE  # our catalog server
SAME_ORIGIN_PORT = PORT + 1
PROXY_APP_PORT = PORT + 2
REFERENCE_PORT = PORT + 3
CROSS_ORIGIN_PORT = PORT + 4
REFUSED_ORIGIN_PORT = PORT + 5

FULL_SETUPS = ["same-origin", "backstage-proxy"]
# Browsers per full set-up, each with a share of its pages; more only help on more cores.
BROWSERS_PER_SETUP = int(os.environ.get("CATALOG_E2E_BROWSERS", "1"))
ENTITY = "component:default/payments-gateway"
START = "/?filters[kind]=component&filters[user]=all"  # "All", not "Owned": guest owns nothing

# Each filter step: the UI actions, and the rows the sample catalog says must remain.
FILTERS: dict[str, tuple[list[dict[str, str]], str, dict[str, str]]] = {
    "kind": ([{"select": "Kind", "option": "API"}], "api", {}),
    "type": ([{"select": "Type", "option": "website"}], "component", {"type": "website"}),
    "owner": (
        [{"pick": "Owner", "option": "Fraud Team"}],
        "component",
        {"owner": "group:default/team-fraud"},
    ),
    "lifecycle": (
        [{"pick": "Lifecycle", "option": "experimental"}],
        "component",
        {"lifecycle": "experimental"},
    ),
    "tag": ([{"pick": "Tags", "option": "pci"}], "component", {"tag": "pci"}),
    "namespace": ([{"pick": "Namespace", "option": "ops"}], "component", {"namespace": "ops"}),
    "type+lifecycle+tag": (
        [
            {"select": "Type", "option": "service"},
            {"pick": "Lifecycle", "option": "experimental"},
            {"pick": "Tags", "option": "python"},
        ],
        "component",
        {"type": "service", "lifecycle": "experimental", "tag": "python"},
    ),
}

# The one failure Backstage itself shows too: the app looks up the user it runs as.
EXPECTED_FAILURE = re.compile(r"^GET \S*/entities/by-name/user/default/guest 404$")


def graph_path(ref: str) -> str:
    return f"/catalog-graph?rootEntityRefs[]={quote(ref, safe='')}&maxDepth=1&unidirectional=false"


def full_plan() -> list[dict[str, Any]]:
    kind, namespace, name = re.split(r"[:/]", ENTITY)
    steps: list[dict[str, Any]] = [{"name": "catalog", "type": "table", "path": START}]
    for key, (actions, _, _) in FILTERS.items():
        steps.append({"name": f"filter-{key}", "type": "table", "path": START, "actions": actions})
    steps.append(
        {"name": "entity", "type": "entity", "path": f"/catalog/{namespace}/{kind}/{name}"}
    )
    steps.append({"name": "graph", "type": "graph", "path": graph_path(ENTITY)})
    return steps


def doc_plan(folder: Path) -> list[dict[str, Any]]:
    """The README's pictures (CATALOG_E2E_DOC_SHOTS=docs/screenshots): viewport-sized."""
    kind, namespace, name = re.split(r"[:/]", ENTITY)
    ref = quote(ENTITY, safe="")
    pages: dict[str, dict[str, Any]] = {
        "catalog": {"type": "table", "path": START, "pages": 1},
        "catalog-filtered": {"type": "table", "path": START, "actions": FILTERS["owner"][0]},
        "entity": {"type": "entity", "path": f"/catalog/{namespace}/{kind}/{name}"},
        # The plugin's own defaults (one edge per relation pair), filters folded away.
        "graph": {
            "type": "graph",
            "path": f"/catalog-graph?rootEntityRefs[]={ref}&maxDepth=1&showFilters=false",
        },
    }
    return [
        {"name": f"doc-{key}", **step, "docShot": str(folder / f"{key}.png")}
        for key, step in pages.items()
    ]


# ---- the stack ----------------------------------------------------------------------------


def server_config(directory: Path) -> dict[str, Any]:
    """Our app-config: the sample catalog (the default), CORS for the cross-origin app."""
    return {
        "backend": {
            "listen": {"host": "127.0.0.1", "port": PORT},
            "database": {
                "client": "better-sqlite3",
                "connection": {"filename": str(directory / "catalog.sqlite")},
            },
            # What a Backstage adopter writes; REFUSED_ORIGIN_PORT is deliberately absent.
            "cors": {
                "origin": f"http://127.0.0.1:{CROSS_ORIGIN_PORT}",
                "methods": ["GET", "HEAD", "PATCH", "POST", "PUT", "DELETE"],
                "credentials": True,
            },
        },
        "catalog": {
            "locations": [{"type": "file", "target": str(stack.REPO / "catalog" / "all.yaml")}],
            "processingInterval": {"hours": 1},
        },
    }


def wait_ingested(base: str, components: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    total = None
    while time.monotonic() < deadline:
        try:
            ready = requests.get(f"{base}/.backstage/health/v1/readiness", timeout=5)
            page = requests.get(
                f"{base}/api/catalog/entities/by-query",
                params={"filter": "kind=component", "limit": "0"},
                timeout=5,
            )
            total = page.json().get("totalItems")
            if ready.status_code == 200 and total == components:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the catalog has {total} components, not {components}, after {timeout}s")


@pytest.fixture(scope="module")
def sample() -> SampleCatalog:
    return SampleCatalog.load()


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, sample: SampleCatalog) -> Iterator[dict[str, Any]]:
    """Start everything, run the driver for every set-up at once, hand over the results."""
    missing = stack.missing_prerequisites()
    if missing:
        message = "browser tests need " + "; ".join(missing)
        if stack.in_ci():
            pytest.fail(message)
        pytest.skip(message)

    shutil.rmtree(stack.ARTIFACTS, ignore_errors=True)
    work = stack.ARTIFACTS / "server"
    work.mkdir(parents=True)
    config_path = work / "app-config.yaml"
    config_path.write_text(yaml.safe_dump(server_config(work), sort_keys=False))
    catalog_bin = shutil.which("catalog", path=str(Path(sys.executable).parent))
    started: list[Any] = []  # stopped in reverse order, whatever happens
    reference = stack.ReferenceBackend(REFERENCE_PORT, stack.ARTIFACTS / "reference-backend")
    try:
        server = stack.Process(
            "catalog serve",
            [catalog_bin or "catalog", "serve", "--config", str(config_path), "--access-log"],
            work / "server.log",
        )
        started.append(server)
        base = f"http://127.0.0.1:{PORT}"
        stack.wait_http(f"{base}/.backstage/health/v1/liveness", server)
        wait_ingested(base, len(sample.of_kind("component")))

        started.append(reference)
        reference.start(
            Path(__file__).with_name("reference-catalog.yaml"),
            target=f"{base}/api/catalog",
            app_origin=f"http://127.0.0.1:{PROXY_APP_PORT}",
        )
        proxy = f"http://127.0.0.1:{REFERENCE_PORT}/api/proxy/catalog-under-test"
        apps = {
            "same-origin": (SAME_ORIGIN_PORT, ["--proxy", f"/api/catalog={base}"]),
            "backstage-proxy": (
                PROXY_APP_PORT,
                [
                    "--backend-base-url",
                    f"http://127.0.0.1:{REFERENCE_PORT}",
                    "--catalog-url",
                    proxy,
                ],
            ),
            "cross-origin": (CROSS_ORIGIN_PORT, ["--catalog-url", f"{base}/api/catalog"]),
            "refused-origin": (REFUSED_ORIGIN_PORT, ["--catalog-url", f"{base}/api/catalog"]),
        }
        for name, (port, args) in apps.items():
            started.append(stack.serve_app(name, port, args, stack.ARTIFACTS / "logs"))

        doc_shots = os.environ.get("CATALOG_E2E_DOC_SHOTS")
        docs = doc_plan(Path(doc_shots).resolve()) if doc_shots else []
        kind, namespace, name = re.split(r"[:/]", ENTITY)
        plans: dict[str, dict[str, Any]] = {
            "same-origin": {"steps": full_plan() + docs},
            "backstage-proxy": {"steps": full_plan()},
            "cross-origin": {
                "catalogPrefixes": [f"{base}/"],
                "steps": [
                    {"name": "catalog", "type": "table", "path": START, "pages": 1},
                    {
                        "name": "entity",
                        "type": "entity",
                        "path": f"/catalog/{namespace}/{kind}/{name}",
                    },
                ],
            },
            "refused-origin": {
                "catalogPrefixes": [f"{base}/"],
                "timeout": 8000,
                "steps": [
                    {"name": "catalog", "type": "table", "path": START},
                ],
            },
        }
        drivers = {}
        for setup, plan in plans.items():
            port = apps[setup][0]
            plan = {"appUrl": f"http://127.0.0.1:{port}", **plan}
            browsers = BROWSERS_PER_SETUP if setup in FULL_SETUPS else 1
            drivers[setup] = stack.run_driver(plan, stack.ARTIFACTS / setup, browsers)
            started += drivers[setup]
        results: dict[str, Any] = {
            setup: stack.merge_results([driver.result(timeout=600) for driver in parts])
            for setup, parts in drivers.items()
        }
        for setup, result in results.items():
            result["setup"] = setup
            result["catalogPrefix"] = {
                "same-origin": f"http://127.0.0.1:{SAME_ORIGIN_PORT}/api/catalog/",
                "backstage-proxy": f"{proxy}/",
                "cross-origin": f"{base}/api/catalog/",
                "refused-origin": f"{base}/api/catalog/",
            }[setup]
        results["server-log"] = server.log_path
        results["reference-log"] = reference.run_dir / f"backstage-{REFERENCE_PORT}.log"
        report = request_report(results)
        (stack.ARTIFACTS / "requests.md").write_text("\n".join(report) + "\n")
        request.config.stash[REQUEST_REPORT] = report
        yield results
    finally:
        for process in reversed(started):
            process.stop()


# ---- what the browser made of it ----------------------------------------------------------


def catalog_requests(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        r
        for r in run["requests"]
        if re.search(r"/api/(catalog|catalog-graph|proxy)/", urlsplit(r["url"]).path)
        or r["url"].startswith(run["catalogPrefix"])
    ]


def describe(r: dict[str, Any]) -> str:
    return f"{r['method']} {r['url']} {r.get('status') or r.get('failed')}"


def failed_requests(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        r
        for r in catalog_requests(run)
        # ERR_ABORTED: cancelled by the next page load, not refused.
        if (r.get("failed") and r["failed"] != "net::ERR_ABORTED")
        or ((r.get("status") or 0) >= 400 and not EXPECTED_FAILURE.match(describe(r)))
    ]


def context(run: dict[str, Any], step: str | None = None) -> str:
    """What to print when a check fails: the failed requests first (a request we do not
    implement shows up here), then the step's error and the browser console."""
    lines = [f"set-up {run['setup']}, artifacts in {stack.ARTIFACTS / run['setup']}"]
    for r in failed_requests(run):
        lines.append(f"  FAILED {describe(r)} (page {r['step']})")
        if r.get("body"):
            lines.append(f"    request body: {r['body'][:300]}")
        if r.get("response"):
            lines.append(f"    response: {r['response'].strip()[:300]}")
    if step:
        result = next(s for s in run["steps"] if s["name"] == step)
        if result["error"]:
            lines.append(f"  step {step} failed: {result['error']} (at {result['url']})")
    errors = [e["text"] for e in run["consoleErrors"] if "/api/signals" not in e["text"]]
    lines += [f"  console: {text}" for text in errors[:5]]
    return "\n".join(lines)


def step_data(run: dict[str, Any], name: str) -> dict[str, Any]:
    result = next(s for s in run["steps"] if s["name"] == name)
    assert result["error"] is None, f"page {name} did not load:\n{context(run, name)}"
    data: dict[str, Any] = result["data"]
    return data


def shown_rows(data: dict[str, Any], type_filter: str | None = None) -> list[Row]:
    """The table's rows. Two columns may be hidden (see the plugin's
    defaultCatalogTableColumnsFunc): Type while a type is selected, and Namespace when every
    row of the page is in "default"; their values are then the implied ones."""
    return [
        Row(
            ref=row.get("href", ""),
            name=row.get("Name", ""),
            system=row.get("System", ""),
            owner=row.get("Owner", ""),
            type=row.get("Type", type_filter or ""),
            lifecycle=row.get("Lifecycle", ""),
            namespace=row.get("Namespace", "default"),
            tags=tuple(row.get("Tags", ())),
        )
        for row in data["rows"]
    ]


def as_links(rows: list[Row]) -> list[Row]:
    """Expected rows with ``ref`` turned into the entity page link the Name cell carries."""
    out = []
    for row in rows:
        kind, namespace, name = re.split(r"[:/]", row.ref)
        out.append(Row(**{**row.__dict__, "ref": f"/catalog/{namespace}/{kind}/{name}"}))
    return out


def assert_table(
    run: dict[str, Any], step: str, expected: list[Row], type_filter: str | None = None
) -> None:
    data = step_data(run, step)
    count = re.search(r"\((\d+)\)\s*$", data["title"])
    assert count and int(count.group(1)) == len(expected), (
        f"table title {data['title']!r}, expected {len(expected)} entities\n{context(run, step)}"
    )
    shown = shown_rows(data, type_filter)
    want = as_links(expected)
    assert [r.name for r in shown] == [r.name for r in want], (
        f"{step}: the table lists other entities (or in another order)\n{context(run, step)}"
    )
    assert shown == want, f"{step}: rows differ\n{context(run, step)}"


# ---- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("setup", FULL_SETUPS)
def test_catalog_table_lists_every_sample_component(
    runs: dict[str, Any], sample: SampleCatalog, setup: str
) -> None:
    # 47 components: three pages of 20, walked with the UI's Next Page button (cursors).
    assert_table(runs[setup], "catalog", sample.rows("component"))


@pytest.mark.parametrize("setup", FULL_SETUPS)
@pytest.mark.parametrize("name", list(FILTERS))
def test_filter_narrows_the_table(
    runs: dict[str, Any], sample: SampleCatalog, setup: str, name: str
) -> None:
    _, kind, spec_filter = FILTERS[name]
    expected = sample.rows(kind, **spec_filter)
    assert 0 < len(expected) < len(sample.of_kind(kind)) or not spec_filter
    assert_table(runs[setup], f"filter-{name}", expected, spec_filter.get("type"))


@pytest.mark.parametrize("setup", FULL_SETUPS)
def test_filter_dropdowns_offer_the_catalogs_values(
    runs: dict[str, Any], sample: SampleCatalog, setup: str
) -> None:
    """The dropdowns are filled from /entity-facets: every kind, and the component types."""
    run = runs[setup]
    kinds = step_data(run, "filter-kind")["options"]["Kind"]
    assert sorted(kinds) == sorted({e["kind"] for e in sample.entities.values()}), context(run)
    types = step_data(run, "filter-type")["options"]["Type"]
    expected = {str(e["spec"]["type"]) for e in sample.of_kind("component")}
    assert sorted(types) == ["all", *sorted(expected)], context(run)
    lifecycles = step_data(run, "filter-lifecycle")["options"]["Lifecycle"]
    assert sorted(lifecycles) == sorted({r.lifecycle for r in sample.rows("component")})


@pytest.mark.parametrize("setup", [*FULL_SETUPS, "cross-origin"])
def test_entity_page_shows_about_card_and_relations(
    runs: dict[str, Any], sample: SampleCatalog, setup: str
) -> None:
    run = runs[setup]
    data = step_data(run, "entity")
    entity = sample.entities[ENTITY]
    row = sample.row(entity)
    about = {label.lower(): field for label, field in data["about"].items()}
    expected = {
        "description": entity["metadata"]["description"],
        "owner": row.owner,
        "system": row.system,
        "type": row.type,
        "lifecycle": row.lifecycle,
        "kind": entity["kind"],
    }
    shown = {key: about.get(key, {}).get("text") for key in expected}
    assert shown == expected, f"About card\n{context(run, 'entity')}"
    assert about["tags"]["lines"] == list(row.tags), context(run, "entity")
    assert about["owner"]["links"] == ["/catalog/default/group/team-processing"]
    assert about["system"]["links"] == ["/catalog/default/system/card-processing"]

    # The relation cards list the related entities by title.
    spec = entity["spec"]

    def refs(values: list[str], kind: str, only: str = "") -> list[str]:
        resolved = [sample.resolve(value, kind, "default") for value in values]
        return [ref for ref in resolved if ref.startswith(only)]

    cards = {
        "Provided APIs": refs(spec["providesApis"], "api"),
        "Consumed APIs": refs(spec["consumesApis"], "api"),
        "Depends on components": refs(spec["dependsOn"], "component", "component:"),
        "Depends on resources": refs(spec["dependsOn"], "component", "resource:"),
    }
    for card, related in cards.items():
        assert card in data["cards"], f"no {card} card\n{context(run, 'entity')}"
        for ref in related:
            assert sample.display(ref) in data["cards"][card], (
                f"{card} lacks {ref}\n{context(run, 'entity')}"
            )

    # The Relations card (catalog-graph) draws the entity and everything it relates to.
    expected_nodes = {ENTITY, *relation_targets(run, ENTITY)}
    drawn = {node["ref"] for node in data["relations"]["nodes"]}
    assert drawn == expected_nodes, f"Relations card nodes\n{context(run, 'entity')}"


@pytest.mark.parametrize("setup", FULL_SETUPS)
def test_catalog_graph_draws_the_relations(
    runs: dict[str, Any], sample: SampleCatalog, setup: str
) -> None:
    run = runs[setup]
    data = step_data(run, "graph")
    relations = all_relations(run)
    targets = relation_targets(run, ENTITY)
    nodes = {node["ref"]: node["label"] for node in data["nodes"]}
    assert set(nodes) == {ENTITY, *targets}, f"graph nodes\n{context(run, 'graph')}"
    for ref, label in nodes.items():
        entity = sample.entities[ref]
        names = {sample.display(ref), entity["metadata"].get("title"), entity["metadata"]["name"]}
        assert label in names, f"node {ref} is labelled {label!r}\n{context(run, 'graph')}"

    # Every relation of the root is an edge, pointing the way the plugin's pairs say ...
    edges = {(e["from"], e["label"], e["to"]) for e in data["edges"]}
    for kind, target in relations[ENTITY]:
        pair = next(p for p in RELATION_PAIRS if kind in p)
        source, sink = (ENTITY, target) if kind == pair[0] else (target, ENTITY)
        assert (source, f"{pair[0]} / {pair[1]}", sink) in edges, (
            f"no edge for {ENTITY} {kind} {target}\n{context(run, 'graph')}"
        )
    # ... and every edge drawn stands for a relation in the catalog.
    for source, label, sink in edges:
        forward, backward = label.split(" / ")
        assert (forward, sink) in relations.get(source, set()) or (backward, source) in (
            relations.get(sink, set())
        ), f"edge {source} {label} {sink} has no relation\n{context(run, 'graph')}"


# As the catalog-graph plugin pairs them (ALL_RELATION_PAIRS): the edge points left to right.
RELATION_PAIRS = [
    ("ownerOf", "ownedBy"),
    ("consumesApi", "apiConsumedBy"),
    ("apiProvidedBy", "providesApi"),
    ("hasPart", "partOf"),
    ("parentOf", "childOf"),
    ("hasMember", "memberOf"),
    ("dependsOn", "dependencyOf"),
]


def all_relations(run: dict[str, Any]) -> dict[str, set[tuple[str, str]]]:
    """Every entity's relations as our server states them: the graph must draw these."""
    cached: dict[str, set[tuple[str, str]]] | None = run.get("_relations")
    if cached is None:
        response = requests.get(f"http://127.0.0.1:{PORT}/api/catalog/entities", timeout=30)
        response.raise_for_status()
        cached = {}
        for entity in response.json():
            meta = entity["metadata"]
            ref = f"{entity['kind']}:{meta['namespace']}/{meta['name']}".lower()
            cached[ref] = {(r["type"], r["targetRef"]) for r in entity.get("relations", [])}
        run["_relations"] = cached
    return cached


def relation_targets(run: dict[str, Any], ref: str) -> set[str]:
    return {target for _, target in all_relations(run)[ref]}


def test_graph_walks_relations_with_by_refs(runs: dict[str, Any]) -> None:
    """The 1.55 catalog-graph plugin (0.6.8) has no backend mode to configure: it fetches
    full entities with POST /entities/by-refs, never /api/catalog-graph/graph."""
    run = runs["same-origin"]
    graph = [r for r in catalog_requests(run) if r["step"] == "graph"]
    walks = [r for r in graph if r["method"] == "POST" and "/entities/by-refs" in r["url"]]
    assert walks and all(r.get("status") == 200 for r in walks), context(run, "graph")
    assert not any("/api/catalog-graph/" in r["url"] for r in catalog_requests(run))


@pytest.mark.parametrize("setup", [*FULL_SETUPS, "cross-origin"])
def test_every_catalog_request_succeeded(runs: dict[str, Any], setup: str) -> None:
    run = runs[setup]
    made = catalog_requests(run)
    assert made, f"the frontend made no catalog request\n{context(run)}"
    assert not failed_requests(run), f"catalog requests failed\n{context(run)}"
    # And they went the configured way (e.g. through Backstage's proxy), nowhere else.
    astray = [describe(r) for r in made if not r["url"].startswith(run["catalogPrefix"])]
    assert not astray, f"requests outside {run['catalogPrefix']}: {astray[:5]}"


def test_proxied_requests_reached_our_server(runs: dict[str, Any]) -> None:
    """Through the proxy: every catalog call the Backstage backend received on its proxy
    endpoint arrived at our server (its access log), and the reference backend's own
    catalog never showed up in the UI."""
    run = runs["backstage-proxy"]
    table = step_data(run, "catalog")
    assert "Reference backend's own catalog" not in [r["Name"] for r in table["rows"]]
    endpoint = "/api/proxy/catalog-under-test"
    received = set()
    for line in runs["reference-log"].read_text(errors="replace").splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("type") == "incomingRequest" and entry["url"].startswith(endpoint + "/"):
            received.add(f"{entry['method']} {entry['url'][len(endpoint) :]}")
    assert received, "the Backstage backend's proxy received no catalog request"
    ours = set()
    for line in runs["server-log"].read_text(errors="replace").splitlines():
        match = re.search(r'"([A-Z]+) /api/catalog(/\S*) HTTP/', line)
        if match:
            ours.add(f"{match.group(1)} {match.group(2)}")
    assert received <= ours, f"not forwarded to us: {sorted(received - ours)[:5]}"


def test_cross_origin_app_reads_the_catalog_with_cors(
    runs: dict[str, Any], sample: SampleCatalog
) -> None:
    """Mode B: the app calls our /api/catalog directly; backend.cors lets its origin in."""
    run = runs["cross-origin"]
    data = step_data(run, "catalog")
    first_page = [r.name for r in sample.rows("component")][:20]
    assert [r["Name"] for r in data["rows"]] == first_page, context(run, "catalog")
    assert any(r["method"] == "POST" for r in catalog_requests(run)), (
        "no POST (preflighted) request was made"
    )


def test_refused_origin_gets_nothing(runs: dict[str, Any]) -> None:
    """An origin backend.cors does not list: the browser blocks every catalog response, the
    table never fills, and the harness reports each blocked request."""
    run = runs["refused-origin"]
    step = run["steps"][0]
    assert step["error"], "the catalog table loaded from a refused origin"
    made = catalog_requests(run)
    assert made and all(r.get("failed") for r in made), [describe(r) for r in made]
    assert any("CORS policy" in e["text"] for e in run["consoleErrors"])


# ---- the request list for the closing note ------------------------------------------------


def request_report(results: dict[str, Any]) -> list[str]:
    """Every distinct catalog request per set-up with its status and count."""
    lines = []
    for setup in ["same-origin", "backstage-proxy", "cross-origin", "refused-origin"]:
        run = results[setup]
        prefix = run["catalogPrefix"].rstrip("/")
        counts: Counter[str] = Counter()
        for r in catalog_requests(run):
            url = unquote(r["url"])
            url = url[len(prefix) :] if url.startswith(prefix) else url
            url = re.sub(r"cursor=[^&]+", "cursor=…", url)
            if r["method"] == "POST" and r.get("body"):
                fields = json.loads(r["body"]).get("fields")
                url += f" fields={','.join(fields)}" if fields else " (full entities)"
            counts[f"{r['method']} {url} -> {r.get('status') or r.get('failed')}"] += 1
        total = sum(counts.values())
        lines.append(f"{setup}: {total} catalog requests to {prefix}")
        lines += [f"  {count:3d} x {line}" for line, count in sorted(counts.items())]
    return lines
