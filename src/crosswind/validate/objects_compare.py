"""Comparing the two copies of one object. Pure; no I/O.

Order of checks for a key both sides hold: size first (a size mismatch ends
the comparison: the copies differ and hashing them says nothing more), then
content hash, then headers and user metadata after mapping.

* Hash: the MD5 each side *claims* — the service's own (Azure Content-MD5, a
  single-part S3 ETag) or the ``crosswind-md5`` entry crosswind stores on
  every copy. Unknown when a side claims none (S3 multipart objects without
  the entry, Azure block blobs without Content-MD5). With ``--deep`` the bytes
  of both sides are read and hashed; then the copies differ when the bytes
  differ, and a claim that disagrees with its own bytes is a hash mismatch too.
* Headers and user metadata after mapping: ``props_compare.props_differences``
  (shared with the sync engine).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from crosswind.mapping import Policy, split_reserved
from crosswind.model import ObjectMeta
from crosswind.props_compare import props_differences
from crosswind.stores.base import MetadataFlavor
from crosswind.validate.findings import Check, Finding, Kind

Outcome = Literal["equal", "differs", "unknown"]
MAX_LISTED_DIFFERENCES = 5


def claimed_md5(m: ObjectMeta) -> str | None:
    """The hex MD5 a listing or HEAD entry claims for the content, if any."""
    if m.content_md5:
        return m.content_md5.lower()
    if m.props is not None:
        ours = split_reserved(m.props.metadata)[1]
        md5 = ours.get("md5")
        if md5:
            return md5.strip().lower()
    return None


class PairResult(NamedTuple):
    """The outcome for one key both sides hold (a tuple: made a million times)."""

    findings: tuple[Finding, ...]
    hash: Outcome
    metadata: Outcome
    deep: bool = False
    sizes_equal: bool = True


def _join(diffs: list[str]) -> str:
    more = len(diffs) - MAX_LISTED_DIFFERENCES
    text = "; ".join(diffs[:MAX_LISTED_DIFFERENCES])
    return f"{text}; and {more} more" if more > 0 else text


def compare_pair(
    src: ObjectMeta,
    dst: ObjectMeta,
    dst_flavor: MetadataFlavor,
    policy: Policy,
    read: tuple[str, str] | None = None,
) -> PairResult:
    """Compare two copies of ``src.key``; ``read`` holds the MD5s of the bytes
    actually read from (source, destination) in deep mode."""
    key = src.key
    if src.size != dst.size:
        f = Finding(Check.OBJECTS, Kind.SIZE, key,
                    f"size {src.size} at source, {dst.size} at destination")
        return PairResult((f,), "unknown", "unknown", sizes_equal=False)
    findings: list[Finding] = []
    a, b = claimed_md5(src), claimed_md5(dst)
    hash_outcome: Outcome = "unknown"
    if read is not None:
        ra, rb = read
        problems = []
        if ra != rb:
            problems.append(f"bytes differ: MD5 {ra} at source, {rb} at destination")
        if a is not None and a != ra:
            problems.append(f"source claims MD5 {a} but its bytes hash to {ra}")
        if b is not None and b != rb:
            problems.append(f"destination claims MD5 {b} but its bytes hash to {rb}")
        hash_outcome = "differs" if problems else "equal"
        if problems:
            findings.append(Finding(Check.OBJECTS, Kind.HASH, key, _join(problems)))
    elif a is not None and b is not None:
        hash_outcome = "equal" if a == b else "differs"
        if a != b:
            findings.append(Finding(Check.OBJECTS, Kind.HASH, key,
                                    f"MD5 {a} at source, {b} at destination"))
    md_outcome: Outcome = "unknown"
    if src.props is not None and dst.props is not None:
        diffs = props_differences(src.props, dst.props, dst_flavor, policy)
        md_outcome = "differs" if diffs else "equal"
        if diffs:
            findings.append(Finding(Check.OBJECTS, Kind.METADATA, key, _join(diffs)))
    return PairResult(tuple(findings), hash_outcome, md_outcome, read is not None)


def missing(src: ObjectMeta) -> Finding:
    return Finding(Check.OBJECTS, Kind.MISSING, src.key, f"{src.size} bytes at source only")


def extra(dst: ObjectMeta) -> Finding:
    return Finding(Check.OBJECTS, Kind.EXTRA, dst.key, f"{dst.size} bytes at destination only")
