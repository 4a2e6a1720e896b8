"""Every graph query on the sample organisation (catalog/), and the bounds on bad input."""

from __future__ import annotations

from collections.abc import Iterator

import networkx as nx
import pytest

from app.errors import InputError, NotFoundError
from app.graph import queries
from app.graph.service import GraphService, GraphSettings
from app.storage.database import Database
from tests.conftest import fresh_database
from tests.graph.support import SAMPLE, ingest

GATEWAY = "component:default/payments-gateway"
POSTGRES = "resource:default/core-postgres"
CYCLE = [
    "component:default/bank-connector",
    "component:default/settlement-batcher",
    "component:default/payouts-service",
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphService]:
    directory = tmp_path_factory.mktemp("sample")
    with fresh_database(directory) as url:
        ingest(url, [SAMPLE])
        db = Database(url)
        try:
            yield GraphService(db, GraphSettings(export_node_limit=100))
        finally:
            db.dispose()


def refs(items: list[dict]) -> list[str]:
    return [item["entityRef"] for item in items]


# -- refs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "payments-gateway",
        "component:payments-gateway",
        "Component:default/Payments-Gateway",
        " component:default/payments-gateway ",
    ],
)
def test_refs_are_accepted_the_way_users_write_them(service, written):
    assert service.resolve(written) == GATEWAY


def test_other_namespaces_and_kinds(service):
    assert service.resolve("group:ops/sre") == "group:ops/sre"
    assert service.resolve("ops/sre") == "group:ops/sre"


@pytest.mark.parametrize(
    ("written", "error", "message"),
    [
        ("no-such-thing", NotFoundError, "No entity named 'no-such-thing'"),
        ("component:no-such-thing", NotFoundError, "No entity component:default/no-such-thing"),
        ("component:", InputError, "Malformed entity reference"),
        ("", InputError, "must not be empty"),
        ("component:default/", InputError, "Malformed"),
        (":x", InputError, "Malformed"),
    ],
)
def test_unknown_and_malformed_refs(service, written, error, message):
    with pytest.raises(error, match=message):
        service.dependencies(written)


def test_a_name_in_several_kinds_is_ambiguous():
    from app.graph.model import EntityGraph

    graph = EntityGraph()
    for kind in ("System", "Domain"):
        graph.set_entity(
            f"{kind.lower()}:default/payments", {"kind": kind, "metadata": {"name": "payments"}}
        )
    with pytest.raises(
        InputError, match="ambiguous, it matches domain:default/payments, system:default/payments"
    ):
        queries.resolve_ref(graph, "payments")
    assert queries.resolve_ref(graph, "system:payments") == "system:default/payments"


# -- dependencies and dependents ---------------------------------------------------


def test_dependencies_are_transitive_and_say_how(service):
    body = service.dependencies("payments-gateway").body
    by_ref = {item["entityRef"]: item for item in body["items"]}
    assert by_ref[POSTGRES]["depth"] == 1
    assert by_ref[POSTGRES]["via"] == {"source": GATEWAY, "type": "dependsOn", "target": POSTGRES}
    # Through the API it consumes, to the component that provides it: depth 2.
    provider = by_ref["component:default/authorization-engine"]
    assert provider["depth"] == 1
    assert any(item["depth"] >= 2 for item in body["items"])
    assert body["totalItems"] == len(body["items"])
    assert GATEWAY not in by_ref


def test_depth_relations_and_kinds_narrow_the_answer(service):
    everything = service.dependencies("payments-gateway").body
    direct = service.dependencies("payments-gateway", depth=1).body
    assert {item["depth"] for item in direct["items"]} == {1}
    assert direct["totalItems"] < everything["totalItems"]
    only_depends = service.dependencies("payments-gateway", relations=["dependsOn"]).body
    assert {item["via"]["type"] for item in only_depends["items"]} == {"dependsOn"}
    resources = service.dependencies("payments-gateway", kinds=["Resource"]).body
    assert {item["kind"] for item in resources["items"]} == {"Resource"}
    # Reverse names select the same pair.
    same = service.dependencies("payments-gateway", relations=["dependencyOf"]).body
    assert refs(same["items"]) == refs(only_depends["items"])


def test_dependents_of_the_most_depended_on_resource(service):
    body = service.dependents("resource:core-postgres").body
    items = {item["entityRef"]: item for item in body["items"]}
    assert items[GATEWAY]["depth"] == 1
    # The API the gateway provides depends on the gateway, and its consumers on it.
    assert items["api:default/payments-api"]["via"]["type"] == "providesApi"
    assert items["system:default/card-processing"]["via"]["type"] == "partOf"
    assert body["totalItems"] > 50


