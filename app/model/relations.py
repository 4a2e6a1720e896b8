"""Relation types and the relations the built-in kinds emit from their spec fields.

Mirrors the reference backend: ``BuiltinKindsEntityProcessor.postProcessEntity``
(catalog-backend 4.0.0) for API, Component, Resource, System, Domain, User and Group,
and ``ScaffolderEntitiesProcessor`` (scaffolder entity-model module) for Template.
Every target yields the forward relation from the entity and the reverse one back to
it. Refs without a namespace take the entity's own namespace; ``dependsOn`` and
``dependencyOf`` have no default kind, so a kindless ref there is Backstage's error
``Entity reference "x" had missing or empty kind (...)``. That backend has no model
layers, so kinds it does not know (``AiResource`` included) emit nothing.
"""

from __future__ import annotations

from typing import Any

from app.model.refs import (
    DEFAULT_NAMESPACE,
    js_truthy,
    parse_entity_ref,
    ref_of,
    stringify_entity_ref,
)

RELATION_OWNED_BY = "ownedBy"
RELATION_OWNER_OF = "ownerOf"
RELATION_CONSUMES_API = "consumesApi"
RELATION_API_CONSUMED_BY = "apiConsumedBy"
RELATION_PROVIDES_API = "providesApi"
RELATION_API_PROVIDED_BY = "apiProvidedBy"
RELATION_DEPENDS_ON = "dependsOn"
RELATION_DEPENDENCY_OF = "dependencyOf"
RELATION_PARENT_OF = "parentOf"
RELATION_CHILD_OF = "childOf"
RELATION_MEMBER_OF = "memberOf"
RELATION_HAS_MEMBER = "hasMember"
RELATION_PART_OF = "partOf"
RELATION_HAS_PART = "hasPart"

# (forward, reverse), as catalog-model's well-known relations and catalog-graph pair them.
RELATION_PAIRS: list[tuple[str, str]] = [
    (RELATION_OWNED_BY, RELATION_OWNER_OF),
    (RELATION_PROVIDES_API, RELATION_API_PROVIDED_BY),
    (RELATION_CONSUMES_API, RELATION_API_CONSUMED_BY),
    (RELATION_DEPENDS_ON, RELATION_DEPENDENCY_OF),
    (RELATION_PART_OF, RELATION_HAS_PART),
    (RELATION_MEMBER_OF, RELATION_HAS_MEMBER),
    (RELATION_CHILD_OF, RELATION_PARENT_OF),
]
REVERSE_RELATION: dict[str, str] = {
    **{forward: reverse for forward, reverse in RELATION_PAIRS},
    **{reverse: forward for forward, reverse in RELATION_PAIRS},
}

TEMPLATE_API_VERSION = "scaffolder.backstage.io/v1beta3"

# Spec field, default kind of its refs, relation from self, relation back to self;
# per kind, in the processor's emission order.
_OWNER = ("owner", "Group", RELATION_OWNED_BY, RELATION_OWNER_OF)
_SYSTEM = ("system", "System", RELATION_PART_OF, RELATION_HAS_PART)
_DEPENDS_ON = ("dependsOn", None, RELATION_DEPENDS_ON, RELATION_DEPENDENCY_OF)
_DEPENDENCY_OF = ("dependencyOf", None, RELATION_DEPENDENCY_OF, RELATION_DEPENDS_ON)
RELATION_FIELDS: dict[str, tuple[tuple[str, str | None, str, str], ...]] = {
    "Component": (
        _OWNER,
        ("subcomponentOf", "Component", RELATION_PART_OF, RELATION_HAS_PART),
        ("providesApis", "API", RELATION_PROVIDES_API, RELATION_API_PROVIDED_BY),
        ("consumesApis", "API", RELATION_CONSUMES_API, RELATION_API_CONSUMED_BY),
        _DEPENDS_ON,
        _DEPENDENCY_OF,
        _SYSTEM,
    ),
    "API": (_OWNER, _SYSTEM),
    "Resource": (_OWNER, _DEPENDS_ON, _DEPENDENCY_OF, _SYSTEM),
    "User": (("memberOf", "Group", RELATION_MEMBER_OF, RELATION_HAS_MEMBER),),
    "Group": (
        ("parent", "Group", RELATION_CHILD_OF, RELATION_PARENT_OF),
        ("children", "Group", RELATION_PARENT_OF, RELATION_CHILD_OF),
        ("members", "User", RELATION_HAS_MEMBER, RELATION_MEMBER_OF),
    ),
    "System": (_OWNER, ("domain", "Domain", RELATION_PART_OF, RELATION_HAS_PART)),
    "Domain": (_OWNER, ("subdomainOf", "Domain", RELATION_PART_OF, RELATION_HAS_PART)),
}

