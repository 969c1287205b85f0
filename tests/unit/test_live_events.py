"""The event parsers (``live/events.py``): what Event Grid writes to a Storage Queue
and what S3 (directly, through SNS or EventBridge) writes to SQS, odd keys, the
reasons for what is skipped, and a fuzz of garbage that must never crash them."""

from __future__ import annotations

import base64
import json
import random
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crosswind.live.changes import ParsedMessage, sequencer_newer
from crosswind.live.events import (
    IGNORE_CATEGORIES,
    POISON_CATEGORIES,
    SEQUENCER_WIDTH,
    PoisonMessage,
    azure_queue_body,
    blob_event,
    normalize_sequencer,
    parse_azure_message,
    parse_s3_message,
    reason_category,
    s3_queue_body,
    s3_record,
    split_blob_subject,
    split_blob_url,
)

T0 = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)
ODD_KEYS = [
    "plain.json", "with space.txt", "a+b.txt", "100%.txt", "%41%20literal", "ünï/cødé/名前.json",
    "emoji 😀/🚀.bin", "a//b", "trailing/", "/leading", "x/blobs/y", "q?x=1#frag&y;z:w",
    "tab\tand\nnewline", "..", "a/../b", "+", "%", " ",
]

# Written after the examples in Microsoft's "Azure Blob Storage as an Event Grid
# source" page: the same fields and shapes, our own values.
EG_CREATED = {
    "topic": "/subscriptions/1b2c/resourceGroups/rg/providers/Microsoft.Storage/"
             "storageAccounts/flightsacct",
    "subject": "/blobServices/default/containers/events/blobs/2026/12/01/FX123.json",
    "eventType": "Microsoft.Storage.BlobCreated",
    "eventTime": "2026-12-01T12:00:00.9584103Z",
    "id": "831e1650-001e-001b-66ab-eeb76e069631",
    "data": {
        "api": "PutBlockList", "clientRequestId": "6d79dbfb", "requestId": "831e1650",
        "eTag": "\"0x8D4BCC2E4835CD0\"", "contentType": "application/json",
        "contentLength": 524288, "blobType": "BlockBlob",
        "url": "https://flightsacct.blob.core.windows.net/events/2026/12/01/FX123.json",
        "sequencer": "00000000000004420000000000028963",
        "storageDiagnostics": {"batchId": "b68529f3"},
    },
    "dataVersion": "", "metadataVersion": "1",
}
CE_DELETED = {
    "source": "/subscriptions/1b2c/resourceGroups/rg/providers/Microsoft.Storage/"
              "storageAccounts/flightsacct",
    "subject": "/blobServices/default/containers/events/blobs/old.json",
    "type": "Microsoft.Storage.BlobDeleted",
    "time": "2026-12-01T12:00:01.5674003Z",
    "id": "4c2359fe-001e-00ba-0e04-58586806d298",
    "data": {
        "api": "DeleteBlob", "requestId": "4c2359fe", "contentType": "text/plain",
        "blobType": "BlockBlob",
        "url": "https://flightsacct.blob.core.windows.net/events/old.json",
        "sequencer": "0000000000000281000000000002F5CA",
    },
    "specversion": "1.0",
}


def azure(body: str, container: str = "events", account: str | None = None) -> ParsedMessage:
    return parse_azure_message(body, container=container, account=account)


def s3(body: str, bucket: str = "flights") -> ParsedMessage:
    return parse_s3_message(body, bucket=bucket)


# -- Azure: schemas, encodings, batches ------------------------------------------
@pytest.mark.parametrize("encoding", ["plain", "base64"])
def test_event_grid_schema_blob_created(encoding: str) -> None:
    parsed = azure(azure_queue_body(EG_CREATED, encoding=encoding))  # type: ignore[arg-type]
    (ev,) = parsed.events
    assert parsed.ignored == ()
    assert (ev.op, ev.container, ev.key) == ("upsert", "events", "2026/12/01/FX123.json")
    assert ev.event_time == datetime(2026, 12, 1, 12, 0, 0, 958410, tzinfo=UTC)
    assert ev.etag == "0x8D4BCC2E4835CD0" and ev.size == 524288
    assert ev.sequencer == "00000000000004420000000000028963".rjust(SEQUENCER_WIDTH, "0")
    assert ev.event_id == "831e1650-001e-001b-66ab-eeb76e069631"
    assert ev.event_type == "Microsoft.Storage.BlobCreated"


