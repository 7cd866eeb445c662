"""reconcile.remote.soap.envelope builds the requests Marketo accepts: the HMAC-SHA1 signature and
W3C timestamp reproduce Marketo's published example, the built request is that example byte for byte,
the golden envelopes are rebuilt byte for byte, valid against the XSD and read back to their records,
any XML text round-trips, signing again equals building again, invalid records raise instead of
sending bytes, and redaction hides the signature only.

Golden envelopes live in tests/envelopes/. After a deliberate change to the envelope format,
regenerate them with ``RECONCILE_UPDATE_GOLDEN=1 pytest tests/remote/test_soap_envelopes.py`` and review the diff.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import os
import re
from datetime import datetime, timedelta, timezone

import pytest
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from reconcile.emulator import soap_api
from reconcile.remote.soap import envelope as soap
from reconcile.errors import ExitStatus, ReconcileError
from reconcile.remote.soap.envelope import LeadRecord, SyncStatus
from soap_samples import (ENVELOPES, SEED_KEY, SEED_RECORDS, SEED_REQUEST, SEED_RESPONSE, SEED_SIGNATURE,
                          SEED_TIMESTAMP, SEED_USER, TEST_KEY, TEST_TIMESTAMP, TEST_USER, XSD_PATH)

GOLDEN_CASES: dict[str, tuple[list[LeadRecord], bool]] = {
    "create_by_email": ([
        LeadRecord(email="em1000@etestd.marketo.net",
                   attributes=(("Company", "Marketo1000"), ("Phone", "650-555-1000"))),
        LeadRecord(email="zip@example.com", attributes=(("PostalCode", "01234"), ("Unsubscribed", "false"))),
    ], True),
    "create_by_foreign_id": ([
        LeadRecord(foreign_sys_person_id="1224191", foreign_sys_type="SFDC", email="jane@example.com",
                   attributes=(("FirstName", "Jane"),)),
        LeadRecord(foreign_sys_person_id="ns-77", foreign_sys_type="NETSUITE"),
    ], True),
    "update_by_id": ([
        LeadRecord(lead_id=1090240, attributes=(("Title", "CTO"), ("Email", "new.address@example.com"))),
    ], True),
    "null_clears_field": ([
        LeadRecord(lead_id=1090241, attributes=(("Title", None), ("Phone", "650-555-0000"))),
    ], True),
    "escaping_unicode": ([
        LeadRecord(email="o'brien+\"quotes\"@example.com",
                   attributes=(("Company", "AT&T <Labs> \"R&D\" 'West'"),
                               ("FirstName", "Zoë Ñandú 東京 Ωμέγα 🎉"),
                               ("Notes", "]]> </attrValue><attrName>injected & line1\r\nline2\ttab"))),
    ], True),
    "dedup_false": ([
        LeadRecord(email="dup@example.com", attributes=(("LastName", "First copy"),)),
        LeadRecord(email="dup@example.com", attributes=(("LastName", "Second copy"),)),
    ], False),
}


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    """An XMLSchema built here, independently of soap.py's cached one."""
    return xmlschema.XMLSchema(str(XSD_PATH))


def _assert_xsd_valid(schema: xmlschema.XMLSchema, envelope: bytes) -> None:
    root = etree.fromstring(envelope)
    parts = [el for el in root.iter() if el.tag in (
        f"{{{soap.NS_MKTOWS}}}AuthenticationHeader", f"{{{soap.NS_MKTOWS}}}paramsSyncMultipleLeads",
        f"{{{soap.NS_MKTOWS}}}successSyncMultipleLeads")]
    assert parts, "no mktows element found"
    for part in parts:
        schema.validate(part, use_location_hints=False)


def _independent_signature(key: str, timestamp: str, user: str) -> str:
    return hmac.new(key.encode(), (timestamp + user).encode(), hashlib.sha1).hexdigest()


def _header_field(envelope: bytes, name: str) -> str:
    root = etree.fromstring(envelope)
    return root.find(f"{{{soap.NS_SOAP}}}Header/{{{soap.NS_MKTOWS}}}AuthenticationHeader/{name}").text


def _c14n(data: bytes) -> bytes:
    return etree.tostring(etree.fromstring(data), method="c14n")


# ------------------------------------------------------------------------------------------ signing


def test_sign_reproduces_seed_signature():
    assert soap.sign(SEED_KEY, SEED_TIMESTAMP, SEED_USER) == SEED_SIGNATURE


def test_sign_is_lowercase_hex_hmac_sha1_of_timestamp_then_user():
    signature = soap.sign("k€y", "2020-02-02T02:02:02+01:00", "user_ü")
    assert re.fullmatch(r"[0-9a-f]{40}", signature)
    assert signature == _independent_signature("k€y", "2020-02-02T02:02:02+01:00", "user_ü")
    assert signature != soap.sign("k€y", "user_ü", "2020-02-02T02:02:02+01:00")


