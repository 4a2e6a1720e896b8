"""Catalog rules: which kinds may come from which locations (``catalog.rules``).

Backstage's ``DefaultCatalogRulesEnforcer``: a rule allows a list of kinds,
optionally only for some locations (matched on type and exact target, or a glob
``pattern``). Rules from ``catalog.locations[].rules`` apply to that location.
Matching uses the *origin* location of the emitting entity.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from processors.base import LocationSpec

# What Backstage allows when catalog.rules is not configured at all.
BACKSTAGE_DEFAULT_RULES: list[dict[str, Any]] = [{"allow": ["Component", "API", "Location"]}]


@dataclass(frozen=True)
class _LocationMatcher:
    type: str
    target: str | None = None
    pattern: str | None = None

    def matches(self, location: LocationSpec) -> bool:
        if self.type != location.type:
            return False
        if self.pattern is not None:
            return fnmatch.fnmatchcase(location.target, self.pattern)
        return self.target == location.target


@dataclass(frozen=True)
class _Rule:
    allow: frozenset[str]
    locations: tuple[_LocationMatcher, ...] | None


class RulesEnforcer:
    def __init__(self, rules: list[dict[str, Any]] | None, location_rules=None):
        """``rules``: the ``catalog.rules`` list; ``location_rules``: ``(LocationSpec, rules)``."""
        self._rules: list[_Rule] = []
        for rule in BACKSTAGE_DEFAULT_RULES if rules is None else rules:
            self._rules.append(_parse_rule(rule, None))
        for location, rules_for_location in location_rules or []:
            matcher = _LocationMatcher(location.type, location.target)
            for rule in rules_for_location:
                self._rules.append(_parse_rule(rule, (matcher,)))

    def is_allowed(self, entity: dict[str, Any], origin: LocationSpec) -> bool:
        kind = str(entity.get("kind", "")).lower()
        for rule in self._rules:
            if rule.locations is not None and not any(m.matches(origin) for m in rule.locations):
                continue
            if kind in rule.allow:
                return True
        return False


def _parse_rule(rule: dict[str, Any], fixed: tuple[_LocationMatcher, ...] | None) -> _Rule:
    allow = frozenset(str(kind).lower() for kind in rule.get("allow") or [])
    locations = fixed
    if fixed is None and rule.get("locations"):
        locations = tuple(
            _LocationMatcher(
                str(loc.get("type")),
                loc.get("target"),
                loc.get("pattern"),
            )
            for loc in rule["locations"]
        )
    return _Rule(allow, locations)
