"""A deterministic synthetic organisation, written as catalog YAML files.

The benchmark needs catalogs of any size that look like real ones (a group
hierarchy with members, systems in domains, components with owners, APIs and
dependencies, and a few resources that nearly everything depends on, because
those produce the huge final entities that make stitching expensive), and it
needs to know the exact number of entities and relations a correct catalog
serves for them, so that "ingested" can be checked rather than assumed.

Everything is derived from a seeded ``random.Random``: the same size and seed
give byte-identical files, so two servers (ours and Backstage) can be fed the
same catalog and sent the same requests.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SEED = 7007
#: Entities per YAML file in the multi-file layout (Backstage users split by team/kind).
ENTITIES_PER_FILE = 500

_Dumper: type = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# Share of each kind among the N entities; resources take the remainder.
_MIX = {
    "Group": 0.03,
    "User": 0.17,
    "Domain": 0.005,
    "System": 0.025,
    "Component": 0.45,
    "API": 0.15,
}
# The resources nearly everyone depends on, and the share of components that do.
SHARED_RESOURCES = (
    ("shared-postgres", "database", 0.40),
    ("shared-kafka", "kafka-cluster", 0.25),
    ("shared-redis", "cache", 0.15),
)

_WORDS_TEXT = (
    "payments ledger checkout billing invoice refund fraud risk identity auth search "
    "catalog inventory pricing shipping orders cart loyalty rewards notify email sms push "
    "report analytics metrics audit compliance kyc onboarding merchant partner gateway "
    "routing settlement treasury forex wallet card issuing acquiring dispute chargeback "
    "profile session token config feature flag scheduler batch stream events lake "
    "warehouse export"
)
_WORDS = tuple(_WORDS_TEXT.split())
_SUFFIXES = ("service", "api", "worker", "job", "proxy", "store", "core", "gateway")
_TAGS_TEXT = (
    "java kotlin go python typescript nodejs rust scala react grpc rest graphql kafka "
    "postgres redis aws gcp terraform docker spark airflow"
)
_TAGS = tuple(_TAGS_TEXT.split())
_LIFECYCLES = (("production", 0.7), ("experimental", 0.2), ("deprecated", 0.1))
_COMPONENT_TYPES = (("service", 0.6), ("website", 0.2), ("library", 0.2))
_API_TYPES = (("openapi", 0.6), ("grpc", 0.25), ("asyncapi", 0.15))
_RESOURCE_TYPES = ("database", "s3-bucket", "kafka-topic", "cache", "queue")


@dataclass
class SyntheticCatalog:
    """The files of one generated catalog and what a correct server must serve for it."""

    root: Path
    entity_count: int  # the N generated entities (excluding Location entities)
    expected_entities: int  # what the catalog serves, Location entities included
    expected_relations: int  # sum over served entities of len(relations)
    expected_refs: set[str]  # lowercase refs of every served entity
    refs_by_kind: dict[str, list[str]]  # "component" -> ["component:default/x", ...]
    owner_groups: list[str]  # group refs that own at least one entity
    relations_of: dict[str, int]  # served relation count per entity ref
    words: tuple[str, ...] = field(default=tuple(_WORDS))
    files: int = 0
    bytes: int = 0
    graph: GraphTargets | None = None


@dataclass
class GraphTargets:
    """What the graph queries are asked about, and what a correct graph answers.

    "Depends on" is the graph API's default view (``dependsOn``, ``consumesApi``,
    ``providesApi``, ``partOf``): a component depends on what it ``dependsOn`` and the
    APIs it consumes, an API on the components providing it, a system on its parts
    and a domain on its systems.
    """

    #: The resource with the most direct dependents (ties: the first ref); with the
    #: default mix always ``resource:default/shared-postgres`` beyond a few hundred
    #: entities, which 40% of the components depend on.
    most_depended_on: str
    #: How many entities depend on it, directly or not (``totalItems`` of dependents).
    transitive_dependents: int
    direct_dependents: int
    #: Components depending on it (directly or not): sources of the path queries.
    dependent_components: list[str]
    #: Components that do not depend on it directly: the update-visibility changes.
    independent_components: list[str]


def _pick(rng: random.Random, weighted: Iterable[tuple[str, float]]) -> str:
    items = list(weighted)
    return rng.choices([v for v, _ in items], weights=[w for _, w in items])[0]


def _counts(n: int) -> dict[str, int]:
    counts = {kind: max(1, int(n * share)) for kind, share in _MIX.items()}
    counts["Group"] = max(counts["Group"], 3)  # an org, a department, a team at least
    counts["Resource"] = max(len(SHARED_RESOURCES), n - sum(counts.values()))
    overshoot = sum(counts.values()) - n
    if overshoot > 0:  # tiny catalogs: take the surplus from the biggest kinds
        for kind in ("Component", "User", "API", "Resource"):
            floor = len(SHARED_RESOURCES) if kind == "Resource" else 1
            take = min(overshoot, counts[kind] - floor)
            counts[kind] -= take
            overshoot -= take
    return counts


def _entity(kind: str, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, **{k: v for k, v in metadata.items() if v}},
        "spec": spec,
    }


def generate_entities(n: int, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """The N entities of the organisation, in file order (groups, users, domains, ...)."""
    rng = random.Random(f"{seed}:{n}")
    counts = _counts(n)
    entities: list[dict[str, Any]] = []

    # Groups: one organisation, ~sqrt departments, the rest teams under departments.
    n_groups = counts["Group"]
    n_departments = max(1, min(n_groups - 2, int(math.sqrt(n_groups))))
    departments = [f"dept-{rng.choice(_WORDS)}-{i:04d}" for i in range(n_departments)]
    teams = [f"team-{rng.choice(_WORDS)}-{i:05d}" for i in range(n_groups - 1 - n_departments)]
    team_parent = {team: rng.choice(departments) for team in teams}
    entities.append(
        _entity(
            "Group",
            "acme",
            {
                "type": "organization",
                "profile": {"displayName": "ACME Corp"},
                "children": departments,
            },
            description="The whole company",
        )
    )
    for dept in departments:
        children = [t for t in teams if team_parent[t] == dept]
        entities.append(
            _entity(
                "Group",
                dept,
                {"type": "department", "parent": "acme", "children": children},
                description=f"The {dept.split('-')[1]} department",
            )
        )
    for team in teams:
        spec: dict[str, Any] = {"type": "team", "parent": team_parent[team], "children": []}
        entities.append(_entity("Group", team, spec, title=team.replace("-", " ").title()))

    for i in range(counts["User"]):
        first, last = rng.choice(_WORDS), rng.choice(_WORDS)
        name = f"{first}.{last}{i:05d}"
        member_of = sorted(set(rng.sample(teams, k=min(len(teams), rng.choice((1, 1, 1, 2))))))
        spec = {
            "profile": {
                "displayName": f"{first.title()} {last.title()}",
                "email": f"{name}@acme.example",
            },
            "memberOf": member_of,
        }
        entities.append(_entity("User", name, spec))

    domains = [f"{rng.choice(_WORDS)}-domain-{i:03d}" for i in range(counts["Domain"])]
    for domain in domains:
        spec = {"owner": f"group:default/{rng.choice(departments)}"}
        entities.append(_entity("Domain", domain, spec, description=f"Everything {domain}"))

    systems = [f"{rng.choice(_WORDS)}-system-{i:04d}" for i in range(counts["System"])]
    system_owner = {system: rng.choice(teams) for system in systems}
    for system in systems:
        spec = {"owner": system_owner[system], "domain": rng.choice(domains)}
        entities.append(_entity("System", system, spec, description=f"The {system} system"))

    # Names first: components reference APIs, libraries and resources.
    apis = [f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}-api-{i:05d}" for i in range(counts["API"])]
    api_system = {api: rng.choice(systems) for api in apis}
    shared = [name for name, _, _ in SHARED_RESOURCES]
    resources = shared + [
        f"{rng.choice(_WORDS)}-{rng.choice(_RESOURCE_TYPES)}-{i:05d}"
        for i in range(counts["Resource"] - len(shared))
    ]
    components = []
    component_type = {}
    for i in range(counts["Component"]):
        ctype = _pick(rng, _COMPONENT_TYPES)
        suffix = (
            "lib" if ctype == "library" else "web" if ctype == "website" else rng.choice(_SUFFIXES)
        )
        name = f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}-{suffix}-{i:05d}"
        components.append(name)
        component_type[name] = ctype
    libraries = [c for c in components if component_type[c] == "library"] or components[:1]
    apis_by_system: dict[str, list[str]] = {}
    for api in apis:
        apis_by_system.setdefault(api_system[api], []).append(api)

    for name in components:
        ctype = component_type[name]
        system = rng.choice(systems)
        spec = {
            "type": ctype,
            "lifecycle": _pick(rng, _LIFECYCLES),
            "owner": system_owner[system] if rng.random() < 0.8 else rng.choice(teams),
            "system": system,
        }
        if ctype == "service":
            own = apis_by_system.get(system, [])
            provided = rng.sample(own, k=min(len(own), rng.choice((0, 1, 1, 2))))
            if provided:
                spec["providesApis"] = provided
        if ctype != "library":
            consumed = rng.sample(apis, k=min(len(apis), rng.choice((0, 1, 2, 3))))
            if consumed:
                spec["consumesApis"] = consumed
        depends = [f"resource:{r}" for r, _, share in SHARED_RESOURCES if rng.random() < share]
        if ctype == "service":
            depends += [f"resource:{r}" for r in rng.sample(resources, k=rng.choice((0, 1, 2)))]
        depends += [
            f"component:{lib}"
            for lib in rng.sample(libraries, k=min(len(libraries), rng.choice((0, 1, 2))))
            if lib != name
        ]
        if depends:
            spec["dependsOn"] = list(dict.fromkeys(depends))
        annotations = {"github.com/project-slug": f"acme/{name}"}
        if ctype == "service" and rng.random() < 0.5:
            annotations["pagerduty.com/service-id"] = f"P{rng.randrange(16**6):06X}"
        tags = sorted(set(rng.sample(_TAGS, k=rng.choice((1, 2, 3)))))
        metadata: dict[str, Any] = {
            "title": name.rsplit("-", 1)[0].replace("-", " ").title(),
            "description": f"The {name.split('-')[0]} {ctype} of {system}",
            "tags": tags,
            "annotations": annotations,
        }
        if rng.random() < 0.3:
            metadata["labels"] = {"tier": str(rng.choice((1, 2, 3)))}
        if ctype != "library" and rng.random() < 0.3:
            metadata["links"] = [
                {
                    "url": f"https://grafana.acme.example/d/{name}",
                    "title": "Dashboard",
                    "icon": "dashboard",
                }
            ]
        entities.append(_entity("Component", name, spec, **metadata))

    for api in apis:
        atype = _pick(rng, _API_TYPES)
        spec = {
            "type": atype,
            "lifecycle": _pick(rng, _LIFECYCLES),
            "owner": system_owner[api_system[api]],
            "system": api_system[api],
            "definition": _definition(atype, api),
        }
        tags = sorted(set(rng.sample(_TAGS, k=rng.choice((1, 2)))))
        entities.append(_entity("API", api, spec, description=f"The {api} interface", tags=tags))

    for index, resource in enumerate(resources):
        rtype = SHARED_RESOURCES[index][1] if index < len(shared) else resource.split("-")[1]
        spec = {"type": rtype, "owner": rng.choice(teams), "system": rng.choice(systems)}
        if index >= len(shared) and rng.random() < 0.2:
            spec["dependsOn"] = [f"resource:{rng.choice(shared)}"]
        entities.append(_entity("Resource", resource, spec, description=f"{rtype} {resource}"))
    return entities


def _definition(api_type: str, name: str) -> str:
    if api_type == "openapi":
        return (
            "openapi: 3.0.0\n"
            f"info:\n  title: {name}\n  version: 1.0.0\n"
            "paths:\n  /items:\n    get:\n      responses:\n"
            "        '200':\n          description: ok\n"
        )
    if api_type == "grpc":
        return (
            'syntax = "proto3";\n'
            f"service {name.replace('-', '_')} {{\n  rpc Get (Req) returns (Res);\n}}\n"
        )
    return (
        "asyncapi: 2.6.0\n"
        f"info:\n  title: {name}\n  version: 1.0.0\n"
        f"channels:\n  {name}.events:\n    subscribe:\n      message:\n        name: event\n"
    )


# -- expected results ---------------------------------------------------------------

_RELATION_FIELDS: dict[str, tuple[tuple[str, str | None, str, str], ...]] = {
    # Only the fields the generator writes; independent of app.model on purpose.
    "Group": (
        ("parent", "group", "childOf", "parentOf"),
        ("children", "group", "parentOf", "childOf"),
    ),
    "User": (("memberOf", "group", "memberOf", "hasMember"),),
    "Domain": (("owner", "group", "ownedBy", "ownerOf"),),
    "System": (
        ("owner", "group", "ownedBy", "ownerOf"),
        ("domain", "domain", "partOf", "hasPart"),
    ),
    "Component": (
        ("owner", "group", "ownedBy", "ownerOf"),
        ("providesApis", "api", "providesApi", "apiProvidedBy"),
        ("consumesApis", "api", "consumesApi", "apiConsumedBy"),
        ("dependsOn", None, "dependsOn", "dependencyOf"),
        ("system", "system", "partOf", "hasPart"),
    ),
    "API": (("owner", "group", "ownedBy", "ownerOf"), ("system", "system", "partOf", "hasPart")),
    "Resource": (
        ("owner", "group", "ownedBy", "ownerOf"),
        ("dependsOn", None, "dependsOn", "dependencyOf"),
        ("system", "system", "partOf", "hasPart"),
    ),
}


def _ref(target: str, default_kind: str | None) -> str:
    kind, sep, rest = target.partition(":")
    if not sep:
        kind, rest = default_kind or "", target
    if "/" not in rest:
        rest = f"default/{rest}"
    return f"{kind.lower()}:{rest.lower()}"


def expected_relations(entities: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Every distinct (source, type, target) served, both directions, all targets existing."""
    triples: set[tuple[str, str, str]] = set()
    for entity in entities:
        self_ref = _ref(f"{entity['kind']}:{entity['metadata']['name']}", None)
        spec = entity["spec"]
        for field_name, default_kind, forward, reverse in _RELATION_FIELDS[entity["kind"]]:
            value = spec.get(field_name)
            for target in value if isinstance(value, list) else [value] if value else []:
                target_ref = _ref(target, default_kind)
                triples.add((self_ref, forward, target_ref))
                triples.add((target_ref, reverse, self_ref))
    return triples


