"""Kind validation; messages are the ones the reference backend returned for the same input."""

import copy
import json
import random

import pytest
import yaml

from app.errors import InputError, SchemaError, serialize_error
from app.model import (
    KindSchemaError,
    apply_entity_policies,
    compiled_schema,
    validate_entity_kind,
    validate_envelope,
)
from app.model.kinds import load_schemas
from tests.conftest import SHARED

EXAMPLES = SHARED / "backstage" / "examples"
FIXTURE = SHARED / "conformance" / "fixture"
GOLDEN = SHARED / "conformance" / "golden"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="shared reference data not present")

BUILTIN = "BuiltinKindsEntityProcessor"
SCAFFOLDER = "ScaffolderEntitiesProcessor"


def make(kind, spec, api_version="backstage.io/v1alpha1", **root):
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "x"},
        "spec": spec,
        **root,
    }


COMPONENT = {"type": "service", "lifecycle": "production", "owner": "team-a"}
TEMPLATE_API = "scaffolder.backstage.io/v1beta3"

VALID = [
    make("Component", COMPONENT),
    make("Component", {**COMPONENT, "dependsOn": ["resource:x"]}, "backstage.io/v1beta1"),
    make("API", {"type": "openapi", "lifecycle": "production", "owner": "a", "definition": "d"}),
    make(
        "API",
        {"type": "openapi", "lifecycle": "p", "owner": "a", "definition": "d"},
        "backstage.io/v1beta1",
    ),
    make("Resource", {"type": "database", "owner": "team-a", "dependsOn": []}),
    make("System", {"owner": "team-a", "domain": "d"}),
    make("Domain", {"owner": "team-a", "subdomainOf": "d", "type": "product"}),
    make("Group", {"type": "team", "children": [], "profile": {"email": "a@b.c"}}),
    make("User", {"memberOf": []}),
    make("Location", {"type": "url", "targets": ["./a.yaml"], "presence": "optional"}),
    make("Location", {}),
    make("Template", {"type": "service", "steps": [{"action": "fetch:plain"}]}, TEMPLATE_API),
    make(
        "Template",
        {"type": "s", "steps": [], "parameters": [{"when": True}], "output": {"x": "y"}},
        TEMPLATE_API,
    ),
]


@pytest.mark.parametrize("entity", VALID, ids=lambda e: f"{e['kind']}-{e['apiVersion']}")
def test_valid_kinds(entity):
    assert validate_entity_kind(entity) is True


# (entity, processor, message): the message is what the reference backend put after
# "Processor <processor> threw an error while validating the entity <ref>; caused by TypeError: ".
INVALID = [
    (
        make("Component", {"lifecycle": "p", "owner": "o"}),
        BUILTIN,
        "/spec must have required property 'type' - missingProperty: type",
    ),
    (
        make("Component", COMPONENT | {"type": 5}),
        BUILTIN,
        "/spec/type must be string - type: string",
    ),
    (
        make("Component", COMPONENT | {"owner": ""}),
        BUILTIN,
        "/spec/owner must NOT have fewer than 1 characters - limit: 1",
    ),
    (
        make("Component", COMPONENT | {"dependsOn": "resource:x"}),
        BUILTIN,
        "/spec/dependsOn must be array - type: array",
    ),
    (
        {k: v for k, v in make("Component", {}).items() if k != "spec"},
        BUILTIN,
        "<root> must have required property 'spec' - missingProperty: spec",
    ),
    (
        make("API", {"type": "openapi", "lifecycle": "p", "owner": "a"}),
        BUILTIN,
        "/spec must have required property 'definition' - missingProperty: definition",
    ),
    (
        make("Resource", {"type": "database"}),
        BUILTIN,
        "/spec must have required property 'owner' - missingProperty: owner",
    ),
    (
        make("System", {}),
        BUILTIN,
        "/spec must have required property 'owner' - missingProperty: owner",
    ),
    (make("Domain", {"owner": 5}), BUILTIN, "/spec/owner must be string - type: string"),
    (
        make("Group", {"type": "team"}),
        BUILTIN,
        "/spec must have required property 'children' - missingProperty: children",
    ),
    (
        make("User", {}),
        BUILTIN,
        "/spec must have required property 'memberOf' - missingProperty: memberOf",
    ),
    (make("User", {"memberOf": "team-a"}), BUILTIN, "/spec/memberOf must be array - type: array"),
    (
        make("Location", {"presence": "maybe"}),
        BUILTIN,
        "/spec/presence must be equal to one of the allowed values"
        " - allowedValues: required,optional",
    ),
    (
        make("Template", {"type": "service"}, TEMPLATE_API),
        SCAFFOLDER,
        "/spec must have required property 'steps' - missingProperty: steps",
    ),
    (
        make("Template", {"type": "s", "steps": [], "parameters": 5}, TEMPLATE_API),
        SCAFFOLDER,
        "/spec/parameters must be object - type: object",
    ),
]


