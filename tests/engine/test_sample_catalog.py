"""The sample organisation in catalog/ ingests completely, on every database."""

from __future__ import annotations

import json
from collections import Counter

from sqlalchemy import select

from app.storage.tables import final_entities, refresh_state
from tests.conftest import REPO, settle


def test_sample_catalog_ingests_every_entity(make_catalog):
    catalog = make_catalog([REPO / "catalog" / "all.yaml"])
    settle(catalog)
    with catalog.db.engine.connect() as conn:
        entities = [
            json.loads(row[0]) for row in conn.execute(select(final_entities.c.final_entity))
        ]
        failed = [
            (row.entity_ref, row.errors)
            for row in conn.execute(select(refresh_state.c.entity_ref, refresh_state.c.errors))
            if row.errors
        ]
    assert failed == []
    kinds = Counter(entity["kind"] for entity in entities)
    assert len(entities) >= 80
    for kind in (
        "Component",
        "API",
        "Resource",
        "System",
        "Domain",
        "Group",
        "User",
        "Location",
        "Template",
    ):
        assert kinds[kind] > 0, kind
    # The $text placeholder resolved to the file's content.
    payments_api = next(
        e for e in entities if e["kind"] == "API" and e["metadata"]["name"] == "payments-api"
    )
    assert "openapi" in payments_api["spec"]["definition"]