# -- files ------------------------------------------------------------------------


def dependency_edges(entities: list[dict[str, Any]]) -> dict[str, set[str]]:
    """ref -> the refs it depends on, in the graph API's default view (see GraphTargets)."""
    depends: dict[str, set[str]] = {}
    for entity in entities:
        kind = entity["kind"]
        ref = _ref(f"{kind}:{entity['metadata']['name']}", None)
        spec = entity["spec"]
        own = depends.setdefault(ref, set())
        for target in spec.get("dependsOn", []):
            own.add(_ref(target, None))
        for target in spec.get("consumesApis", []):
            own.add(_ref(target, "api"))
        for target in spec.get("providesApis", []):  # an API depends on its providers
            depends.setdefault(_ref(target, "api"), set()).add(ref)
        if kind in ("Component", "API", "Resource") and spec.get("system"):
            depends.setdefault(_ref(spec["system"], "system"), set()).add(ref)
        if kind == "System" and spec.get("domain"):
            depends.setdefault(_ref(spec["domain"], "domain"), set()).add(ref)
        own.discard(ref)
    return depends


def graph_targets(entities: list[dict[str, Any]]) -> GraphTargets:
    """The most depended-on resource, its dependents, and the components around it."""
    depends = dependency_edges(entities)
    dependents: dict[str, set[str]] = {}
    for source, targets in depends.items():
        for target in targets:
            dependents.setdefault(target, set()).add(source)
    refs: dict[str, list[str]] = {}
    for entity in entities:
        kind = entity["kind"]
        refs.setdefault(kind, []).append(_ref(f"{kind}:{entity['metadata']['name']}", None))
    resources = sorted(refs.get("Resource", []))
    hub = min(resources, key=lambda ref: (-len(dependents.get(ref, ())), ref))
    seen = {hub}
    frontier = [hub]
    while frontier:
        following = []
        for node in frontier:
            for other in dependents.get(node, ()):
                if other not in seen:
                    seen.add(other)
                    following.append(other)
        frontier = following
    seen.discard(hub)
    direct = dependents.get(hub, set())
    components = sorted(refs.get("Component", []))
    return GraphTargets(
        most_depended_on=hub,
        transitive_dependents=len(seen),
        direct_dependents=len(direct),
        dependent_components=[ref for ref in components if ref in seen],
        independent_components=[ref for ref in components if ref not in direct],
    )