@pytest.mark.parametrize("encoding", ["plain", "base64"])
def test_cloudevents_schema_blob_deleted(encoding: str) -> None:
    (ev,) = azure(azure_queue_body([CE_DELETED], encoding=encoding)).events  # type: ignore[arg-type]
    assert (ev.op, ev.key, ev.etag, ev.size) == ("delete", "old.json", None, None)
    assert ev.sequencer == "0000000000000281000000000002f5ca".rjust(SEQUENCER_WIDTH, "0")
    assert ev.event_time.tzinfo is UTC


def test_an_array_of_events_in_one_message() -> None:
    parsed = azure(json.dumps([EG_CREATED, CE_DELETED, {**EG_CREATED, "subject":
                   "/blobServices/default/containers/other/blobs/x"}]))
    assert [e.key for e in parsed.events] == ["2026/12/01/FX123.json", "old.json"]
    assert parsed.ignored == ("other-container: 'other'",)


def test_whitespace_bom_and_wrapped_base64_are_read() -> None:
    text = json.dumps(EG_CREATED)
    b64 = base64.encodebytes(text.encode()).decode()  # 76-column lines
    assert "\n" in b64.strip()
    assert azure(b64).events[0].key == "2026/12/01/FX123.json"
    assert azure("\ufeff  " + text + "\n").events[0].key == "2026/12/01/FX123.json"


def test_empty_batch_is_ignored_with_a_reason() -> None:
    assert azure("[]") == ParsedMessage((), ("empty-batch: the message held no events",))
    assert s3('{"Records": []}').ignored == ("empty-batch: the message held no records",)


@pytest.mark.parametrize("etype", [
    "Microsoft.EventGrid.SubscriptionValidationEvent",
    "Microsoft.EventGrid.SubscriptionDeletedEvent",
])
def test_subscription_events_are_ignored(etype: str) -> None:
    ev = {"id": "1", "topic": "t", "subject": "", "eventType": etype, "eventTime":
          "2026-12-01T12:00:00Z", "data": {"validationCode": "512d38b6"}, "dataVersion": "2"}
    assert [reason_category(r) for r in azure(json.dumps(ev)).ignored] == ["subscription-event"]


@pytest.mark.parametrize("etype", [
    "Microsoft.Storage.BlobTierChanged", "Microsoft.Storage.AsyncOperationInitiated",
    "Microsoft.Storage.BlobRenamed", "Microsoft.Storage.DirectoryCreated",
    "Microsoft.Storage.DirectoryRenamed", "Microsoft.Storage.DirectoryDeleted",
    "Microsoft.Storage.LifecyclePolicyCompleted", "Microsoft.Storage.BlobInventoryPolicyCompleted",
])
def test_storage_events_that_change_no_object_are_ignored_with_why(etype: str) -> None:
    (reason,) = azure(json.dumps({**EG_CREATED, "eventType": etype})).ignored
    assert reason.startswith(f"not-an-object-change: {etype} (")


def test_unknown_and_foreign_event_types_are_ignored() -> None:
    teleported = {**EG_CREATED, "eventType": "Microsoft.Storage.BlobTeleported"}
    (r1,) = azure(json.dumps(teleported)).ignored
    (r2,) = azure(json.dumps({**CE_DELETED, "type": "Microsoft.KeyVault.SecretNewVersionCreated"})
                  ).ignored
    assert reason_category(r1) == "unknown-event-type"
    assert reason_category(r2) == "not-storage"


def test_other_account_is_ignored_only_when_an_account_is_given() -> None:
    body = json.dumps(EG_CREATED)
    assert azure(body, account="flightsacct").events
    assert azure(body, account="FLIGHTSACCT").events  # account names are case-insensitive
    assert azure(body, account="another").ignored == ("other-account: 'flightsacct'",)
    no_topic = {k: v for k, v in EG_CREATED.items() if k != "topic"}
    assert azure(json.dumps(no_topic), account="another").events  # nothing to compare


