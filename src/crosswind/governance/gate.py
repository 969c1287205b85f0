"""Validation before write: the one object every engine's write path asks.

``SchemaGate.check(subject, build, item)`` validates an item against the latest
registered version of its subject, as ``[governance] enforce`` says:

* ``off``: nothing is checked;
* ``warn``: a failing item is counted and logged, and written all the same;
* ``reject``: it is not written: ``SchemaRejected`` (with the failing JSON path,
  the rule — the schema keyword — and the message) is raised, which the engine
  files in the DLQ (kind ``schema``); ``crosswind dlq replay`` tries it again
  against the subject's latest version, so registering a version that accepts it
  (or fixing the item at its source) lets it through.

A subject with no registered version is not checked (counted as
``unregistered``). The gate notices versions registered while it runs (the
replication service's) within ``refresh_s``, and always before it fails an item.
The instance of an item is built only when it will be checked (``build`` is a
callable), so an unregistered subject costs nothing.

Engines receive a gate (``TransferSettings.schemas``, ``RunContext.governance``)
and never build one; ``SchemaGate.off()`` is the default everywhere.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from crosswind.entities import Entity, doc_id
from crosswind.errors import CrosswindError
from crosswind.governance.subjects import (
    entity_document_instance,
    entity_instance,
    object_instance,
)
from crosswind.model import ObjectProps
from crosswind.state import StateStore

log = logging.getLogger("crosswind.governance")

Enforce = Literal["off", "warn", "reject"]
MAX_VIOLATIONS = 5
MAX_EXAMPLES = 20
_LOGGED = 20  # warnings logged one by one per gate; after that every 1000th
#: crosswind's own probe items (a switch's probe step, ``cutover/controls.py``): plumbing,
#: not the flow's data, so never checked (a closed schema would stop every cutover)
PROBE_PREFIX = "crosswind-probe/"
PROBE_PARTITION = "crosswind-probe"


@dataclass(frozen=True, slots=True)
class Violation:
    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.rule}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "rule": self.rule, "message": self.message}


class SchemaRejected(CrosswindError):
    """An item failed its subject's schema under ``enforce = "reject"``: not written."""

    kind = "schema"

    def __init__(self, subject: str, version: int, item: str,
                 violations: list[Violation]) -> None:
        first = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        super().__init__(f"schema {subject} v{version}: {first}{more}")
        self.subject, self.version, self.item = subject, version, item
        self.violations = violations

    @property
    def path(self) -> str:
        return self.violations[0].path

    @property
    def rule(self) -> str:
        return self.violations[0].rule

    def evidence(self) -> dict[str, Any]:
        return {"subject": self.subject, "version": self.version, "item": self.item,
                "path": self.path, "rule": self.rule,
                "violations": [v.as_dict() for v in self.violations]}


def _violation(e: ValidationError) -> Violation:
    return Violation(e.json_path, str(e.validator), e.message[:300])


def violations_of(validator: Draft202012Validator, instance: Any) -> list[Violation]:
    """The failing paths and rules, the most relevant first (empty: valid)."""
    if validator.is_valid(instance):
        return []
    errors = list(validator.iter_errors(instance))
    first = best_match(errors)
    rest = sorted((e for e in errors if e is not first), key=lambda e: e.json_path)
    return [_violation(e) for e in [first, *rest][:MAX_VIOLATIONS] if e is not None]


@dataclass
class SubjectCounts:
    version: int | None = None
    checked: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "checked": self.checked, "failed": self.failed}


@dataclass
class GateCounters:
    checked: int = 0
    passed: int = 0
    warned: int = 0
    rejected: int = 0
    #: items of a subject without a registered version (not checked)
    unregistered: int = 0
    by_subject: dict[str, SubjectCounts] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Compiled:
    version: int
    #: the reference implementation: the verdict and the violations
    validator: Draft202012Validator
    #: a Rust validator of the same schema, ~100 times faster: an item it finds
    #: valid is let through without the slow one (the common case)
    fast: Any

    @classmethod
    def of(cls, version: int, schema: Any) -> _Compiled:
        import jsonschema_rs

        return cls(version, Draft202012Validator(
            schema, format_checker=Draft202012Validator.FORMAT_CHECKER),
            jsonschema_rs.Draft202012Validator(schema, validate_formats=True))

    def violations(self, instance: Any) -> list[Violation]:
        if self.fast.is_valid(instance):
            return []
        return violations_of(self.validator, instance)


#: (subject → (version, schema)) of the latest versions; a generation number that
#: changes when a version is added
LatestSource = Callable[[], dict[str, tuple[int, Any]]]
GenerationSource = Callable[[], int]


