"""Entity and location references, parsed and printed exactly like Backstage's catalog-model.

Follows ``packages/catalog-model/src/entity/ref.ts`` and ``src/location/helpers.ts``
(catalog-model 1.10.3). The error types and messages are Backstage's, because they end
up verbatim in entity status and API responses: ``parseEntityRef`` throws a plain
``Error`` for missing parts (here :class:`InvalidEntityRefError`, wire name ``Error``)
and a ``TypeError`` for a malformed string (here :class:`MalformedEntityRefError`);
the location helpers throw ``TypeError`` (:class:`LocationRefError`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from app.errors import CatalogError

DEFAULT_NAMESPACE = "default"

# JavaScript's String.prototype.trim() set (WhiteSpace + LineTerminator); str.strip()
# differs (it strips U+001C..U+001F but not U+FEFF).
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


class EntityName(NamedTuple):
    """A compound entity reference; the parts keep the case they were written in."""

    kind: str
    namespace: str
    name: str


class InvalidEntityRefError(CatalogError, ValueError):
    """Backstage's plain ``Error`` from ``parseEntityRef`` (empty ref or a missing part)."""

    name = "Error"


class MalformedEntityRefError(TypeError, ValueError):
    """Backstage's ``TypeError`` for a ref string that is not ``[<kind>:][<namespace>/]<name>``."""


class LocationRefError(TypeError, ValueError):
    """Backstage's ``TypeError`` from ``parseLocationRef`` / ``stringifyLocationRef``."""