@pytest.mark.parametrize(("entity", "processor", "message"), INVALID)
def test_invalid_kinds(entity, processor, message):
    with pytest.raises(KindSchemaError) as info:
        validate_entity_kind(entity)
    assert str(info.value) == message
    assert info.value.processor == processor
    assert isinstance(info.value, SchemaError)
    assert serialize_error(info.value) == {"name": "TypeError", "message": message}


# First-error choice where several errors apply; each checked against ajv 8.20 as Backstage
# configures it (allErrors, validateSchema).
FIRST_ERRORS = [
    (
        make("Component", {"lifecycle": "p", "owner": 5}),
        "/spec must have required property 'type' - missingProperty: type",
    ),
    (
        {**make("Component", COMPONENT), "foo": 1},
        "<root> must NOT have additional properties - additionalProperty: foo",
    ),
    (make("Component", []), "/spec must be object - type: object"),
    (
        {
            **make("Component", COMPONENT),
            "metadata": {"name": "x", "annotations": {"b": 1, "1": 2}},
        },
        "/metadata/annotations/1 must be string - type: string",
    ),
    (
        make("Component", COMPONENT, relations=[{"type": "a b", "targetRef": "x"}]),
        '/relations/0/type must match pattern "^\\w+$" - pattern: ^\\w+$',
    ),
    (
        make(
            "Component", COMPONENT, status={"items": [{"type": "t", "level": "x", "message": "m"}]}
        ),
        "/status/items/0/level must be equal to one of the allowed values"
        " - allowedValues: info,warning,error",
    ),
    (make("", COMPONENT), "/kind must NOT have fewer than 1 characters - limit: 1"),
    (
        make("Template", {"type": "s", "steps": [], "parameters": [{"when": 5}]}, TEMPLATE_API),
        "/spec/parameters must be object - type: object",
    ),
    (
        make("Template", {"type": "s", "steps": [], "output": {"x": 1}}, TEMPLATE_API),
        "/spec/output/x must be string - type: string",
    ),
    (
        make("Template", {"type": "s", "steps": [{"action": "a", "if": 1}]}, TEMPLATE_API),
        "/spec/steps/0/if must be string,boolean - type: string,boolean",
    ),
]


@pytest.mark.parametrize(("entity", "message"), FIRST_ERRORS)
def test_first_error_follows_ajv_order(entity, message):
    with pytest.raises(KindSchemaError) as info:
        validate_entity_kind(entity)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "entity",
    [
        make("Widget", {}),
        make("Component", COMPONENT, "foo/v1"),
        make("Component", {}, "backstage.io/v2"),  # enum misses win over spec errors
        make("component", COMPONENT),
        make("Template", {"type": "s", "steps": []}, "scaffolder.backstage.io/v1beta2"),
        make("AiResource", {"type": "skill", "lifecycle": "p", "owner": "o"}),
    ],
)
def test_unknown_kind_or_api_version_is_not_recognized(entity):
    assert validate_entity_kind(entity) is False


def test_validators_of_one_processor():
    component = make("Component", COMPONENT)
    template = make("Template", {"type": "service", "steps": []}, TEMPLATE_API)
    assert validate_entity_kind(component, processor=BUILTIN) is True
    assert validate_entity_kind(component, processor=SCAFFOLDER) is False
    assert validate_entity_kind(template, processor=BUILTIN) is False
    assert validate_entity_kind(template, processor=SCAFFOLDER) is True
    broken_template = make("Template", {"type": "service"}, TEMPLATE_API)
    assert validate_entity_kind(broken_template, processor=BUILTIN) is False
    with pytest.raises(KindSchemaError) as info:
        validate_entity_kind(broken_template, processor=SCAFFOLDER)
    assert info.value.processor == SCAFFOLDER
    # Only errors at /kind and /apiVersion decide "not mine": the scaffolder processor
    # ignores a Component with a broken name, the Component validator throws.
    no_name = {**component, "metadata": {"name": 5}}
    assert validate_entity_kind(no_name, processor=SCAFFOLDER) is False
    with pytest.raises(KindSchemaError) as info:
        validate_entity_kind(no_name, processor=BUILTIN)
    assert str(info.value) == "/metadata/name must be string - type: string"


