"""Kind validation with Backstage's JSON schemas, reporting errors exactly as ajv does.

Backstage validates entities with ajv 8 (draft-07, ``allErrors: true``) and reports
only the first error, formatted by ``throwAjvError`` in catalog-model's
``validation/ajv.ts``::

    <instancePath or "<root>"> <message> - <param>: <value>, ...

Which error comes first depends on ajv's evaluation order, so this module carries a
small draft-07 engine for the keywords Backstage's schemas use, with two faces:

* a *fast* face: each schema is compiled into generated Python code that answers
  valid / invalid with no error bookkeeping (the ingestion hot path);
* an *exact* face: an interpreter that walks the schema in ajv's keyword order
  (type, untyped keywords, then number, string, array and object keywords; see ajv's
  ``compile/validate`` and ``compile/rules``) and collects every error like
  ``allErrors`` does. It runs only for entities the fast face rejected.

Kind validators mirror the reference backend (catalog-backend 4.0.0):
``BuiltinKindsEntityProcessor`` tries API, Component, Resource, Group, Location, User,
System and Domain (backstage.io/v1alpha1 and v1beta1), then the scaffolder catalog
module's ``ScaffolderEntitiesProcessor`` tries Template (scaffolder.backstage.io/v1beta3).
A validator whose only errors at ``/kind`` and ``/apiVersion`` are ``enum`` mismatches
answers "not mine" (``entityKindSchemaValidator``); any other error is thrown.
That backend validates ``spec.type: mcp-server`` APIs with the plain API schema and does
not know the ``AiResource`` kind, and neither does this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, ItemsView, Iterable
from functools import cache
from pathlib import Path
from typing import Any

from app.errors import SchemaError
from app.model.refs import js_string

SCHEMA_DIR = Path(__file__).parent / "schemas"

SCHEMA_FILES = (
    "Entity.schema.json",
    "EntityEnvelope.schema.json",
    "EntityMeta.schema.json",
    "shared/common.schema.json",
    "kinds/API.v1alpha1.schema.json",
    "kinds/Component.v1alpha1.schema.json",
    "kinds/Domain.v1alpha1.schema.json",
    "kinds/Group.v1alpha1.schema.json",
    "kinds/Location.v1alpha1.schema.json",
    "kinds/Resource.v1alpha1.schema.json",
    "kinds/System.v1alpha1.schema.json",
    "kinds/User.v1alpha1.schema.json",
    "scaffolder-common/Template.v1beta3.schema.json",
)

BUILTIN_PROCESSOR = "BuiltinKindsEntityProcessor"
SCAFFOLDER_PROCESSOR = "ScaffolderEntitiesProcessor"

# (schema $id, processor that owns it), in the order the reference backend tries them.
KIND_VALIDATORS: tuple[tuple[str, str], ...] = (
    ("ApiV1alpha1", BUILTIN_PROCESSOR),
    ("ComponentV1alpha1", BUILTIN_PROCESSOR),
    ("ResourceV1alpha1", BUILTIN_PROCESSOR),
    ("GroupV1alpha1", BUILTIN_PROCESSOR),
    ("LocationV1alpha1", BUILTIN_PROCESSOR),
    ("UserV1alpha1", BUILTIN_PROCESSOR),
    ("SystemV1alpha1", BUILTIN_PROCESSOR),
    ("DomainV1alpha1", BUILTIN_PROCESSOR),
    ("TemplateV1beta3", SCAFFOLDER_PROCESSOR),
)


class KindSchemaError(SchemaError):
    """A kind schema rejected the entity; ``processor`` names the Backstage processor that threw.

    The engine wraps it as ``Processor <processor> threw an error while validating the
    entity <ref>``.
    """

    def __init__(self, message: str, processor: str):
        super().__init__(message)
        self.processor = processor


# --------------------------------------------------------------------------- JS semantics


def js_items(obj: dict[str, Any]) -> ItemsView[str, Any] | list[tuple[str, Any]]:
    """``Object.entries`` order: array-index keys first (ascending), then insertion order."""
    for key in obj:
        if key and "0" <= key[0] <= "9" and _is_array_index(key):
            break
    else:
        return obj.items()
    index = [(int(k), k, v) for k, v in obj.items() if _is_array_index(k)]
    index.sort()
    return [(k, v) for _, k, v in index] + [
        (k, v) for k, v in obj.items() if not _is_array_index(k)
    ]


def _is_array_index(key: str) -> bool:
    return (
        key.isascii() and key.isdigit() and (key == "0" or key[0] != "0") and int(key) < 4294967295
    )


def js_equal(a: Any, b: Any) -> bool:
    """ajv's deep equality (``fast-deep-equal``): booleans are not numbers, key order is free."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if a is None or b is None:
        return a is b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(js_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(js_equal(a[k], b[k]) for k in a)
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": _is_number,
    "integer": lambda v: _is_number(v) and not (isinstance(v, float) and not v.is_integer()),
}