def js_truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON value (empty objects and arrays are truthy)."""
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return value != ""
    if isinstance(value, int | float):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    return True


def js_json(value: Any) -> str:
    """``JSON.stringify(value)`` for JSON data, as Backstage embeds refs in its messages."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _js_json_string(value)
    if isinstance(value, int | float):
        return js_number(value) if math.isfinite(value) else "null"
    if isinstance(value, Mapping):
        return (
            "{"
            + ",".join(f"{_js_json_string(str(k))}:{js_json(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(js_json(v) for v in value) + "]"
    return _js_json_string(str(value))


def js_number(value: int | float) -> str:
    """JavaScript's ``String(number)`` for the common cases (integral floats lose ``.0``)."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value).replace("e-0", "e-")
    return str(value)


_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_JSON_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\ud800-\udfff]')


def _js_json_string(text: str) -> str:
    if not _JSON_NEEDS_ESCAPE.search(text):
        return f'"{text}"'

    def escape(match: re.Match[str]) -> str:
        ch = match.group()
        return _JSON_ESCAPES.get(ch) or f"\\u{ord(ch):04x}"

    return '"' + _JSON_NEEDS_ESCAPE.sub(escape, text) + '"'


def _parse_ref_string(ref: str) -> tuple[str | None, str | None, str]:
    colon = ref.find(":")
    slash = ref.find("/")
    if slash != -1 and slash < colon:
        colon = -1
    kind = None if colon == -1 else ref[:colon]
    namespace = None if slash == -1 else ref[colon + 1 : slash]
    name = ref[max(colon + 1, slash + 1) :]
    if kind == "" or namespace == "" or name == "":
        raise MalformedEntityRefError(
            f'Entity reference "{ref}" was not on the form [<kind>:][<namespace>/]<name>'
        )
    return kind, namespace, name


def parse_entity_ref(
    ref: str | Mapping[str, Any],
    *,
    default_kind: str | None = None,
    default_namespace: str | None = None,
) -> EntityName:
    """Parse ``[<kind>:][<namespace>/]<name>`` or a ``{kind, namespace?, name}`` mapping.

    A missing kind takes ``default_kind`` and is an error without one; a missing
    namespace takes ``default_namespace`` or ``default``. Case is preserved.
    """
    if not js_truthy(ref):
        raise InvalidEntityRefError("Entity reference must not be empty")
    namespace_fallback = default_namespace or DEFAULT_NAMESPACE
    kind: Any
    namespace: Any
    name: Any
    if isinstance(ref, str):
        kind, namespace, name = _parse_ref_string(ref)
        if kind is None:
            kind = default_kind
        if namespace is None:
            namespace = namespace_fallback
    else:
        getter = ref.get if isinstance(ref, Mapping) else (lambda _key: None)
        kind = getter("kind")
        namespace = getter("namespace")
        name = getter("name")
        if kind is None:
            kind = default_kind
        if namespace is None:
            namespace = namespace_fallback
    if not js_truthy(kind):
        raise InvalidEntityRefError(
            f"Entity reference {js_json(ref)} had missing or empty kind "
            '(e.g. did not start with "component:" or similar)'
        )
    if not js_truthy(namespace):
        raise InvalidEntityRefError(
            f"Entity reference {js_json(ref)} had missing or empty namespace"
        )
    if not js_truthy(name):
        raise InvalidEntityRefError(f"Entity reference {js_json(ref)} had missing or empty name")
    return EntityName(kind, namespace, name)


def _lower(value: Any, part: str) -> str:
    if isinstance(value, str):
        return value.lower()
    # What JavaScript says when Backstage calls value.toLowerCase() on a non-string.
    if value is None:
        raise TypeError("Cannot read properties of undefined (reading 'toLowerCase')")
    raise TypeError(f"{part}.toLowerCase is not a function")


def _canonical(kind: Any, namespace: Any, name: Any) -> str:
    return f"{_lower(kind, 'kind')}:{_lower(namespace, 'namespace')}/{_lower(name, 'name')}"


def stringify_entity_ref(kind: str, namespace: str, name: str) -> str:
    """The canonical, lowercase ``kind:namespace/name`` that storage and relations use."""
    return _canonical(kind, namespace, name)


def ref_of(obj: EntityName | Mapping[str, Any]) -> str:
    """Canonical ref of an :class:`EntityName`, a ``{kind, namespace?, name}`` or an entity."""
    if isinstance(obj, EntityName):
        return _canonical(obj.kind, obj.namespace, obj.name)
    if "metadata" in obj:
        return entity_ref(obj)
    namespace = obj.get("namespace")
    return _canonical(
        obj.get("kind"), DEFAULT_NAMESPACE if namespace is None else namespace, obj.get("name")
    )


def entity_ref(entity: Mapping[str, Any]) -> str:
    """Canonical ref of an entity; a missing ``metadata.namespace`` means ``default``."""
    metadata = entity.get("metadata") or {}
    namespace = metadata.get("namespace")
    return _canonical(
        entity.get("kind"),
        DEFAULT_NAMESPACE if namespace is None else namespace,
        metadata.get("name"),
    )


# Backstage refuses javascript: targets, also when obfuscated with controls/whitespace.
_SCRIPT_PROTOCOL = re.compile(
    r"^[\x00-\x1f ]*" + r"[\r\n\t]*".join("javascript") + r"[\r\n\t]*:", re.IGNORECASE | re.ASCII
)


def js_string(value: Any) -> str:
    """JavaScript's ``${value}`` for JSON data (arrays are comma-joined, null items empty)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return js_number(value)
    if isinstance(value, Mapping):
        return "[object Object]"
    if isinstance(value, list | tuple):
        return ",".join("" if v is None else js_string(v) for v in value)
    return str(value)


def js_typeof(value: Any) -> str:
    """JavaScript's ``typeof`` of a JSON value (``null`` and arrays are "object"),
    which Backstage's messages print."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"


def parse_location_ref(ref: Any) -> tuple[str, str]:
    """Split ``<type>:<target>`` at the first colon, rejecting what Backstage rejects."""
    if not isinstance(ref, str):
        raise LocationRefError(
            f"Unable to parse location ref '{js_string(ref)}', unexpected argument {js_typeof(ref)}"
        )
    split = ref.find(":")
    expected = (
        f"Unable to parse location ref '{ref}', expected '<type>:<target>', "
        "e.g. 'url:https://host/path'"
    )
    if split < 0:
        raise LocationRefError(expected)
    type_ = ref[:split].strip(JS_WHITESPACE)
    target = ref[split + 1 :].strip(JS_WHITESPACE)
    if not type_ or not target:
        raise LocationRefError(expected)
    if type_ in ("http", "https"):
        raise LocationRefError(
            f"Invalid location ref '{ref}', please prefix it with 'url:', e.g. 'url:{ref}'"
        )
    if _SCRIPT_PROTOCOL.search(target):
        raise LocationRefError(f"Invalid location ref '{ref}', target is a javascript: URL")
    return type_, target


def stringify_location_ref(type: str, target: str) -> str:
    """``<type>:<target>``; empty parts and javascript: targets are errors."""
    if not type:
        raise LocationRefError("Unable to stringify location ref, empty type")
    if not target:
        raise LocationRefError("Unable to stringify location ref, empty target")
    if _SCRIPT_PROTOCOL.search(target):
        raise LocationRefError(
            f"Invalid location ref '{type}:{target}', target is a javascript: URL"
        )
    return f"{type}:{target}"
