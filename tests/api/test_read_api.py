"""The read API over real HTTP, against Backstage's own example catalog.

One ``catalog serve`` process per module serves ``examples/all.yaml`` and
``examples/acme-corp.yaml`` from ``../shared/backstage``. The expected answers below
were read off those files and checked against the real Backstage backend
(``../shared/reference-backend``, release 1.55) loaded with the same files; where
this catalog deliberately differs, the test says so.
"""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import SHARED, ServerProcess, generated_location_ref, shared_server

EXAMPLES = SHARED / "backstage" / "examples"
ALL = EXAMPLES / "all.yaml"
ACME = EXAMPLES / "acme-corp.yaml"

COMPONENTS = {
    "artist-lookup",
    "petstore",
    "playback-order",
    "playback-sdk",  # defined in components/playback-lib-component.yaml
    "podcast-api",
    "queue-proxy",
    "searcher",
    "shuffle-api",
    "wayback-archive",
    "wayback-archive-ingestion",
    "wayback-archive-storage",
    "wayback-search",
    "www-artist",
}
# petstore-webhook has a relative $text placeholder, which Backstage cannot resolve in
# `file` locations (the entity is absent there) and this catalog does (deliberately).
APIS = {
    "hello-world",
    "hello-world-trpc",
    "petstore",
    "petstore-webhook",
    "starwars-graphql",
    "streetlights",
}
# Not served, as in Backstage: remote $text definitions (no url reader), an mcp-server API
# without a definition, and AiResources (not an allowed kind).
NOT_SERVED = {
    "api:default/spotify",
    "api:default/wayback-archive",
    "api:default/wayback-search",
    "api:default/backstage-mcp-server",
    "airesource:default/frontend-design",
    "airesource:default/use-internal-apis",
    "airesource:default/code-review-plugin",
}
GROUPS = {
    "acme-corp",
    "infrastructure",
    "boxoffice",
    "backstage",
    "team-a",
    "team-b",
    "team-c",
    "team-d",
}
DEFAULT_USERS = {
    "amelia.park",
    "breanna.davison",
    "calum.leavy",
    "colette.brock",
    "eva.macdowell",
    "frank.tiernan",
    "guest",
    "janelle.dawe",
    "jenny.doe",
    "jonathon.page",
    "justine.barrow",
    "lucy.sheehan",
    "nigel.manning",
    "peadar.macmahon",
    "sarah.gilroy",
    "tara.macgovern",
}
LOCATIONS = {
    "example-all",
    "example-apis",
    "example-components",
    "example-domains",
    "example-resources",
    "example-systems",
    # All its targets are AiResources: Backstage fails (and hides) this Location, this
    # catalog keeps it with the errors in its status (deliberately).
    "example-ai-resources",
    "acme-corp",
    "example-groups",
    generated_location_ref(ALL).split("/")[-1],
    generated_location_ref(ACME).split("/")[-1],
}
KIND_COUNTS = {
    "API": 6,
    "Component": 13,
    "Domain": 3,
    "Group": 8,
    "Location": 11,
    "Resource": 1,
    "System": 3,
    "User": 17,
}
TOTAL = sum(KIND_COUNTS.values())  # 62


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with shared_server(tmp_path_factory, [ALL, ACME]) as process:
        yield process


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[Client]:
    with requests.Session() as session:
        yield Client(server.catalog_url, session)


class Client:
    def __init__(self, base: str, session: requests.Session):
        self.base = base
        self.session = session

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.base + path, timeout=30, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.session.post(self.base + path, json=body, timeout=30, **kwargs)

    def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        response = self.get(path, **kwargs) if method == "GET" else self.post(path, body, **kwargs)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        return response.json()


def names(items: list[dict[str, Any] | None]) -> list[str | None]:
    return [item["metadata"]["name"] if item is not None else None for item in items]


def ref(entity: dict[str, Any]) -> str:
    metadata = entity["metadata"]
    return f"{entity['kind']}:{metadata['namespace']}/{metadata['name']}".lower()


def decode(cursor: str) -> dict[str, Any]:
    return json.loads(base64.b64decode(cursor))


# -- GET /entities -------------------------------------------------------------------------