# Expressions for the generated code, equivalent to _TYPE_CHECKS.
_TYPE_EXPRS = {
    "string": "isinstance({v}, str)",
    "object": "isinstance({v}, dict)",
    "array": "isinstance({v}, list)",
    "boolean": "isinstance({v}, bool)",
    "null": "{v} is None",
    "number": "_is_number({v})",
    "integer": "_TYPE_CHECKS['integer']({v})",
}


def js_regex(pattern: str) -> re.Pattern[str]:
    """Compile an ECMAScript pattern (ajv uses the ``u`` flag) with JavaScript's meaning.

    ``.`` excludes all line terminators, ``$`` only matches at the very end, and the
    ``\\w``/``\\d`` classes are ASCII. Backstage's schemas use nothing fancier.
    """
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == ".":
            ch = "[^\\n\\r\\u2028\\u2029]"
        elif ch == "$":
            ch = "\\Z"
        out.append(ch)
        i += 1
    return re.compile("".join(out), re.ASCII)


# ------------------------------------------------------------------------ schema registry

_IGNORED_KEYWORDS = frozenset(
    {"$schema", "$id", "description", "examples", "default", "deprecated", "title", "definitions"}
)
_SUPPORTED_KEYWORDS = frozenset(
    {
        "$ref",
        "type",
        "const",
        "enum",
        "oneOf",
        "allOf",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "items",
        "required",
        "additionalProperties",
        "properties",
        "patternProperties",
    }
)
# ajv's typed keyword groups, in evaluation order, each in its rule order.
_STRING_KEYWORDS = ("maxLength", "minLength", "pattern")
_ARRAY_KEYWORDS = ("maxItems", "minItems", "items")
_OBJECT_KEYWORDS = ("required", "additionalProperties", "properties", "patternProperties")
_GROUPS = (("string", _STRING_KEYWORDS), ("array", _ARRAY_KEYWORDS), ("object", _OBJECT_KEYWORDS))


@cache
def load_schemas() -> dict[str, Any]:
    """All bundled schemas and their ``#anchor`` subschemas, keyed by ``$id`` (offline)."""
    registry: dict[str, Any] = {}
    for rel in SCHEMA_FILES:
        schema = json.loads((SCHEMA_DIR / rel).read_text(encoding="utf-8"))
        base = schema["$id"]
        registry[base] = schema
        _register_anchors(schema, base, registry)
    return registry


def _register_anchors(node: Any, base: str, registry: dict[str, Any]) -> None:
    if isinstance(node, dict):
        anchor = node.get("$id")
        if isinstance(anchor, str) and anchor.startswith("#"):
            registry[base + anchor] = node
        for value in node.values():
            _register_anchors(value, base, registry)
    elif isinstance(node, list):
        for value in node:
            _register_anchors(value, base, registry)