# Owners and systems repeat across a catalog; remembering the canonical form of each
# distinct shorthand saves most of the parsing.
_TARGET_CACHE: dict[tuple[str, str | None, str], str] = {}
_TARGET_CACHE_LIMIT = 50_000


def _target_ref(target: Any, default_kind: str | None, namespace: str) -> str:
    if not isinstance(target, str):
        return ref_of(
            parse_entity_ref(target, default_kind=default_kind, default_namespace=namespace)
        )
    key = (target, default_kind, namespace)
    ref = _TARGET_CACHE.get(key)
    if ref is None:
        ref = _parse_shorthand(target, default_kind, namespace)
        if len(_TARGET_CACHE) >= _TARGET_CACHE_LIMIT:
            _TARGET_CACHE.clear()
        _TARGET_CACHE[key] = ref
    return ref


def _parse_shorthand(target: str, default_kind: str | None, namespace: str) -> str:
    """``parse_entity_ref`` + canonical form, inlined for well-formed refs (the usual case)."""
    colon = target.find(":")
    slash = target.find("/")
    if slash == -1 and colon == -1:
        if target and default_kind:
            return f"{default_kind.lower()}:{namespace.lower()}/{target.lower()}"
    elif slash == -1:
        if 0 < colon < len(target) - 1:
            return f"{target[:colon].lower()}:{namespace.lower()}/{target[colon + 1 :].lower()}"
    elif colon != -1 and colon < slash and colon > 0 and slash > colon + 1 and target[-1] != "/":
        return target.lower()
    return ref_of(parse_entity_ref(target, default_kind=default_kind, default_namespace=namespace))


def relations_for(entity: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every ``(source_ref, type, target_ref)`` the reference backend emits for the entity.

    Refs are canonical (lowercase). The order is the processor's (per field, per target:
    forward then reverse); duplicates are kept, as Backstage de-duplicates on storage.
    Expects an entity that passed kind validation; bad refs raise the errors of
    :func:`~app.model.refs.parse_entity_ref`.
    """
    kind = entity.get("kind")
    if not isinstance(kind, str) or kind not in RELATION_FIELDS:
        if kind == "Template" and entity.get("apiVersion") == TEMPLATE_API_VERSION:
            return _template_relations(entity)
        return []
    fields = RELATION_FIELDS[kind]
    metadata = entity["metadata"]
    namespace = metadata.get("namespace") or DEFAULT_NAMESPACE
    name: Any = metadata["name"]
    self_ref = stringify_entity_ref(kind, namespace, name)
    spec = entity.get("spec") or {}
    out: list[tuple[str, str, str]] = []
    for field, default_kind, forward, reverse in fields:
        targets = spec.get(field)
        if not js_truthy(targets):
            continue
        for target in targets if isinstance(targets, list) else (targets,):
            target_ref = _target_ref(target, default_kind, namespace)
            out.append((self_ref, forward, target_ref))
            out.append((target_ref, reverse, self_ref))
    return out


def _template_relations(entity: dict[str, Any]) -> list[tuple[str, str, str]]:
    metadata = entity["metadata"]
    namespace = metadata.get("namespace") or DEFAULT_NAMESPACE
    owner = (entity.get("spec") or {}).get("owner")
    if not js_truthy(owner):
        return []
    name: Any = metadata["name"]
    self_ref = stringify_entity_ref("Template", namespace, name)
    target_ref = _target_ref(owner, "Group", namespace)
    return [(self_ref, RELATION_OWNED_BY, target_ref), (target_ref, RELATION_OWNER_OF, self_ref)]