def test_fast_and_exact_paths_agree():
    """The generated validity check must say "valid" exactly when ajv finds no error."""
    rng = random.Random(1)
    pool = [
        None,
        "",
        "x",
        5,
        1.5,
        True,
        [],
        {},
        ["a"],
        [""],
        [5],
        {"a": 1},
        "backstage.io/v1alpha1",
    ]
    bases = [*VALID, *(entity for entity, _, _ in INVALID)]
    schema_ids = [schema_id for schema_id in load_schemas() if "#" not in schema_id]
    for _ in range(400):
        entity = copy.deepcopy(rng.choice(bases))
        containers = [entity, entity["metadata"]]
        if isinstance(entity.get("spec"), dict):
            containers.append(entity["spec"])
        target = rng.choice(containers)
        target[rng.choice([*target, "extra", "type", "owner", "labels", "tags"])] = rng.choice(pool)
        for schema_id in schema_ids:
            schema = compiled_schema(schema_id)
            assert schema.is_valid(entity) == (schema.errors(entity) == []), (schema_id, entity)


def load_entities(path):
    entities = []
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if isinstance(doc, dict) and "kind" in doc:
            spec = doc.get("spec") or {}
            if isinstance(spec.get("definition"), dict):  # {$text: ...} is resolved earlier
                spec["definition"] = "resolved placeholder"
            entities.append(doc)
    return entities


def pipeline(entity):
    validate_envelope(entity)
    return validate_entity_kind(apply_entity_policies(entity))


# The reference backend rejects these examples (checked with POST /validate-entity): it
# validates mcp-server APIs with the plain API schema and does not know AiResource.
MCP_EXAMPLE = "apis/backstage-mcp-server-api.yaml"
MCP_MESSAGE = "/spec must have required property 'definition' - missingProperty: definition"


def example_files():
    if not EXAMPLES.exists():
        return []
    files = sorted(EXAMPLES.rglob("*.yaml"))
    return [f for f in files if not f.name.endswith(".oas.yaml")]


@needs_shared
@pytest.mark.parametrize("path", example_files(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_files(path):
    for entity in load_entities(path):
        relative = str(path.relative_to(EXAMPLES))
        if entity["kind"] == "AiResource":
            assert pipeline(entity) is False
        elif relative == MCP_EXAMPLE:
            with pytest.raises(KindSchemaError, match="definition"):
                pipeline(entity)
            with pytest.raises(KindSchemaError) as info:
                validate_entity_kind(entity)
            assert str(info.value) == MCP_MESSAGE
        else:
            assert pipeline(entity) is True, (relative, entity["metadata"]["name"])


def fixture_files():
    if not FIXTURE.exists():
        return []
    return [p for p in sorted(FIXTURE.rglob("*.yaml")) if "invalid" not in p.parts]


@needs_shared
@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: str(p.relative_to(FIXTURE)))
def test_valid_fixture_files(path):
    entities = load_entities(path)
    assert entities
    for entity in entities:
        assert pipeline(entity) is True, entity["metadata"]["name"]


def golden_messages():
    return "".join(p.read_text(encoding="utf-8") for p in sorted(GOLDEN.glob("*.json")))


@needs_shared
def test_invalid_fixture_files_fail_with_the_golden_messages():
    goldens = golden_messages()

    [bad_name] = load_entities(FIXTURE / "invalid" / "bad-name.yaml")
    validate_envelope(bad_name)
    with pytest.raises(InputError) as policy:
        apply_entity_policies(bad_name)
    assert json.dumps(policy.value.message) in goldens

    [missing_type] = load_entities(FIXTURE / "invalid" / "missing-type.yaml")
    entity = apply_entity_policies(validate_envelope(missing_type))
    with pytest.raises(KindSchemaError) as kind:
        validate_entity_kind(entity)
    wrapped = InputError(
        f"Processor {kind.value.processor} threw an error while validating the entity "
        "component:default/missing-type",
        cause=kind.value,
    )
    assert wrapped.message == (
        "Processor BuiltinKindsEntityProcessor threw an error while validating the entity "
        "component:default/missing-type; caused by TypeError: /spec must have required "
        "property 'type' - missingProperty: type"
    )
    # The dry-run POST /locations golden shows it as "<name>: <message>".
    assert json.dumps(f"InputError: {wrapped.message}") in goldens
