"""Static bearer tokens, configured as Backstage's ``backend.auth.externalAccess``.

::

    backend:
      auth:
        externalAccess:
          - type: static
            options: { token: ${CATALOG_PROXY_TOKEN}, subject: backstage-proxy }
          - type: static
            options: { token: ${CATALOG_READER_TOKEN}, subject: dashboards }
            accessRestrictions:
              - plugin: catalog
                permissionAttribute: { action: read }

The rules are Backstage's own (``StaticTokenHandler``, ``readAccessRestrictionsFromConfig``
and the permissions service's decision for service principals):

* a token is at least 8 non-space characters, a subject non-space characters, and no
  token may be declared twice;
* without ``accessRestrictions`` a token may do everything (read-write);
* with them, the entry for plugin ``catalog`` decides: ``permission`` lists the
  permission names allowed, ``permissionAttribute.action`` the actions allowed
  (``create``, ``read``, ``update``, ``delete``); a permission must pass both.
  ``permissionAttribute: {action: read}`` is therefore a read-only token. A token
  restricted to other plugins only is refused with 403.

Every endpoint of this server belongs to plugin ``catalog`` and checks one of the
catalog permissions below (the graph endpoints read entities: ``catalog.entity.read``).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Any

PLUGIN_ID = "catalog"
MIN_TOKEN_LENGTH = 8
ACTIONS = ("create", "read", "update", "delete")

# Backstage's catalog permissions (plugin-catalog-common) and their action attribute;
# validate and analyze have none, so an action-restricted token never gets them.
PERMISSION_ACTIONS: dict[str, str | None] = {
    "catalog.entity.read": "read",
    "catalog.entity.create": "create",
    "catalog.entity.delete": "delete",
    "catalog.entity.refresh": "update",
    "catalog.entity.validate": None,
    "catalog.location.read": "read",
    "catalog.location.create": "create",
    "catalog.location.delete": "delete",
    "catalog.location.analyze": None,
}

_NON_SPACE = re.compile(r"^\S+$")


class AuthConfigError(ValueError):
    """``backend.auth`` is invalid; the message never contains a token."""


@dataclass(frozen=True)
class Restriction:
    """One plugin's ``accessRestrictions`` entry; None means "not restricted by this"."""

    permissions: frozenset[str] | None = None
    actions: frozenset[str] | None = None

    def allows(self, permission: str) -> bool:
        if self.permissions is not None and permission not in self.permissions:
            return False
        if self.actions is not None:
            action = PERMISSION_ACTIONS.get(permission)
            if action is None or action not in self.actions:
                return False
        return True


@dataclass(frozen=True)
class StaticToken:
    token: str
    subject: str
    #: Plugin id -> restriction; None: the token is unrestricted (read-write).
    restrictions: dict[str, Restriction] | None = None

    def __repr__(self) -> str:  # never print the secret, not even in a traceback
        return f"StaticToken(subject={self.subject!r}, restricted={self.restrictions is not None})"

    @property
    def access(self) -> str:
        """``read-write``, ``read-only`` or ``restricted``, for the start-up log."""
        if self.restrictions is None:
            return "read-write"
        own = self.restrictions.get(PLUGIN_ID)
        if own is None:
            return "no catalog access"
        writes = [p for p, a in PERMISSION_ACTIONS.items() if a != "read" and own.allows(p)]
        return "read-only" if not writes else "restricted"


@dataclass(frozen=True)
class Principal:
    subject: str
    restriction: Restriction | None

    def allows(self, permission: str) -> bool:
        return self.restriction is None or self.restriction.allows(permission)


@dataclass(frozen=True)
class AuthSettings:
    tokens: tuple[StaticToken, ...] = ()
    #: ``backend.auth.dangerouslyDisableDefaultAuthPolicy``: requests without a token pass.
    allow_anonymous: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def verify(self, presented: str) -> StaticToken | None:
        """The configured token equal to ``presented``, compared in constant time.

        Every configured token is compared (no early exit), so the time taken does not
        tell which token, or how much of one, matched.
        """
        candidate = presented.encode()
        found: StaticToken | None = None
        for entry in self.tokens:
            if hmac.compare_digest(entry.token.encode(), candidate):
                found = entry
        return found