def test_every_example_entity_is_served(api):
    entities = api.ok("GET", "/entities")
    assert len(entities) == TOTAL
    by_kind: dict[str, set[str]] = {}
    for entity in entities:
        by_kind.setdefault(entity["kind"], set()).add(entity["metadata"]["name"])
        metadata = entity["metadata"]
        assert metadata["uid"] and metadata["etag"]
        assert metadata["annotations"]["backstage.io/managed-by-location"].startswith("file:")
        assert isinstance(entity["relations"], list)
    assert by_kind["Component"] == COMPONENTS
    assert by_kind["API"] == APIS
    assert by_kind["Group"] == GROUPS
    assert by_kind["User"] == DEFAULT_USERS  # guest exists twice, in two namespaces
    assert by_kind["Location"] == LOCATIONS
    assert by_kind["Domain"] == {"artists", "audio", "playback"}
    assert by_kind["System"] == {"artist-engagement-portal", "audio-playback", "podcast"}
    assert by_kind["Resource"] == {"artists-db"}
    assert not NOT_SERVED & {ref(entity) for entity in entities}
    assert {
        ref(e) for e in entities if e["kind"] == "User" and e["metadata"]["name"] == "guest"
    } == {
        "user:default/guest",
        "user:development/guest",
    }


COMPONENT_FILE = EXAMPLES / "components" / "artist-lookup-component.yaml"


def test_an_example_entity_is_stitched_as_backstage_does(api):
    entity = api.ok("GET", "/entities/by-name/component/default/artist-lookup")
    assert entity["spec"] == {
        "type": "service",
        "lifecycle": "experimental",
        "owner": "team-a",
        "system": "artist-engagement-portal",
        "dependsOn": ["resource:artists-db"],
        "apiConsumedBy": ["component:www-artist"],
    }
    assert entity["metadata"]["tags"] == ["java", "data"]
    assert len(entity["metadata"]["links"]) == 7
    assert entity["metadata"]["annotations"] == {
        "backstage.io/source-template": "template:default/springboot-template",
        "backstage.io/linguist": "https://github.com/backstage/backstage/tree/master/plugins/playlist",
        "backstage.io/managed-by-location": f"file:{COMPONENT_FILE}",
        "backstage.io/managed-by-origin-location": f"file:{ALL}",
    }
    assert entity["relations"] == [
        {"type": "dependsOn", "targetRef": "resource:default/artists-db"},
        {"type": "ownedBy", "targetRef": "group:default/team-a"},
        {"type": "partOf", "targetRef": "system:default/artist-engagement-portal"},
    ]
    assert "status" not in entity

    # Reverse relations on the targets.
    db = api.ok("GET", "/entities/by-name/resource/default/artists-db")
    assert {"type": "dependencyOf", "targetRef": "component:default/artist-lookup"} in db[
        "relations"
    ]
    team_c = api.ok("GET", "/entities/by-name/group/default/team-c")
    assert [r["targetRef"] for r in team_c["relations"] if r["type"] == "ownerOf"] == [
        "api:default/hello-world",
        "api:default/hello-world-trpc",
        "api:default/petstore",
        "api:default/petstore-webhook",
        "api:default/streetlights",
        "component:default/petstore",
        "component:default/playback-sdk",
        "system:default/audio-playback",
    ]
    # Relation-carrying arrays come back sorted, members from both sides.
    backstage = api.ok("GET", "/entities/by-name/group/default/backstage")
    assert backstage["spec"]["children"] == ["team-a", "team-b"]
    assert {"type": "childOf", "targetRef": "group:default/infrastructure"} in backstage[
        "relations"
    ]


def test_the_relative_text_placeholder_is_resolved(api):
    webhook = api.ok("GET", "/entities/by-name/api/default/petstore-webhook")
    definition = (EXAMPLES / "apis" / "petstore-webhook.oas.yaml").read_text()
    assert webhook["spec"]["definition"] == definition