# -- Azure: the blob name ---------------------------------------------------------
@pytest.mark.parametrize("key", ODD_KEYS)
def test_odd_blob_names_come_from_the_subject_as_they_are(key: str) -> None:
    ev = blob_event("upsert", "events", key, event_time=T0)
    assert ev["subject"] == f"/blobServices/default/containers/events/blobs/{key}"
    (parsed,) = azure(azure_queue_body(ev)).events
    assert parsed.key == key


@pytest.mark.parametrize("key", ODD_KEYS)
def test_odd_blob_names_from_the_url_alone(key: str) -> None:
    ev = blob_event("delete", "events", key, event_time=T0,
                    blob_endpoint="http://127.0.0.1:10000/devstoreaccount1")
    del ev["subject"]
    assert azure(json.dumps(ev)).events[0].key == key
    ev2 = blob_event("delete", "events", key, event_time=T0)
    del ev2["subject"]
    assert azure(json.dumps(ev2)).events[0].key == key


@pytest.mark.parametrize("name", ["New Folder/1 BU46_x.jpeg", "ünï/名前.json",
                                  "q?x=1#frag y", "100%.txt", "a%zz b"])
def test_raw_urls_are_taken_as_they_are(name: str) -> None:
    # Event Grid has delivered data.url unencoded, spaces and all, next to the
    # subject (a 2023 BlobCreated event: ".../container1/New Folder/1 BU46...jpeg")
    ev = blob_event("upsert", "events", name, event_time=T0)
    del ev["subject"]
    ev["data"]["url"] = f"https://acct.blob.core.windows.net/events/{name}"
    assert azure(json.dumps(ev)).events[0].key == name


def test_a_mangled_subject_falls_back_to_the_url() -> None:
    # Event Grid has delivered subjects with U+FFFD in place of characters
    # outside the BMP (Azure-Samples/azure-event-grid-viewer#9); the URL is intact.
    ev = blob_event("upsert", "events", "log_14💎.log", event_time=T0)
    ev["subject"] = "/blobServices/default/containers/events/blobs/log_14\ufffd\ufffd.log"
    assert azure(json.dumps(ev)).events[0].key == "log_14💎.log"


def test_the_subject_wins_when_subject_and_url_disagree() -> None:
    ev = blob_event("upsert", "events", "a%20b", event_time=T0)
    ev["data"]["url"] = "https://devstoreaccount1.blob.core.windows.net/events/a%20b"  # 'a b'
    assert azure(json.dumps(ev)).events[0].key == "a%20b"


def test_split_helpers() -> None:
    assert split_blob_subject("/blobServices/default/containers/c/blobs/a/blobs/b") == \
        ("c", "a/blobs/b")
    assert split_blob_subject("/blobServices/default/containers/c") is None
    assert split_blob_subject("/blobServices/default/containers//blobs/x") is None
    assert split_blob_url("https://acct.blob.core.windows.net/c/a%2Bb%20c") == ("c", "a+b c")
    assert split_blob_url("http://127.0.0.1:10000/devstoreaccount1/c/x%2F%2Fy") == ("c", "x//y")
    assert split_blob_url("http://localhost:10000/acct/c") is None
    assert split_blob_url("https://acct.blob.core.windows.net/c/%ff") is None  # not UTF-8


def test_data_lake_urls_and_events() -> None:
    ev = blob_event("upsert", "fs", "dir/file.csv", event_time=T0)
    ev["data"]["url"] = "https://acct.dfs.core.windows.net/fs/dir/file.csv"
    ev["data"]["api"], ev["data"]["contentOffset"], ev["dataVersion"] = "FlushWithClose", 0, "2"
    assert azure(json.dumps(ev), container="fs").events[0].key == "dir/file.csv"


# -- S3 ---------------------------------------------------------------------------
def test_s3_notification_keys_are_url_decoded() -> None:
    # as S3 writes them: "+" for a space, "%2B" for a plus
    rec = s3_record("upsert", "flights", "x", event_time=T0)
    rec["s3"]["object"]["key"] = "red+flower%2Bc%2B%2B%25.jpg"
    (ev,) = s3(json.dumps({"Records": [rec]})).events
    assert ev.key == "red flower+c++%.jpg"


