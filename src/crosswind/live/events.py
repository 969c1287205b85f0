"""Change events as the queues deliver them, parsed into ``ObjectEvent`` values.

Pure: text in, ``ParsedMessage`` out (or ``PoisonMessage`` raised); no I/O.

Azure: Event Grid writes each event as one Storage Queue message, in the Event
Grid schema or the CloudEvents 1.0 schema (the subscription's choice). The
text is base64 of the JSON today; older deliveries and hand-made messages are
plain JSON, so both are read (a base64 string can never start with ``{`` or
``[``, so the two cannot be confused). One event or an array per message.
The blob name is taken from ``subject`` (``/blobServices/default/containers/
{container}/blobs/{name}``), where Event Grid writes it as is, not
URL-encoded. ``data.url`` has been seen both percent-encoded and raw, so it is
used only when the subject is missing or mangled.

AWS: S3 event notifications on SQS arrive directly (``{"Records": [...]}``),
wrapped in an SNS envelope (``{"Type": "Notification", "Message": "<json>"}``)
or as EventBridge events (``{"source": "aws.s3", "detail-type": ...}``).
Notification keys are URL-encoded form-style (``+`` for a space) and decoded
with ``unquote_plus``; EventBridge keys are sent as they are.

Every deliberate skip is a reason string ``"category: detail"`` in
``ParsedMessage.ignored`` (the service counts by ``reason_category``); anything
unreadable or structurally wrong raises ``PoisonMessage`` with a one-line
reason of the same shape, never quoting more than ``BODY_EXCERPT`` characters
of the body.

Sequencers (Azure ``data.sequencer``, S3 ``sequencer``) are hex numbers of
varying width; they are normalised to lower-case hex left-padded to
``SEQUENCER_WIDTH`` digits, so that plain string order is event order.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

from crosswind.errors import CrosswindError
from crosswind.live.changes import ChangeOp, ObjectEvent, ParsedMessage
from crosswind.secrets import redact

#: digits of a normalised sequencer (Azure's are 32 or 48, S3's about 18)
SEQUENCER_WIDTH = 64
#: at most this many characters of a message body appear in a poison reason
BODY_EXCERPT = 80
_SHOWN = 60

#: categories of ``ParsedMessage.ignored`` reasons (the part before the first ':')
IGNORE_CATEGORIES = frozenset({
    "empty-batch",           # a message that held no events at all
    "subscription-event",    # Event Grid subscription validation / deletion
    "sns-subscription",      # SNS subscription (un)confirmation sent to the queue
    "test-event",            # s3:TestEvent, sent when a notification is configured
    "not-an-object-change",  # a known event type that does not change bytes or metadata
    "unknown-event-type",    # an event type crosswind does not know
    "not-storage",           # an event from another service (not blob storage / S3)
    "other-account",         # another storage account
    "other-container",       # another Azure container
    "other-bucket",          # another S3 bucket
})

#: categories of ``PoisonMessage`` reasons
POISON_CATEGORIES = frozenset({
    "not-json",        # neither JSON nor base64 of JSON
    "unknown-schema",  # JSON, but no event shape crosswind knows
    "not-an-event",    # an element of the batch that is not a JSON object
    "missing-field",   # a field the event type requires is absent
    "bad-field",       # a field of the wrong type or with an impossible value
    "bad-key",         # an object key that no store can hold (empty, not Unicode)
    "bad-time",        # an event time that is not an ISO 8601 timestamp
})


class PoisonMessage(CrosswindError):
    """A queue message that can never be parsed: retrying cannot help. The
    service moves it to the DLQ with ``reason`` after its attempts."""

    def __init__(self, category: str, detail: str, body: str | None = None) -> None:
        reason = f"{category}: {_one_line(detail)}"
        if body is not None:
            reason += f"; body starts {_excerpt(body)}"
        super().__init__(reason)
        self.category = category
        self.reason = reason


def reason_category(reason: str) -> str:
    """The stable part of an ignore or poison reason, for counting."""
    return reason.split(":", 1)[0]


# -- small helpers -----------------------------------------------------------------
class _Bad(Exception):
    """A structural problem in one event; becomes a PoisonMessage for the message."""

    def __init__(self, category: str, detail: str) -> None:
        super().__init__(detail)
        self.category = category
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _Ignore:
    reason: str


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _show(value: object, limit: int = _SHOWN) -> str:
    """A value from a message, quoted and cut, safe to put in one log line."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    cut = text if len(text) <= limit else text[:limit] + "…"
    return redact(repr(cut))