def test_a_location_with_only_disallowed_children_shows_the_errors(api):
    location = api.ok("GET", "/entities/by-name/location/default/example-ai-resources")
    messages = [item["message"] for item in location["status"]["items"]]
    assert len(messages) == 3
    assert all(m.startswith("NotAllowedError: Entity airesource:default/") for m in messages)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["kind=component,spec.type=website"], {"queue-proxy", "www-artist"}),
        # Repeated filters are OR'ed.
        (
            ["kind=component,spec.type=website", "kind=api,spec.type=grpc"],
            {"queue-proxy", "www-artist", "hello-world"},
        ),
        # The same key twice in one filter is an OR of its values.
        (
            ["kind=domain,kind=system"],
            {
                "artists",
                "audio",
                "playback",
                "artist-engagement-portal",
                "audio-playback",
                "podcast",
            },
        ),
        # A bare key means "exists".
        (
            ["kind=component,spec.system"],
            {
                "artist-lookup",
                "playback-sdk",
                "podcast-api",
                "queue-proxy",
                "shuffle-api",
                "www-artist",
            },
        ),
        # Keys and values are matched case-insensitively.
        (["KIND=COMPONENT,Metadata.Tags=JAVA"], {"artist-lookup", "playback-order", "podcast-api"}),
        # String array items also index "<path>.<item>".
        (["metadata.tags.go"], {"queue-proxy", "searcher", "shuffle-api"}),
        (
            ["relations.ownedBy=group:default/team-c,kind=component"],
            {"petstore", "playback-sdk"},
        ),
        (["spec.owner=user:guest"], {"searcher", "shuffle-api"}),
        (["metadata.namespace=development"], {"guest"}),
        (["spec.type="], set()),
        (["kind=nothing"], set()),
    ],
)
def test_list_filters(api, filters, expected):
    entities = api.ok("GET", "/entities", params={"filter": filters, "fields": "metadata.name"})
    assert set(names(entities)) == expected
    assert len(entities) == len(expected)


def test_list_fields_projection(api):
    entities = api.ok(
        "GET", "/entities", params={"filter": "kind=domain", "fields": "metadata.name,spec.owner"}
    )
    assert sorted(entities, key=lambda e: e["metadata"]["name"]) == [
        {"metadata": {"name": "artists"}, "spec": {"owner": "team-a"}},
        {"metadata": {"name": "audio"}, "spec": {"owner": "acme-corp"}},
        {"metadata": {"name": "playback"}, "spec": {"owner": "user:frank.tiernan"}},
    ]
    # Repeated fields parameters combine; missing paths are left out, no empty parents.
    entities = api.ok(
        "GET",
        "/entities",
        params=[
            ("filter", "kind=component,metadata.name=searcher"),
            ("fields", "kind"),
            ("fields", "spec.system"),
        ],
    )
    assert entities == [{"kind": "Component"}]


def test_list_paging_with_link_headers(api):
    params: dict[str, Any] = {
        "filter": "kind=component",
        "order": "asc:metadata.name",
        "limit": 5,
        "fields": "metadata.name",
    }
    response = api.get("/entities", params=params)
    assert response.status_code == 200
    assert names(response.json()) == sorted(COMPONENTS)[:5]
    assert response.headers["Link"] == (
        "</entities?filter=kind%3Dcomponent&order=asc%3Ametadata.name&limit=5&fields=metadata.name"
        '&after=eyJsaW1pdCI6NSwib2Zmc2V0Ijo1fQ%3D%3D>; rel="next"'
    )
    assert decode("eyJsaW1pdCI6NSwib2Zmc2V0Ijo1fQ==") == {"limit": 5, "offset": 5}

    seen = names(response.json())
    link = response.headers["Link"]
    while link:
        path = link[1 : link.index(">")]
        response = api.get(path)
        assert response.status_code == 200
        seen += names(response.json())
        link = response.headers.get("Link")
    assert seen == sorted(COMPONENTS)

    # offset on its own, and the offset is dropped from the next link.
    response = api.get(
        "/entities",
        params={**params, "offset": 2, "limit": 3},
    )
    assert names(response.json()) == sorted(COMPONENTS)[2:5]
    assert "offset" not in response.headers["Link"]
    assert (
        decode(response.headers["Link"].split("after=")[1].split(">")[0].replace("%3D", "="))[
            "offset"
        ]
        == 5
    )
    last = api.get("/entities", params={**params, "offset": 10})
    assert names(last.json()) == sorted(COMPONENTS)[10:]
    assert "Link" not in last.headers


