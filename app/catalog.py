"""The catalog's composition root: database, readers, plugins, engine and read side.

Built once per process from the configuration; the Flask app, the CLI and the tests
all get their catalog from here, so they run the same pipeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any

from sqlalchemy import text

from app.config import AppConfig
from app.engine.engine import CatalogEngine, EngineSettings
from app.engine.locations import LocationService
from app.engine.parsing import parse_entities
from app.engine.rules import RulesEnforcer
from app.engine.stitch_process import StitcherProcess, StitcherSpec
from app.engine.trust import TrustingOrchestrator
from app.metrics import MeteredEngine
from app.plugins import PROCESSORS_GROUP, PROVIDERS_GROUP, load_plugins
from app.reading import Readers
from app.reading.access import RootedFileReader
from app.reading.git import GitReader, GitUrlReader
from app.reading.url import UrlReader
from app.storage.database import Database
from app.storage.entities import EntityReader
from entity_providers.location_store import DefaultLocationStore
from processors.base import LocationSpec

log = logging.getLogger(__name__)


@dataclass
class Catalog:
    config: AppConfig
    db: Database
    readers: Readers
    orchestrator: TrustingOrchestrator
    engine: CatalogEngine
    reader: EntityReader
    processing: bool

    @classmethod
    def from_config(cls, config: AppConfig, *, processing: bool | None = None) -> Catalog:
        """``processing`` (default: ``catalog.processing.enabled``) says whether
        :meth:`start` runs the processing loop in this process."""
        if processing is None:
            processing = config.processing_enabled
        db = Database(config.database_url, busy_timeout=config.database_busy_timeout)
        db.migrate()
        limits = config.limits
        readers = Readers(
            [
                # catalog.locations read anything; API-registered file locations stay in roots.
                RootedFileReader(
                    config.allowed_file_roots,
                    max_bytes=limits.file_bytes,
                    max_matches=limits.glob_matches,
                ),
                UrlReader(
                    config.reading_allow,
                    timeout=config.reading_timeout,
                    max_bytes=config.reading_max_bytes,
                    max_redirects=limits.url_redirects,
                ),
            ]
        )
        # git targets, and blob URLs of integration hosts, read through a cache of clones.
        git = GitReader(
            config.git_reading, allow=config.reading_allow, file_roots=config.allowed_file_roots
        )
        readers.register(git)
        readers.register(GitUrlReader(readers.for_type("url"), git))
        services: dict[str, Any] = {"database": db}
        processors = load_plugins(PROCESSORS_GROUP, "catalog.processors", config, readers, services)
        providers = load_plugins(PROVIDERS_GROUP, "catalog.providers", config, readers, services)
        location_rules = [
            (LocationSpec(loc["type"], loc["target"]), loc["rules"])
            for loc in config.locations
            if loc.get("rules")
        ]
        orchestrator = TrustingOrchestrator(
            processors,
            parser=partial(parse_entities, limits=limits),
            rules=RulesEnforcer(config.rules, location_rules),
            trusted_origins=[f"{loc['type']}:{loc['target']}" for loc in config.locations],
        )
        settings = EngineSettings(
            processing_interval=config.processing_interval,
            orphan_strategy=config.orphan_strategy,
            claim_lease=config.claim_lease,
        )
        # The engine with its batches counted and timed for /metrics.
        engine = MeteredEngine(
            db, orchestrator, providers, settings, stitcher=_stitcher(config, db)
        )
        return cls(
            config=config,
            db=db,
            readers=readers,
            orchestrator=orchestrator,
            engine=engine,
            reader=EntityReader(db),
            processing=processing,
        )

    @cached_property
    def locations(self) -> LocationService:
        """Registering and removing locations (the ``/locations`` API)."""
        store = next(
            (p for p in self.engine.providers if isinstance(p, DefaultLocationStore)), None
        )
        return LocationService(
            db=self.db,
            engine=self.engine,
            orchestrator=self.orchestrator,
            readers=self.readers,
            allowed_types=self.config.allowed_location_types,
            provider=store,
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
            # An API-only replica serves whatever the processing processes committed:
            # it is ready while the database answers (raises when it does not).
            with self.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True, "ok"
        return self.engine.is_ready()


def _stitcher(config: AppConfig, db: Database) -> StitcherProcess | None:
    """The stitching process a processing loop of this catalog would start, if any: not
    for a database only this process can open (SQLite in memory)."""
    if not config.stitch_process or not db.shared:
        return None
    return StitcherProcess(
        StitcherSpec(db.url, config.database_busy_timeout, log_format=config.log_format)
    )
