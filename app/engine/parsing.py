"""Parsing catalog files: YAML documents into entity dicts, the way Backstage reads them.

Backstage parses with the JavaScript ``yaml`` package, i.e. YAML 1.2's core schema.
PyYAML speaks YAML 1.1, where ``on``/``yes``/``no`` are booleans and ``2024-01-01``
is a date; a catalog file must mean the same here as there, so the loader below
resolves plain scalars with the 1.2 core rules. It keeps libyaml's C parser.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from app.errors import CatalogError
from app.limits import DEFAULT_LIMITS, Limits
from app.model.refs import js_typeof
from processors.base import LocationSpec

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CoreSchemaLoader(_Loader):  # type: ignore[misc,valid-type]
    """Safe loader with YAML 1.2 core-schema scalar resolution."""


CoreSchemaLoader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    (
        "tag:yaml.org,2002:int",
        r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$",
        list("-+0123456789"),
    ),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", ["<"]),
):
    CoreSchemaLoader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _construct_int(loader: Any, node: Any) -> int:
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)


def _construct_float(loader: Any, node: Any) -> float | int | None:
    text = loader.construct_scalar(node).lower()
    if text.endswith(("inf", "nan")):
        # JSON has no infinities or NaN; JavaScript serialises them as null.
        return None
    value = float(text)
    # JavaScript has one number type: 1.0 is 1 on the wire and in search values.
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _construct_bool(loader: Any, node: Any) -> bool:
    return loader.construct_scalar(node).lower() == "true"


CoreSchemaLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
CoreSchemaLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
CoreSchemaLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
# Explicit !!timestamp tags stay strings, as in YAML 1.2.
CoreSchemaLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node)
)


class YamlLimitError(yaml.MarkedYAMLError):
    """A document exceeds ``catalog.limits``; refused before it is constructed."""


def load_yaml_documents(text: str | bytes, limits: Limits | None = None) -> Iterator[Any]:
    """Every document of a YAML stream (raises yaml.YAMLError on syntax errors).

    Each document is composed into nodes first and checked against ``limits``
    (documents per stream, nesting depth, nodes after alias expansion) before any
    Python object is built, so a "billion laughs" document is refused while it is
    still a few nodes, not after it has been expanded into a billion.
    """
    for _line, document in yaml_documents_with_lines(text, limits):
        yield document


# Tags the fast loader gives scalars: plain ones are typed by the builder below.
_PLAIN = "?plain"
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_NULLS = frozenset({"~", "null", "Null", "NULL"})
_TRUES = frozenset({"true", "True", "TRUE"})
_FALSES = frozenset({"false", "False", "FALSE"})
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_SPECIAL_FLOAT = re.compile(r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")


class _FastLoader(CoreSchemaLoader):
    """Leaves plain scalars untyped (``?plain``) for :func:`_build`.

    libyaml's parser calls ``resolve`` once per scalar; PyYAML's generic resolver
    and constructor then cost more than the parsing itself. The builder types plain
    scalars with the same YAML 1.2 core rules in a fraction of the time.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP


class _NeedsPyYaml(Exception):
    """Something only PyYAML's constructor handles (explicit tags, merge keys, ...)."""


class _OverLimit(Exception):
    """The document passed a limit; the exact check reports which."""


def _plain(value: str) -> Any:
    if not value:
        return None
    first = value[0]
    if first in "~nN":
        return None if value in _NULLS else value
    if first in "tTfF":
        if value in _TRUES:
            return True
        return False if value in _FALSES else value
    if first in "-+0123456789.":
        if _INT.fullmatch(value):
            if value.startswith("0o"):
                return int(value[2:], 8)
            if value.startswith("0x"):
                return int(value[2:], 16)
            return int(value)
        if _FLOAT.fullmatch(value):
            number = float(value)
            return int(number) if number.is_integer() and abs(number) < 2**53 else number
        # JSON has no infinities or NaN; JavaScript serialises them as null.
        return None if _SPECIAL_FLOAT.fullmatch(value) else value
    if first == "<" and value == "<<":
        raise _NeedsPyYaml
    return value


def _build(root: yaml.Node, limits: Limits) -> Any:
    """The document's value, typed as the core-schema loader would type it."""
    max_nodes, max_depth = limits.yaml_nodes, limits.nesting_depth
    count = 1

    def scalar(node: Any) -> Any:
        if node.tag == _PLAIN:
            return _plain(node.value)
        if node.tag == _STR:
            return node.value
        raise _NeedsPyYaml

    def build(node: Any, depth: int) -> Any:
        nonlocal count
        cls = node.__class__
        if cls is yaml.ScalarNode:
            return scalar(node)
        if depth > max_depth or node.tag not in (_MAP, _SEQ):
            raise _OverLimit if depth > max_depth else _NeedsPyYaml
        if cls is yaml.MappingNode:
            count += 2 * len(node.value)
            if count > max_nodes:
                raise _OverLimit
            result = {}
            for key, value in node.value:
                if key.__class__ is not yaml.ScalarNode:
                    raise _NeedsPyYaml
                result[scalar(key)] = build(value, depth + 1)
            return result
        count += len(node.value)
        if count > max_nodes:
            raise _OverLimit
        return [build(item, depth + 1) for item in node.value]

    return build(root, 1)


