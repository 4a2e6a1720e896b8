"""Processing one entity through the processors: pure, no database.

The steps and their error messages follow Backstage's
``DefaultCatalogProcessingOrchestrator``: envelope check, pre-process, policies,
kind validation, post-process (where Location entities ask for their targets to
be read), then the catalog rules on every emitted child. The engine persists the
outcome; this module only computes it, which is what ``validate-entity`` and dry
runs need too.

Where we deliberately do better than Backstage: a disallowed child or an
unreadable target fails only itself, not the whole Location. Children of a
target that could not be read are reported in ``failed_locations`` so the engine
keeps them as they were instead of orphaning them.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from app import jsonutil
from app.errors import ConflictError, InputError, NotAllowedError
from app.model import (
    apply_entity_policies,
    entity_ref,
    parse_location_ref,
    stringify_location_ref,
    validate_envelope,
)
from app.model.locations import location_entity_for
from processors.base import (
    DEFAULT_LOCATION_KEY,
    CatalogProcessor,
    EmittedEntity,
    EmittedLocation,
    Emitter,
    EntityParser,
    LocationSpec,
    ProcessorCache,
    overrides,
)

from .parsing import DocumentError
from .rules import RulesEnforcer

log = logging.getLogger(__name__)

ANNOTATION_LOCATION = "backstage.io/managed-by-location"
ANNOTATION_ORIGIN_LOCATION = "backstage.io/managed-by-origin-location"

# PostgreSQL cannot store NUL in text; no valid ref or relation contains one.
NUL = "\x00"

# Reads requested while reading (nested) stop here: a guard against cycles.
MAX_READS_PER_ENTITY = 10_000


@dataclass
class ChildEntity:
    """An emitted child, kept as its JSON text: one Location may emit 100,000 of them."""

    ref: str
    text: str
    location_key: str | None

    @property
    def entity(self) -> dict[str, Any]:
        return jsonutil.loads(self.text)  # type: ignore[no-any-return]


@dataclass
class ProcessingOutcome:
    #: False when the entity itself failed: only its errors are to be stored.
    ok: bool
    entity: dict[str, Any] | None = None
    relations: list[tuple[str, str, str]] = field(default_factory=list)
    children: list[ChildEntity] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    refresh_keys: list[str] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)
    #: Location refs that could not be read; their previous children are kept.
    failed_locations: set[str] = field(default_factory=set)


class Orchestrator:
    def __init__(
        self,
        processors: list[CatalogProcessor],
        parser: EntityParser,
        rules: RulesEnforcer,
    ):
        ordered = sorted(processors, key=lambda p: p.priority)
        self.processors = ordered
        self.parser = parser
        self.rules = rules
        self._pre = [p for p in ordered if overrides(p, "pre_process_entity")]
        self._validators = [p for p in ordered if overrides(p, "validate_entity_kind")]
        self._post = [p for p in ordered if overrides(p, "post_process_entity")]
        self._readers = [p for p in ordered if overrides(p, "read_location")]

    def process(
        self,
        unprocessed: dict[str, Any],
        previous_cache: dict[str, Any] | None = None,
        *,
        owned: bool = False,
    ) -> ProcessingOutcome:
        """Run ``unprocessed`` through the processors.

        Processors may change the entity in place, so it is copied first, unless the
        caller hands over a fresh object it will not use again (``owned``).
        """
        emit = Emitter()
        caches: dict[str, ProcessorCache] = {}
        previous_cache = previous_cache or {}

        def cache_for(processor: CatalogProcessor, suffix: str = "") -> ProcessorCache:
            key = processor.get_processor_name() + (f"|{suffix}" if suffix else "")
            if key not in caches:
                caches[key] = ProcessorCache(previous_cache.get(key))
            return caches[key]

        try:
            try:
                validate_envelope(unprocessed)
            except Exception as exc:
                raise InputError(
                    "Entity envelope failed validation before processing", cause=exc
                ) from exc
            entity = unprocessed if owned else copy.deepcopy(unprocessed)
            ref = entity_ref(entity)
            annotations = (entity.get("metadata") or {}).get("annotations") or {}
            location = _location_of(annotations.get(ANNOTATION_LOCATION), ref)
            origin = _location_of(annotations.get(ANNOTATION_ORIGIN_LOCATION), ref)

            for processor in self._pre:
                try:
                    entity = processor.pre_process_entity(
                        entity, location, emit, origin, cache_for(processor)
                    )
                except Exception as exc:
                    raise InputError(
                        f"Processor {processor.get_processor_name()} threw an error "
                        "while preprocessing",
                        cause=exc,
                    ) from exc

            # Raises "Policy check failed for <ref>; caused by ..." itself.
            entity = apply_entity_policies(entity)

            if entity_ref(entity) != ref:
                raise ConflictError(
                    "Fatal: The entity kind, namespace, or name changed during processing"
                )

            valid = False
            for processor in self._validators:
                try:
                    if processor.validate_entity_kind(entity):
                        valid = True
                        break
                except Exception as exc:
                    raise InputError(
                        f"Processor {processor.get_processor_name()} threw an error while "
                        f"validating the entity {ref}",
                        cause=exc,
                    ) from exc
            if not valid:
                raise InputError(
                    f"No processor recognized the entity {ref} as valid, possibly caused by a "
                    "foreign kind or apiVersion"
                )

            for processor in self._post:
                try:
                    entity = processor.post_process_entity(
                        entity, location, emit, cache_for(processor)
                    )
                except Exception as exc:
                    raise InputError(
                        f"Processor {processor.get_processor_name()} threw an error "
                        "while postprocessing",
                        cause=exc,
                    ) from exc

            for relation in emit.relations:
                if NUL in relation.source or NUL in relation.target:
                    # No database can store it (PostgreSQL rejects NUL in text).
                    raise InputError(
                        f"Relation {relation.type} to {relation.target!r} contains a NUL character"
                    )

            # From here on the entity is final: its children are checked and encoded as
            # they are emitted, so a big Location never holds them all as objects.
            collector = _ChildCollector(self.rules, entity, ref, origin)
            emit.collect_with(collector.add)
            failed_locations = self._read_requested(emit, cache_for)
        except Exception as exc:
            return ProcessingOutcome(ok=False, errors=[e.error for e in emit.errors] + [exc])

        errors: list[BaseException] = [e.error for e in emit.errors] + collector.errors
        return ProcessingOutcome(
            ok=True,
            entity=entity,
            relations=_unique_relations(emit),
            children=collector.children(emit.locations),
            errors=errors,
            refresh_keys=sorted(set(emit.refresh_keys)),
            cache={key: c.collect() for key, c in caches.items() if c.collect()},
            failed_locations=failed_locations,
        )

    def _read_requested(self, emit: Emitter, cache_for: Any) -> set[str]:
        """Run the read_location processors on every location a processor asked for."""
        failed: set[str] = set()
        done = 0
        while emit.reads:
            spec = emit.reads.pop(0)
            done += 1
            if done > MAX_READS_PER_ENTITY:
                emit.input_error(spec, f"Too many locations to read, stopped at {spec.ref}")
                break
            errors_before = len(emit.errors)
            handled = False
            for processor in self._readers:
                try:
                    handled = processor.read_location(
                        spec,
                        spec.optional,
                        emit,
                        self.parser,
                        cache_for(processor, spec.target),
                    )
                except Exception as exc:
                    emit.error(
                        spec,
                        InputError(
                            f"Processor {processor.get_processor_name()} threw an error while "
                            f"reading {spec.ref}",
                            cause=exc,
                        ),
                    )
                    handled = True
                if handled:
                    break
            if not handled:
                emit.input_error(spec, f"No processor was able to handle reading of {spec.ref}")
            for emitted in emit.errors[errors_before:]:
                if _means_unreadable(emitted.error):
                    failed.add(emitted.location.ref if emitted.location else spec.ref)
                    failed.add(spec.ref)
        return failed


class _ChildCollector:
    """Checks each entity a processor emits against the parent, and keeps it as JSON text.

    Envelope, NUL and rule failures fail only that child (recorded in ``errors``); the
    same entity twice from one parent: the later copy wins.
    """

    def __init__(
        self, rules: RulesEnforcer, parent: dict[str, Any], parent_ref: str, origin: LocationSpec
    ):
        self.rules = rules
        self.parent = parent
        self.parent_ref = parent_ref
        self.origin = origin
        parent_annotations = (parent.get("metadata") or {}).get("annotations") or {}
        self.origin_ref = parent_annotations.get(ANNOTATION_ORIGIN_LOCATION) or origin.ref
        self.errors: list[BaseException] = []
        self._by_ref: dict[str, ChildEntity] = {}

    def add(self, item: EmittedEntity) -> None:
        child = item.entity
        try:
            validate_envelope(child)
        except Exception as exc:
            log.warning("Envelope validation failed at %s: %s", item.location.ref, exc)
            self.errors.append(exc)
            return
        location_ref = stringify_location_ref(item.location.type, item.location.target)
        metadata = child.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        if annotations is None or isinstance(annotations, dict):
            child = {
                **child,
                "metadata": {
                    **child["metadata"],
                    "annotations": {
                        **(annotations or {}),
                        ANNOTATION_ORIGIN_LOCATION: self.origin_ref,
                        ANNOTATION_LOCATION: location_ref,
                    },
                },
            }
        ref = entity_ref(child)
        if ref == self.parent_ref:
            return
        if NUL in ref:
            self.errors.append(
                InputError(f"Entity {ref!r} at {location_ref} contains a NUL character")
            )
            return
        if not self.rules.is_allowed(child, self.origin):
            origin_ref = stringify_location_ref(self.origin.type, self.origin.target)
            self.errors.append(_not_allowed(ref, location_ref, origin_ref))
            return
        key = location_ref if item.location_key is DEFAULT_LOCATION_KEY else item.location_key
        self._by_ref.pop(ref, None)
        self._by_ref[ref] = ChildEntity(ref, jsonutil.dumps(child), key)

    def children(self, locations: list[EmittedLocation]) -> list[ChildEntity]:
        """The generated Location entities first, then the emitted entities."""
        by_ref: dict[str, ChildEntity] = {}
        for emitted_location in locations:
            generated = location_entity_for(emitted_location.location, self.parent)
            key = generated["metadata"]["annotations"][ANNOTATION_LOCATION]
            ref = entity_ref(generated)
            by_ref[ref] = ChildEntity(ref, jsonutil.dumps(generated), key)
        for ref, child in self._by_ref.items():
            by_ref.pop(ref, None)
            by_ref[ref] = child
        return list(by_ref.values())


def _location_of(ref: Any, entity_ref_text: str) -> LocationSpec:
    if not isinstance(ref, str) or not ref:
        raise InputError(f"Entity '{entity_ref_text}' does not have a location")
    location_type, target = parse_location_ref(ref)
    return LocationSpec(location_type, target)


def _means_unreadable(error: BaseException) -> bool:
    """Whether an error met while reading a location says nothing it held can be trusted.

    Everything but a single bad document does: a missing or unreadable file, a syntax
    error, a limit, a timeout. The entities read from it before then stay as they were.
    """
    return not isinstance(error, DocumentError)


def _not_allowed(ref: str, location_ref: str, origin_ref: str) -> BaseException:
    return NotAllowedError(
        f"Entity {ref} at {location_ref}, originated at {origin_ref}, is not of an allowed "
        "kind for that location"
    )


def _unique_relations(emit: Emitter) -> list[tuple[str, str, str]]:
    seen: dict[tuple[str, str, str], None] = {}
    for relation in emit.relations:
        seen[(relation.source, relation.type, relation.target)] = None
    return list(seen)