def parse_auth_config(value: Any) -> AuthSettings:
    """``backend.auth`` -> AuthSettings; raises AuthConfigError (without secrets)."""
    if value is None:
        return AuthSettings()
    if not isinstance(value, dict):
        raise AuthConfigError("backend.auth must be a mapping")
    disable = value.get("dangerouslyDisableDefaultAuthPolicy", False)
    if not isinstance(disable, bool):
        raise AuthConfigError("backend.auth.dangerouslyDisableDefaultAuthPolicy must be a boolean")
    entries = value.get("externalAccess") or []
    if not isinstance(entries, list):
        raise AuthConfigError("backend.auth.externalAccess must be a list")
    tokens: list[StaticToken] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"backend.auth.externalAccess[{index}]"
        if not isinstance(entry, dict):
            raise AuthConfigError(f"{where} must be a mapping")
        kind = entry.get("type")
        if kind != "static":
            raise AuthConfigError(
                f"Unknown type '{kind}' in backend.auth.externalAccess, expected one of "
                "'static' (this catalog does not verify 'legacy' or 'jwks' tokens)"
            )
        options = entry.get("options")
        if not isinstance(options, dict):
            raise AuthConfigError(f"{where}.options must be a mapping with token and subject")
        token, subject = options.get("token"), options.get("subject")
        if not isinstance(token, str) or not _NON_SPACE.match(token):
            raise AuthConfigError(
                f"{where}: Illegal token, must be a set of non-space characters "
                "(is the environment variable it reads set?)"
            )
        if len(token) < MIN_TOKEN_LENGTH:
            raise AuthConfigError(
                f"{where}: Illegal token, must be at least {MIN_TOKEN_LENGTH} characters length"
            )
        if not isinstance(subject, str) or not _NON_SPACE.match(subject):
            raise AuthConfigError(
                f"{where}: Illegal subject, must be a set of non-space characters"
            )
        if token in seen:
            raise AuthConfigError(
                f"{where}: Static externalAccess token was declared more than once"
            )
        seen.add(token)
        tokens.append(StaticToken(token, subject, _restrictions(entry, where)))
    return AuthSettings(tuple(tokens), disable)


def _restrictions(entry: dict[str, Any], where: str) -> dict[str, Restriction] | None:
    items = entry.get("accessRestrictions")
    if items is None:
        return None
    if not isinstance(items, list):
        raise AuthConfigError(f"{where}.accessRestrictions must be a list")
    result: dict[str, Restriction] = {}
    for item in items:
        if not isinstance(item, dict):
            raise AuthConfigError(f"{where}.accessRestrictions entries must be mappings")
        for key in item:
            if key not in ("plugin", "permission", "permissionAttribute"):
                raise AuthConfigError(
                    f"Invalid key '{key}' in 'accessRestrictions' config, expected one of "
                    "'plugin', 'permission', 'permissionAttribute'"
                )
        plugin = item.get("plugin")
        if not isinstance(plugin, str) or not plugin:
            raise AuthConfigError(f"{where}.accessRestrictions entries need a plugin")
        if plugin in result:
            raise AuthConfigError(
                f"Attempted to declare 'accessRestrictions' twice for plugin '{plugin}', "
                "which is not permitted"
            )
        permissions = _strings(item, "permission", where)
        if permissions is not None and plugin == PLUGIN_ID:
            unknown = sorted(set(permissions) - set(PERMISSION_ACTIONS))
            if unknown:
                raise AuthConfigError(
                    f"{where}: unknown catalog permission(s) {', '.join(unknown)}; known: "
                    + ", ".join(PERMISSION_ACTIONS)
                )
        actions = None
        attribute = item.get("permissionAttribute")
        if attribute is not None:
            if not isinstance(attribute, dict):
                raise AuthConfigError(f"{where}.permissionAttribute must be a mapping")
            for key in attribute:
                if key != "action":
                    raise AuthConfigError(
                        f"Invalid key '{key}' in 'permissionAttribute' config, expected 'action'"
                    )
            actions = _strings(attribute, "action", where)
            for action in actions or []:
                if action not in ACTIONS:
                    raise AuthConfigError(
                        f"Invalid value '{action}' at 'action' in 'permissionAttributes' config, "
                        "valid values are " + ", ".join(f"'{a}'" for a in ACTIONS)
                    )
        result[plugin] = Restriction(
            frozenset(permissions) if permissions is not None else None,
            frozenset(actions) if actions is not None else None,
        )
    return result or None


def _strings(item: dict[str, Any], key: str, where: str) -> list[str] | None:
    """A string or list of strings, split on commas and spaces, as Backstage reads them."""
    if key not in item:
        return None
    raw = item[key]
    values = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(v, str) for v in values):
        raise AuthConfigError(f"{where}: {key} must be a string or a list of strings")
    split = [part for v in values for part in re.split(r"[ ,]", v) if part]
    return list(dict.fromkeys(split)) or None
