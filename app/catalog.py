"""The catalog's composition root: database, readers, plugins, engine and read side.

Built once per process from the configuration; the Flask app, the CLI and the tests
all get their catalog from here, so they run the same pipeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from app.config import AppConfig
from app.engine.engine import CatalogEngine, EngineSettings
from app.engine.orchestrator import Orchestrator
from app.engine.parsing import parse_entities
from app.engine.rules import RulesEnforcer
from app.plugins import PROCESSORS_GROUP, PROVIDERS_GROUP, load_plugins
from app.reading import Readers
from app.reading.file import FileReader
from app.storage.database import Database
from app.storage.entities import EntityReader
from processors.base import LocationSpec

log = logging.getLogger(__name__)


@dataclass
class Catalog:
    config: AppConfig
    db: Database
    readers: Readers
    orchestrator: Orchestrator
    engine: CatalogEngine
    reader: EntityReader
    processing: bool

    @classmethod
    def from_config(cls, config: AppConfig, *, processing: bool = True) -> Catalog:
        db = Database(config.database_url)
        db.migrate()
        readers = Readers([FileReader()])
        services: dict[str, Any] = {"database": db}
        processors = load_plugins(PROCESSORS_GROUP, "catalog.processors", config, readers, services)
        providers = load_plugins(PROVIDERS_GROUP, "catalog.providers", config, readers, services)
        location_rules = [
            (LocationSpec(loc["type"], loc["target"]), loc["rules"])
            for loc in config.locations
            if loc.get("rules")
        ]
        orchestrator = Orchestrator(
            processors,
            parser=parse_entities,
            rules=RulesEnforcer(config.rules, location_rules),
        )
        settings = EngineSettings(
            processing_interval=config.processing_interval,
            orphan_strategy=config.orphan_strategy,
        )
        engine = CatalogEngine(db, orchestrator, providers, settings)
        return cls(
            config=config,
            db=db,
            readers=readers,
            orchestrator=orchestrator,
            engine=engine,
            reader=EntityReader(db),
            processing=processing,
        )

    def start(self) -> None:
        """Connect the providers and start the processing loop (if this process runs it)."""
        if self.processing:
            self.engine.start()

    def stop(self) -> None:
        self.engine.stop()
        self.db.dispose()

    def is_ready(self) -> tuple[bool, str]:
        if not self.processing:
            return True, "ok"
        return self.engine.is_ready()