@pytest.mark.parametrize("envelope", ["direct", "sns", "eventbridge"])
@pytest.mark.parametrize("key", ODD_KEYS)
def test_s3_envelopes_and_odd_keys(envelope: str, key: str) -> None:
    for op in ("upsert", "delete"):
        body = s3_queue_body(op, "flights", key, event_time=T0, envelope=envelope,  # type: ignore[arg-type]
                             sequencer="0055AED6DCD90281E5", etag="abc", size=7)
        (ev,) = s3(body).events
        assert (ev.op, ev.container, ev.key, ev.event_time) == (op, "flights", key, T0)
        assert ev.sequencer == "55aed6dcd90281e5".rjust(SEQUENCER_WIDTH, "0")
        assert (ev.etag, ev.size) == (("abc", 7) if op == "upsert" else (None, None))


def test_eventbridge_keys_are_not_decoded() -> None:
    body = s3_queue_body("upsert", "flights", "a+b%20c", event_time=T0, envelope="eventbridge")
    assert s3(body).events[0].key == "a+b%20c"


@pytest.mark.parametrize(("name", "op"), [
    ("ObjectCreated:Put", "upsert"), ("ObjectCreated:Post", "upsert"),
    ("ObjectCreated:Copy", "upsert"), ("ObjectCreated:CompleteMultipartUpload", "upsert"),
    ("s3:ObjectCreated:Put", "upsert"), ("ObjectRemoved:Delete", "delete"),
    ("ObjectRemoved:DeleteMarkerCreated", "delete"), ("LifecycleExpiration:Delete", "delete"),
    ("LifecycleExpiration:DeleteMarkerCreated", "delete"),
])
def test_s3_event_names_that_change_objects(name: str, op: str) -> None:
    rec = s3_record("upsert", "flights", "k", event_time=T0, event_name=name)
    assert s3(json.dumps({"Records": [rec]})).events[0].op == op


@pytest.mark.parametrize("name", [
    "ObjectRestore:Post", "ObjectRestore:Completed", "ObjectRestore:Delete",
    "Replication:OperationFailedReplication", "LifecycleTransition", "IntelligentTiering",
    "ObjectTagging:Put", "ObjectTagging:Delete", "ObjectAcl:Put", "ReducedRedundancyLostObject",
])
def test_s3_event_names_that_change_nothing_are_ignored(name: str) -> None:
    rec = s3_record("upsert", "flights", "k", event_time=T0, event_name=name)
    (reason,) = s3(json.dumps({"Records": [rec]})).ignored
    assert reason.startswith(f"not-an-object-change: {name} (")


@pytest.mark.parametrize("dtype", [
    "Object Restore Initiated", "Object Restore Completed", "Object Restore Expired",
    "Object Tags Added", "Object Tags Deleted", "Object ACL Updated",
    "Object Storage Class Changed", "Object Access Tier Changed",
])
def test_eventbridge_types_that_change_nothing_are_ignored(dtype: str) -> None:
    doc = json.loads(s3_queue_body("upsert", "flights", "k", event_time=T0,
                                   envelope="eventbridge"))
    doc["detail-type"] = dtype
    (reason,) = s3(json.dumps(doc)).ignored
    assert reason_category(reason) == "not-an-object-change"


def test_s3_test_event_sns_confirmation_and_foreign_sources() -> None:
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time":
                  "2026-12-01T12:00:00.000Z", "Bucket": "flights", "RequestId": "R",
                  "HostId": "H"}
    assert reason_category(s3(json.dumps(test_event)).ignored[0]) == "test-event"
    sns_wrapped = {"Type": "Notification", "Message": json.dumps(test_event)}
    assert reason_category(s3(json.dumps(sns_wrapped)).ignored[0]) == "test-event"
    confirm = {"Type": "SubscriptionConfirmation", "Message": "You have chosen to subscribe",
               "SubscribeURL": "https://sns.example/?Action=ConfirmSubscription"}
    assert reason_category(s3(json.dumps(confirm)).ignored[0]) == "sns-subscription"
    other = {"version": "0", "detail-type": "EC2 Instance State-change Notification",
             "source": "aws.ec2", "time": "2026-12-01T12:00:00Z", "detail": {}}
    assert reason_category(s3(json.dumps(other)).ignored[0]) == "not-storage"
    rec = s3_record("upsert", "flights", "k", event_time=T0)
    rec["eventSource"] = "aws:dynamodb"
    assert reason_category(s3(json.dumps({"Records": [rec]})).ignored[0]) == "not-storage"
    rec["eventSource"] = "minio:s3"
    assert s3(json.dumps({"Records": [rec]})).events


