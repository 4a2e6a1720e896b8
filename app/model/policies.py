"""Backstage's envelope check and default entity policies, with Backstage's exact messages.

The processing engine (``DefaultCatalogProcessingOrchestrator``) first checks the
``EntityEnvelope`` schema (:func:`validate_envelope`) and, after pre-processing, runs
the policies that ``CatalogBuilder.buildEntityPolicy`` installs, in this order:

1. ``SchemaValidEntityPolicy``: the ``Entity`` schema ("Malformed envelope, ...");
2. ``DefaultNamespaceEntityPolicy``: ``metadata.namespace`` defaults to ``default``;
3. ``NoForeignRootFieldsEntityPolicy``: only apiVersion, kind, metadata and spec;
4. ``FieldFormatEntityPolicy``: apiVersion, kind, name, namespace, labels,
   annotations, tags and links formats.

A failure becomes ``InputError("Policy check failed for <ref>", cause)``, where the
cause is a plain ``Error`` (:class:`EntityPolicyError`).
"""

from __future__ import annotations

import re
import stringprep
import unicodedata
from collections.abc import Callable
from typing import Any

from app.errors import CatalogError, InputError, SchemaError
from app.model.kinds import compiled_schema, format_ajv_error, js_items
from app.model.refs import DEFAULT_NAMESPACE, JS_WHITESPACE, entity_ref, js_string

FORMAT_DOC_HINT = (
    "To learn more about catalog file format, visit: "
    "https://github.com/backstage/backstage/blob/master/docs/architecture-decisions/"
    "adr002-default-catalog-file-format.md"
)
KNOWN_ROOT_FIELDS = ("apiVersion", "kind", "metadata", "spec")


class EntityPolicyError(CatalogError):
    """The plain ``Error`` a Backstage entity policy throws (wire name ``Error``)."""

    name = "Error"


def validate_envelope(entity: Any) -> dict[str, Any]:
    """The engine's first check (``EntityEnvelope`` schema): apiVersion, kind, metadata.name.

    Raises :class:`SchemaError` (``TypeError`` on the wire) with ajv's message, e.g.
    ``<root> must have required property 'kind' - missingProperty: kind``. The engine wraps
    it as ``Entity envelope failed validation before processing``; ``POST
    /validate-entity`` returns it as is.
    """
    envelope = compiled_schema("EntityEnvelope")
    error = envelope.first_error(entity)
    if error is not None:
        raise SchemaError(format_ajv_error(error))
    return entity  # type: ignore[no-any-return]


def apply_entity_policies(entity: dict[str, Any]) -> dict[str, Any]:
    """Run the default policies; return the entity with its namespace filled in.

    The caller's dict is not mutated: an entity that already has a namespace is returned
    as is, otherwise a shallow copy whose ``metadata`` is a new dict. Like Backstage's
    ``lodash.merge``, that copy puts ``metadata`` first and ``namespace`` first in it.
    """
    try:
        return _enforce(entity)
    except EntityPolicyError as exc:
        raise InputError(f"Policy check failed for {_ref_for_message(entity)}", cause=exc) from exc


def _ref_for_message(entity: Any) -> str:
    """The entity's ref; Backstage would crash on a non-envelope, we print what is there."""
    try:
        return entity_ref(entity)
    except (TypeError, AttributeError):
        entity = entity if isinstance(entity, dict) else {}
        metadata = entity.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        parts = (
            entity.get("kind"),
            metadata.get("namespace", DEFAULT_NAMESPACE),
            metadata.get("name"),
        )
        kind, namespace, name = ("undefined" if p is None else js_string(p).lower() for p in parts)
        return f"{kind}:{namespace}/{name}"