def _retag(root: yaml.Node, loader: Any) -> None:
    """Give plain scalars their core-schema tags, for PyYAML's constructor."""
    seen: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.__class__ is yaml.ScalarNode:
            if node.tag == _PLAIN:
                node.tag = CoreSchemaLoader.resolve(
                    loader, yaml.ScalarNode, node.value, (True, False)
                )
        elif node.__class__ is yaml.MappingNode:
            for key, value in node.value:
                todo.extend((key, value))
        else:
            todo.extend(node.value)


def yaml_documents_with_lines(
    text: str | bytes, limits: Limits | None = None
) -> Iterator[tuple[int, Any]]:
    """``(line, document)`` for every document, ``line`` being 1-based where it starts."""
    limits = limits or DEFAULT_LIMITS
    loader = _FastLoader(text)
    try:
        count = 0
        while loader.check_node():
            node = loader.get_node()
            count += 1
            if count > limits.documents_per_file:
                raise YamlLimitError(
                    problem=f"the stream has more than {limits.documents_per_file} documents "
                    "(catalog.limits.documentsPerFile)",
                    problem_mark=node.start_mark,
                )
            try:
                document = _build(node, limits)
            except (_OverLimit, _NeedsPyYaml):
                # The exact limit check raises, naming the limit, for an _OverLimit.
                _retag(node, loader)
                check_node_limits(node, limits)
                document = loader.construct_document(node)
            yield node.start_mark.line + 1, document
    finally:
        loader.dispose()


def check_node_limits(root: yaml.Node, limits: Limits) -> None:
    """Raise YamlLimitError if the document under ``root`` nests mappings and sequences
    deeper than ``limits.nesting_depth`` or has more than ``limits.yaml_nodes`` nodes
    with its aliases expanded.

    A breadth-first walk over the node graph visits an aliased node once per use,
    which is exactly the expansion being limited, and it stops as soon as the count
    passes the limit: the work is bounded by ``yaml_nodes`` whatever the file holds,
    and a self-referencing alias (``&a [*a]``) ends at the depth limit.
    """
    max_nodes, max_depth = limits.yaml_nodes, limits.nesting_depth
    count, depth = 1, 1
    level: list[yaml.Node] = [root] if root.__class__ is not yaml.ScalarNode else []
    while level:
        if depth > max_depth:
            raise YamlLimitError(
                problem=f"the document nests deeper than {max_depth} levels "
                "(catalog.limits.nestingDepth)",
                problem_mark=level[0].start_mark,
            )
        below: list[yaml.Node] = []
        for node in level:
            if node.__class__ is yaml.MappingNode:
                count += 2 * len(node.value)
                for key, value in node.value:
                    if key.__class__ is not yaml.ScalarNode:
                        below.append(key)
                    if value.__class__ is not yaml.ScalarNode:
                        below.append(value)
            else:
                count += len(node.value)
                below.extend(item for item in node.value if item.__class__ is not yaml.ScalarNode)
            if count > max_nodes:
                raise YamlLimitError(
                    problem=f"the document has more than {max_nodes} nodes with its aliases "
                    "expanded (catalog.limits.yamlNodes)",
                    problem_mark=root.start_mark,
                )
        level = below
        depth += 1


def load_yaml(text: str | bytes, limits: Limits | None = None) -> Any:
    """The single document of ``text`` (None when empty), within ``limits``."""
    documents = load_yaml_documents(text, limits)
    first = next(documents, None)
    for _ in documents:
        raise yaml.YAMLError("expected a single document in the stream, but found another")
    return first


class DocumentError(CatalogError):
    """One document of a file is not an entity; the file's other documents are fine.

    A plain Error on the wire, as Backstage's parser reports it.
    """

    name = "Error"


class YamlParseError(CatalogError):
    """The file is not valid YAML: none of its entities can be trusted."""

    name = "Error"


def parse_entities(
    data: bytes, location: LocationSpec, *, limits: Limits | None = None
) -> Iterator[tuple[dict[str, Any] | None, BaseException | None]]:
    """Yield ``(entity, None)`` per document, or ``(None, error)`` for a bad one.

    A syntax error, or a file beyond ``limits`` (``catalog.limits``), ends the stream
    with a :class:`YamlParseError`; the caller treats the whole file as unreadable so
    the entities it produced before stay as they are.
    """
    limits = limits or DEFAULT_LIMITS
    location_ref = location.ref
    if len(data) > limits.file_bytes:
        yield (
            None,
            YamlParseError(
                f"YAML error at {location_ref}, the file is {len(data)} bytes, more than the "
                f"limit of {limits.file_bytes} (catalog.limits.fileBytes)"
            ),
        )
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield None, YamlParseError(f"YAML error at {location_ref}, file is not UTF-8 text: {exc}")
        return
    try:
        for document in load_yaml_documents(text, limits):
            if document is None:
                # An empty document, e.g. a trailing "---".
                continue
            if isinstance(document, dict):
                yield document, None
            else:
                kind = "object" if isinstance(document, list) else js_typeof(document)
                yield None, DocumentError(f"Expected object at root, got {kind}")
    except yaml.YAMLError as exc:
        yield None, YamlParseError(f"YAML error at {location_ref}, {_describe(exc)}")
    except RecursionError:
        yield None, YamlParseError(f"YAML error at {location_ref}, the document nests too deeply")


def _describe(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    text = f"{context} {problem}" if context else str(problem)
    if mark is not None:
        text += f" at line {mark.line + 1}, column {mark.column + 1}"
    return text