def test_w3c_timestamp_keeps_the_offset_and_drops_microseconds():
    pdt = timezone(timedelta(hours=-7))
    assert soap.w3c_timestamp(datetime(2013, 8, 1, 18, 22, 30, 999999, tzinfo=pdt)) == SEED_TIMESTAMP
    ist = timezone(timedelta(hours=5, minutes=30))
    assert soap.w3c_timestamp(datetime(2024, 1, 2, 3, 4, 5, tzinfo=ist)) == "2024-01-02T03:04:05+05:30"
    assert soap.w3c_timestamp(datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "2024-01-02T03:04:05+00:00"


def test_w3c_timestamp_defaults_to_now_in_utc():
    before = datetime.now(timezone.utc).replace(microsecond=0)
    stamp = soap.w3c_timestamp()
    after = datetime.now(timezone.utc)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", stamp)
    assert before <= datetime.fromisoformat(stamp) <= after


def test_w3c_timestamp_refuses_naive_datetimes():
    with pytest.raises(ValueError):
        soap.w3c_timestamp(datetime(2024, 1, 2, 3, 4, 5))


# ------------------------------------------------------------------------------------ seed fixtures


def test_seed_request_header_and_body_are_xsd_valid(schema):
    _assert_xsd_valid(schema, SEED_REQUEST)


def test_seed_response_is_xsd_valid(schema):
    _assert_xsd_valid(schema, SEED_RESPONSE)


def test_build_request_reproduces_the_seed_byte_for_byte():
    built = soap.build_request(SEED_RECORDS, user_id=SEED_USER, encryption_key=SEED_KEY,
                               timestamp=SEED_TIMESTAMP, dedup_enabled=True)
    assert built == SEED_REQUEST, _diff(SEED_REQUEST, built)


def test_seed_response_parses_to_statuses():
    statuses = soap.parse_response(SEED_RESPONSE)
    assert [(s.lead_id, s.status, s.error) for s in statuses] == [
        (1090240, "UPDATED", None), (1090239, "UPDATED", None)]


def test_seed_request_parses_server_side():
    request = soap_api.parse_request(SEED_REQUEST)
    assert request.header == soap_api.AuthHeader(SEED_USER, SEED_SIGNATURE, SEED_TIMESTAMP)
    assert request.records == tuple(SEED_RECORDS)
    assert request.dedup_enabled is True


def test_build_response_is_canonically_the_seed_response():
    built = soap_api.build_response([SyncStatus(1090240, "UPDATED", None), SyncStatus(1090239, "UPDATED", None)])
    assert _c14n(built) == _c14n(SEED_RESPONSE)


# ---------------------------------------------------------------------------------- golden envelopes


def _diff(expected: bytes, actual: bytes) -> str:
    lines = difflib.unified_diff(expected.decode("utf-8", "replace").splitlines(),
                                 actual.decode("utf-8", "replace").splitlines(),
                                 "expected", "actual", lineterm="")
    return "envelope differs:\n" + "\n".join(lines)


def _build_golden(name: str) -> bytes:
    records, dedup = GOLDEN_CASES[name]
    return soap.build_request(records, user_id=TEST_USER, encryption_key=TEST_KEY, timestamp=TEST_TIMESTAMP,
                              dedup_enabled=dedup)


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_envelope_is_rebuilt_byte_for_byte(name):
    path = ENVELOPES / f"{name}.xml"
    built = _build_golden(name)
    if os.environ.get("RECONCILE_UPDATE_GOLDEN"):
        path.write_bytes(built)
    assert path.exists(), f"missing golden file {path}; run with RECONCILE_UPDATE_GOLDEN=1"
    expected = path.read_bytes()
    assert built == expected, _diff(expected, built)


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_envelope_is_xsd_valid_and_correctly_signed(name, schema):
    golden = (ENVELOPES / f"{name}.xml").read_bytes()
    assert golden.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<SOAP-ENV:Envelope ')
    _assert_xsd_valid(schema, golden)
    assert _header_field(golden, "mktowsUserId") == TEST_USER
    assert _header_field(golden, "requestTimestamp") == TEST_TIMESTAMP
    assert _header_field(golden, "requestSignature") == _independent_signature(TEST_KEY, TEST_TIMESTAMP, TEST_USER)


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_envelope_parses_back_to_its_records(name):
    records, dedup = GOLDEN_CASES[name]
    request = soap_api.parse_request((ENVELOPES / f"{name}.xml").read_bytes())
    assert request.records == tuple(records)
    assert request.dedup_enabled is dedup
    assert request.header == soap_api.AuthHeader(TEST_USER, soap.sign(TEST_KEY, TEST_TIMESTAMP, TEST_USER),
                                             TEST_TIMESTAMP)


def test_no_stale_golden_files():
    assert {p.stem for p in ENVELOPES.glob("*.xml")} == set(GOLDEN_CASES)


def test_golden_details_on_the_wire():
    null = (ENVELOPES / "null_clears_field.xml").read_bytes()
    assert b"<attrName>Title</attrName>\n<attrValue/>\n" in null
    escaped = (ENVELOPES / "escaping_unicode.xml").read_bytes()
    assert b"AT&amp;T &lt;Labs&gt;" in escaped
    assert b"]]&gt; &lt;/attrValue&gt;&lt;attrName&gt;injected &amp; line1&#13;\nline2\ttab" in escaped
    assert "Zoë Ñandú 東京 Ωμέγα 🎉".encode() in escaped
    assert b"<dedupEnabled>false</dedupEnabled>" in (ENVELOPES / "dedup_false.xml").read_bytes()
    update = (ENVELOPES / "update_by_id.xml").read_bytes()
    assert b"<leadRecord>\n<Id>1090240</Id>\n<leadAttributeList>" in update
    assert b"<attrName>Email</attrName>\n<attrValue>new.address@example.com</attrValue>" in update


def test_element_order_and_prefixes():
    record = LeadRecord(lead_id=5, email="a@example.com", foreign_sys_person_id="p-1", foreign_sys_type="CUSTOM",
                        attributes={"City": "Oslo"})
    root = etree.fromstring(soap.build_request([record], user_id="u", encryption_key="k", timestamp=TEST_TIMESTAMP,
                                               dedup_enabled=True))
    assert root.nsmap == {"SOAP-ENV": soap.NS_SOAP, "ns1": soap.NS_MKTOWS}
    assert [child.tag for child in root] == [f"{{{soap.NS_SOAP}}}Header", f"{{{soap.NS_SOAP}}}Body"]
    params = root[1][0]
    assert params.tag == f"{{{soap.NS_MKTOWS}}}paramsSyncMultipleLeads" and params.prefix == "ns1"
    assert [child.tag for child in params] == ["leadRecordList", "dedupEnabled"]
    assert [child.tag for child in params[0][0]] == ["Id", "Email", "ForeignSysPersonId", "ForeignSysType",
                                                     "leadAttributeList"]
    assert [child.tag for child in root[0][0]] == ["mktowsUserId", "requestSignature", "requestTimestamp"]


def test_record_without_attributes_has_no_attribute_list():
    built = soap.build_request([LeadRecord(email="a@example.com")], user_id="u", encryption_key="k",
                               timestamp=TEST_TIMESTAMP)
    assert b"leadAttributeList" not in built
    assert soap_api.parse_request(built).records == (LeadRecord(email="a@example.com"),)


def test_lead_record_accepts_a_mapping_or_pairs_and_stays_hashable():
    from_mapping = LeadRecord(email="a@example.com", attributes={"A": "1", "B": None})
    from_lists = LeadRecord(email="a@example.com", attributes=[["A", "1"], ["B", None]])
    assert from_mapping.attributes == from_lists.attributes == (("A", "1"), ("B", None))
    assert hash(from_mapping) == hash(from_lists)
    with pytest.raises(ValueError):
        LeadRecord(email="a@example.com", attributes=[("A",)])


_XML_CHARS = st.characters(exclude_categories=("Cs",)).filter(
    lambda c: c in "\t\n\r" or (c >= " " and c not in "\ufffe\uffff"))


@settings(max_examples=60, deadline=None)
@given(email=st.text(_XML_CHARS, min_size=1, max_size=30),
       attributes=st.lists(st.tuples(st.text(_XML_CHARS, max_size=15),
                                     st.none() | st.text(_XML_CHARS, min_size=1, max_size=40)), max_size=4))
def test_any_xml_text_round_trips_exactly(email, attributes):
    record = LeadRecord(email=email, attributes=tuple(attributes))
    built = soap.build_request([record], user_id="u", encryption_key="k", timestamp=TEST_TIMESTAMP)
    assert soap_api.parse_request(built).records == (record,)


@settings(max_examples=40, deadline=None)
@given(email=st.text(_XML_CHARS, min_size=1, max_size=30),
       attributes=st.lists(st.tuples(st.text(_XML_CHARS, max_size=15),
                                     st.none() | st.text(_XML_CHARS, min_size=1, max_size=40)), max_size=4),
       user=st.text(_XML_CHARS, min_size=1, max_size=12), later=st.integers(1, 10**6))
def test_signing_again_is_building_again_for_the_new_timestamp(email, attributes, user, later):
    """Lead text that looks like a SOAP header (escaped) must not be where the new signature goes."""
    records = [LeadRecord(email=email, attributes=tuple(attributes)),
               LeadRecord(email="x@example.com", attributes=(("Title", "<SOAP-ENV:Header></SOAP-ENV:Header>"),))]
    stamp = soap.w3c_timestamp(datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=later))
    first = soap.build_request(records, user_id=user, encryption_key="k", timestamp=TEST_TIMESTAMP)
    assert soap.resign(first, user_id=user, encryption_key="k", timestamp=stamp) == \
        soap.build_request(records, user_id=user, encryption_key="k", timestamp=stamp)