class SchemaGate:
    def __init__(self, enforce: Enforce, latest: LatestSource | None = None,
                 generation: GenerationSource | None = None, *, refresh_s: float = 2.0,
                 on_reject: Callable[[SchemaRejected], None] | None = None) -> None:
        self.enforce: Enforce = enforce if latest is not None else "off"
        self._latest = latest
        self._generation = generation
        self.refresh_s = refresh_s
        #: called with every rejection before it is raised (a DLQ for engines that
        #: have none of their own)
        self.on_reject = on_reject
        self.counters = GateCounters()
        self._compiled: dict[str, _Compiled] = {}
        self._seen_generation: int | None = None
        self._next_refresh = 0.0

    @classmethod
    def off(cls) -> SchemaGate:
        return cls("off")

    @classmethod
    def from_state(cls, state: StateStore, enforce: Enforce, *, refresh_s: float = 2.0,
                   on_reject: Callable[[SchemaRejected], None] | None = None) -> SchemaGate:
        """A gate on the registry of ``state`` (which must stay open while it is used)."""
        if enforce == "off":
            return cls.off()
        from crosswind.governance.registry import Registry

        reg = Registry(state)

        def latest() -> dict[str, tuple[int, Any]]:
            return {s: (v.version, v.schema) for s, v in reg.latest_all().items()}

        return cls(enforce, latest, reg.generation, refresh_s=refresh_s, on_reject=on_reject)

    # -- the registry's latest versions ------------------------------------------------
    def _refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if (now < self._next_refresh and not force) or self._latest is None:
            return
        self._next_refresh = now + self.refresh_s
        gen = self._generation() if self._generation is not None else None
        if gen is not None and gen == self._seen_generation:
            return
        compiled: dict[str, _Compiled] = {}
        for subject, (version, schema) in self._latest().items():
            old = self._compiled.get(subject)
            compiled[subject] = old if old is not None and old.version == version else (
                _Compiled.of(version, schema))
        self._compiled = compiled
        self._seen_generation = gen

    def active(self, subject: str) -> bool:
        """Would an item of ``subject`` be checked now?"""
        if self.enforce == "off":
            return False
        self._refresh()
        return subject in self._compiled

    # -- checking ----------------------------------------------------------------------
    def check(self, subject: str, build: Callable[[], Any], item: str) -> None:
        """Validate the item (``build()`` makes its instance); raise ``SchemaRejected``
        under ``reject`` when it fails, else count (and under ``warn`` log) it."""
        if self.enforce == "off":
            return
        self._refresh()
        compiled = self._compiled.get(subject)
        c = self.counters
        if compiled is None:
            c.unregistered += 1
            return
        per = c.by_subject.setdefault(subject, SubjectCounts())
        per.version = compiled.version
        c.checked += 1
        per.checked += 1
        instance = build()
        found = compiled.violations(instance)
        if found:
            # Never fail an item against a version a newer one replaced: the check
            # of the registry is cheap, and only failures pay it.
            self._refresh(force=True)
            newer = self._compiled.get(subject)
            if newer is not None and newer.version != compiled.version:
                compiled = newer
                per.version = compiled.version
                found = compiled.violations(instance)
        if not found:
            c.passed += 1
            return
        per.failed += 1
        if len(c.examples) < MAX_EXAMPLES:
            c.examples.append({"item": item, "subject": subject, "version": compiled.version,
                               **found[0].as_dict()})
        if self.enforce == "warn":
            c.warned += 1
            if c.warned <= _LOGGED or c.warned % 1000 == 0:
                log.warning("schema %s v%d: %s: %s (written: enforce = warn)", subject,
                            compiled.version, item, found[0])
            return
        c.rejected += 1
        exc = SchemaRejected(subject, compiled.version, item, found)
        if self.on_reject is not None:
            self.on_reject(exc)
        raise exc

    def check_object(self, key: str, size: int, props: ObjectProps | None) -> None:
        if PROBE_PREFIX in key:
            return
        self.check("object-metadata", lambda: object_instance(key, size, props), key)

    def check_document(self, e: Entity) -> None:
        """``e`` about to be written into DocumentDB."""
        if e.partition_key == PROBE_PARTITION:
            return
        self.check("documentdb-document", lambda: entity_document_instance(e),
                   e.record_id or doc_id(*e.key))

    def check_entity(self, e: Entity) -> None:
        """``e`` about to be written into the Azure table."""
        if e.partition_key == PROBE_PARTITION:
            return
        self.check("table-entity", lambda: entity_instance(e), doc_id(*e.key))

    def admit(self, entities: list[Entity], check: Callable[[Entity], None]
              ) -> tuple[list[Entity], list[tuple[Entity, SchemaRejected]]]:
        """Split ``entities`` into those that may be written and the rejected."""
        if self.enforce == "off":
            return entities, []
        ok: list[Entity] = []
        refused: list[tuple[Entity, SchemaRejected]] = []
        for e in entities:
            try:
                check(e)
            except SchemaRejected as exc:
                refused.append((e, exc))
            else:
                ok.append(e)
        return ok, refused

    # -- what reports say --------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        c = self.counters
        return {"enforce": self.enforce, "checked": c.checked, "passed": c.passed,
                "warned": c.warned, "rejected": c.rejected, "unregistered": c.unregistered,
                "subjects": {s: n.as_dict() for s, n in sorted(c.by_subject.items())},
                "examples": list(c.examples)}


def rejection_payload(exc: SchemaRejected, instance: Any | None = None) -> str:
    """What a DLQ entry of a rejected item keeps: the failing path and rule, and the
    item as it was (rows: their lossless JSON, so a replay can show what failed)."""
    doc = exc.evidence()
    if instance is not None:
        doc["instance"] = instance
    return json.dumps(doc, default=str)
