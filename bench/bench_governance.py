"""Cost of the validation before write, per item, no servers.

For each subject, ``--items`` items of the demo estate's shape go through the
schema gate as the engines call it (``SchemaGate.check_document`` /
``check_entity`` / ``check_object``, enforce = reject, every item valid: the
common case), and, apart, the parts of that cost: building the subject's
instance (for documents: the document crosswind would write, then its JSON
form), jsonschema-rs's verdict (the gate's fast path) and jsonschema's (the
reference, which the gate asks only for an item the fast path refuses).
Best of ``--rounds`` rounds, microseconds per item.

    python bench/bench_governance.py [--items 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from crosswind.governance.gate import SchemaGate, _Compiled
from crosswind.governance.subjects import (
    builtin_schema,
    entity_document_instance,
    entity_instance,
    object_instance,
)
from crosswind.model import ObjectProps
from crosswind.rig.demo_rows import demo_entity


def _per_item_us(fn: Callable[[Any], object], items: Sequence[Any], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for it in items:
            fn(it)
        best = min(best, (time.perf_counter() - t) / len(items) * 1e6)
    return best


def measure(subject: str, items: Sequence[Any], check: Callable[[SchemaGate, Any], None],
            instance: Callable[[Any], Any], rounds: int) -> dict[str, float]:
    schema = builtin_schema(subject)
    gate = SchemaGate("reject", lambda: {subject: (1, schema)}, lambda: 1)
    compiled = _Compiled.of(1, schema)
    instances = [instance(it) for it in items]
    assert all(compiled.fast.is_valid(i) for i in instances), "the sample must be valid"
    return {
        "gate": _per_item_us(lambda it: check(gate, it), items, rounds),
        "instance": _per_item_us(instance, items, rounds),
        "jsonschema_rs": _per_item_us(compiled.fast.is_valid, instances, rounds),
        "jsonschema": _per_item_us(compiled.validator.is_valid, instances, rounds),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    rng = random.Random(1)
    rows = [demo_entity(f"AA{i % 9000:04d}_20261126", str(uuid.UUID(int=i + 1)),
                        {"carrier": "AA", "flight": i % 9000, "origin": "DFW", "dest": "LAX",
                         "event_type": "departure"}, rng) for i in range(args.items)]
    props = ObjectProps(content_type="application/json",
                        metadata={"EventType": "departure", "Carrier": "AA",
                                  "SourceSystem": "FXIP"})
    objects = [(f"events/2026/11/26/AA{i % 9000:04d}/DFW-LAX/departure-{uuid.UUID(int=i)}.json",
                1000, props) for i in range(args.items)]
    cases: list[tuple[str, Sequence[Any], Callable[[SchemaGate, Any], None],
                      Callable[[Any], Any]]] = [
        ("documentdb-document", rows, lambda g, e: g.check_document(e),
         entity_document_instance),
        ("table-entity", rows, lambda g, e: g.check_entity(e), entity_instance),
        ("object-metadata", objects, lambda g, o: g.check_object(*o),
         lambda o: object_instance(*o)),
    ]
    with open("/proc/loadavg") as f:
        print(f"load {f.read().split()[0]}; {args.items} items, best of {args.rounds}; "
              "microseconds per item")
    print(f"{'subject':<22}{'gate':>8}{'instance':>10}{'jsonschema-rs':>15}{'jsonschema':>12}")
    for subject, items, check, instance in cases:
        r = measure(subject, items, check, instance, args.rounds)
        print(f"{subject:<22}{r['gate']:>8.1f}{r['instance']:>10.1f}{r['jsonschema_rs']:>15.1f}"
              f"{r['jsonschema']:>12.1f}")


if __name__ == "__main__":
    main()
