"""Bearer-token authentication and catalog permissions for every request.

Installed by ``create_app`` only when ``backend.auth.externalAccess`` lists tokens
(see :mod:`app.auth`). Then every request but the health probes (and CORS
preflights, answered before this hook) needs ``Authorization: Bearer <token>``:

* no usable header: 401 ``AuthenticationError: Missing credentials``;
* a token that is not configured: 401 ``AuthenticationError: Illegal token``;
* a token restricted to other plugins: 403, as Backstage's ``ExternalTokenHandler``;
* a token whose restrictions exclude the permission the endpoint checks: 403.

Which permission each endpoint checks is listed in :data:`ENDPOINT_PERMISSIONS`
(Backstage's catalog permissions); reads sent as POST (by-query, by-refs, facets)
are reads. Tokens never reach a log line: the hook keeps only the subject.
"""

from __future__ import annotations

import re

from flask import Flask, Response, g, request

from app.api.errors import error_response
from app.auth import PLUGIN_ID, AuthSettings, Principal
from app.errors import AuthenticationError, NotAllowedError

READ = "catalog.entity.read"

ENDPOINT_PERMISSIONS: dict[str, str] = {
    "entities.list_entities": READ,
    "entities.query_entities": READ,
    "entities.query_entities_by_predicate": READ,
    "entities.get_by_uid": READ,
    "entities.get_by_name": READ,
    "entities.get_ancestry": READ,
    "entities.get_by_refs": READ,
    "facets.get_facets": READ,
    "facets.post_facets": READ,
    "locations.create_location": "catalog.location.create",
    "locations.list_locations": "catalog.location.read",
    "locations.query_locations": "catalog.location.read",
    "locations.get_location": "catalog.location.read",
    # Backstage has no "update" permission for locations; replacing one creates it anew.
    "locations.update_location": "catalog.location.create",
    "locations.delete_location": "catalog.location.delete",
    "locations.get_location_by_entity": "catalog.location.read",
    "writes.refresh": "catalog.entity.refresh",
    "writes.delete_by_uid": "catalog.entity.delete",
    "writes.validate_entity": "catalog.entity.validate",
    "writes.analyze_location": "catalog.location.analyze",
}
# Blueprints whose every endpoint checks one permission: the graph read models read
# entities; the provider status tells where entities come from, as locations do.
BLUEPRINT_PERMISSIONS: dict[str, str] = {
    "graph": READ,
    "catalog-graph": READ,
    "providers": "catalog.location.read",
}
# No bearer token: orchestrators probe health without credentials, and git servers sign
# their push events with an HMAC of the body instead (app.api.events).
OPEN_BLUEPRINTS = frozenset({"health", "events"})

_BEARER = re.compile(r"^Bearer[ ]+(\S+)$", re.IGNORECASE)


def permission_for(endpoint: str | None) -> str | None:
    """The catalog permission an endpoint checks; None: any authenticated caller."""
    if endpoint is None:
        return None
    if endpoint in ENDPOINT_PERMISSIONS:
        return ENDPOINT_PERMISSIONS[endpoint]
    blueprint = endpoint.partition(".")[0] if "." in endpoint else None
    return BLUEPRINT_PERMISSIONS.get(blueprint or "")


def init_auth(app: Flask, settings: AuthSettings) -> None:
    """Require a configured bearer token on every request (nothing without tokens)."""
    if not settings.enabled:
        return

    @app.before_request
    def authenticate() -> Response | None:
        if request.blueprint in OPEN_BLUEPRINTS:
            return None
        try:
            principal = _principal(settings)
            g.principal = principal
            # No permission for a principal the configuration lets in without a token,
            # nor for OPTIONS, which only lists the methods of a route.
            if principal is None or request.method == "OPTIONS":
                return None
            permission = permission_for(request.endpoint)
            if permission is not None and not principal.allows(permission):
                raise NotAllowedError(
                    f"The token of '{principal.subject}' does not grant {permission}"
                )
        except AuthenticationError as exc:
            response = error_response(exc)
            response.headers["WWW-Authenticate"] = 'Bearer realm="catalog"'
            return response
        except NotAllowedError as exc:
            return error_response(exc)
        return None


def _principal(settings: AuthSettings) -> Principal | None:
    """The caller; None for an anonymous request that the configuration lets through."""
    header = request.headers.get("Authorization")
    match = _BEARER.match(header) if header else None
    if match is None:
        if settings.allow_anonymous:
            return None
        raise AuthenticationError("Missing credentials")
    entry = settings.verify(match.group(1))
    if entry is None:
        raise AuthenticationError("Illegal token")
    if entry.restrictions is None:
        return Principal(entry.subject, None)
    restriction = entry.restrictions.get(PLUGIN_ID)
    if restriction is None:
        plugins = ", ".join(f"'{plugin}'" for plugin in entry.restrictions)
        raise NotAllowedError(f"This token's access is restricted to plugin(s) {plugins}")
    return Principal(entry.subject, restriction)