class _Node:
    """A schema prepared for both faces; refs point at other nodes."""

    __slots__ = (
        "schema",
        "boolean",
        "types",
        "deferred_type",
        "ref",
        "ref_only",
        "const",
        "has_const",
        "enum",
        "one_of",
        "all_of",
        "max_length",
        "min_length",
        "pattern",
        "pattern_source",
        "max_items",
        "min_items",
        "items",
        "required",
        "additional",
        "properties",
        "pattern_properties",
        "groups",
    )

    def __init__(self, schema: Any):
        self.schema = schema
        self.boolean: bool | None = schema if isinstance(schema, bool) else None
        self.types: tuple[str, ...] = ()
        self.deferred_type = False
        self.ref: _Node | None = None
        self.ref_only = False
        self.const: Any = None
        self.has_const = False
        self.enum: list[Any] | None = None
        self.one_of: list[_Node] = []
        self.all_of: list[_Node] = []
        self.max_length: int | None = None
        self.min_length: int | None = None
        self.pattern: re.Pattern[str] | None = None
        self.pattern_source = ""
        self.max_items: int | None = None
        self.min_items: int | None = None
        self.items: _Node | None = None
        self.required: tuple[str, ...] = ()
        self.additional: _Node | None = None
        self.properties: dict[str, _Node] = {}
        self.pattern_properties: list[tuple[str, re.Pattern[str], _Node]] = []
        self.groups: tuple[str, ...] = ()


class _Compiler:
    """Turns registry schemas into :class:`_Node` graphs, resolving ``$ref`` by ``$id``."""

    def __init__(self, registry: dict[str, Any]):
        self.registry = registry
        self.nodes: dict[tuple[int, str], _Node] = {}

    def node(self, schema: Any, base: str) -> _Node:
        key = (id(schema), base)
        found = self.nodes.get(key)
        if found is not None:
            return found
        node = _Node(schema)
        self.nodes[key] = node
        if isinstance(schema, dict):
            self._fill(node, schema, base)
        return node

    def resolve(self, ref: str, base: str) -> tuple[Any, str]:
        target = base + ref if ref.startswith("#") else ref
        resource = target.split("#", 1)[0] or base
        if target.endswith("#"):
            target = target[:-1]
        if target not in self.registry:
            raise ValueError(f"unresolvable $ref {ref!r} in schema {base!r}")
        return self.registry[target], resource

    def _fill(self, node: _Node, schema: dict[str, Any], base: str) -> None:
        unknown = set(schema) - _SUPPORTED_KEYWORDS - _IGNORED_KEYWORDS
        if unknown:
            raise ValueError(f"unsupported JSON schema keywords {sorted(unknown)} in {base!r}")
        types = schema.get("type")
        if types is not None:
            node.types = (types,) if isinstance(types, str) else tuple(types)
        if "$ref" in schema:
            target, resource = self.resolve(schema["$ref"], base)
            node.ref = self.node(target, resource)
            node.ref_only = not any(k in _SUPPORTED_KEYWORDS for k in schema if k != "$ref")
        if "const" in schema:
            node.has_const = True
            node.const = schema["const"]
        if "enum" in schema:
            node.enum = list(schema["enum"])
        node.one_of = [self.node(s, base) for s in schema.get("oneOf", ())]
        node.all_of = [self.node(s, base) for s in schema.get("allOf", ())]
        node.max_length = schema.get("maxLength")
        node.min_length = schema.get("minLength")
        if "pattern" in schema:
            node.pattern_source = schema["pattern"]
            node.pattern = js_regex(schema["pattern"])
        node.max_items = schema.get("maxItems")
        node.min_items = schema.get("minItems")
        if "items" in schema:
            if not isinstance(schema["items"], dict | bool):
                raise ValueError(f"array-form items is not supported in {base!r}")
            node.items = self.node(schema["items"], base)
        node.required = tuple(schema.get("required", ()))
        if "additionalProperties" in schema:
            node.additional = self.node(schema["additionalProperties"], base)
        node.properties = {k: self.node(s, base) for k, s in schema.get("properties", {}).items()}
        node.pattern_properties = [
            (p, js_regex(p), self.node(s, base))
            for p, s in schema.get("patternProperties", {}).items()
        ]
        node.groups = tuple(
            group for group, keywords in _GROUPS if any(k in schema for k in keywords)
        )
        # ajv checks a single type where that type's keyword group runs; else up front.
        node.deferred_type = len(node.types) == 1 and node.types[0] in node.groups


