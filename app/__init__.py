"""The catalog service: ``create_app`` builds the Flask application.

The factory only wires things together: configuration → :class:`app.catalog.Catalog`
(database, plugins, engine) → the API blueprints.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from app.config import AppConfig

API_TITLE = "Backstage-compatible software catalog"
API_VERSION = "1.0.0"


def create_app(
    config: AppConfig | None = None,
    *,
    catalog: Any = None,
    start: bool = True,
) -> Flask:
    from app.api import (
        catalog_graph,
        entities,
        events,
        facets,
        graph,
        health,
        locations,
        providers,
        writes,
    )
    from app.api.auth import init_auth
    from app.api.blueprint import CatalogApi
    from app.api.cors import init_cors
    from app.api.errors import register_error_handlers
    from app.api.limits import init_limits
    from app.api.observability import init_observability
    from app.catalog import Catalog

    config = config or AppConfig.load()
    app = Flask(__name__)
    app.config.update(
        API_TITLE=API_TITLE,
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        # Entities are served as stored; keep the JSON provider from re-sorting keys.
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]

    if catalog is None:
        catalog = Catalog.from_config(config)
    app.extensions["catalog"] = catalog

    api = CatalogApi(app, spec_kwargs={"info": {"description": __doc__}})
    app.extensions["openapi"] = api
    for module in (entities, facets, health, locations, writes):
        api.register_blueprint(module.blp)
    api.register_blueprint(graph.blp)
    api.register_blueprint(catalog_graph.blp)
    # Push events (HMAC-signed) and what each entity provider did last (git ingestion).
    api.register_blueprint(events.blp)
    api.register_blueprint(providers.blp)
    register_error_handlers(app)
    init_limits(app, config.limits)
    init_cors(app, config)
    # After CORS, whose preflight answers come first and carry no credentials.
    init_auth(app, config.auth)
    # In text mode the access log is gunicorn's classic line (see app.cli); JSON is ours.
    json_requests = config.access_log and config.log_format == "json"
    init_observability(app, catalog, log_requests=json_requests)

    if start:
        catalog.start()
    return app
