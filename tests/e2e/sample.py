"""What the Backstage UI should show for the sample catalog, read from its YAML files.

The browser tests compare the UI against this, not against our server's answers, so a
server that filters, resolves or titles entities wrongly cannot agree with itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "catalog"


@dataclass(frozen=True)
class Row:
    """One catalog-table row as the UI renders it."""

    ref: str
    name: str  # metadata.title, else metadata.name
    system: str
    owner: str
    type: str
    lifecycle: str
    namespace: str
    tags: tuple[str, ...]


@dataclass
class SampleCatalog:
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)  # by lower-case ref

    @classmethod
    def load(cls, root: Path = CATALOG) -> SampleCatalog:
        sample = cls()
        for path in sorted(root.rglob("*.yaml")):
            if "definitions" in path.parts:
                continue  # $text targets, not entities
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if isinstance(doc, dict) and doc.get("kind"):
                    sample.entities[entity_ref(doc)] = doc
        return sample

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.entities.values() if e["kind"].lower() == kind.lower()]

    def resolve(self, ref: str, default_kind: str, namespace: str) -> str:
        """A spec reference (``team-x``, ``group:team-x``, ``group:ops/x``) as a full ref."""
        kind, _, rest = ref.rpartition(":") if ":" in ref else (default_kind, "", ref)
        ns, _, name = rest.rpartition("/") if "/" in rest else (namespace, "", rest)
        return f"{kind}:{ns}/{name}".lower()

    def display(self, ref: str) -> str:
        """How the UI names an entity: profile.displayName, then title, then name."""
        entity = self.entities[ref]
        profile = (entity.get("spec") or {}).get("profile") or {}
        return str(
            profile.get("displayName")
            or entity["metadata"].get("title")
            or entity["metadata"]["name"]
        )

    def row(self, entity: dict[str, Any]) -> Row:
        meta, spec = entity["metadata"], entity.get("spec") or {}
        namespace = meta.get("namespace", "default")
        system = spec.get("system")
        owner = spec.get("owner")
        return Row(
            ref=entity_ref(entity),
            name=str(meta.get("title") or meta["name"]),
            system=self.display(self.resolve(system, "system", namespace)) if system else "",
            owner=self.display(self.resolve(owner, "group", namespace)) if owner else "",
            type=str(spec.get("type", "")),
            lifecycle=str(spec.get("lifecycle", "")),
            namespace=namespace,
            tags=tuple(meta.get("tags") or ()),
        )

    def rows(self, kind: str, **spec_filter: str) -> list[Row]:
        """Rows of ``kind`` matching every ``field=value`` (type, lifecycle, owner ref,
        namespace, tag), in the table's order: by metadata.name."""
        rows = []
        for entity in sorted(self.of_kind(kind), key=lambda e: e["metadata"]["name"]):
            row = self.row(entity)
            if all(self._matches(entity, row, key, value) for key, value in spec_filter.items()):
                rows.append(row)
        return rows

    def _matches(self, entity: dict[str, Any], row: Row, key: str, value: str) -> bool:
        spec = entity.get("spec") or {}
        if key == "tag":
            return value in row.tags
        if key == "namespace":
            return row.namespace == value
        if key == "owner":
            return (
                bool(spec.get("owner"))
                and self.resolve(spec["owner"], "group", row.namespace) == value
            )
        return bool(spec.get(key) == value)


def entity_ref(entity: dict[str, Any]) -> str:
    meta = entity["metadata"]
    return f"{entity['kind']}:{meta.get('namespace', 'default')}/{meta['name']}".lower()
