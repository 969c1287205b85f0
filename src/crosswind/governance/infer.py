"""A Draft 2020-12 schema from a sample of instances (``crosswind schema infer``).
Pure: no I/O.

What is inferred: property names, JSON types (``integer`` and ``number`` seen
together become ``number``; a property seen as ``null`` too gets ``"null"`` in
its types), required (present in every sampled object that could hold it) or
optional, the format of strings when every value has it (``date-time``, ``date``,
``uuid``, ``email``, ``ipv4``), array items, and the constant value of type
annotations (``NAME@odata.type``, Extended JSON's ``subType``). Nothing that only
happens to hold in the sample (value ranges, lengths, enumerations) is guessed:
add those by hand. Objects are left open (``additionalProperties`` absent)
unless ``closed``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from crosswind.governance.compat import valid
from crosswind.governance.subjects import DRAFT_2020_12

FORMATS = ("date-time", "date", "uuid", "email", "ipv4")
_CONST_NAMES = ("subType",)
EXAMPLES = 3


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "integer" if v.is_integer() and abs(v) < 2**53 else "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "array"
    return "object"


@dataclass
class _Node:
    seen: int = 0
    types: Counter[str] = field(default_factory=Counter)
    #: strings seen, and how many of them had each format
    strings: int = 0
    formats: Counter[str] = field(default_factory=Counter)
    string_values: set[str] = field(default_factory=set)
    objects: int = 0
    props: dict[str, _Node] = field(default_factory=dict)
    present: Counter[str] = field(default_factory=Counter)
    items: _Node | None = None
    examples: list[Any] = field(default_factory=list)

    def add(self, v: Any) -> None:
        self.seen += 1
        t = _json_type(v)
        self.types[t] += 1
        if t == "string":
            self.strings += 1
            if len(self.string_values) <= 2:
                self.string_values.add(v)
            for f in FORMATS:
                if valid({"type": "string", "format": f}, v):
                    self.formats[f] += 1
        if t in ("string", "integer", "number", "boolean") and len(self.examples) < EXAMPLES \
                and v not in self.examples:
            self.examples.append(v)
        if t == "object":
            self.objects += 1
            for k, x in v.items():
                self.present[str(k)] += 1
                self.props.setdefault(str(k), _Node()).add(x)
        if t == "array":
            if self.items is None:
                self.items = _Node()
            for x in v:
                self.items.add(x)

    def schema(self, name: str = "", *, closed: bool = False) -> dict[str, Any]:
        types = set(self.types)
        if {"integer", "number"} <= types:
            types.discard("integer")
        s: dict[str, Any] = {}
        order = ["null", "boolean", "integer", "number", "string", "array", "object"]
        names = [t for t in order if t in types]
        if (name.endswith("@odata.type") or name in _CONST_NAMES) and names == ["string"] and (
                len(self.string_values) == 1):
            return {"const": next(iter(self.string_values))}
        if names:
            s["type"] = names[0] if len(names) == 1 else names
        if self.strings:
            fmt = next((f for f in FORMATS if self.formats[f] == self.strings), None)
            if fmt:
                s["format"] = fmt
        if self.objects:
            s["properties"] = {k: n.schema(k, closed=closed) for k, n in sorted(
                self.props.items())}
            required = sorted(k for k, n in self.present.items() if n == self.objects)
            if required:
                s["required"] = required
            if closed:
                s["additionalProperties"] = False
        if self.items is not None and self.items.seen:
            s["items"] = self.items.schema(closed=closed)
        if self.examples and not self.objects:
            s["examples"] = list(self.examples)
        return s


def infer_schema(instances: Iterable[Any], *, title: str | None = None,
                 description: str | None = None, closed: bool = False) -> dict[str, Any]:
    """The schema every one of ``instances`` validates under (see the docstring)."""
    root = _Node()
    for inst in instances:
        root.add(inst)
    body = root.schema(closed=closed) if root.seen else {}
    out: dict[str, Any] = {"$schema": DRAFT_2020_12}
    if title:
        out["title"] = title
    out["description"] = (description or "") + (f" Inferred from {root.seen} samples."
                                                 if root.seen else " No samples.")
    out["description"] = out["description"].strip()
    out.update(body)
    return out