def test_list_ordering(api):
    def ordered(*orders: str) -> list[dict[str, Any]]:
        return api.ok(
            "GET",
            "/entities",
            params={
                "filter": "kind=component",
                "order": list(orders),
                "limit": 50,
                "fields": "metadata.name,spec.system",
            },
        )

    # Entities without the field come last, in either direction.
    ascending = ordered("asc:spec.system")
    assert [e.get("spec", {}).get("system") for e in ascending] == [
        "artist-engagement-portal",
        "artist-engagement-portal",
        "audio-playback",
        "audio-playback",
        "podcast",
        "podcast",
        *[None] * 7,
    ]
    descending = ordered("desc:spec.system")
    assert [e.get("spec", {}).get("system") for e in descending][:6] == [
        "podcast",
        "podcast",
        "audio-playback",
        "audio-playback",
        "artist-engagement-portal",
        "artist-engagement-portal",
    ]
    # Several directives are honoured (the reference backend answers exactly this).
    assert names(ordered("asc:spec.system", "desc:metadata.name")) == [
        "www-artist",
        "artist-lookup",
        "shuffle-api",
        "playback-sdk",
        "queue-proxy",
        "podcast-api",
        "wayback-search",
        "wayback-archive-storage",
        "wayback-archive-ingestion",
        "wayback-archive",
        "searcher",
        "playback-order",
        "petstore",
    ]
    # Without paging the first order counts and only entities with the field are listed.
    streamed = api.ok(
        "GET",
        "/entities",
        params={
            "filter": "kind=component",
            "order": "desc:metadata.name",
            "fields": "metadata.name",
        },
    )
    assert names(streamed) == sorted(COMPONENTS, reverse=True)


# -- GET /entities/by-query ------------------------------------------------------------------


def test_query_defaults(api):
    page = api.ok("GET", "/entities/by-query")
    # Without a limit the real backend returns up to 200 items (REFERENCE errata).
    assert len(page["items"]) == TOTAL
    assert page["totalItems"] == TOTAL
    assert page["pageInfo"] == {}
    # The default order is by uid.
    uids = [item["metadata"]["uid"] for item in page["items"]]
    assert uids == sorted(uids)


def test_query_pages_forwards_and_backwards(api):
    params = {
        "filter": "kind=component",
        "orderField": "metadata.name,asc",
        "limit": 5,
        "fields": "metadata.name",
    }
    first = api.ok("GET", "/entities/by-query", params=params)
    assert names(first["items"]) == sorted(COMPONENTS)[:5]
    assert first["totalItems"] == 13
    assert set(first["pageInfo"]) == {"nextCursor"}
    cursor = decode(first["pageInfo"]["nextCursor"])
    assert cursor["totalItems"] == 13
    assert cursor["orderFields"] == [{"field": "metadata.name", "order": "asc"}]

    pages = [first]
    while "nextCursor" in pages[-1]["pageInfo"]:
        # A cursor carries the query; filters and order sent with it are ignored, but
        # limit and fields are not carried, so they are sent again.
        pages.append(
            api.ok(
                "GET",
                "/entities/by-query",
                params={
                    "cursor": pages[-1]["pageInfo"]["nextCursor"],
                    "limit": 5,
                    "fields": "metadata.name",
                    "filter": "kind=api",
                    "orderField": "metadata.name,desc",
                },
            )
        )
    assert [len(page["items"]) for page in pages] == [5, 5, 3]
    assert [name for page in pages for name in names(page["items"])] == sorted(COMPONENTS)
    assert all(page["totalItems"] == 13 for page in pages)
    assert set(pages[1]["pageInfo"]) == {"nextCursor", "prevCursor"}
    assert set(pages[2]["pageInfo"]) == {"prevCursor"}

    # Backwards from the last page: the same pages again, the first without prevCursor.
    back = api.ok(
        "GET",
        "/entities/by-query",
        params={
            "cursor": pages[2]["pageInfo"]["prevCursor"],
            "limit": 5,
            "fields": "metadata.name",
        },
    )
    assert names(back["items"]) == names(pages[1]["items"])
    back = api.ok(
        "GET",
        "/entities/by-query",
        params={"cursor": back["pageInfo"]["prevCursor"], "limit": 5, "fields": "metadata.name"},
    )
    assert names(back["items"]) == names(first["items"])
    assert set(back["pageInfo"]) == {"nextCursor"}

    # Without a limit a cursor request returns the rest (up to 200).
    rest = api.ok("GET", "/entities/by-query", params={"cursor": first["pageInfo"]["nextCursor"]})
    assert names(rest["items"]) == sorted(COMPONENTS)[5:]