def test_other_bucket_is_ignored() -> None:
    for envelope in ("direct", "sns", "eventbridge"):
        body = s3_queue_body("upsert", "someone-else", "k", event_time=T0,
                             envelope=envelope)  # type: ignore[arg-type]
        assert s3(body).ignored == ("other-bucket: 'someone-else'",)


def test_moto_bodies_without_sequencer() -> None:
    # moto: no sequencer, '/' encoded as %2F
    rec = s3_record("upsert", "flights", "x", event_time=T0)
    rec["s3"]["object"] = {"key": "a%2F%2Fb", "size": 2, "eTag": "49f68a5c"}
    (ev,) = s3(json.dumps({"Records": [rec]})).events
    assert (ev.key, ev.sequencer) == ("a//b", None)


# -- poison -----------------------------------------------------------------------
def _poison(fn: Any, body: str) -> PoisonMessage:
    with pytest.raises(PoisonMessage) as info:
        fn(body)
    exc = info.value
    assert exc.category in POISON_CATEGORIES
    assert "\n" not in exc.reason and "\r" not in exc.reason and len(exc.reason) <= 400
    assert str(exc) == exc.reason
    return exc


@pytest.mark.parametrize(("body", "category"), [
    ("", "not-json"), ("   ", "not-json"), ("hello world", "not-json"), ("{", "not-json"),
    (base64.b64encode(b"\xff\xfe").decode(), "not-json"), ("bm90IGpzb24=", "not-json"),
    ('"a string"', "not-json"), ("42", "not-json"), ("null", "not-json"),
    ("[1, 2]", "not-an-event"), ('{"a": 1}', "unknown-schema"),
    (json.dumps({**EG_CREATED, "data": None}), "missing-field"),
    (json.dumps({**EG_CREATED, "data": "x"}), "bad-field"),
    (json.dumps({**EG_CREATED, "eventTime": "yesterday"}), "bad-time"),
    (json.dumps({**EG_CREATED, "eventTime": "0001-01-01T00:00:00+05:00"}), "bad-time"),
    (json.dumps({k: v for k, v in EG_CREATED.items() if k != "eventTime"}), "missing-field"),
    (json.dumps({**EG_CREATED, "subject": "/nope", "data": {"url": 5}}), "bad-field"),
    (json.dumps({**EG_CREATED, "subject": "/nope", "data": {}}), "missing-field"),
    (json.dumps({**EG_CREATED, "subject": "/blobServices/default/containers/events/blobs/"}),
     "bad-key"),
    (json.dumps({**EG_CREATED, "data": {**EG_CREATED["data"], "contentLength": "5"}}),  # type: ignore[dict-item]
     "bad-field"),
    (json.dumps({**EG_CREATED, "data": {**EG_CREATED["data"], "contentLength": -1}}),  # type: ignore[dict-item]
     "bad-field"),
    (json.dumps({**EG_CREATED, "data": {**EG_CREATED["data"], "contentLength": True}}),  # type: ignore[dict-item]
     "bad-field"),
    (json.dumps({**EG_CREATED, "data": {**EG_CREATED["data"], "sequencer": 12}}),  # type: ignore[dict-item]
     "bad-field"),
    (json.dumps({**EG_CREATED, "eventType": 7}), "bad-field"),
    ('{"eventType": "Microsoft.Storage.BlobCreated", "subject": '
     '"/blobServices/default/containers/events/blobs/\\ud83d", "eventTime": '
     '"2026-12-01T12:00:00Z", "data": {}}', "bad-key"),
])
def test_azure_poison(body: str, category: str) -> None:
    assert _poison(azure, body).category == category