def _always_valid(node: _Node) -> bool:
    """ajv's ``alwaysValidSchema``: ``true`` or a schema with no rule keywords."""
    if node.boolean is not None:
        return node.boolean
    return not any(k in _SUPPORTED_KEYWORDS for k in node.schema)


# ------------------------------------------------------------------- exact (ajv) errors

# (instancePath, keyword, message, params)
AjvError = tuple[str, str, str, dict[str, Any]]


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}/{key}"
    return path + "/" + key.replace("~", "~0").replace("/", "~1")


def _type_error(node: _Node, path: str) -> AjvError:
    shown = ",".join(node.types)
    return (path, "type", f"must be {shown}", {"type": shown})


def _collect(node: _Node, data: Any, path: str, out: list[AjvError]) -> None:
    """Append ajv's errors (``allErrors`` order) for ``data`` at ``path`` to ``out``."""
    if node.boolean is not None:
        if not node.boolean:
            out.append((path, "false schema", "boolean schema is false", {}))
        return
    if node.types and not node.deferred_type and not any(_TYPE_CHECKS[t](data) for t in node.types):
        out.append(_type_error(node, path))
    if node.ref is not None:
        _collect(node.ref, data, path, out)
        if node.ref_only:
            return
    if node.has_const and not js_equal(data, node.const):
        out.append((path, "const", "must be equal to constant", {"allowedValue": node.const}))
    if node.enum is not None and not any(js_equal(data, v) for v in node.enum):
        out.append(
            (
                path,
                "enum",
                "must be equal to one of the allowed values",
                {"allowedValues": node.enum},
            )
        )
    if node.one_of:
        _collect_one_of(node, data, path, out)
    for sub in node.all_of:
        _collect(sub, data, path, out)
    for group in node.groups:
        if _TYPE_CHECKS[group](data):
            if group == "string":
                _collect_string(node, data, path, out)
            elif group == "array":
                _collect_array(node, data, path, out)
            else:
                _collect_object(node, data, path, out)
        elif node.deferred_type and node.types[0] == group:
            out.append(_type_error(node, path))


def _collect_one_of(node: _Node, data: Any, path: str, out: list[AjvError]) -> None:
    start = len(out)
    valid = False
    passing: Any = None
    for i, sub in enumerate(node.one_of):
        before = len(out)
        _collect(sub, data, path, out)
        sub_valid = len(out) == before
        # ajv's bookkeeping, including its quirk that a third passing branch re-validates.
        if i > 0 and sub_valid and valid:
            valid = False
            passing = [passing, i]
        elif sub_valid:
            valid = True
            passing = i
    if valid:
        del out[start:]
    else:
        out.append(
            (
                path,
                "oneOf",
                "must match exactly one schema in oneOf",
                {"passingSchemas": passing},
            )
        )


def _collect_string(node: _Node, data: str, path: str, out: list[AjvError]) -> None:
    if node.max_length is not None and len(data) > node.max_length:
        limit = node.max_length
        out.append(
            (path, "maxLength", f"must NOT have more than {limit} characters", {"limit": limit})
        )
    if node.min_length is not None and len(data) < node.min_length:
        limit = node.min_length
        out.append(
            (path, "minLength", f"must NOT have fewer than {limit} characters", {"limit": limit})
        )
    if node.pattern is not None and not node.pattern.search(data):
        source = node.pattern_source
        out.append((path, "pattern", f'must match pattern "{source}"', {"pattern": source}))


def _collect_array(node: _Node, data: list[Any], path: str, out: list[AjvError]) -> None:
    if node.max_items is not None and len(data) > node.max_items:
        limit = node.max_items
        out.append((path, "maxItems", f"must NOT have more than {limit} items", {"limit": limit}))
    if node.min_items is not None and len(data) < node.min_items:
        limit = node.min_items
        out.append((path, "minItems", f"must NOT have fewer than {limit} items", {"limit": limit}))
    if node.items is not None and not _always_valid(node.items):
        for i, item in enumerate(data):
            _collect(node.items, item, _child(path, i), out)