def test_query_descending_and_missing_values(api):
    page = api.ok(
        "GET",
        "/entities/by-query",
        params={
            "filter": "kind=component",
            "orderField": "metadata.name,desc",
            "fields": "metadata.name",
        },
    )
    assert names(page["items"]) == sorted(COMPONENTS, reverse=True)
    # Entities lacking the order field are left out (REFERENCE errata).
    page = api.ok(
        "GET",
        "/entities/by-query",
        params={
            "filter": "kind=component",
            "orderField": "spec.system,asc",
            "fields": "metadata.name",
        },
    )
    assert page["totalItems"] == 6
    assert set(names(page["items"])) == {
        "artist-lookup",
        "playback-sdk",
        "podcast-api",
        "queue-proxy",
        "shuffle-api",
        "www-artist",
    }


def test_query_ordered_by_an_array_field_counts_entities_once(api):
    page = api.ok(
        "GET",
        "/entities/by-query",
        params={
            "filter": "kind=component",
            "orderField": "metadata.tags,asc",
            "fields": "metadata.name",
        },
    )
    # One item per tag (9 tags on 6 components), but totalItems counts entities: the
    # reference backend answers totalItems 6 with these 9 items.
    assert sorted(names(page["items"])) == sorted(
        [
            "artist-lookup",
            "artist-lookup",
            "playback-order",
            "playback-order",
            "podcast-api",
            "queue-proxy",
            "queue-proxy",
            "searcher",
            "shuffle-api",
        ]
    )
    assert page["totalItems"] == 6


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"fullTextFilterTerm": "ARTIST", "fullTextFilterFields": "metadata.name"},
            ["artist-lookup", "www-artist"],
        ),
        # The term is searched in the sort field when no fields are given.
        (
            {"fullTextFilterTerm": " artist ", "orderField": "metadata.name,asc"},
            ["artist-lookup", "www-artist"],
        ),
        # ... and with neither, in the uid: nothing useful (REFERENCE errata).
        ({"fullTextFilterTerm": "artist"}, []),
        # "_" is a wildcard, as SQL LIKE has it (REFERENCE errata).
        (
            {
                "fullTextFilterTerm": "way_ack",
                "fullTextFilterFields": "metadata.name",
                "orderField": "metadata.name,asc",
            },
            [
                "wayback-archive",
                "wayback-archive-ingestion",
                "wayback-archive-storage",
                "wayback-search",
            ],
        ),
        (
            {"fullTextFilterTerm": "library", "fullTextFilterFields": "metadata.name,spec.type"},
            ["playback-sdk"],
        ),
        # A blank term is ignored.
        (
            {"fullTextFilterTerm": "  ", "orderField": "metadata.name,asc", "limit": 2},
            ["artist-lookup", "petstore"],
        ),
    ],
)
def test_query_full_text(api, params, expected):
    page = api.ok(
        "GET",
        "/entities/by-query",
        params={"filter": "kind=component", "fields": "metadata.name", **params},
    )
    assert sorted(names(page["items"])) == sorted(expected)


def test_query_total_items_and_zero_limit(api):
    page = api.ok(
        "GET",
        "/entities/by-query",
        params={
            "filter": "kind=component",
            "totalItems": "exclude",
            "limit": 1,
            "orderField": "metadata.name,asc",
        },
    )
    assert page["totalItems"] == 0
    assert names(page["items"]) == ["artist-lookup"]
    assert decode(page["pageInfo"]["nextCursor"])["totalItems"] == 0
    page = api.ok("GET", "/entities/by-query", params={"filter": "kind=component", "limit": 0})
    assert page == {"items": [], "totalItems": 13, "pageInfo": {}}


