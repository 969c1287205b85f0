"""parse_page on hand-written List Blobs responses (shapes Azurite does not produce)."""

from __future__ import annotations

from datetime import UTC, datetime

from crosswind.stores.azure_listing import parse_page

PAGE = b"""<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="https://a.blob.core.windows.net/" ContainerName="c">
  <Blobs>
    <Blob>
      <Name Encoded="true">ctl%01name</Name>
      <Properties>
        <Last-Modified>Thu, 26 Nov 2026 22:43:01 GMT</Last-Modified>
        <Etag>0x8DC0000000000A1</Etag>
        <Content-Length>5</Content-Length>
        <Content-Type>application/json</Content-Type>
        <Content-Encoding />
        <Content-MD5>XUFAKrxLKna5cZ2REBfFkg==</Content-MD5>
        <Cache-Control>no-cache</Cache-Control>
      </Properties>
      <Metadata><FlightNo>AA1</FlightNo><empty /></Metadata>
    </Blob>
    <Blob>
      <Name>folder</Name>
      <Properties><Content-Length>0</Content-Length><Etag>"0x1"</Etag></Properties>
      <Metadata><hdi_isfolder>true</hdi_isfolder></Metadata>
    </Blob>
    <Blob>
      <Name>plain &amp; simple</Name>
      <Properties><Content-Length>0</Content-Length></Properties>
    </Blob>
  </Blobs>
  <NextMarker>2!72!MDAwMDA</NextMarker>
</EnumerationResults>"""


def test_parse_page_decodes_names_props_and_marker() -> None:
    entries, marker = parse_page(PAGE)
    assert marker == "2!72!MDAwMDA"
    assert [e.key for e in entries] == ["ctl\x01name", "plain & simple"]  # marker blob skipped
    first = entries[0]
    assert first.size == 5 and first.etag == "0x8DC0000000000A1"
    assert first.last_modified == datetime(2026, 11, 26, 22, 43, 1, tzinfo=UTC)
    assert first.content_md5 == "5d41402abc4b2a76b9719d911017c592"  # md5("hello")
    assert first.props is not None
    assert first.props.content_type == "application/json"
    assert first.props.content_encoding is None and first.props.cache_control == "no-cache"
    assert dict(first.props.metadata) == {"FlightNo": "AA1", "empty": ""}
    last = entries[1]
    assert last.content_md5 is None and last.last_modified is None


def test_last_page_has_no_marker() -> None:
    body = b"<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>"
    entries, marker = parse_page(body)
    assert entries == [] and marker is None


def test_metadata_named_blob_is_not_a_listing_entry() -> None:
    # "Blob" (and "Name", "Properties") are valid metadata names; their elements
    # sit inside <Metadata>, not under <Blobs>, and must not become entries.
    body = b"""<EnumerationResults><Blobs>
      <Blob><Name>a</Name><Properties><Content-Length>1</Content-Length></Properties>
        <Metadata><Blob>x</Blob><Name>y</Name></Metadata></Blob>
      <Blob><Name>b</Name><Properties><Content-Length>2</Content-Length></Properties></Blob>
    </Blobs><NextMarker /></EnumerationResults>"""
    entries, _ = parse_page(body)
    assert [e.key for e in entries] == ["a", "b"]
    assert entries[0].props is not None
    assert dict(entries[0].props.metadata) == {"Blob": "x", "Name": "y"}