def _enforce(entity: dict[str, Any]) -> dict[str, Any]:
    schema = compiled_schema("Entity")
    if not schema.is_valid(entity):
        error = schema.first_error(entity)
        if error is not None:
            raise EntityPolicyError(
                f"Malformed envelope, {format_ajv_error(error, with_params=False)}"
            )
    metadata = entity["metadata"]
    if not metadata.get("namespace"):
        metadata = {"namespace": DEFAULT_NAMESPACE, **metadata}
        entity = {"metadata": metadata} | {k: v for k, v in entity.items() if k != "metadata"}
    for field in entity:
        if field not in KNOWN_ROOT_FIELDS:
            raise EntityPolicyError(f"Unknown field {field}")
    _check_field_formats(entity, metadata)
    return entity


# ------------------------------------------------------------------- FieldFormatEntityPolicy

_DNS_LABEL = re.compile(r"[a-z0-9]+(?:-+[a-z0-9]+)*")
_API_VERSION_SUFFIX = re.compile(r"[a-z0-9A-Z]+")
_KIND = re.compile(r"[a-zA-Z][a-z0-9A-Z]*")
_OBJECT_NAME = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_TAG = re.compile(r"[a-z0-9:+#]+(?:-[a-z0-9:+#]+)*")


def is_valid_dns_label(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 63 and bool(_DNS_LABEL.fullmatch(value))


def is_valid_dns_subdomain(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= 253
        and all(is_valid_dns_label(part) for part in value.split("."))
    )


def _prefix_and_or_suffix(value: Any, suffix_ok: Callable[[str], bool]) -> bool:
    if not isinstance(value, str):
        return False
    parts = value.split("/")
    if len(parts) == 1:
        return suffix_ok(parts[0])
    if len(parts) == 2:
        return is_valid_dns_subdomain(parts[0]) and suffix_ok(parts[1])
    return False


def is_valid_object_name(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 63 and bool(_OBJECT_NAME.fullmatch(value))


def is_valid_api_version(value: Any) -> bool:
    return _prefix_and_or_suffix(
        value, lambda s: 1 <= len(s) <= 63 and bool(_API_VERSION_SUFFIX.fullmatch(s))
    )


def is_valid_kind(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 63 and bool(_KIND.fullmatch(value))


def is_valid_label_key(value: Any) -> bool:
    """Label and annotation keys: ``[<dns subdomain>/]<object name>``."""
    return _prefix_and_or_suffix(value, is_valid_object_name)


def is_valid_label_value(value: Any) -> bool:
    return value == "" or is_valid_object_name(value)


def is_valid_tag(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 63 and bool(_TAG.fullmatch(value))


def is_non_empty_string(value: Any) -> bool:
    return isinstance(value, str) and value.strip(JS_WHITESPACE) != ""


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


_OBJECT_NAME_TEXT = (
    "a string that is sequences of [a-zA-Z0-9] separated by any of [-_.], "
    "at most 63 characters in total"
)
_PREFIX_SUFFIX_TEXT = "a valid prefix and/or suffix"
_NAMESPACE_TEXT = (
    "a string that is sequences of [a-z0-9] separated by [-], at most 63 characters in total"
)
_TAG_TEXT = (
    "a string that is sequences of [a-z0-9+#] separated by [-], at most 63 characters in total"
)
_KIND_TEXT = "a string that is a sequence of [a-zA-Z][a-z0-9A-Z], at most 63 characters in total"
_URL_TEXT = "a string that is a valid url"
_NON_EMPTY_TEXT = "a non empty string"
_STRING_TEXT = "a string"

# Valid keys repeat across a whole catalog; remembering them skips the regexes.
_KNOWN_GOOD: dict[tuple[str, str], bool] = {}
_KNOWN_GOOD_LIMIT = 100_000


def _cached(kind: str, value: str, check: Callable[[Any], bool]) -> bool:
    key = (kind, value)
    known = _KNOWN_GOOD.get(key)
    if known is None:
        known = check(value)
        if len(_KNOWN_GOOD) >= _KNOWN_GOOD_LIMIT:
            _KNOWN_GOOD.clear()
        _KNOWN_GOOD[key] = known
    return known


def _fail(field: str, value: Any, expectation: str) -> EntityPolicyError:
    return EntityPolicyError(
        f'"{field}" is not valid; expected {expectation} but found "{js_string(value)}". '
        + FORMAT_DOC_HINT
    )


def _require(field: str, value: Any, check: Callable[[Any], bool], expectation: str) -> None:
    if value is None:
        raise EntityPolicyError(f"{field} must have a value")
    if not check(value):
        raise _fail(field, value, expectation)


def _check_field_formats(entity: dict[str, Any], metadata: dict[str, Any]) -> None:
    api_version = entity.get("apiVersion")
    if not (isinstance(api_version, str) and _cached("a", api_version, is_valid_api_version)):
        _require("apiVersion", api_version, is_valid_api_version, _PREFIX_SUFFIX_TEXT)
    kind = entity.get("kind")
    if not (isinstance(kind, str) and _cached("k", kind, is_valid_kind)):
        _require("kind", kind, is_valid_kind, _KIND_TEXT)
    _require("metadata.name", metadata.get("name"), is_valid_object_name, _OBJECT_NAME_TEXT)
    if "namespace" in metadata:
        namespace = metadata["namespace"]
        if not (isinstance(namespace, str) and _cached("n", namespace, is_valid_dns_label)):
            _require("metadata.namespace", namespace, is_valid_dns_label, _NAMESPACE_TEXT)
    labels = metadata.get("labels")
    if labels:
        for key, value in js_items(labels):
            if not _cached("l", key, is_valid_label_key):
                _require(f"labels.{key}", key, is_valid_label_key, _PREFIX_SUFFIX_TEXT)
            if not (isinstance(value, str) and _cached("v", value, is_valid_label_value)):
                _require(f"labels.{key}", value, is_valid_label_value, _OBJECT_NAME_TEXT)
    annotations = metadata.get("annotations")
    if annotations:
        for key, value in js_items(annotations):
            if not _cached("l", key, is_valid_label_key):
                _require(f"annotations.{key}", key, is_valid_label_key, _PREFIX_SUFFIX_TEXT)
            if not isinstance(value, str):
                _require(f"annotations.{key}", value, _is_string, _STRING_TEXT)
    tags = metadata.get("tags")
    if tags:
        for i, tag in enumerate(tags):
            if not (isinstance(tag, str) and _cached("t", tag, is_valid_tag)):
                _require(f"tags.{i}", tag, is_valid_tag, _TAG_TEXT)
    links = metadata.get("links")
    if links:
        for i, link in enumerate(links):
            link = link if isinstance(link, dict) else {}
            url = link.get("url")
            if not (isinstance(url, str) and is_valid_url(url)):
                _require(f"links.{i}.url", url, is_valid_url, _URL_TEXT)
            for part in ("title", "icon"):
                if part in link:
                    _require(f"links.{i}.{part}", link[part], is_non_empty_string, _NON_EMPTY_TEXT)


# -------------------------------------------------------------- WHATWG URL (``new URL(x)``)

# Most links: http(s), a plain DNS name whose last label cannot be an IPv4 number, a
# small port. Such a URL is valid whatever its path, so the full parser can be skipped.
_PLAIN_HTTP_URL = re.compile(
    r"https?://(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*\.?(?::[0-9]{1,4})?(?:[/?#][^\x00-\x20]*)?",
    re.ASCII,
)
_SPECIAL_SCHEMES = frozenset({"ftp", "file", "http", "https", "ws", "wss"})
_C0_OR_SPACE = "".join(chr(i) for i in range(0x21))
_TAB_OR_NEWLINE = re.compile("[\t\n\r]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:")
_FORBIDDEN_HOST = frozenset("\x00\t\n\r #/:<>?@[\\]^|")
_FORBIDDEN_DOMAIN = _FORBIDDEN_HOST | frozenset(chr(i) for i in range(0x20)) | {"%", "\x7f"}
_PERCENT_BYTE = re.compile(rb"%([0-9A-Fa-f]{2})")
_DOT_VARIANTS = re.compile("[\u3002\uff0e\uff61]")
_HEX = frozenset("0123456789abcdefABCDEF")
_RADIX_DIGITS = {10: re.compile("[0-9]+"), 16: re.compile("[0-9A-Fa-f]+"), 8: re.compile("[0-7]+")}


def is_valid_url(value: Any) -> bool:
    """Whether JavaScript's ``new URL(value)`` (WHATWG URL, no base) would succeed.

    Follows the URL Standard's basic URL parser for everything that can fail (scheme,
    authority, port, IPv4/IPv6 and forbidden host code points). For non-ASCII host names,
    UTS #46 is approximated with RFC 3491 nameprep (see :func:`_nameprep`).
    """
    if not isinstance(value, str):
        return False
    if _PLAIN_HTTP_URL.fullmatch(value) and "xn--" not in value.lower():
        return True
    text = _TAB_OR_NEWLINE.sub("", value.strip(_C0_OR_SPACE))
    match = _SCHEME.match(text)
    if match is None:
        return False
    scheme = match.group()[:-1].lower()
    rest = text[match.end() :]
    if scheme == "file":
        return _file_url_ok(rest)
    if scheme in _SPECIAL_SCHEMES:
        return _authority_ok(rest.lstrip("/\\"), special=True)
    if rest.startswith("//"):
        return _authority_ok(rest[2:], special=False)
    return True  # a path or an opaque path: nothing there can fail


def _authority_ok(rest: str, *, special: bool) -> bool:
    stops = "/?#\\" if special else "/?#"
    end = next((i for i, ch in enumerate(rest) if ch in stops), len(rest))
    authority = rest[:end]
    at = authority.rfind("@")
    host_port = authority[at + 1 :]
    if at != -1 and host_port == "":
        return False
    inside_brackets = False
    for i, ch in enumerate(host_port):
        if ch == ":" and not inside_brackets:
            if i == 0:
                return False
            port = host_port[i + 1 :]
            if port and not (port.isascii() and port.isdigit() and int(port) <= 65535):
                return False
            return _host_ok(host_port[:i], opaque=not special)
        if ch == "[":
            inside_brackets = True
        elif ch == "]":
            inside_brackets = False
    if special and host_port == "":
        return False
    return _host_ok(host_port, opaque=not special)


def _file_url_ok(rest: str) -> bool:
    if len(rest) < 2 or rest[0] not in "/\\" or rest[1] not in "/\\":
        return True
    rest = rest[2:]
    end = next((i for i, ch in enumerate(rest) if ch in "/\\?#"), len(rest))
    host = rest[:end]
    if host == "" or (
        len(host) == 2 and host[0].isascii() and host[0].isalpha() and host[1] in ":|"
    ):
        return True
    return _host_ok(host, opaque=False)


def _host_ok(host: str, *, opaque: bool) -> bool:
    if host.startswith("["):
        return host.endswith("]") and _ipv6_ok(host[1:-1])
    if opaque:
        return not any(ch in _FORBIDDEN_HOST for ch in host)
    decoded = _PERCENT_BYTE.sub(lambda m: bytes([int(m.group(1), 16)]), host.encode("utf-8"))
    ascii_domain = _domain_to_ascii(decoded.decode("utf-8", errors="replace"))
    if not ascii_domain or any(ch in _FORBIDDEN_DOMAIN for ch in ascii_domain):
        return False
    if _ends_in_number(ascii_domain):
        return _ipv4_ok(ascii_domain)
    return True


def _domain_to_ascii(domain: str) -> str | None:
    labels = []
    for label in _DOT_VARIANTS.sub(".", domain).split("."):
        if label.isascii():
            label = label.lower()
            if label.startswith("xn--") and not _punycode_label_ok(label[4:]):
                return None
            labels.append(label)
            continue
        if "\u200c" in label or "\u200d" in label:  # UTS 46 CheckJoiners, simplified
            return None
        if label[:4].lower() == "xn--":
            return None
        prepared = _nameprep(label)
        if prepared is None:
            return None
        if not prepared.isascii():
            prepared = "xn--" + prepared.encode("punycode").decode("ascii")
        labels.append(prepared)
    return ".".join(labels)


def _nameprep(label: str) -> str | None:
    """RFC 3491 nameprep (case folding, NFKC, prohibited code points) as a UTS 46 stand-in.

    Unlike ``encodings.idna.nameprep`` it skips RFC 3454's bidi rule (UTS 46 uses RFC
    5893's, which e.g. allows a digit after Hebrew) and rejects unassigned code points
    and a leading combining mark as UTS 46 does.
    """
    mapped = "".join(stringprep.map_table_b2(ch) for ch in label if not stringprep.in_table_b1(ch))
    prepared = unicodedata.normalize("NFKC", mapped)
    for ch in prepared:
        if unicodedata.category(ch) == "Cn" or any(check(ch) for check in _PROHIBITED):
            return None
    if prepared and unicodedata.category(prepared[0]).startswith("M"):
        return None
    return prepared


_PROHIBITED = (
    stringprep.in_table_c12,
    stringprep.in_table_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def _punycode_label_ok(encoded: str) -> bool:
    try:
        decoded = encoded.encode("ascii").decode("punycode")
    except UnicodeError:
        return False
    # The decoded label must already be in its mapped form (NFC, lowercase) and valid.
    return (
        decoded != ""
        and decoded == unicodedata.normalize("NFC", decoded).lower()
        and _nameprep(decoded) is not None
    )


def _ipv4_number(part: str) -> int | None:
    radix = 10
    if len(part) >= 2 and part[:2] in ("0x", "0X"):
        part, radix = part[2:], 16
    elif len(part) >= 2 and part[0] == "0":
        part, radix = part[1:], 8
    if part == "":
        return 0
    if not _RADIX_DIGITS[radix].fullmatch(part):
        return None
    return int(part, radix)


def _ends_in_number(domain: str) -> bool:
    parts = domain.split(".")
    if parts[-1] == "":
        if len(parts) == 1:
            return False
        parts.pop()
    last = parts[-1]
    if last != "" and last.isascii() and last.isdigit():
        return True
    return last != "" and _ipv4_number(last) is not None


def _ipv4_ok(domain: str) -> bool:
    parts = domain.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4:
        return False
    numbers = []
    for part in parts:
        if part == "":
            return False
        number = _ipv4_number(part)
        if number is None:
            return False
        numbers.append(number)
    if any(n > 255 for n in numbers[:-1]):
        return False
    return numbers[-1] < 256 ** (5 - len(numbers))


def _ipv6_ok(text: str) -> bool:
    """The URL Standard's IPv6 parser, reduced to success or failure."""
    index = 0
    compress: int | None = None
    i = 0
    n = len(text)
    if text[:1] == ":":
        if text[1:2] != ":":
            return False
        i = 2
        index = 1
        compress = 1
    while i < n:
        if index == 8:
            return False
        if text[i] == ":":
            if compress is not None:
                return False
            i += 1
            index += 1
            compress = index
            continue
        length = 0
        while length < 4 and i < n and text[i] in _HEX:
            i += 1
            length += 1
        if i < n and text[i] == ".":
            if length == 0 or index > 6:
                return False
            i -= length
            seen = 0
            while i < n:
                piece: int | None = None
                if seen > 0:
                    if text[i] == "." and seen < 4:
                        i += 1
                    else:
                        return False
                if i >= n or not ("0" <= text[i] <= "9"):
                    return False
                while i < n and "0" <= text[i] <= "9":
                    if piece == 0:
                        return False
                    piece = int(text[i]) if piece is None else piece * 10 + int(text[i])
                    if piece > 255:
                        return False
                    i += 1
                seen += 1
                if seen in (2, 4):
                    index += 1
            return seen == 4 and (compress is not None or index == 8)
        if i < n and text[i] == ":":
            i += 1
            if i >= n:
                return False
        elif i < n:
            return False
        index += 1
    return compress is not None or index == 8