def test_query_cursor_tells_the_client_get_from_post(api):
    # The client continues with POST when the decoded cursor has a truthy "query".
    plain = api.ok("GET", "/entities/by-query", params={"limit": 1})
    assert not decode(plain["pageInfo"]["nextCursor"]).get("query")
    predicate = api.ok("POST", "/entities/by-query", {"query": {"kind": "user"}, "limit": 1})
    assert decode(predicate["pageInfo"]["nextCursor"])["query"]


# -- POST /entities/by-query ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"kind": "component", "spec.type": "website"}, {"queue-proxy", "www-artist"}),
        (
            {"$all": [{"kind": "component"}, {"spec.type": {"$in": ["website", "library"]}}]},
            {"queue-proxy", "www-artist", "playback-sdk"},
        ),
        (
            {"$any": [{"spec.owner": "user:guest"}, {"spec.lifecycle": {"$in": ["deprecated"]}}]},
            {"searcher", "shuffle-api", "hello-world"},
        ),
        (
            {"$all": [{"kind": "component"}, {"$not": {"spec.lifecycle": "production"}}]},
            {"artist-lookup", "petstore", "playback-sdk", "podcast-api"},
        ),
        (
            {"kind": "component", "spec.system": {"$exists": False}},
            {
                "petstore",
                "playback-order",
                "searcher",
                "wayback-archive",
                "wayback-archive-ingestion",
                "wayback-archive-storage",
                "wayback-search",
            },
        ),
        ({"kind": "Resource", "spec.system": {"$exists": True}}, {"artists-db"}),
        (
            {"kind": {"$in": ["Domain", "system"]}, "metadata.name": {"$hasPrefix": "AR"}},
            {"artists", "artist-engagement-portal"},
        ),
        (
            {"kind": "component", "metadata.tags": {"$contains": "go"}},
            {"queue-proxy", "searcher", "shuffle-api"},
        ),
        (
            {"relations.ownedby": "group:default/team-c", "kind": {"$in": ["component", "system"]}},
            {"audio-playback", "petstore", "playback-sdk"},
        ),
        ({"kind": "user", "metadata.namespace": {"$hasPrefix": "dev"}}, {"guest"}),
        # Primitives compare as strings; nothing has spec.type 5.
        ({"spec.type": 5}, set()),
        ({"$any": []}, set()),
        ({"metadata.annotations.backstage.io/orphan": {"$exists": True}}, set()),
    ],
)
def test_predicates(api, query, expected):
    page = api.ok("POST", "/entities/by-query", {"query": query, "fields": ["metadata.name"]})
    assert set(names(page["items"])) == expected
    assert page["totalItems"] == len(expected)


def test_empty_all_and_empty_object_match_everything(api):
    # {"$all": []} matches everything in the real backend (REFERENCE errata).
    for query in ({"$all": []}, {}):
        page = api.ok("POST", "/entities/by-query", {"query": query, "limit": 1})
        assert page["totalItems"] == TOTAL


def test_predicate_query_pages_forwards_and_backwards(api):
    body = {
        "query": {"kind": "user", "metadata.namespace": "default"},
        "orderBy": [{"field": "metadata.name", "order": "desc"}],
        "limit": 6,
        "fields": ["metadata.name"],
    }
    first = api.ok("POST", "/entities/by-query", body)
    assert first["totalItems"] == 16
    pages = [first]
    while "nextCursor" in pages[-1]["pageInfo"]:
        pages.append(
            api.ok(
                "POST",
                "/entities/by-query",
                {
                    "cursor": pages[-1]["pageInfo"]["nextCursor"],
                    "limit": 6,
                    "fields": ["metadata.name"],
                },
            )
        )
    assert [len(page["items"]) for page in pages] == [6, 6, 4]
    assert [n for page in pages for n in names(page["items"])] == sorted(
        DEFAULT_USERS, reverse=True
    )
    assert all(page["totalItems"] == 16 for page in pages)
    previous = api.ok(
        "POST",
        "/entities/by-query",
        {"cursor": pages[-1]["pageInfo"]["prevCursor"], "limit": 6, "fields": ["metadata.name"]},
    )
    assert names(previous["items"]) == names(pages[1]["items"])