def test_signing_again_validates_the_new_header(monkeypatch):
    built = soap.build_request([LeadRecord(email="a@example.com")], user_id="u", encryption_key="k",
                               timestamp=TEST_TIMESTAMP)
    with pytest.raises(soap.EnvelopeInvalid, match="U\\+0000"):
        soap.resign(built, user_id="u\x00", encryption_key="k", timestamp=TEST_TIMESTAMP)
    checked = []
    real = soap._first_schema_error
    monkeypatch.setattr(soap, "_first_schema_error", lambda element: checked.append(element.tag) or real(element))
    soap.resign(built, user_id="u", encryption_key="k", timestamp=TEST_TIMESTAMP)
    assert checked == [soap.TAG_AUTH], "the header is checked against the XSD, the body is not walked again"


# --------------------------------------------------------------------------------- invalid envelopes


@pytest.mark.parametrize("record, fragment", [
    (LeadRecord(foreign_sys_person_id="1", foreign_sys_type="BOGUS"), "must be one of"),
    (LeadRecord(lead_id=2**31), "2^31"),
    (LeadRecord(lead_id=True), "must be an int"),
    (LeadRecord(lead_id="123"), "must be an int"),
    (LeadRecord(email="bell\x07@example.com"), "U+0007"),
    (LeadRecord(email="a@example.com", attributes={"Title": "nul\x00"}), "U+0000"),
    (LeadRecord(email="a@example.com", attributes={"Title": "\ud800"}), "U+D800"),
    (LeadRecord(email="a@example.com", attributes={"Title": "\ufffe"}), "U+FFFE"),
    (LeadRecord(email="a@example.com", attributes={"Title\x1b": "x"}), "U+001B"),
    (LeadRecord(email="a@example.com", attributes={"Score": 5}), "must be text"),
    (LeadRecord(email="a@example.com", attributes={"Opt": False}), "must be text"),
    (LeadRecord(email="a@example.com", attributes={None: "x"}), "name is missing"),
])
def test_invalid_record_raises_instead_of_returning_bytes(record, fragment):
    with pytest.raises(soap.EnvelopeInvalid) as info:
        soap.build_request([LeadRecord(email="ok@example.com"), record], user_id="u", encryption_key="k",
                           timestamp=TEST_TIMESTAMP)
    assert isinstance(info.value, ReconcileError)
    assert info.value.exit_status == ExitStatus.ERROR == 1
    assert fragment in str(info.value)


