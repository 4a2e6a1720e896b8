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


def load_yaml_documents(text: str | bytes) -> Iterator[Any]:
    """Every document of a YAML stream (raises yaml.YAMLError on syntax errors)."""
    return yaml.load_all(text, Loader=CoreSchemaLoader)


def load_yaml(text: str | bytes) -> Any:
    return yaml.load(text, Loader=CoreSchemaLoader)


class YamlParseError(CatalogError):
    """The file is not valid YAML: none of its entities can be trusted."""

    name = "Error"


def parse_entities(
    data: bytes, location: LocationSpec
) -> Iterator[tuple[dict[str, Any] | None, BaseException | None]]:
    """Yield ``(entity, None)`` per document, or ``(None, error)`` for a bad one.

    A syntax error ends the stream with a :class:`YamlParseError`; the caller treats
    the whole file as unreadable so the entities it produced before stay as they are.
    """
    location_ref = location.ref
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield None, YamlParseError(f"YAML error at {location_ref}, file is not UTF-8 text: {exc}")
        return
    try:
        for document in load_yaml_documents(text):
            if document is None:
                # An empty document, e.g. a trailing "---".
                continue
            if isinstance(document, dict):
                yield document, None
            else:
                kind = "object" if isinstance(document, list) else _js_typeof(document)
                # A plain Error, as Backstage's parser reports it.
                yield None, CatalogError(f"Expected object at root, got {kind}")
    except yaml.YAMLError as exc:
        yield None, YamlParseError(f"YAML error at {location_ref}, {_describe(exc)}")
    except RecursionError:
        yield None, YamlParseError(f"YAML error at {location_ref}, the document nests too deeply")


def _js_typeof(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"


def _describe(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    text = f"{context} {problem}" if context else str(problem)
    if mark is not None:
        text += f" at line {mark.line + 1}, column {mark.column + 1}"
    return text