def test_predicate_query_order_field_and_full_text(api):
    # The parser's legacy body field "orderField" is accepted too (REFERENCE 1.4).
    page = api.ok(
        "POST",
        "/entities/by-query",
        {
            "query": {"kind": "component"},
            "orderField": ["metadata.name,desc"],
            "limit": 3,
            "fields": ["metadata.name"],
        },
    )
    assert names(page["items"]) == sorted(COMPONENTS, reverse=True)[:3]
    page = api.ok(
        "POST",
        "/entities/by-query",
        {
            "query": {"kind": "component"},
            "fullTextFilter": {"term": "wayback", "fields": ["metadata.name", "spec.type"]},
            "orderBy": [{"field": "metadata.name", "order": "asc"}],
            "totalItems": "exclude",
            "fields": ["metadata.name"],
        },
    )
    assert names(page["items"]) == sorted(n for n in COMPONENTS if n.startswith("wayback"))
    assert page["totalItems"] == 0


# -- single entities, ancestry, refs -----------------------------------------------------------


def test_by_name_and_by_uid(api):
    entity = api.ok("GET", "/entities/by-name/Component/Default/Artist-Lookup")
    assert entity["metadata"]["name"] == "artist-lookup"
    assert api.ok("GET", f"/entities/by-uid/{entity['metadata']['uid']}") == entity
    guest = api.ok("GET", "/entities/by-name/user/development/guest")
    assert guest["spec"]["memberOf"] == ["group:default/team-a"]
    assert api.get("/entities/by-name/user/default/nobody").status_code == 404
    assert api.get("/entities/by-uid/00000000-0000-0000-0000-000000000000").status_code == 404


def test_ancestry(api):
    body = api.ok("GET", "/entities/by-name/component/default/wayback-archive-storage/ancestry")
    generated = generated_location_ref(ALL)
    assert body["rootEntityRef"] == "component:default/wayback-archive-storage"
    assert [(ref(item["entity"]), item["parentEntityRefs"]) for item in body["items"]] == [
        ("component:default/wayback-archive-storage", ["location:default/example-components"]),
        ("location:default/example-components", ["location:default/example-all"]),
        ("location:default/example-all", [generated]),
        (generated, []),
    ]
    body = api.ok("GET", "/entities/by-name/User/Development/Guest/ancestry")
    assert body["rootEntityRef"] == "user:development/guest"
    assert [ref(item["entity"]) for item in body["items"]] == [
        "user:development/guest",
        "location:default/example-groups",
        "location:default/acme-corp",
        generated_location_ref(ACME),
    ]
    assert api.get("/entities/by-name/component/default/nope/ancestry").status_code == 404


def test_by_refs(api):
    refs = [
        "component:default/petstore",
        "api:default/petstore",
        "component:default/does-not-exist",
        "component:default/petstore",
        "user:development/guest",
    ]
    body = api.ok(
        "POST", "/entities/by-refs", {"entityRefs": refs, "fields": ["kind", "metadata.name"]}
    )
    assert body["items"] == [
        {"kind": "Component", "metadata": {"name": "petstore"}},
        {"kind": "API", "metadata": {"name": "petstore"}},
        None,
        {"kind": "Component", "metadata": {"name": "petstore"}},
        {"kind": "User", "metadata": {"name": "guest"}},
    ]
    # Filtered out is null too, by a legacy filter parameter or a predicate.
    body = api.ok(
        "POST",
        "/entities/by-refs",
        {"entityRefs": refs[:2], "fields": ["kind"]},
        params={"filter": "kind=component"},
    )
    assert body["items"] == [{"kind": "Component"}, None]
    body = api.ok("POST", "/entities/by-refs", {"entityRefs": refs[:2], "query": {"kind": "api"}})
    assert body["items"][0] is None
    assert body["items"][1]["spec"]["type"] == "openapi"
    # Refs are matched as canonical refs, as the reference backend does: a ref without
    # its namespace or with other casing finds nothing.
    body = api.ok(
        "POST",
        "/entities/by-refs",
        {"entityRefs": ["component:petstore", "Component:default/Petstore"]},
    )
    assert body["items"] == [None, None]
    assert api.ok("POST", "/entities/by-refs", {"entityRefs": []}) == {"items": []}