def _rec(**changes: Any) -> str:
    rec = s3_record("upsert", "flights", "k", event_time=T0)
    for path, value in changes.items():
        target = rec
        *parents, last = path.split("__")
        for p in parents:
            target = target[p]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return json.dumps({"Records": [rec]})


@pytest.mark.parametrize(("body", "category"), [
    ("", "not-json"), ("<xml/>", "not-json"), ("[]", "unknown-schema"),
    ('{"Records": {}}', "bad-field"), ('{"Records": ["x"]}', "not-an-event"),
    ('{"Type": "Notification", "Message": 5}', "bad-field"),
    ('{"Type": "Notification", "Message": "not json"}', "not-json"),
    ('{"Type": "Notification", "Message": "{\\"Type\\": \\"Notification\\", '
     '\\"Message\\": \\"{}\\"}"}', "unknown-schema"),  # SNS in SNS is not a thing
    ('{"hello": "world"}', "unknown-schema"),
    (_rec(eventName=...), "missing-field"), (_rec(s3=...), "missing-field"),
    (_rec(s3__object__key=...), "missing-field"), (_rec(s3__object__key=""), "bad-key"),
    (_rec(s3__object__key="%ff%fe"), "bad-key"), (_rec(s3__object__size="big"), "bad-field"),
    (_rec(eventTime="2026-13-45T00:00:00Z"), "bad-time"), (_rec(eventTime=...), "missing-field"),
    (_rec(s3__bucket=[]), "bad-field"),
    (json.dumps({"source": "aws.s3", "detail-type": "Object Created", "detail": {}}),
     "missing-field"),
    (json.dumps({"source": "aws.s3", "detail-type": "Object Created", "time": "x",
                 "detail": {"bucket": {"name": "flights"}, "object": {"key": "k"}}}),
     "bad-time"),
])
def test_s3_poison(body: str, category: str) -> None:
    assert _poison(s3, body).category == category


def test_poison_reasons_quote_little_of_the_body() -> None:
    huge = "x" * 100_000
    exc = _poison(azure, huge)
    assert exc.reason.count("x") <= 100
    exc = _poison(s3, '{"a": "' + "\n" * 5000 + '"}')
    assert len(exc.reason) <= 400
    # base64 bodies are quoted decoded, so the reason says something readable
    exc = _poison(azure, azure_queue_body({"eventType": "Microsoft.Storage.BlobCreated"}))
    assert "Microsoft.Storage.BlobCreated" in exc.reason


def test_poison_reasons_redact_secrets() -> None:
    sig = "abcdefghijklmnopqrstuvwxyz0123456789%2B%2F%3D"
    url = f"https://a.blob.core.windows.net/c?sv=2024-01-01&sig={sig}"
    exc = _poison(azure, url)  # quoted in the body excerpt
    assert "sig=" in exc.reason and sig[:20] not in exc.reason
    exc = _poison(azure, json.dumps({**EG_CREATED, "subject": url, "data": {}}))
    assert "sig=" in exc.reason and sig[:20] not in exc.reason  # quoted as the subject


# -- sequencers -------------------------------------------------------------------
def test_sequencer_normalisation() -> None:
    assert normalize_sequencer(None) is None
    assert normalize_sequencer("") is None and normalize_sequencer("  ") is None
    assert normalize_sequencer("not-hex") is None
    assert normalize_sequencer("f" * (SEQUENCER_WIDTH + 1)) is None
    assert normalize_sequencer("0" * 70 + "1") == "1".rjust(SEQUENCER_WIDTH, "0")
    mixed = "000000000000000000000000000089A4000000000018d6ea"  # from Microsoft's examples
    assert normalize_sequencer(mixed) == mixed.lower().rjust(SEQUENCER_WIDTH, "0")


@given(st.integers(0, 16**SEQUENCER_WIDTH - 1), st.integers(0, 16**SEQUENCER_WIDTH - 1),
       st.booleans(), st.booleans())
