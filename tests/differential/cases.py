"""The differential test's requests, how to run them, and how to normalise the answers.

The same raw HTTP requests go to the reference Backstage backend (recorded once into
``reference.json`` by ``record.py``) and to our server (``test_differential.py``),
both loaded with ``../shared/backstage/examples/all.yaml``. Requests that build on an
earlier answer (follow a cursor, a ``Link`` header, a uid) take it from that server's
own earlier answer.

Normalisation replaces what a server makes up by itself (uids, etags, cursors, the
examples folder as that server sees it, the generated Location name derived from it)
and puts in order what the API leaves unordered (plain entity listings, facet values,
ties of an ordered listing, relations).

Two documented, deliberate differences (README, "Deliberate differences") make our
catalog hold two entities the reference does not:

* ``api:default/petstore-webhook`` has a relative ``$text`` placeholder, which
  Backstage cannot resolve in a ``file`` location (the entity fails); we resolve it.
* ``location:default/example-ai-resources`` emits entities of a kind nothing knows
  (``AiResource``). Backstage fails the whole Location; we fail only those entities.

Our answers drop those two entities from entity lists; answers that aggregate over
entities (facets, ``totalItems``, pages) are scoped by their filters so that neither
entity is in scope, and ``test_deliberate_differences`` checks both explicitly.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

EXTRA_IN_OURS = ("api:default/petstore-webhook", "location:default/example-ai-resources")
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
NAME_FIELDS = "kind,metadata.namespace,metadata.name"

Results = dict[str, requests.Response]


@dataclass
class Case:
    name: str
    method: str
    # A path below /api/catalog, or a function of the earlier answers (and the examples dir).
    path: str | Callable[[Results, str], str]
    body: Any = None  # JSON body, or a function of (answers, examples dir)
    # How to compare the body: "exact", "set" (unordered entities), "ties:<field>"
    # (ordered by <field>; entities with equal values in any order).
    mode: str = "exact"
    headers: tuple[str, ...] = ()


def _link_target(results: Results, name: str) -> str:
    link = results[name].headers.get("link", "")
    match = re.match(r"^<([^>]*)>", link)
    if not match:
        raise AssertionError(f"{name}: no Link header to follow ({link!r})")
    return match.group(1)


def _cursor(results: Results, name: str, which: str = "nextCursor") -> str:
    cursor = results[name].json().get("pageInfo", {}).get(which)
    if not cursor:
        raise AssertionError(f"{name}: no {which} to follow")
    return str(cursor)


def _uid(results: Results, name: str) -> str:
    return str(results[name].json()["metadata"]["uid"])


CASES: list[Case] = [
    # -- GET /entities: listings, projections, filters --------------------------------
    Case("list.all", "GET", "/entities", mode="set"),
    Case("list.fields", "GET", f"/entities?fields={NAME_FIELDS},spec.type", mode="set"),
    Case(
        "list.fields.repeated",
        "GET",
        "/entities?fields=kind,metadata.name&fields=spec.owner,metadata.tags",
        mode="set",
    ),
    Case(
        "list.fields.subtree",
        "GET",
        "/entities?fields=metadata.annotations,kind,metadata.name",
        mode="set",
    ),
    Case(
        "filter.kind",
        "GET",
        f"/entities?filter=kind=component&fields={NAME_FIELDS},spec.type",
        mode="set",
    ),
    Case(
        "filter.oddCasing",
        "GET",
        f"/entities?filter=KIND=Component,Spec.Lifecycle=PRODUCTION&fields={NAME_FIELDS}",
        mode="set",
    ),
    Case(
        "filter.repeatedOr",
        "GET",
        f"/entities?filter=kind=api&filter=kind=system,spec.type=feature-set&fields={NAME_FIELDS}",
        mode="set",
    ),
    Case(
        "filter.sameKeyOr",
        "GET",
        f"/entities?filter=kind=component,spec.type=website,spec.type=library&fields={NAME_FIELDS}",
        mode="set",
    ),
    Case(
        "filter.arrayItem",
        "GET",
        f"/entities?filter=metadata.tags=java&fields={NAME_FIELDS},metadata.tags",
        mode="set",
    ),
    Case(
        "filter.arrayItemCase",
        "GET",
        f"/entities?filter=Metadata.Tags=GO&fields={NAME_FIELDS}",
        mode="set",
    ),
    Case(
        "filter.exists",
        "GET",
        f"/entities?filter=metadata.tags&fields={NAME_FIELDS}",
        mode="set",
    ),
    Case(
        "filter.existsWithValue",
        "GET",
        f"/entities?filter=kind=component,spec.subcomponentOf&fields={NAME_FIELDS}",
        mode="set",
    ),
    Case(
        "filter.annotationExists",
        "GET",
        f"/entities?filter=metadata.annotations.backstage.io/source-template&fields={NAME_FIELDS}",
        mode="set",
    ),
    Case(
        "filter.annotationValue",
        "GET",
        "/entities?filter=metadata.annotations.backstage.io/source-template="
        f"template:default/springboot-template&fields={NAME_FIELDS}",
        mode="set",
    ),
    Case(
        "filter.label",
        "GET",
        f"/entities?filter=metadata.labels.category=MUSIC&fields={NAME_FIELDS},metadata.labels",
        mode="set",
    ),
    Case(
        "filter.relations.ownedBy",
        "GET",
        f"/entities?filter=relations.ownedBy=group:default/team-a&fields={NAME_FIELDS}",
        mode="set",
    ),
    Case(
        "filter.relations.lowercaseType",
        "GET",
        f"/entities?filter=relations.partof=system:default/podcast&fields={NAME_FIELDS}",
        mode="set",
    ),
    Case(
        "filter.relations.dependsOn",
        "GET",
        f"/entities?filter=relations.dependsOn=resource:default/artists-db&fields={NAME_FIELDS}",
        mode="set",
    ),
    Case(
        "filter.relations.user",
        "GET",
        f"/entities?filter=relations.ownedby=user:default/guest&fields={NAME_FIELDS},spec.owner",
        mode="set",
    ),
    Case(
        "filter.specValueAsWritten",
        "GET",
        f"/entities?filter=spec.owner=user:guest&fields={NAME_FIELDS}",
        mode="set",
    ),
    Case(
        "filter.noMatch",
        "GET",
        "/entities?filter=kind=component,metadata.name=does-not-exist",
        mode="set",
    ),
    Case("filter.unknownKind", "GET", "/entities?filter=kind=widget", mode="set"),
    # -- GET /entities: ordering and paging -------------------------------------------
    Case(
        "order.asc",
        "GET",
        "/entities?filter=kind=component&order=asc:metadata.name&fields=metadata.name",
    ),
    Case(
        "order.desc.oddCase",
        "GET",
        "/entities?filter=kind=component&order=desc:Metadata.Name&fields=metadata.name",
    ),
    Case(
        "order.missingField",
        "GET",
        f"/entities?filter=kind=component&order=asc:spec.system&fields={NAME_FIELDS},spec.system",
        mode="ties:spec.system",
    ),
    Case(
        "paged.multiOrder",
        "GET",
        "/entities?filter=kind=component&order=desc:spec.lifecycle&order=asc:metadata.name"
        "&limit=50&fields=metadata.name,spec.lifecycle",
    ),
    Case(
        "paged.missingLast",
        "GET",
        "/entities?filter=kind=component&order=asc:spec.system&limit=100"
        "&fields=metadata.name,spec.system",
        mode="ties:spec.system",
    ),
    Case(
        "paged.link.1",
        "GET",
        "/entities?filter=kind=component&order=asc:metadata.name&fields=metadata.name&limit=4",
        headers=("link",),
    ),
    Case(
        "paged.link.2",
        "GET",
        lambda r, _: _link_target(r, "paged.link.1"),
        headers=("link",),
    ),
    Case(
        "paged.link.3",
        "GET",
        lambda r, _: _link_target(r, "paged.link.2"),
        headers=("link",),
    ),
    Case(
        "paged.link.4",
        "GET",
        lambda r, _: _link_target(r, "paged.link.3"),
        headers=("link",),
    ),
    Case(
        "paged.offset",
        "GET",
        "/entities?filter=kind=component&order=asc:metadata.name&offset=10&limit=3"
        "&fields=metadata.name",
        headers=("link",),
    ),
    Case(
        "paged.offsetPastEnd",
        "GET",
        "/entities?filter=kind=domain&order=asc:metadata.name&offset=50&limit=3",
        headers=("link",),
    ),
    # -- /entities/by-query -----------------------------------------------------------
    Case(
        "query.page.1",
        "GET",
        "/entities/by-query?filter=kind=component&orderField=metadata.name,asc&limit=5"
        "&fields=metadata.name",
    ),
    Case(
        "query.page.2",
        "GET",
        lambda r, _: (
            "/entities/by-query?limit=5&fields=metadata.name&cursor=" + _cursor(r, "query.page.1")
        ),
    ),
    Case(
        "query.page.3",
        "GET",
        lambda r, _: (
            "/entities/by-query?limit=5&fields=metadata.name&cursor=" + _cursor(r, "query.page.2")
        ),
    ),
    Case(
        "query.page.back",
        "GET",
        lambda r, _: (
            "/entities/by-query?limit=5&fields=metadata.name&cursor="
            + _cursor(r, "query.page.3", "prevCursor")
        ),
    ),
    Case(
        "query.page.backAgain",
        "GET",
        lambda r, _: (
            "/entities/by-query?limit=5&fields=metadata.name&cursor="
            + _cursor(r, "query.page.back", "prevCursor")
        ),
    ),
    Case(
        "query.desc.ties",
        "GET",
        "/entities/by-query?filter=kind=system&filter=kind=domain&orderField=spec.owner,desc"
        f"&fields={NAME_FIELDS},spec.owner",
        mode="ties:spec.owner",
    ),
    Case(
        "query.fullText",
        "GET",
        "/entities/by-query?fullTextFilterTerm=PLAY&fullTextFilterFields=metadata.name"
        f"&orderField=metadata.name,asc&fields={NAME_FIELDS}",
        mode="ties:metadata.name",
    ),
    Case(
        "query.totalItemsExclude",
        "GET",
        "/entities/by-query?filter=kind=component&totalItems=exclude&limit=3"
        "&orderField=metadata.name,asc&fields=metadata.name",
    ),
    Case(
        "query.predicate.not",
        "POST",
        "/entities/by-query",
        body={
            "query": {"$all": [{"kind": "component"}, {"$not": {"spec.lifecycle": "production"}}]},
            "orderBy": [{"field": "metadata.name", "order": "asc"}],
            "fields": ["metadata.name", "spec.lifecycle"],
        },
    ),
    Case(
        "query.predicate.in",
        "POST",
        "/entities/by-query",
        body={
            "query": {"metadata.tags": {"$in": ["go", "JAVA"]}},
            "orderBy": [{"field": "metadata.name", "order": "desc"}],
            "fields": ["kind", "metadata.name", "metadata.tags"],
        },
    ),
    Case(
        "query.predicate.hasPrefix",
        "POST",
        "/entities/by-query",
        body={
            "query": {"metadata.name": {"$hasPrefix": "WAYBACK"}, "kind": "component"},
            "orderBy": [{"field": "metadata.name", "order": "asc"}],
            "fields": ["metadata.name"],
        },
    ),
    Case(
        "query.predicate.exists",
        "POST",
        "/entities/by-query",
        body={
            "query": {"$any": [{"kind": "domain"}, {"spec.subcomponentOf": {"$exists": True}}]},
            "orderBy": [{"field": "metadata.name", "order": "asc"}],
            "fields": ["kind", "metadata.name"],
        },
    ),
    Case(
        "query.predicate.page.1",
        "POST",
        "/entities/by-query",
        body={
            "query": {"kind": "component"},
            "orderBy": [{"field": "metadata.name", "order": "desc"}],
            "limit": 6,
            "fields": ["metadata.name"],
        },
    ),
    Case(
        "query.predicate.page.2",
        "POST",
        "/entities/by-query",
        body=lambda r, _: {
            "cursor": _cursor(r, "query.predicate.page.1"),
            "limit": 6,
            "fields": ["metadata.name"],
        },
    ),
    Case("query.badQuery", "POST", "/entities/by-query", body={"query": "x"}),
    Case("query.negativeLimit", "GET", "/entities/by-query?limit=-1"),
    Case("query.badCursor", "GET", "/entities/by-query?cursor=notacursor"),
    # -- single entities and ancestry ---------------------------------------------------
    Case("byName", "GET", "/entities/by-name/component/default/artist-lookup"),
    Case("byName.oddCasing", "GET", "/entities/by-name/Component/Default/ARTIST-LOOKUP"),
    Case("byName.notFound", "GET", "/entities/by-name/component/default/nope"),
    Case("byUid", "GET", lambda r, _: f"/entities/by-uid/{_uid(r, 'byName')}"),
    Case("byUid.notFound", "GET", f"/entities/by-uid/{ZERO_UUID}"),
    Case(
        "ancestry.component",
        "GET",
        "/entities/by-name/component/default/wayback-archive-ingestion/ancestry",
    ),
    Case("ancestry.location", "GET", "/entities/by-name/location/default/example-all/ancestry"),
    Case("ancestry.notFound", "GET", "/entities/by-name/component/default/nope/ancestry"),
    # -- POST /entities/by-refs -----------------------------------------------------------
    Case(
        "byRefs.missing",
        "POST",
        "/entities/by-refs",
        body={
            "entityRefs": [
                "component:default/petstore",
                "api:default/nope",
                "system:default/podcast",
                "component:default/petstore",
            ]
        },
    ),
    Case(
        "byRefs.fields",
        "POST",
        "/entities/by-refs",
        body={
            "entityRefs": ["api:default/petstore", "domain:default/audio", "group:default/team-a"],
            "fields": ["kind", "metadata.name", "relations"],
        },
    ),
    Case(
        "byRefs.filter",
        "POST",
        "/entities/by-refs?filter=kind=component",
        body={"entityRefs": ["component:default/searcher", "api:default/petstore"]},
    ),
    Case(
        "byRefs.query",
        "POST",
        "/entities/by-refs",
        body={
            "entityRefs": ["component:default/searcher", "component:default/petstore"],
            "query": {"spec.lifecycle": "production"},
            "fields": ["metadata.name"],
        },
    ),
    Case(
        "byRefs.refForms",
        "POST",
        "/entities/by-refs",
        body={"entityRefs": ["Component:default/searcher", "searcher", "component:searcher"]},
    ),
    Case("byRefs.badBody", "POST", "/entities/by-refs", body={"refs": ["component:default/x"]}),
    # -- facets ---------------------------------------------------------------------------
    Case("facets.tags", "GET", "/entity-facets?facet=metadata.tags&filter=kind=component"),
    Case(
        "facets.annotations",
        "GET",
        "/entity-facets?facet=metadata.annotations.backstage.io/source-template"
        "&facet=metadata.annotations.backstage.io/linguist",
    ),
    Case(
        "facets.kindScoped",
        "GET",
        "/entity-facets?facet=kind&filter=kind=component&filter=kind=system&filter=kind=domain",
    ),
    Case(
        "facets.multi",
        "GET",
        "/entity-facets?facet=spec.lifecycle&facet=spec.type&filter=kind=component",
    ),
    Case("facets.relations", "GET", "/entity-facets?facet=relations.ownedBy&filter=kind=system"),
    Case("facets.labels", "GET", "/entity-facets?facet=metadata.labels.category"),
    Case("facets.unknownField", "GET", "/entity-facets?facet=spec.doesNotExist"),
    Case(
        "facets.predicate",
        "POST",
        "/entity-facets",
        body={"facets": ["spec.type", "kind"], "query": {"kind": {"$in": ["resource", "system"]}}},
    ),
    Case("facets.missing", "GET", "/entity-facets"),
    # -- errors of the read API -----------------------------------------------------------
    Case("error.limitZero", "GET", "/entities?limit=0"),
    Case("error.badOrder", "GET", "/entities?order=metadata.name"),
    Case("error.emptyFilter", "GET", "/entities?filter="),
    Case("error.badAfter", "GET", "/entities?after=notacursor"),
    Case("error.limitNotInteger", "GET", "/entities?limit=abc"),
    # -- locations and the write-side helpers ---------------------------------------------
    Case("locations.list", "GET", "/locations"),
    Case("locations.query", "POST", "/locations/by-query", body={"limit": 5}),
    Case(
        "locations.byEntity.configEntity",
        "GET",
        "/locations/by-entity/component/default/artist-lookup",
    ),
    Case(
        "locations.dryRun",
        "POST",
        "/locations?dryRun=true",
        body=lambda _, examples: {"type": "file", "target": f"{examples}/all-systems.yaml"},
        mode="dryRun",
    ),
    Case(
        "locations.dryRun.missingFile",
        "POST",
        "/locations?dryRun=true",
        body=lambda _, examples: {"type": "file", "target": f"{examples}/nope.yaml"},
    ),
    Case(
        "locations.unknownKey",
        "POST",
        "/locations?dryRun=true",
        body=lambda _, examples: {"type": "file", "target": f"{examples}/all.yaml", "x": 1},
    ),
    Case("locations.notFound", "GET", f"/locations/{ZERO_UUID}"),
    Case(
        "validate.valid",
        "POST",
        "/validate-entity",
        body={
            "location": "url:https://example.com/catalog-info.yaml",
            "entity": {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": "checked"},
                "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"},
            },
        },
    ),
    Case(
        "validate.invalid",
        "POST",
        "/validate-entity",
        body={
            "location": "url:https://example.com/catalog-info.yaml",
            "entity": {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": "checked"},
                "spec": {"lifecycle": "production", "owner": "team-a"},
            },
        },
    ),
    Case("refresh.unknown", "POST", "/refresh", body={"entityRef": "component:default/nope"}),
]


# -- running ----------------------------------------------------------------------------


def run_cases(base_url: str, examples: str) -> tuple[dict[str, Any], Results]:
    """Send every case to ``base_url``; return the normalised answers and the raw ones."""
    session = requests.Session()
    raw: Results = {}
    answers: dict[str, Any] = {}
    for case in CASES:
        path = case.path(raw, examples) if callable(case.path) else case.path
        body = case.body(raw, examples) if callable(case.body) else case.body
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        response = session.request(case.method, base_url + path, data=data, headers=headers)
        raw[case.name] = response
        answers[case.name] = normalise_answer(case, path, body, response, examples)
    # As stored in reference.json: tuples become lists.
    return json.loads(json.dumps(answers)), raw


# -- normalising --------------------------------------------------------------------------


# The example files the cases register as locations (the server's own and dry runs).
REGISTERED_FILES = ("all.yaml", "all-systems.yaml")


def generated_name(path: str) -> str:
    return "generated-" + hashlib.sha1(f"file:{path}".encode()).hexdigest()


def _strings(value: Any, replace: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return replace(value)
    if isinstance(value, list):
        return [_strings(item, replace) for item in value]
    if isinstance(value, dict):
        return {replace(k): _strings(v, replace) for k, v in value.items()}
    return value


def _is_entity(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("metadata"), dict) and "kind" in value


def _ref(entity: dict[str, Any]) -> str:
    metadata = entity.get("metadata") or {}
    kind = str(entity.get("kind", "")).lower()
    namespace = str(metadata.get("namespace", "default")).lower()
    return f"{kind}:{namespace}/{str(metadata.get('name', '')).lower()}"


def _mask(value: Any) -> Any:
    """uids, etags and cursors masked; relations sorted; our deliberate extras dropped."""
    if isinstance(value, list):
        return [
            _mask(item)
            for item in value
            if not (_is_entity(item) and _ref(item) in EXTRA_IN_OURS)
            and not (
                isinstance(item, dict)
                and _is_entity(item.get("entity"))
                and _ref(item["entity"]) in EXTRA_IN_OURS
            )
        ]
    if not isinstance(value, dict):
        return value
    out = {key: _mask(item) for key, item in value.items()}
    metadata = out.get("metadata")
    if isinstance(metadata, dict):
        for key in ("uid", "etag"):
            if key in metadata:
                metadata[key] = f"<{key}>"
    if isinstance(out.get("relations"), list):
        out["relations"] = sorted(
            out["relations"], key=lambda r: (str(r.get("type")), str(r.get("targetRef")))
        )
    page_info = out.get("pageInfo")
    if isinstance(page_info, dict):
        out["pageInfo"] = {key: "<cursor>" for key in page_info}
    return out


def _get(entity: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(entity, dict):
            return None
        entity = entity.get(part)
    return entity


def _sort_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _order(entities: list[Any], mode: str) -> list[Any]:
    if mode in ("set", "dryRun"):
        return sorted(entities, key=lambda e: (_ref(e) if _is_entity(e) else "", _sort_key(e)))
    if mode.startswith("ties:"):
        dotted = mode[len("ties:") :]
        out: list[Any] = []
        run: list[Any] = []
        for entity in entities:
            if run and _sort_key(_get(run[-1], dotted)) != _sort_key(_get(entity, dotted)):
                out.extend(sorted(run, key=_sort_key))
                run = []
            run.append(entity)
        return out + sorted(run, key=_sort_key)
    return entities


def _link(header: str | None) -> Any:
    if not header:
        return None
    match = re.match(r'^<([^>]*)>;\s*rel="next"$', header)
    if not match:
        return {"unparsed": header}
    parts = urlsplit(match.group(1))
    params = sorted(
        (key, "<cursor>" if key == "after" else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return {"path": parts.path, "params": params}


def normalise_answer(
    case: Case, path: str, body: Any, response: requests.Response, examples: str
) -> dict[str, Any]:
    def replace(text: str) -> str:
        # Generated Location names hash the absolute path, which depends on where
        # ../shared sits: mask them so the recording holds on any checkout.
        for registered in REGISTERED_FILES:
            text = text.replace(
                generated_name(f"{examples}/{registered}"), f"generated-<{registered}>"
            )
        return text.replace(examples, "<EXAMPLES>")

    request_line = f"{case.method} {replace(path)}"
    if "cursor=" in request_line:
        request_line = re.sub(r"cursor=[^&]*", "cursor=<cursor>", request_line)
    if "after=" in request_line:
        request_line = re.sub(r"after=[^&]*", "after=<cursor>", request_line)
    request_line = re.sub(r"/by-uid/[0-9a-f-]{36}", "/by-uid/<uid>", request_line)
    answer: dict[str, Any] = {"request": request_line, "status": response.status_code}
    if body is not None:
        masked_body = _strings(body, replace)
        if isinstance(masked_body, dict) and "cursor" in masked_body:
            masked_body["cursor"] = "<cursor>"
        answer["requestBody"] = masked_body
    text = response.text
    if text:
        answer["contentType"] = (response.headers.get("content-type") or "").split(";")[0]
        try:
            data: Any = json.loads(text)
        except ValueError:
            data = text
        data = _strings(data, replace)
        if case.name == "query.badCursor" and isinstance(data, dict):
            message = (data.get("error") or {}).get("message", "")
            if message.startswith("Malformed cursor: "):
                data["error"]["message"] = "Malformed cursor: <detail>"
            request_info = data.get("request") or {}
            if "url" in request_info:
                request_info["url"] = re.sub(
                    r"cursor=[^&]*", "cursor=<cursor>", request_info["url"]
                )
        if isinstance(data, dict) and isinstance(data.get("request"), dict):
            url = data["request"].get("url", "")
            data["request"]["url"] = re.sub(r"/by-uid/[0-9a-f-]{36}", "/by-uid/<uid>", url)
        data = _mask(data)
        if isinstance(data, list):
            data = _order(data, case.mode)
        elif (
            isinstance(data, dict) and isinstance(data.get("items"), list) and case.mode != "exact"
        ):
            data["items"] = _order(data["items"], case.mode)
        elif case.mode == "dryRun" and isinstance(data, dict):
            data["entities"] = _order(data.get("entities") or [], "set")
        if isinstance(data, dict) and isinstance(data.get("facets"), dict):
            data["facets"] = {
                key: sorted(values, key=lambda v: (str(v.get("value")), v.get("count")))
                for key, values in data["facets"].items()
            }
        answer["body"] = data
    for header in case.headers:
        value = response.headers.get(header)
        answer[header] = _link(value) if header == "link" else value
    return answer


def load_reference(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]