def _collect_object(node: _Node, data: dict[str, Any], path: str, out: list[AjvError]) -> None:
    for prop in node.required:
        if prop not in data:
            out.append(
                (
                    path,
                    "required",
                    f"must have required property '{prop}'",
                    {"missingProperty": prop},
                )
            )
    additional = node.additional
    if additional is not None and not _always_valid(additional):
        for key, value in js_items(data):
            if key in node.properties or any(p.search(key) for _, p, _ in node.pattern_properties):
                continue
            if additional.boolean is False:
                out.append(
                    (
                        path,
                        "additionalProperties",
                        "must NOT have additional properties",
                        {"additionalProperty": key},
                    )
                )
            else:
                _collect(additional, value, _child(path, key), out)
    for prop, sub in node.properties.items():
        if prop in data and not _always_valid(sub):
            _collect(sub, data[prop], _child(path, prop), out)
    for _, regex, sub in node.pattern_properties:
        if _always_valid(sub):
            continue
        for key, value in js_items(data):
            if regex.search(key):
                _collect(sub, value, _child(path, key), out)


def format_ajv_error(error: AjvError, *, with_params: bool = True) -> str:
    """``throwAjvError``'s text; without params it is SchemaValidEntityPolicy's variant."""
    path, _, message, params = error
    text = f"{path or '<root>'} {message}"
    if with_params:
        text += " - " + ", ".join(f"{k}: {js_string(v)}" for k, v in params.items())
    return text


# ---------------------------------------------------------------------- fast (generated)