def test_limit_truncates_and_says_so(service):
    body = service.dependents("core-postgres", limit=5).body
    assert len(body["items"]) == 5 and body["truncated"] and body["totalItems"] > 5


def test_impact_groups_by_owner_with_contacts_and_by_system(service):
    body = service.impact("core-postgres").body
    owners = {group["owner"]["entityRef"]: group for group in body["byOwner"] if group["owner"]}
    processing = owners["group:default/team-processing"]
    assert processing["contact"]["email"] == "team-processing@acmepayments.example"
    assert GATEWAY in processing["entityRefs"]
    assert sum(group["count"] for group in body["byOwner"]) == body["totalItems"]
    systems = {group["system"]: group for group in body["bySystem"]}
    assert GATEWAY in systems["system:default/card-processing"]["entityRefs"]
    assert sum(group["count"] for group in body["bySystem"]) == body["totalItems"]
    assert body["byOwner"] == sorted(body["byOwner"], key=lambda g: -g["count"])


# -- paths and cycles ---------------------------------------------------------------


def test_shortest_path_follows_dependencies(service):
    body = service.path("payments-gateway", "core-postgres").body
    assert body["length"] == 1 and refs(body["entities"]) == [GATEWAY, POSTGRES]
    longer = service.path("payouts-service", "settlement-batcher").body
    assert refs(longer["entities"]) == [CYCLE[2], CYCLE[0], CYCLE[1]]


def test_no_path_is_a_404_and_undirected_paths_find_relatives(service):
    with pytest.raises(NotFoundError, match="No dependency path"):
        service.path("core-postgres", "payments-gateway")
    body = service.path("core-postgres", "payments-gateway", directed=False).body
    assert body["length"] == 1


def test_all_paths_are_simple_bounded_and_shortest_first(service):
    body = service.paths("payments-gateway", "core-postgres", max_length=4, max_paths=50).body
    lengths = [path["length"] for path in body["paths"]]
    assert lengths == sorted(lengths) and lengths[0] == 1 and max(lengths) <= 4
    for path in body["paths"]:
        chain = refs(path["entities"])
        assert len(set(chain)) == len(chain)
        assert chain[0] == GATEWAY and chain[-1] == POSTGRES
    few = service.paths("payments-gateway", "core-postgres", max_length=4, max_paths=2).body
    assert few["totalPaths"] == 2 and few["truncated"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_length": 0}, "maxLength must be between 1 and 20"),
        ({"max_length": 21}, "maxLength must be between 1 and 20"),
        ({"max_paths": 0}, "maxPaths must be between 1 and 1000"),
        ({"max_paths": 5000}, "maxPaths must be between 1 and 1000"),
    ],
)
def test_path_bounds(service, options, message):
    with pytest.raises(InputError, match=message):
        service.paths("payments-gateway", "core-postgres", **options)


def test_exactly_the_one_deliberate_dependency_cycle(service):
    body = service.cycles().body
    assert body["cycles"] == [CYCLE]
    assert body["relations"] == ["dependsOn"]


def test_cycles_through_other_relations_on_request(service):
    body = service.cycles(relations=["dependsOn", "consumesApi", "providesApi", "partOf"]).body
    assert CYCLE in body["cycles"] and len(body["cycles"]) > 1
    bounded = service.cycles(
        relations=["dependsOn", "consumesApi", "providesApi", "partOf"], limit=1
    ).body
    assert len(bounded["cycles"]) == 1 and bounded["truncated"]


# -- ownership ---------------------------------------------------------------------


def test_owner_with_contact_parents_to_the_root_and_members(service):
    body = service.ownership("payments-gateway").body
    assert body["owner"]["entityRef"] == "group:default/team-processing"
    assert body["contact"]["email"] == "team-processing@acmepayments.example"
    assert refs(body["parents"])[-1] == "group:default/acme-payments"
    assert len(body["parents"]) == 3
    assert body["members"] and all(m["kind"] == "User" for m in body["members"])


def test_user_owner(service):
    body = service.ownership("component:payment-links").body
    assert body["owner"]["kind"] == "User" and body["ownerExists"]
    assert body["members"] == [] and body["contact"]["email"].endswith(".example")


