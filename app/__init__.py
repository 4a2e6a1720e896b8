"""The catalog service: ``create_app`` builds the Flask application.

The factory only wires things together: configuration → :class:`app.catalog.Catalog`
(database, plugins, engine) → the API blueprints.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api

from app.config import AppConfig

API_TITLE = "Backstage-compatible software catalog"
API_VERSION = "1.0.0"


def create_app(
    config: AppConfig | None = None,
    *,
    catalog: Any = None,
    start: bool = True,
) -> Flask:
    from app.api import catalog_graph, entities, facets, graph, health, locations, writes
    from app.api.cors import init_cors
    from app.api.errors import register_error_handlers
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

    api = Api(app, spec_kwargs={"info": {"description": __doc__}})
    app.extensions["openapi"] = api
    for module in (entities, facets, health, locations, writes):
        api.register_blueprint(module.blp)
    api.register_blueprint(graph.blp)
    api.register_blueprint(catalog_graph.blp)
    register_error_handlers(app)
    init_cors(app, config)

    if start:
        catalog.start()
    return app