class _CodeGen:
    """Generates one Python function per schema node that is called by reference."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[int, str] = {}
        self.pending: list[_Node] = []
        self.consts: dict[str, Any] = {
            "_is_number": _is_number,
            "_TYPE_CHECKS": _TYPE_CHECKS,
            "js_equal": js_equal,
            "_MISSING": _MISSING,
        }
        self.counter = 0

    def const(self, value: Any) -> str:
        name = f"_c{len(self.consts)}"
        self.consts[name] = value
        return name

    def var(self) -> str:
        self.counter += 1
        return f"v{self.counter}"

    def function(self, node: _Node) -> str:
        name = self.names.get(id(node))
        if name is None:
            name = f"_f{len(self.names)}"
            self.names[id(node)] = name
            self.pending.append(node)
        return name

    def build(self, root: _Node) -> Callable[[Any], bool]:
        entry = self.function(root)
        while self.pending:
            node = self.pending.pop()
            self.lines.append(f"def {self.names[id(node)]}(v0):")
            body: list[str] = []
            self.emit(node, "v0", body, 1)
            body.append("    return True")
            self.lines.extend(body)
        namespace = dict(self.consts)
        # The source is generated from the bundled schemas only, never from input data.
        exec("\n".join(self.lines), namespace)
        fn: Callable[[Any], bool] = namespace[entry]
        return fn

    def expr(self, node: _Node, v: str) -> str | None:
        """A single boolean expression for simple nodes (type plus string limits), else None."""
        if node.boolean is not None:
            return "True" if node.boolean else "False"
        if node.ref is not None or node.one_of or node.all_of or node.has_const:
            return None
        if len(node.types) != 1 or node.pattern is not None:
            return None
        if node.groups and (node.groups != ("string",) or node.types[0] != "string"):
            return None
        parts = [_TYPE_EXPRS[node.types[0]].format(v=v)]
        if node.min_length is not None:
            parts.append(f"len({v}) >= {node.min_length}")
        if node.max_length is not None:
            parts.append(f"len({v}) <= {node.max_length}")
        if node.enum is not None:
            parts.append(f"any(js_equal({v}, e) for e in {self.const(node.enum)})")
        return " and ".join(parts)

    def emit(self, node: _Node, v: str, out: list[str], depth: int) -> None:
        pad = "    " * depth
        if node.boolean is not None:
            if not node.boolean:
                out.append(f"{pad}return False")
            return
        simple = self.expr(node, v)
        if simple is not None:
            out.append(f"{pad}if not ({simple}): return False")
            return
        if node.ref is not None:
            out.append(f"{pad}if not {self.function(node.ref)}({v}): return False")
            if node.ref_only:
                return
        if node.types:
            checks = " or ".join(_TYPE_EXPRS[t].format(v=v) for t in node.types)
            out.append(f"{pad}if not ({checks}): return False")
        if node.has_const:
            out.append(f"{pad}if not js_equal({v}, {self.const(node.const)}): return False")
        if node.enum is not None:
            if all(isinstance(e, str) for e in node.enum):
                values = self.const(frozenset(node.enum))
                out.append(f"{pad}if not (isinstance({v}, str) and {v} in {values}): return False")
            else:
                values = self.const(node.enum)
                out.append(f"{pad}if not any(js_equal({v}, e) for e in {values}): return False")
        if node.one_of:
            names = ", ".join(self.function(sub) for sub in node.one_of)
            out.append(f"{pad}if not _one_of({v}, ({names},)): return False")
            self.consts["_one_of"] = _fast_one_of
        for sub in node.all_of:
            self.emit(sub, v, out, depth)
        single = len(node.types) == 1
        for group in node.groups:
            inner = depth
            if not (single and node.types[0] == group):
                out.append(f"{pad}if {_TYPE_EXPRS[group].format(v=v)}:")
                inner = depth + 1
            before = len(out)
            getattr(self, f"emit_{group}")(node, v, out, inner)
            if len(out) == before:
                out.append("    " * inner + "pass")

    def emit_string(self, node: _Node, v: str, out: list[str], depth: int) -> None:
        pad = "    " * depth
        if node.min_length is not None:
            out.append(f"{pad}if len({v}) < {node.min_length}: return False")
        if node.max_length is not None:
            out.append(f"{pad}if len({v}) > {node.max_length}: return False")
        if node.pattern is not None:
            out.append(f"{pad}if not {self.const(node.pattern)}.search({v}): return False")

    def emit_array(self, node: _Node, v: str, out: list[str], depth: int) -> None:
        pad = "    " * depth
        if node.min_items is not None:
            out.append(f"{pad}if len({v}) < {node.min_items}: return False")
        if node.max_items is not None:
            out.append(f"{pad}if len({v}) > {node.max_items}: return False")
        if node.items is not None and not _always_valid(node.items):
            item = self.var()
            simple = self.expr(node.items, item)
            if simple is not None:
                out.append(f"{pad}for {item} in {v}:")
                out.append(f"{pad}    if not ({simple}): return False")
            else:
                out.append(f"{pad}for {item} in {v}:")
                self.emit(node.items, item, out, depth + 1)

    def emit_object(self, node: _Node, v: str, out: list[str], depth: int) -> None:
        pad = "    " * depth
        if node.required:
            missing = " or ".join(f"{k!r} not in {v}" for k in node.required)
            out.append(f"{pad}if {missing}: return False")
        additional = node.additional
        if additional is not None and not _always_valid(additional):
            known = self.const(frozenset(node.properties))
            patterns = [self.const(p) for _, p, _ in node.pattern_properties]
            key = self.var()
            matches = "".join(f" and not {p}.search({key})" for p in patterns)
            if additional.boolean is False and not patterns:
                out.append(f"{pad}if not {v}.keys() <= {known}: return False")
            else:
                value = self.var()
                out.append(f"{pad}for {key}, {value} in {v}.items():")
                out.append(f"{pad}    if {key} not in {known}{matches}:")
                self.emit(additional, value, out, depth + 2)
        for prop, sub in node.properties.items():
            if _always_valid(sub):
                continue
            value = self.var()
            out.append(f"{pad}{value} = {v}.get({prop!r}, _MISSING)")
            out.append(f"{pad}if {value} is not _MISSING:")
            before = len(out)
            self.emit(sub, value, out, depth + 1)
            if len(out) == before:
                out.append(f"{pad}    pass")
        for _, regex, sub in node.pattern_properties:
            if _always_valid(sub):
                continue
            key, value = self.var(), self.var()
            simple = self.expr(sub, value)
            if simple is None:
                simple = f"{self.function(sub)}({value})"
            # Checking the value first skips the regex for the usual valid case.
            out.append(f"{pad}for {key}, {value} in {v}.items():")
            out.append(
                f"{pad}    if not ({simple}) and {self.const(regex)}.search({key}): return False"
            )


_MISSING = object()


def _fast_one_of(value: Any, branches: Iterable[Callable[[Any], bool]]) -> bool:
    valid = False
    for i, branch in enumerate(branches):
        ok = branch(value)
        if i > 0 and ok and valid:
            valid = False
        elif ok:
            valid = True
    return valid


class CompiledSchema:
    """A bundled schema with a fast validity check and ajv's exact error list."""

    def __init__(self, schema_id: str, node: _Node):
        self.schema_id = schema_id
        self._node = node
        self.is_valid: Callable[[Any], bool] = _CodeGen().build(node)

    def errors(self, data: Any) -> list[AjvError]:
        """Every error ajv (``allErrors: true``) reports, in its order."""
        out: list[AjvError] = []
        _collect(self._node, data, "", out)
        return out

    def first_error(self, data: Any) -> AjvError | None:
        """ajv's first error; with ``allErrors: false`` ajv stops at this same one."""
        if self.is_valid(data):
            return None
        errors = self.errors(data)
        return errors[0] if errors else None