def test_group_owns_directly_and_through_child_groups(service):
    direct = service.owned("core-payments").body
    everything = service.owned("core-payments", transitive=True).body
    assert everything["totalItems"] > direct["totalItems"]
    assert GATEWAY in refs(everything["items"]) and GATEWAY not in refs(direct["items"])
    assert {g["entityRef"] for g in everything["groups"]} >= {
        "group:default/core-payments",
        "group:default/team-processing",
    }
    gateway = next(i for i in everything["items"] if i["entityRef"] == GATEWAY)
    assert gateway["owner"] == "group:default/team-processing" and gateway["depth"] == 1
    apis = service.owned("core-payments", transitive=True, kinds=["API"]).body
    assert {i["kind"] for i in apis["items"]} == {"API"}


def test_the_sample_has_no_orphans(service):
    assert service.orphans().body == {"unowned": [], "ownerMissing": []}


# -- centrality and subgraphs --------------------------------------------------------


def test_most_depended_on(service):
    body = service.most_depended_on(kinds=["Resource"], limit=3).body
    assert refs(body["items"]) == [
        POSTGRES,
        "resource:default/events-kafka",
        "resource:default/shared-redis",
    ]
    top = body["items"][0]
    assert top["dependents"] >= 10 and top["transitiveDependents"] > top["dependents"]
    by_rank = service.most_depended_on(sort="pagerank", limit=5).body
    ranks = [item["pagerank"] for item in by_rank["items"]]
    assert ranks == sorted(ranks, reverse=True)
    with pytest.raises(InputError):
        service.most_depended_on(sort="loudest")


def test_subgraph_around_roots(service):
    body = service.subgraph(["payments-gateway"], depth=1).body
    nodes = {n["entityRef"]: n["depth"] for n in body["nodes"]}
    assert nodes[GATEWAY] == 0 and nodes[POSTGRES] == 1
    assert "group:default/team-processing" in nodes
    assert all(e["source"] in nodes and e["target"] in nodes for e in body["edges"])
    outgoing = service.subgraph(["payments-gateway"], depth=1, direction="out").body
    assert "component:default/checkout-service" not in {n["entityRef"] for n in outgoing["nodes"]}
    only = service.subgraph(["payments-gateway"], depth=2, kinds=["Component"]).body
    assert {n["kind"] for n in only["nodes"]} == {"Component"}
    rel = service.subgraph(["payments-gateway"], depth=1, relations=["ownedBy"]).body
    assert {e["type"] for e in rel["edges"]} == {"ownedBy"}


def test_subgraph_bounds(service):
    with pytest.raises(InputError, match="more than 100 entities"):
        service.subgraph(["payments-gateway"], depth=10)
    with pytest.raises(InputError, match="more than the limit of 100"):
        service.subgraph(None)
    with pytest.raises(InputError, match="depth must be between 0 and 100"):
        service.subgraph(["payments-gateway"], depth=101)
    with pytest.raises(InputError, match="direction"):
        service.subgraph(["payments-gateway"], direction="sideways")


@pytest.mark.parametrize("depth", [-1, 0, 101, 10**9])
def test_bad_depths(service, depth):
    with pytest.raises(InputError, match="depth must be between 1 and 100"):
        service.dependents("core-postgres", depth=depth)


def test_unknown_relation_types(service):
    with pytest.raises(InputError, match="Unknown relation type 'dependsOnn'"):
        service.dependencies("payments-gateway", relations=["dependsOnn"])


def test_path_search_has_a_step_budget(monkeypatch):
    """A dense graph cannot make the all-paths search run away."""
    from app.graph.model import EntityGraph

    graph = EntityGraph()
    complete = nx.complete_graph(12, create_using=nx.DiGraph)
    refs_ = [f"component:default/n{i}" for i in range(12)]
    for i, ref in enumerate(refs_):
        item = {
            "kind": "Component",
            "metadata": {"name": f"n{i}"},
            "relations": [{"type": "dependsOn", "targetRef": refs_[j]} for j in complete[i]],
        }
        graph.set_entity(ref, item)
    monkeypatch.setattr(queries, "PATH_SEARCH_BUDGET", 10_000)
    view = queries.View(frozenset({"dependsOn"}))
    result = queries.all_paths(graph, refs_[0], refs_[1], view, max_length=11, max_paths=1000)
    assert result.body["truncated"] and 0 < result.body["totalPaths"] < 1000


def test_cycle_search_has_a_time_budget(service, monkeypatch):
    monkeypatch.setattr(queries, "CYCLE_SEARCH_SECONDS", -1.0)
    body = service.cycles(relations=["dependsOn", "partOf", "consumesApi"], limit=7).body
    assert body["truncated"] and body["cycles"] == []