def test_normalised_sequencers_order_like_numbers(a: int, b: int, upper: bool, pad: bool) -> None:
    def raw(n: int) -> str:
        text = f"{n:x}"
        text = text.upper() if upper else text
        return text.rjust(len(text) + 5, "0") if pad else text

    na, nb = normalize_sequencer(raw(a)), normalize_sequencer(raw(b))
    assert na is not None and nb is not None and len(na) == len(nb) == SEQUENCER_WIDTH
    assert (na < nb) == (a < b) and (na == nb) == (a == b)
    assert sequencer_newer(na, nb) == (a > b)


# -- round trips (hypothesis) -----------------------------------------------------
keys = st.one_of(
    st.sampled_from(ODD_KEYS),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60),
    st.lists(st.sampled_from(["a", "/", "+", "%", " ", "%2F", "ü", "😀", "blobs", "."]),
             min_size=1, max_size=12).map("".join),
)
ops = st.sampled_from(["upsert", "delete"])
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.just(UTC))
sequencers = st.one_of(st.none(), st.integers(0, 16**48 - 1).map(lambda n: f"{n:032X}"))


@given(st.lists(st.tuples(ops, keys, sequencers, st.integers(0, 5 * 2**40)), min_size=1,
                max_size=4),
       st.sampled_from(["eventgrid", "cloudevents"]), st.sampled_from(["base64", "plain"]),
       times, st.booleans())
def test_azure_round_trip(items: list[tuple[str, str, str | None, int]], schema: str,
                          encoding: str, when: datetime, array: bool) -> None:
    events = [blob_event(op, "events", key, event_time=when, schema=schema,  # type: ignore[arg-type]
                         sequencer=seq, size=size, event_id=f"id-{i}")
              for i, (op, key, seq, size) in enumerate(items)]
    payload: Any = events if array or len(events) > 1 else events[0]
    parsed = azure(azure_queue_body(payload, encoding=encoding))  # type: ignore[arg-type]
    assert parsed.ignored == ()
    assert [(e.op, e.key, e.sequencer, e.event_id) for e in parsed.events] == [
        (op, key, normalize_sequencer(seq), f"id-{i}")
        for i, (op, key, seq, _) in enumerate(items)]
    assert all(abs(e.event_time - when) < timedelta(microseconds=1) for e in parsed.events)
    assert [e.size for e in parsed.events] == [
        size if op == "upsert" else None for op, _, _, size in items]


@given(ops, keys, sequencers, st.sampled_from(["direct", "sns", "eventbridge"]), times)
def test_s3_round_trip(op: str, key: str, seq: str | None, envelope: str,
                       when: datetime) -> None:
    body = s3_queue_body(op, "flights", key, event_time=when, envelope=envelope,  # type: ignore[arg-type]
                         sequencer=seq)
    (ev,) = s3(body).events
    assert (ev.op, ev.key, ev.sequencer) == (op, key, normalize_sequencer(seq))
    assert ev.event_time == when


# -- fuzz: garbage, wrong schemas, other containers, odd keys --------------------
def _check_outcome(fn: Any, body: str, ours: str) -> str:
    """Parsed, ignored with a reason, or poison with a reason: nothing else."""
    try:
        parsed = fn(body)
    except PoisonMessage as exc:
        assert exc.category in POISON_CATEGORIES, exc.reason
        assert "\n" not in exc.reason and len(exc.reason) <= 400
        return "poison"
    assert isinstance(parsed, ParsedMessage)
    assert parsed.events or parsed.ignored
    for reason in parsed.ignored:
        assert reason_category(reason) in IGNORE_CATEGORIES, reason
        assert "\n" not in reason and len(reason) <= 300
    for ev in parsed.events:
        assert ev.container == ours and ev.key
        ev.key.encode("utf-8")
        assert ev.event_time.tzinfo is not None
        assert ev.sequencer is None or (len(ev.sequencer) == SEQUENCER_WIDTH and all(
            c in string.hexdigits.lower() for c in ev.sequencer))
        assert ev.size is None or ev.size >= 0
    return "parsed" if parsed.events else "ignored"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)


def _mutate(doc: Any, rnd: random.Random, junk: Any) -> Any:
    """Drop, retype or replace one field somewhere in a valid event."""
    if not isinstance(doc, dict) or not doc:
        return junk
    key = rnd.choice(sorted(doc))
    choice = rnd.randrange(4)
    out = dict(doc)
    if choice == 0:
        del out[key]
    elif choice == 1:
        out[key] = junk
    elif choice == 2:
        out[key] = _mutate(doc[key], rnd, junk)
    else:
        out[rnd.choice(["eventType", "type", "specversion", "Records", "detail-type",
                        "Type", "Message"])] = junk
    return out