@cache
def compiled_schema(schema_id: str) -> CompiledSchema:
    """The bundled schema with that ``$id`` (``Entity``, ``ComponentV1alpha1``, ...), compiled."""
    registry = load_schemas()
    if schema_id not in registry:
        raise KeyError(schema_id)
    compiler = _Compiler(registry)
    return CompiledSchema(schema_id, compiler.node(registry[schema_id], schema_id.split("#")[0]))


# ------------------------------------------------------------------------ kind validation


@cache
def _fast_kinds() -> dict[tuple[str, str], tuple[Callable[[Any], bool], str]]:
    table: dict[tuple[str, str], tuple[Callable[[Any], bool], str]] = {}
    for schema_id, processor in KIND_VALIDATORS:
        props = load_schemas()[schema_id]["allOf"][1]["properties"]
        check = compiled_schema(schema_id).is_valid
        for kind in props["kind"]["enum"]:
            for api_version in props["apiVersion"]["enum"]:
                table[(kind, api_version)] = (check, processor)
    return table


def validate_entity_kind(entity: dict[str, Any], *, processor: str | None = None) -> bool:
    """Validate against the built-in kind schemas, as the reference backend's processors do.

    Returns False when no built-in kind/apiVersion matches (the engine then reports
    "No processor recognized the entity ..."), True when the entity is valid, and raises
    :class:`KindSchemaError` (a ``SchemaError``) with ajv's message otherwise. With
    ``processor`` (``BuiltinKindsEntityProcessor`` or ``ScaffolderEntitiesProcessor``)
    only that processor's validators are tried, for engines that run them separately.
    """
    if isinstance(entity, dict):
        kind = entity.get("kind")
        api_version = entity.get("apiVersion")
        if isinstance(kind, str) and isinstance(api_version, str):
            match = _fast_kinds().get((kind, api_version))
            if match is None or (processor is not None and match[1] != processor):
                # Every validator sees only enum mismatches at /kind or /apiVersion
                # once the common envelope is valid, so each one says "not mine".
                if compiled_schema("Entity").is_valid(entity):
                    return False
            elif match[0](entity):
                return True
    return _validate_entity_kind_exactly(entity, processor)


def _validate_entity_kind_exactly(entity: Any, only: str | None) -> bool:
    for schema_id, processor in KIND_VALIDATORS:
        if only is not None and processor != only:
            continue
        errors = compiled_schema(schema_id).errors(entity)
        if not errors:
            return True
        soft = [e for e in errors if e[0] in ("/kind", "/apiVersion")]
        if soft and all(e[1] == "enum" for e in soft):
            continue
        raise KindSchemaError(format_ajv_error(errors[0]), processor)
    return False