def test_invalid_header_or_arguments_raise():
    with pytest.raises(soap.EnvelopeInvalid, match="U\\+0000"):
        soap.build_request([], user_id="u\x00", encryption_key="k", timestamp=TEST_TIMESTAMP)
    with pytest.raises(soap.EnvelopeInvalid, match="dedupEnabled"):
        soap.build_request([], user_id="u", encryption_key="k", timestamp=TEST_TIMESTAMP, dedup_enabled="yes")
    with pytest.raises(soap.EnvelopeInvalid, match="not a LeadRecord"):
        soap.build_request(["a@example.com"], user_id="u", encryption_key="k", timestamp=TEST_TIMESTAMP)


# ---------------------------------------------------------------------------------------- redaction


def test_redact_hides_the_signature_only():
    envelope = soap.build_request(SEED_RECORDS, user_id=SEED_USER, encryption_key=SEED_KEY, timestamp=SEED_TIMESTAMP)
    for given_form in (envelope, envelope.decode()):
        text = soap.redact(given_form)
        assert SEED_SIGNATURE not in text
        assert "<requestSignature>***REDACTED***</requestSignature>" in text
        assert text == envelope.decode().replace(SEED_SIGNATURE, "***REDACTED***")


def test_redact_handles_other_prefixes_and_leaves_other_text_alone():
    text = '<a><ns0:requestSignature a="1">abc\ndef</ns0:requestSignature><requestSignature/><b>abc</b></a>'
    assert soap.redact(text) == ('<a><ns0:requestSignature a="1">***REDACTED***</ns0:requestSignature>'
                                 '<requestSignature/><b>abc</b></a>')