def _valid_docs(rnd: random.Random, key: str) -> list[Any]:
    container = rnd.choice(["events", "other", "Events", ""])
    return [
        blob_event(rnd.choice(["upsert", "delete"]), container, key, event_time=T0,
                   schema=rnd.choice(["eventgrid", "cloudevents"]),
                   sequencer=rnd.choice([None, "00FF", "zz"])),
        json.loads(s3_queue_body("upsert", rnd.choice(["flights", "other"]), key,
                                 event_time=T0, envelope=rnd.choice(["direct", "eventbridge"]))),
        json.loads(s3_queue_body("delete", "flights", key, event_time=T0, envelope="sns")),
    ]


def _garbage_corpus(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    alphabet = string.printable + "{}[]\":,\\ü😀\x00\ufffd"
    bodies: list[str] = []
    while len(bodies) < n:
        key = rnd.choice([*ODD_KEYS, "".join(rnd.choices(alphabet, k=rnd.randrange(0, 12)))])
        doc = rnd.choice(_valid_docs(rnd, key))
        junk = rnd.choice([None, 0, -1, True, "", "x", [], {}, [1], {"a": "b"}, 1e308, "🚀"])
        kind = rnd.randrange(8)
        if kind == 0:
            body = "".join(rnd.choices(alphabet, k=rnd.randrange(0, 200)))
        elif kind == 1:
            body = base64.b64encode(rnd.randbytes(rnd.randrange(0, 64))).decode()
        elif kind == 2:
            body = json.dumps(doc)
        elif kind == 3:
            body = json.dumps(_mutate(doc, rnd, junk))
        elif kind == 4:
            body = azure_queue_body([_mutate(doc, rnd, junk), doc])
        elif kind == 5:
            text = json.dumps(doc)
            cut = rnd.randrange(0, max(1, len(text)))
            body = text[:cut] + rnd.choice(["", "}", "]", ",", "\\", '"']) + text[cut + 1:]
        elif kind == 6:
            body = json.dumps({"Type": "Notification", "Message": json.dumps(_mutate(doc, rnd,
                                                                                     junk))})
        else:
            body = json.dumps(junk)
        bodies.append(body)
    return bodies


def test_a_thousand_fuzzed_messages_never_crash_either_parser() -> None:
    outcomes: dict[str, dict[str, int]] = {"azure": {}, "s3": {}}
    for body in _garbage_corpus(1000, seed=7):
        for name, fn, ours in (("azure", azure, "events"), ("s3", s3, "flights")):
            result = _check_outcome(fn, body, ours)
            outcomes[name][result] = outcomes[name].get(result, 0) + 1
    # the corpus reaches every outcome, for both parsers
    for counts in outcomes.values():
        assert set(counts) == {"parsed", "ignored", "poison"}, outcomes
        assert sum(counts.values()) == 1000


@settings(max_examples=200)
@given(st.one_of(
    st.text(max_size=300),
    json_values.map(json.dumps),
    json_values.map(lambda v: base64.b64encode(json.dumps(v).encode()).decode()),
    st.tuples(keys, st.integers(0, 2**32), st.sampled_from(["events", "flights", "x"]),
              json_values).map(
        lambda t: json.dumps(_mutate(
            blob_event("upsert", t[2], t[0], event_time=T0), random.Random(t[1]), t[3]))),
    st.tuples(keys, st.integers(0, 2**32), json_values).map(
        lambda t: s3_queue_body("upsert", "flights", t[0], event_time=T0)
        if t[1] % 3 == 0 else json.dumps(_mutate(json.loads(s3_queue_body(
            "delete", "flights", t[0], event_time=T0, envelope="eventbridge")),
            random.Random(t[1]), t[2]))),
))
def test_fuzzed_messages_are_parsed_ignored_or_poison(body: str) -> None:
    _check_outcome(azure, body, "events")
    _check_outcome(s3, body, "flights")