# -- facets ------------------------------------------------------------------------------------


def facet_counts(body: dict[str, Any], facet: str) -> dict[str, int]:
    return {item["value"]: item["count"] for item in body["facets"][facet]}


def test_facets(api):
    body = api.ok("GET", "/entity-facets", params={"facet": "kind"})
    assert facet_counts(body, "kind") == KIND_COUNTS

    body = api.ok(
        "GET",
        "/entity-facets",
        params={
            "facet": ["spec.lifecycle", "Metadata.Tags", "spec.nothing"],
            "filter": "kind=component",
        },
    )
    assert facet_counts(body, "spec.lifecycle") == {"experimental": 4, "production": 9}
    # Keyed as requested; array fields count per element.
    assert facet_counts(body, "Metadata.Tags") == {
        "java": 3,
        "go": 3,
        "data": 1,
        "playback": 1,
        "website": 1,
    }
    assert body["facets"]["spec.nothing"] == []

    body = api.ok(
        "POST",
        "/entity-facets",
        {
            "facets": ["spec.type", "relations.ownedBy"],
            "query": {"kind": "component", "spec.lifecycle": "production"},
        },
    )
    assert facet_counts(body, "spec.type") == {"service": 7, "website": 2}
    # playback-order's "owner: guest" has no kind, so it means the Group guest.
    assert facet_counts(body, "relations.ownedBy") == {
        "group:default/guest": 1,
        "group:default/team-a": 4,
        "group:default/team-b": 1,
        "group:default/team-d": 1,
        "user:default/guest": 2,
    }


# -- health, status lines, error envelopes ----------------------------------------------------


def test_health(server):
    live = requests.get(f"{server.base}/.backstage/health/v1/liveness", timeout=10)
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    ready = requests.get(f"{server.base}/.backstage/health/v1/readiness", timeout=10)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok"}


def raw_request(
    server: ServerProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, dict[str, Any]]:
    """Send ``path`` exactly as written; return (status, reason phrase, JSON body)."""
    netloc = urlsplit(server.base).netloc
    connection = http.client.HTTPConnection(netloc, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.reason, json.loads(response.read() or b"null")
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("method", "path", "status", "reason", "name"),
    [
        ("GET", "/entities/by-name/component/default/nope", 404, "Not Found", "NotFoundError"),
        ("GET", "/entities/by-uid/nope", 404, "Not Found", "NotFoundError"),
        ("GET", "/entities?limit=abc&filter=kind=component", 400, "Bad Request", "InputError"),
        (
            "GET",
            "/entities?filter=kind%3Dcomponent&order=sideways",
            400,
            "Bad Request",
            "InputError",
        ),
        ("GET", "/entities/by-query?cursor=%%%&limit=1", 400, "Bad Request", "InputError"),
        ("GET", "/no-such-route?x=1", 404, "Not Found", "NotFoundError"),
    ],
)
def test_error_envelope_and_reason_phrase(server, method, path, status, reason, name):
    code, phrase, body = raw_request(server, method, f"/api/catalog{path}")
    assert (code, phrase) == (status, reason)
    assert body["error"]["name"] == name
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    # The URL relative to the plugin's mount point, query string as sent.
    assert body["request"] == {"method": method, "url": path}
    assert body["response"] == {"statusCode": status}


def test_success_reason_phrase(server):
    code, phrase, _ = raw_request(server, "GET", "/api/catalog/entities?limit=1")
    assert (code, phrase) == (200, "OK")
    code, phrase, body = raw_request(
        server,
        "POST",
        "/api/catalog/entities/by-refs?filter=bad",
        b"{}",
        {"Content-Type": "application/json"},
    )
    assert (code, phrase) == (400, "Bad Request")
    assert body["request"] == {"method": "POST", "url": "/entities/by-refs?filter=bad"}