def _dump(documents: list[dict[str, Any]]) -> str:
    return yaml.dump_all(
        documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000
    )


def write_catalog(
    directory: Path,
    n: int,
    *,
    seed: int = DEFAULT_SEED,
    single_file: bool = False,
    per_file: int = ENTITIES_PER_FILE,
    progress: Callable[[int, int], None] | None = None,
) -> SyntheticCatalog:
    """Write the catalog under ``directory`` (``all.yaml`` is the root) and describe it.

    Multi-file: ``all.yaml`` is a ``kind: Location`` whose relative targets are files of
    ``per_file`` entities of one kind each. Single-file: ``all.yaml`` holds every entity.
    ``progress(done, total)`` is called as entities are written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    entities = generate_entities(n, seed)
    refs_by_kind: dict[str, list[str]] = {}
    for entity in entities:
        ref = _ref(f"{entity['kind']}:{entity['metadata']['name']}", None)
        refs_by_kind.setdefault(entity["kind"].lower(), []).append(ref)

    total_bytes = 0
    locations = 1  # the generated Location of the configured all.yaml
    if single_file:
        text = _dump(entities)
        (directory / "all.yaml").write_text(text)
        files, total_bytes = 1, len(text)
        if progress is not None:
            progress(len(entities), len(entities))
    else:
        targets: list[str] = []
        chunk: list[dict[str, Any]] = []
        for index, entity in enumerate(entities):
            chunk.append(entity)
            last = index == len(entities) - 1
            if len(chunk) >= per_file or last or entities[index + 1]["kind"] != entity["kind"]:
                kind = entity["kind"].lower()
                number = sum(1 for t in targets if t.startswith(f"./{kind}/")) + 1
                target = f"./{kind}/{kind}-{number:04d}.yaml"
                path = directory / target
                path.parent.mkdir(parents=True, exist_ok=True)
                text = _dump(chunk)
                path.write_text(text)
                total_bytes += len(text)
                targets.append(target)
                chunk = []
                if progress is not None:
                    progress(index + 1, len(entities))
        root = {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Location",
            "metadata": {"name": "bench-root", "description": f"Synthetic organisation of {n}"},
            "spec": {"targets": targets},
        }
        text = _dump([root])
        (directory / "all.yaml").write_text(text)
        files, total_bytes = len(targets) + 1, total_bytes + len(text)
        # The root Location entity; its targets are read in place (no entity per target).
        locations += 1

    relations = expected_relations(entities)
    expected_refs = {ref for refs in refs_by_kind.values() for ref in refs}
    owners = sorted(
        {target for source, kind, target in relations if kind == "ownedBy"} & expected_refs
    )
    relations_of: dict[str, int] = {}
    for source, _, _ in relations:
        relations_of[source] = relations_of.get(source, 0) + 1
    return SyntheticCatalog(
        root=directory / "all.yaml",
        entity_count=len(entities),
        expected_entities=len(entities) + locations,
        expected_relations=len(relations),
        expected_refs=expected_refs,
        refs_by_kind=refs_by_kind,
        owner_groups=owners,
        relations_of=relations_of,
        files=files,
        bytes=total_bytes,
        graph=graph_targets(entities),
    )