def _excerpt(body: str) -> str:
    shown = repr(body[:BODY_EXCERPT])
    # escapes can make the repr longer than the text; bound the line either way
    if len(shown) > 2 * BODY_EXCERPT:
        shown = shown[:2 * BODY_EXCERPT] + "…"
    elif len(body) > BODY_EXCERPT:
        shown += "…"
    return redact(shown)


def _field(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str, *,
           required: bool = True) -> Any:
    value = obj.get(name)
    if value is None:
        if required:
            raise _Bad("missing-field", f"{where} has no {name!r}")
        return None
    # bool is an int in Python; no field crosswind reads may be a boolean
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _Bad("bad-field", f"{where}.{name} is {_show(value)}, not {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", dict: "an object", list: "an array"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _time(value: object, where: str) -> datetime:
    if value is None:
        raise _Bad("missing-field", f"{where} has no event time")
    if not isinstance(value, str) or "T" not in value.upper():
        raise _Bad("bad-time", f"{where} time {_show(value)} is not an ISO 8601 timestamp")
    try:
        t = datetime.fromisoformat(value)
        # Event Grid's examples include times without an offset; they are UTC.
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 with a positive offset
        raise _Bad("bad-time", f"{where} time {_show(value)} is not an ISO 8601 timestamp"
                   ) from None


def _size(obj: Mapping[str, Any], name: str, where: str) -> int | None:
    size: int | None = _field(obj, name, int, where, required=False)
    if size is not None and size < 0:
        raise _Bad("bad-field", f"{where}.{name} is negative ({size})")
    return size


def _etag(obj: Mapping[str, Any], name: str, where: str) -> str | None:
    etag: str | None = _field(obj, name, str, where, required=False)
    if etag is None:
        return None
    return etag.strip().strip('"') or None


def _check_key(key: str, where: str) -> str:
    if not key:
        raise _Bad("bad-key", f"{where}: the object key is empty")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise _Bad("bad-key", f"{where}: the key {_show(key)} is not valid Unicode "
                   "(a lone surrogate)") from None
    return key


def normalize_sequencer(value: str | None) -> str | None:
    """Lower-case hex, left-padded to ``SEQUENCER_WIDTH`` digits; ``None`` for none,
    or for one that is not a hex number of at most that width (an unknown
    sequencer is never newer: the applier reads the current state anyway)."""
    if value is None:
        return None
    text = value.strip().lower()
    if not text or any(c not in "0123456789abcdef" for c in text):
        return None
    digits = text.lstrip("0")
    if len(digits) > SEQUENCER_WIDTH:
        return None
    return digits.rjust(SEQUENCER_WIDTH, "0")


def _sequencer(value: object, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _Bad("bad-field", f"{where} sequencer is {_show(value)}, not a string")
    return normalize_sequencer(value)


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        # json's messages are one line: "Expecting value: line 1 column 1 (char 0)"
        raise PoisonMessage("not-json", f"not JSON ({_one_line(str(exc))[:80]})",
                            text) from None


def _decode_body(body: str) -> str:
    """The JSON text of an Azure queue message: plain, or base64 of UTF-8 JSON."""
    stripped = body.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise PoisonMessage("not-json", "an empty message", body)
    if stripped[:1] in ("{", "["):
        return stripped
    try:
        # some encoders wrap base64 in lines; whitespace is never part of it
        raw = base64.b64decode("".join(stripped.split()), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise PoisonMessage("not-json", "neither JSON nor base64 of JSON", body) from None
    text = text.lstrip("\ufeff \t\r\n")
    if text[:1] not in ("{", "["):
        raise PoisonMessage("not-json", "base64 of something that is not a JSON object "
                            "or array", body)
    return text


def _parsed(results: Iterable[ObjectEvent | _Ignore]) -> ParsedMessage:
    events: list[ObjectEvent] = []
    ignored: list[str] = []
    for r in results:
        if isinstance(r, _Ignore):
            ignored.append(r.reason)
        else:
            events.append(r)
    return ParsedMessage(tuple(events), tuple(ignored))


def _batch(items: Sequence[Any], what: str, body: str,
           one: Callable[..., ObjectEvent | _Ignore], *args: Any) -> ParsedMessage:
    if not items:
        return ParsedMessage((), (f"empty-batch: the message held no {what}",))
    results: list[ObjectEvent | _Ignore] = []
    for i, item in enumerate(items):
        where = f"{what[:-1]} [{i}]" if len(items) > 1 else what[:-1]
        if not isinstance(item, dict):
            raise PoisonMessage("not-an-event", f"{where} is {_show(item, 30)}, not an object",
                                body)
        try:
            results.append(one(item, where, *args))
        except _Bad as exc:
            raise PoisonMessage(exc.category, exc.detail, body) from None
    return _parsed(results)


# -- Azure: Event Grid on a Storage Queue ------------------------------------------
_SUBJECT_PREFIX = "/blobServices/default/containers/"

#: known Microsoft.Storage event types that do not change an object's bytes or
#: metadata, with why they are not followed
_AZURE_NOT_CHANGES = {
    "Microsoft.Storage.BlobTierChanged": "access tier only",
    "Microsoft.Storage.AsyncOperationInitiated": "a rehydration or copy from archive started",
    "Microsoft.Storage.BlobRenamed":
        "hierarchical-namespace rename; the reconcile finds the old and new names",
    "Microsoft.Storage.DirectoryCreated": "a directory is not an object",
    "Microsoft.Storage.DirectoryRenamed":
        "hierarchical-namespace directory rename; the reconcile finds the blobs",
    "Microsoft.Storage.DirectoryDeleted":
        "hierarchical-namespace directory delete; the reconcile finds the blobs",
    "Microsoft.Storage.BlobInventoryPolicyCompleted": "an inventory run report",
    "Microsoft.Storage.LifecyclePolicyCompleted": "a lifecycle run report",
}
_AZURE_OPS: dict[str, ChangeOp] = {
    "Microsoft.Storage.BlobCreated": "upsert",
    "Microsoft.Storage.BlobDeleted": "delete",
}


def split_blob_subject(subject: str) -> tuple[str, str] | None:
    """``(container, blob name)`` of an Event Grid blob subject, or None. The name
    is everything after the first ``/blobs/`` (container names cannot hold a
    ``/``), taken as it is."""
    if not subject.startswith(_SUBJECT_PREFIX):
        return None
    container, sep, name = subject[len(_SUBJECT_PREFIX):].partition("/blobs/")
    if not sep or not container or "/" in container:
        return None
    return container, name


def _path_style(host: str) -> bool:
    """Emulator URLs put the account in the path (``http://127.0.0.1:10000/acct/c/b``)."""
    if host in ("localhost", ""):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/]*)(.*)$", re.S)
#: what a percent-encoded URL path may hold (RFC 3986 unreserved, sub-delims, ':@/%')
_ENCODED_PATH = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$")


def split_blob_url(url: str) -> tuple[str, str] | None:
    """``(container, blob name)`` of a blob URL (``data.url``). Event Grid has sent
    these both percent-encoded and raw (spaces and all): a path that holds
    anything an encoder would have escaped is raw and taken as it is, otherwise it
    is percent-decoded. (Raw names that look encoded, such as ``a%41``, cannot be
    told apart: this is why the subject comes first.) The path runs to the end of
    the URL: a raw name may hold ``?`` or ``#``."""
    m = _URL.match(url)
    if m is None:
        return None
    try:
        host = urlsplit(f"//{m.group(1)}").hostname or ""
    except ValueError:
        return None
    path = m.group(2)[1:] if m.group(2).startswith("/") else m.group(2)
    if _path_style(host):
        path = path.partition("/")[2]
    container, sep, raw_name = path.partition("/")
    if not sep or not container:
        return None
    if not _ENCODED_PATH.match(path):
        return container, raw_name
    try:
        return unquote(container, errors="strict"), unquote(raw_name, errors="strict")
    except UnicodeDecodeError:
        return None


def _account_of(resource: object) -> str | None:
    """The storage account of ``/subscriptions/.../storageAccounts/{name}``."""
    if not isinstance(resource, str):
        return None
    parts = resource.split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "storageaccounts":
            return parts[i + 1] or None
    return None


def _mangled(name: str) -> bool:
    """Event Grid has been seen to replace characters outside the BMP by U+FFFD in
    the subject; the URL then carries the name intact."""
    if "\ufffd" in name:
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _azure_event(ev: Mapping[str, Any], where: str, container: str,
                 account: str | None) -> ObjectEvent | _Ignore:
    if "specversion" in ev:  # CloudEvents 1.0
        etype = _field(ev, "type", str, where)
        time_field, source_field = "time", "source"
    elif "eventType" in ev:  # Event Grid schema
        etype = _field(ev, "eventType", str, where)
        time_field, source_field = "eventTime", "topic"
    else:
        raise _Bad("unknown-schema", f"{where} is neither Event Grid (eventType) nor "
                   "CloudEvents (specversion)")
    if etype.startswith("Microsoft.EventGrid.Subscription"):
        return _Ignore(f"subscription-event: {etype}")
    op = _AZURE_OPS.get(etype)
    if op is None:
        if etype in _AZURE_NOT_CHANGES:
            return _Ignore(f"not-an-object-change: {etype} ({_AZURE_NOT_CHANGES[etype]})")
        if etype.startswith("Microsoft.Storage."):
            return _Ignore(f"unknown-event-type: {_show(etype)}")
        return _Ignore(f"not-storage: event type {_show(etype)}")

    data = ev.get("data")
    if data is None and isinstance(ev.get("data_base64"), str):
        # CloudEvents may carry its data as base64 instead; storage events do not,
        # but a relay might.
        try:
            data = json.loads(base64.b64decode(ev["data_base64"], validate=True))
        except (binascii.Error, ValueError):
            raise _Bad("bad-field", f"{where}.data_base64 is not base64 of JSON") from None
    if data is None:
        raise _Bad("missing-field", f"{where} has no 'data'")
    if not isinstance(data, dict):
        raise _Bad("bad-field", f"{where}.data is {_show(data, 30)}, not an object")

    subject = _field(ev, "subject", str, where, required=False)
    url = _field(data, "url", str, f"{where}.data", required=False)
    from_subject = split_blob_subject(subject) if subject is not None else None
    from_url = split_blob_url(url) if url is not None else None
    located = from_subject
    if located is None or (_mangled(located[1]) and from_url is not None):
        located = from_url or located
    if located is None:
        shown = _show(subject) if subject is not None else _show(url)
        raise _Bad("missing-field", f"{where} names no blob (subject {shown})")
    event_container, name = located

    event_account = _account_of(ev.get(source_field))
    if account is not None and event_account is not None \
            and event_account.lower() != account.lower():
        return _Ignore(f"other-account: {_show(event_account)}")
    if event_container != container:
        return _Ignore(f"other-container: {_show(event_container)}")
    key = _check_key(name, where)
    event_id = _field(ev, "id", str, where, required=False)
    return ObjectEvent(
        op=op, container=container, key=key,
        event_time=_time(ev.get(time_field), where),
        sequencer=_sequencer(data.get("sequencer"), where),
        etag=_etag(data, "eTag", f"{where}.data") if op == "upsert" else None,
        size=_size(data, "contentLength", f"{where}.data") if op == "upsert" else None,
        event_id=event_id, event_type=etype,
    )


def parse_azure_message(body: str, *, container: str,
                        account: str | None = None) -> ParsedMessage:
    """The blob events for ``container`` in one Azure Storage Queue message written by
    Event Grid (either schema, plain or base64, one event or an array). Events of
    another container (or, when ``account`` is given, another storage account) are
    ignored with a reason. Raises ``PoisonMessage``."""
    # Reasons quote the decoded JSON: an excerpt of base64 would tell nobody anything.
    text = _decode_body(body)
    doc = _load_json(text)
    if isinstance(doc, dict):
        return _batch([doc], "events", text, _azure_event, container, account)
    if isinstance(doc, list):
        return _batch(doc, "events", text, _azure_event, container, account)
    raise PoisonMessage("unknown-schema", "JSON that is neither an event nor an array", text)


# -- AWS: S3 event notifications on SQS --------------------------------------------
#: S3 notification event-name prefixes that change the current object
_S3_OPS: dict[str, ChangeOp] = {
    "ObjectCreated:": "upsert",
    "ObjectRemoved:": "delete",       # Delete, DeleteMarkerCreated
    "LifecycleExpiration:": "delete",  # Delete, DeleteMarkerCreated: the current version goes
}
_S3_NOT_CHANGES = {
    "ObjectRestore:": "a restore from archive; the bytes are unchanged",
    "Replication:": "replication status",
    "LifecycleTransition": "storage class only",
    "IntelligentTiering": "access tier only",
    "ObjectTagging:": "tags are not replicated",
    "ObjectAcl:": "ACLs are not replicated",
    "ReducedRedundancyLostObject": "the object's bytes were lost at the source; "
                                   "nothing to copy",
}
_EB_OPS: dict[str, ChangeOp] = {"Object Created": "upsert", "Object Deleted": "delete"}
_EB_NOT_CHANGES = {
    "Object Restore Initiated": "a restore from archive; the bytes are unchanged",
    "Object Restore Completed": "a restore from archive; the bytes are unchanged",
    "Object Restore Expired": "a restored copy expired; the object stays",
    "Object Tags Added": "tags are not replicated",
    "Object Tags Deleted": "tags are not replicated",
    "Object ACL Updated": "ACLs are not replicated",
    "Object Storage Class Changed": "storage class only",
    "Object Access Tier Changed": "access tier only",
}


def _s3_record(rec: Mapping[str, Any], where: str, bucket: str) -> ObjectEvent | _Ignore:
    source = rec.get("eventSource")
    # MinIO and other S3-compatible servers say "minio:s3" and the like
    if source is not None and not (isinstance(source, str) and source.endswith(":s3")):
        return _Ignore(f"not-storage: eventSource {_show(source)}")
    name = _field(rec, "eventName", str, where).removeprefix("s3:")
    op = next((o for prefix, o in _S3_OPS.items() if name.startswith(prefix)), None)
    if op is None:
        why = next((w for prefix, w in _S3_NOT_CHANGES.items() if name.startswith(prefix)),
                   None)
        if why is not None:
            return _Ignore(f"not-an-object-change: {name} ({why})")
        return _Ignore(f"unknown-event-type: {_show(name)}")
    s3 = _field(rec, "s3", dict, where)
    b = _field(_field(s3, "bucket", dict, f"{where}.s3"), "name", str, f"{where}.s3.bucket")
    obj = _field(s3, "object", dict, f"{where}.s3")
    if b != bucket:
        return _Ignore(f"other-bucket: {_show(b)}")
    raw = _field(obj, "key", str, f"{where}.s3.object")
    try:
        key = unquote_plus(raw, errors="strict")
    except UnicodeDecodeError:
        raise _Bad("bad-key", f"{where}: the key {_show(raw)} decodes to bytes that are "
                   "not UTF-8") from None
    elements = rec.get("responseElements")
    rid = elements.get("x-amz-request-id") if isinstance(elements, dict) else None
    return ObjectEvent(
        op=op, container=bucket, key=_check_key(key, where),
        event_time=_time(rec.get("eventTime"), where),
        sequencer=_sequencer(obj.get("sequencer"), where),
        etag=_etag(obj, "eTag", f"{where}.s3.object") if op == "upsert" else None,
        size=_size(obj, "size", f"{where}.s3.object") if op == "upsert" else None,
        event_id=rid if isinstance(rid, str) else None, event_type=name,
    )


def _eventbridge(ev: Mapping[str, Any], body: str, bucket: str) -> ParsedMessage:
    where = "event"
    try:
        source = ev.get("source")
        if source != "aws.s3":
            return ParsedMessage((), (f"not-storage: EventBridge source {_show(source)}",))
        dtype = _field(ev, "detail-type", str, where)
        op = _EB_OPS.get(dtype)
        if op is None:
            if dtype in _EB_NOT_CHANGES:
                reason = f"not-an-object-change: {dtype} ({_EB_NOT_CHANGES[dtype]})"
            else:
                reason = f"unknown-event-type: {_show(dtype)}"
            return ParsedMessage((), (reason,))
        detail = _field(ev, "detail", dict, where)
        b = _field(_field(detail, "bucket", dict, f"{where}.detail"), "name", str,
                   f"{where}.detail.bucket")
        if b != bucket:
            return ParsedMessage((), (f"other-bucket: {_show(b)}",))
        obj = _field(detail, "object", dict, f"{where}.detail")
        # EventBridge sends keys as they are (not URL-encoded, unlike notifications)
        key = _check_key(_field(obj, "key", str, f"{where}.detail.object"), where)
        event = ObjectEvent(
            op=op, container=bucket, key=key, event_time=_time(ev.get("time"), where),
            sequencer=_sequencer(obj.get("sequencer"), where),
            etag=_etag(obj, "etag", f"{where}.detail.object") if op == "upsert" else None,
            size=_size(obj, "size", f"{where}.detail.object") if op == "upsert" else None,
            event_id=ev.get("id") if isinstance(ev.get("id"), str) else None,
            event_type=dtype,
        )
    except _Bad as exc:
        raise PoisonMessage(exc.category, exc.detail, body) from None
    return ParsedMessage((event,))


def _s3_doc(doc: Any, body: str, bucket: str, *, inside_sns: bool) -> ParsedMessage:
    if not isinstance(doc, dict):
        raise PoisonMessage("unknown-schema", "JSON that is not an object", body)
    kind = doc.get("Type")
    if kind == "Notification" and "Message" in doc and not inside_sns:
        message = doc["Message"]
        if not isinstance(message, str):
            raise PoisonMessage("bad-field", "SNS Message is not a string", body)
        return _s3_doc(_load_json(message), body, bucket, inside_sns=True)
    if kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation") and not inside_sns:
        return ParsedMessage((), (f"sns-subscription: {kind}",))
    if "Records" in doc:
        records = doc["Records"]
        if not isinstance(records, list):
            raise PoisonMessage("bad-field", "Records is not an array", body)
        return _batch(records, "records", body, _s3_record, bucket)
    if doc.get("Event") == "s3:TestEvent":
        return ParsedMessage((), (f"test-event: s3:TestEvent for bucket "
                                  f"{_show(doc.get('Bucket'))}",))
    if "detail-type" in doc and "source" in doc:
        return _eventbridge(doc, body, bucket)
    raise PoisonMessage("unknown-schema", "no Records, SNS envelope or EventBridge event",
                        body)


def parse_s3_message(body: str, *, bucket: str) -> ParsedMessage:
    """The object events for ``bucket`` in one SQS message: S3 event notifications
    (direct or wrapped in SNS) or an EventBridge event. Events of another bucket
    are ignored with a reason. Raises ``PoisonMessage``."""
    return _s3_doc(_load_json(body), body, bucket, inside_sns=False)


# -- building what the clouds deliver (tests, the demo, the load generator) --------
Schema = Literal["eventgrid", "cloudevents"]
Envelope = Literal["direct", "sns", "eventbridge"]


def _iso(t: datetime) -> str:
    """Event Grid and S3 style: UTC with a ``Z``."""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def blob_event(op: ChangeOp, container: str, key: str, *, event_time: datetime,
               account: str = "devstoreaccount1",
               blob_endpoint: str = "https://devstoreaccount1.blob.core.windows.net",
               schema: Schema = "eventgrid", sequencer: str | None = None,
               etag: str | None = None, size: int | None = None,
               event_id: str = "00000000-0000-0000-0000-000000000000") -> dict[str, Any]:
    """An Event Grid blob event as Azure writes it: the name as is in ``subject``,
    percent-encoded in ``data.url`` (as the Azure SDKs encode blob URLs)."""
    data: dict[str, Any] = {
        "api": "PutBlob" if op == "upsert" else "DeleteBlob",
        "requestId": event_id, "contentType": "application/octet-stream",
        "blobType": "BlockBlob",
        "url": f"{blob_endpoint.rstrip('/')}/{quote(container)}/{quote(key, safe='/~')}",
    }
    if sequencer is not None:
        data["sequencer"] = sequencer
    if op == "upsert":
        data["eTag"] = f'"{etag}"' if etag else '"0x8D4BCC2E4835CD0"'
        data["contentLength"] = size if size is not None else 0
    topic = (f"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/"
             f"providers/Microsoft.Storage/storageAccounts/{account}")
    etype = "Microsoft.Storage.BlobCreated" if op == "upsert" else "Microsoft.Storage.BlobDeleted"
    subject = f"{_SUBJECT_PREFIX}{container}/blobs/{key}"
    if schema == "cloudevents":
        return {"source": topic, "subject": subject, "type": etype, "time": _iso(event_time),
                "id": event_id, "data": data, "specversion": "1.0"}
    return {"topic": topic, "subject": subject, "eventType": etype,
            "eventTime": _iso(event_time), "id": event_id, "data": data,
            "dataVersion": "", "metadataVersion": "1"}


def azure_queue_body(events: Mapping[str, Any] | Sequence[Mapping[str, Any]], *,
                     encoding: Literal["base64", "plain"] = "base64") -> str:
    """The text of the Storage Queue message Event Grid writes for ``events``:
    base64 of the UTF-8 JSON (Event Grid's current behaviour) or plain JSON."""
    text = json.dumps(events, ensure_ascii=False, separators=(",", ":"))
    if encoding == "plain":
        return text
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def s3_record(op: ChangeOp, bucket: str, key: str, *, event_time: datetime,
              event_name: str | None = None, sequencer: str | None = None,
              etag: str | None = None, size: int | None = None,
              request_id: str = "C3D13FE58DE4C810") -> dict[str, Any]:
    """One S3 event notification record, key URL-encoded as S3 encodes it."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/")}
    if op == "upsert":
        obj["size"] = size if size is not None else 0
        obj["eTag"] = etag or "d41d8cd98f00b204e9800998ecf8427e"
    if sequencer is not None:
        obj["sequencer"] = sequencer
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": _iso(event_time),
        "eventName": event_name or ("ObjectCreated:Put" if op == "upsert"
                                    else "ObjectRemoved:Delete"),
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": request_id, "x-amz-id-2": "example"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "crosswind",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "EXAMPLE"},
                          "arn": f"arn:aws:s3:::{bucket}"},
               "object": obj},
    }


def s3_queue_body(op: ChangeOp, bucket: str, key: str, *, event_time: datetime,
                  envelope: Envelope = "direct", sequencer: str | None = None,
                  etag: str | None = None, size: int | None = None,
                  event_id: str = "17793124-05d4-b198-2fde-7ededc63b103") -> str:
    """The SQS message body S3 would deliver for one change, in ``envelope``."""
    if envelope == "eventbridge":
        obj: dict[str, Any] = {"key": key}
        if op == "upsert":
            obj["size"] = size if size is not None else 0
            obj["etag"] = etag or "d41d8cd98f00b204e9800998ecf8427e"
        if sequencer is not None:
            obj["sequencer"] = sequencer
        detail: dict[str, Any] = {
            "version": "0", "bucket": {"name": bucket}, "object": obj,
            "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012",
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject" if op == "upsert" else "DeleteObject",
        }
        if op == "delete":
            detail["deletion-type"] = "Permanently Deleted"
        return json.dumps({
            "version": "0", "id": event_id,
            "detail-type": "Object Created" if op == "upsert" else "Object Deleted",
            "source": "aws.s3", "account": "123456789012", "time": _iso(event_time),
            "region": "us-east-1", "resources": [f"arn:aws:s3:::{bucket}"], "detail": detail,
        })
    records = json.dumps({"Records": [s3_record(op, bucket, key, event_time=event_time,
                                                sequencer=sequencer, etag=etag, size=size)]})
    if envelope == "sns":
        return json.dumps({
            "Type": "Notification", "MessageId": event_id,
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:crosswind",
            "Subject": "Amazon S3 Notification", "Message": records,
            "Timestamp": _iso(event_time), "SignatureVersion": "1",
        })
    return records
