"""reconcile.remote.soap.envelope: envelopes, signatures, responses, faults, hostile XML, the WSDL.

Golden envelopes live in tests/envelopes/. After a deliberate change to the envelope format,
regenerate them with ``RECONCILE_UPDATE_GOLDEN=1 pytest tests/remote/test_soap.py`` and review the diff.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import hashlib
import hmac
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import xmlschema
import zeep
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from reconcile.emulator import soap_api
from reconcile.remote.soap import envelope as soap
from reconcile.errors import ExitStatus, ReconcileError, ResponseError
from reconcile.remote.soap.codes import CODES
from reconcile.remote.soap.fault import SoapFault
from reconcile.remote.soap.envelope import LeadRecord, SyncStatus

ROOT = Path(__file__).resolve().parents[2]
ENVELOPES = Path(__file__).resolve().parents[1] / "envelopes"
XSD_PATH = ROOT / "schemas" / "mktows.xsd"
WSDL_PATH = ROOT / "schemas" / "mktows.wsdl"

# Marketo's published example (Korean edition of the syncMultipleLeads page), verbatim.
SEED_USER = "demo17_1_809934544BFABAE58E5D27"
SEED_KEY = "27272727aa"
SEED_TIMESTAMP = "2013-08-01T18:22:30-07:00"
SEED_SIGNATURE = "b5e21953ae9f1b263e644da5eccce9ff33802513"
SEED_REQUEST = b"""<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns1="http://www.marketo.com/mktows/">
<SOAP-ENV:Header>
<ns1:AuthenticationHeader>
<mktowsUserId>demo17_1_809934544BFABAE58E5D27</mktowsUserId>
<requestSignature>b5e21953ae9f1b263e644da5eccce9ff33802513</requestSignature>
<requestTimestamp>2013-08-01T18:22:30-07:00</requestTimestamp>
</ns1:AuthenticationHeader>
</SOAP-ENV:Header>
<SOAP-ENV:Body>
<ns1:paramsSyncMultipleLeads>
<leadRecordList>
<leadRecord>
<Email>em1000@etestd.marketo.net</Email>
<leadAttributeList>
<attribute>
<attrName>Company</attrName>
<attrValue>Marketo1000</attrValue>
</attribute>
<attribute>
<attrName>Phone</attrName>
<attrValue>650-555-1000</attrValue>
</attribute>
</leadAttributeList>
</leadRecord>
<leadRecord>
<Email>em1001@etestd.marketo.net</Email>
<leadAttributeList>
<attribute>
<attrName>Company</attrName>
<attrValue>Marketo1001</attrValue>
</attribute>
<attribute>
<attrName>Phone</attrName>
<attrValue>650-555-1001</attrValue>
</attribute>
</leadAttributeList>
</leadRecord>
</leadRecordList>
<dedupEnabled>true</dedupEnabled>
</ns1:paramsSyncMultipleLeads>
</SOAP-ENV:Body>
</SOAP-ENV:Envelope>
"""
SEED_RESPONSE = b"""<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ns1="http://www.marketo.com/mktows/">
<SOAP-ENV:Body>
<ns1:successSyncMultipleLeads>
<result>
<syncStatusList>
<syncStatus>
<leadId>1090240</leadId>
<status>UPDATED</status>
<error xsi:nil="true" />
</syncStatus>
<syncStatus>
<leadId>1090239</leadId>
<status>UPDATED</status>
<error xsi:nil="true" />
</syncStatus>
</syncStatusList>
</result>
</ns1:successSyncMultipleLeads>
</SOAP-ENV:Body>
</SOAP-ENV:Envelope>
"""
SEED_RECORDS = [
    LeadRecord(email=f"em{uid}@etestd.marketo.net",
               attributes=(("Company", f"Marketo{uid}"), ("Phone", f"650-555-{uid}")))
    for uid in (1000, 1001)
]
# The fault shape from the facts file (marketo-soap-facts.md), verbatim.
FACTS_FAULT = b"""<SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode>
<faultstring>20014 - Authentication failed</faultstring>
<detail><ns1:serviceException xmlns:ns1="http://www.marketo.com/mktows/">
<name>mktServiceException</name><message>Authentication failed (20014)</message>
<code>20014</code></ns1:serviceException></detail></SOAP-ENV:Fault>"""

# Golden envelopes: fixed user, key and timestamp.
TEST_USER = "reconcile_test_1_0123456789ABCDEF"
TEST_KEY = "test-encryption-key-0123456789"
TEST_TIMESTAMP = "2024-01-02T03:04:05+00:00"

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


# ----------------------------------------------------------------------------------- responses/faults


def test_build_response_round_trips_through_parse_response():
    statuses = [SyncStatus(1, "CREATED", None), SyncStatus(2**31 - 1, "UPDATED", None),
                SyncStatus(0, "FAILED", "20103 - Lead Not Found <&> 'ü'")]
    assert soap.parse_response(soap_api.build_response(statuses)) == statuses
    assert soap.parse_response(soap_api.build_response([])) == []


def test_server_error_text_with_line_breaks_comes_back_escaped():
    body = soap_api.build_response([SyncStatus(7, "FAILED", "bad\n::add-mask::x\r\x85done")])
    [status] = soap.parse_response(body)
    assert status.error == "bad\\n::add-mask::x\\r\\x85done"


def test_build_response_refuses_invalid_statuses():
    with pytest.raises(soap.EnvelopeInvalid, match="is not one of CREATED, UPDATED, FAILED"):
        soap_api.build_response([SyncStatus(1, "DONE", None)])
    with pytest.raises(soap.EnvelopeInvalid):
        soap_api.build_response([SyncStatus("1", "CREATED", None)])


def test_build_fault_has_exactly_the_documented_shape():
    fault = soap_api.build_fault("20014", "Authentication failed")
    assert fault == (b'<?xml version="1.0" encoding="UTF-8"?>\n'
                     b'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">\n'
                     b"<SOAP-ENV:Body>\n" + FACTS_FAULT + b"\n</SOAP-ENV:Body>\n</SOAP-ENV:Envelope>\n")


@pytest.mark.parametrize("code", ["20014", "20016", "20023", "10001", "20017", "20019"])
@pytest.mark.parametrize("http_status", [500, 200])
def test_fault_round_trips_to_soap_fault_with_its_code(code, http_status):
    faultcode = "SOAP-ENV:Server" if code == "10001" else "SOAP-ENV:Client"
    body = soap_api.build_fault(code, CODES[code].message, faultcode)
    with pytest.raises(SoapFault) as info:
        soap.parse_response(body, http_status)
    fault = info.value
    assert fault.code == code
    assert fault.fault_message == CODES[code].message
    assert fault.faultcode == faultcode
    assert fault.http_status == http_status
    assert fault.exit_status == ExitStatus.REMOTE_FAILURE
    assert str(fault) == f"Marketo fault {code}: {CODES[code].message}"


def test_fault_code_comes_from_the_detail_first():
    body = (b'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>'
            b"<SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode><faultstring>Too many calls</faultstring>"
            b'<detail><ns1:serviceException xmlns:ns1="http://www.marketo.com/mktows/"><name>mktServiceException'
            b"</name><message>Rate Limit Exceeded (20023)</message><code>20023</code></ns1:serviceException>"
            b"</detail></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>")
    with pytest.raises(SoapFault) as info:
        soap.parse_response(body, 500)
    assert (info.value.code, info.value.fault_message) == ("20023", "Too many calls")


def test_fault_without_detail_takes_the_code_from_the_faultstring():
    body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<SOAP-ENV:Envelope xmlns:SOAP-ENV='
            b'"http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body><SOAP-ENV:Fault>'
            b"<faultcode>SOAP-ENV:Client</faultcode><faultstring>20016 - Request Expired</faultstring>"
            b"</SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>")
    with pytest.raises(SoapFault) as info:
        soap.parse_response(body, 500)
    assert (info.value.code, info.value.fault_message, info.value.faultcode) == (
        "20016", "Request Expired", "SOAP-ENV:Client")


def test_fault_without_any_code():
    body = (b'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>'
            b"<SOAP-ENV:Fault><faultcode>SOAP-ENV:Server</faultcode><faultstring>Service\n  unavailable"
            b"</faultstring></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>")
    with pytest.raises(SoapFault) as info:
        soap.parse_response(body, 503)
    assert info.value.code is None
    assert str(info.value) == "SOAP fault: Service unavailable"


def test_build_fault_makes_hostile_messages_safe():
    body = soap_api.build_fault("20017", "Invalid Request: bad\x00value\nsecond line")
    with pytest.raises(SoapFault) as info:
        soap.parse_response(body, 500)
    assert info.value.fault_message == "Invalid Request: bad\ufffdvalue second line"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>
<SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode><faultstring>&lol9;</faultstring></SOAP-ENV:Fault>
</SOAP-ENV:Body></SOAP-ENV:Envelope>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>
<SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode><faultstring>&xxe;</faultstring></SOAP-ENV:Fault>
</SOAP-ENV:Body></SOAP-ENV:Envelope>"""
INTERNAL_SUBSET = SEED_RESPONSE.replace(
    b"<SOAP-ENV:Envelope", b'<!DOCTYPE SOAP-ENV:Envelope [<!ATTLIST status x CDATA "y">]>\n<SOAP-ENV:Envelope', 1)
DOCTYPE_AFTER_COMMENT = SEED_RESPONSE.replace(
    b"<SOAP-ENV:Envelope", b"<!-- innocent --><?pi x?><!DOCTYPE SOAP-ENV:Envelope>\n<SOAP-ENV:Envelope", 1)
UTF16_DOCTYPE = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x "y">]>'
                 + SEED_RESPONSE.decode().split("?>", 1)[1]).encode("utf-16")
HTML_502 = b"""<!DOCTYPE html>
<html><head><title>502 Bad Gateway</title></head>
<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>
"""


@pytest.mark.parametrize("body, http_status, fragment", [
    (BILLION_LAUGHS, 500, "DOCTYPE"),
    (EXTERNAL_ENTITY, 500, "DOCTYPE"),
    (INTERNAL_SUBSET, 200, "DOCTYPE"),
    (DOCTYPE_AFTER_COMMENT, 200, "DOCTYPE"),
    (UTF16_DOCTYPE, 200, "DOCTYPE"),
    (SEED_RESPONSE[: len(SEED_RESPONSE) // 2], 200, "malformed XML"),
    (b"<not xml", 200, "malformed XML"),
    (b"", 200, "empty"),
    (b"\n", 504, "empty"),
    (HTML_502, 502, "HTTP 502: expected a SOAP response, got an HTML page (502 Bad Gateway)"),
    (b"<html><body>Service Unavailable</body></html>", 503, "HTML page"),
    (b'<?xml version="1.0"?><error>quota</error>', 200, "expected a SOAP 1.1 envelope, got <error>"),
    (SEED_RESPONSE.replace(soap.NS_SOAP.encode(), b"http://www.w3.org/2003/05/soap-envelope"), 200,
     "SOAP 1.1 envelope"),
    (SEED_RESPONSE.replace(b"successSyncMultipleLeads", b"successGetLead"), 200,
     "expected ns1:successSyncMultipleLeads"),
    (SEED_RESPONSE.replace(b"<status>UPDATED</status>", b"<status>DONE</status>", 1), 200, "mktows schema"),
    (SEED_RESPONSE.replace(b"<leadId>1090240</leadId>", b"<leadId>abc</leadId>"), 200, "mktows schema"),
    (SEED_RESPONSE.replace(b"<result>", b"<result><extra/>"), 200, "mktows schema"),
    (SEED_RESPONSE, 500, "error status"),
    (b'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"/>', 200, "without a Body"),
])
def test_unusable_responses_raise_response_error(body, http_status, fragment):
    started = time.perf_counter()
    with pytest.raises(ResponseError) as info:
        soap.parse_response(body, http_status)
    assert not isinstance(info.value, SoapFault)
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"HTTP {http_status}: ")
    assert "root:" not in str(info.value)  # nothing from /etc/passwd
    assert time.perf_counter() - started < 1.0


def test_oversized_response_is_refused_before_parsing():
    padding = b" " * (soap.MAX_RESPONSE_BYTES + 1 - len(SEED_RESPONSE))
    oversized = SEED_RESPONSE + padding
    assert len(oversized) == soap.MAX_RESPONSE_BYTES + 1
    with pytest.raises(ResponseError, match="exceeds the limit"):
        soap.parse_response(oversized)
    assert soap.parse_xml_safely(SEED_RESPONSE, max_bytes=len(SEED_RESPONSE)).tag.endswith("Envelope")
    with pytest.raises(ResponseError, match=f"exceeds the limit of {len(SEED_RESPONSE) - 1} bytes"):
        soap.parse_xml_safely(SEED_RESPONSE, max_bytes=len(SEED_RESPONSE) - 1)


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY, INTERNAL_SUBSET, UTF16_DOCTYPE,
                                  b'<!DOCTYPE a SYSTEM "http://127.0.0.1:9/evil.dtd"><a/>'])
def test_parse_xml_safely_refuses_any_dtd(data):
    with pytest.raises(ResponseError, match="DOCTYPE"):
        soap.parse_xml_safely(data)


def test_parse_xml_safely_refuses_entities_and_deep_trees_but_reads_plain_xml():
    with pytest.raises(ResponseError, match="Entity 'x' not defined"):
        soap.parse_xml_safely(b"<a>&x;</a>")
    with pytest.raises(ResponseError, match="depth"):
        soap.parse_xml_safely(b"<a>" * 5000 + b"</a>" * 5000)
    root = soap.parse_xml_safely(b"\xef\xbb\xbf<?xml version='1.0'?><!-- <!DOCTYPE no> --><a>&amp;&#233;</a>")
    assert root.tag == "a" and root.text == "&é"
    assert soap.parse_xml_safely('<?xml version="1.0" encoding="UTF-16"?><b>ü</b>'.encode("utf-16")).text == "ü"


def test_parse_response_never_follows_schema_location_hints():
    hinted = SEED_RESPONSE.replace(
        b"<ns1:successSyncMultipleLeads>",
        b'<ns1:successSyncMultipleLeads xsi:schemaLocation="http://www.marketo.com/mktows/ '
        b'http://127.0.0.1:9/evil.xsd">')
    assert len(soap.parse_response(hinted)) == 2


# ------------------------------------------------------------------------------- server-side parsing


def _request(body_inner: bytes, header: bytes | None = None) -> bytes:
    if header is None:
        header = (b"<ns1:AuthenticationHeader><mktowsUserId>u</mktowsUserId><requestSignature>s"
                  b"</requestSignature><requestTimestamp>t</requestTimestamp></ns1:AuthenticationHeader>")
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<SOAP-ENV:Envelope xmlns:SOAP-ENV='
            b'"http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns1="http://www.marketo.com/mktows/" '
            b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            + (b"<SOAP-ENV:Header>" + header + b"</SOAP-ENV:Header>" if header else b"")
            + b"<SOAP-ENV:Body>" + body_inner + b"</SOAP-ENV:Body></SOAP-ENV:Envelope>")


def _params(records: bytes, tail: bytes = b"") -> bytes:
    return (b"<ns1:paramsSyncMultipleLeads><leadRecordList>" + records + b"</leadRecordList>" + tail
            + b"</ns1:paramsSyncMultipleLeads>")


@pytest.mark.parametrize("body, code, fragment", [
    (b"<SOAP-ENV:Envelope", "20012", "Request Not Understood: malformed XML"),
    (b"", "20012", "Request Not Understood: empty"),
    (BILLION_LAUGHS, "20012", "DOCTYPE"),
    (EXTERNAL_ENTITY, "20012", "DOCTYPE"),
    (b"<paramsSyncMultipleLeads/>", "20012", "expected a SOAP 1.1 envelope"),
    (_request(b""), "20012", "empty SOAP Body"),
    (_request(_params(b"") + _params(b"")), "20012", "more than one element"),
    (_request(b"<ns1:paramsGetLead><leadKey/></ns1:paramsGetLead>"), "20019", "Unsupported Operation: paramsGetLead"),
    (_request(b"<ns1:syncLead/>"), "20019", "Unsupported Operation: syncLead"),
    (_request(b'<x:paramsSyncMultipleLeads xmlns:x="urn:other"/>'), "20019",
     "Unsupported Operation: {urn:other}paramsSyncMultipleLeads"),
    (_request(b"<ns1:paramsSyncMultipleLeads><dedupEnabled>true</dedupEnabled></ns1:paramsSyncMultipleLeads>"),
     "20017", "Invalid Request: "),
    (_request(_params(b"<leadRecord><ForeignSysPersonId>1</ForeignSysPersonId><ForeignSysType>BOGUS"
                      b"</ForeignSysType></leadRecord>")), "20017", "not an element of the set"),
    (_request(_params(b"<leadRecord><Email>a</Email><Id>1</Id></leadRecord>")), "20017", "not expected"),
    (_request(_params(b"<leadRecord><Id>x</Id></leadRecord>")), "20017", "Invalid Request"),
    (_request(_params(b"", b"<dedupEnabled>maybe</dedupEnabled>")), "20017", "Invalid Request"),
    (_request(_params(b""), b"<ns1:AuthenticationHeader><mktowsUserId>u</mktowsUserId>"
                            b"<requestTimestamp>t</requestTimestamp></ns1:AuthenticationHeader>"),
     "20017", "requestSignature"),
])
def test_parse_request_rejections(body, code, fragment):
    with pytest.raises(soap_api.RequestRejected) as info:
        soap_api.parse_request(body)
    assert info.value.code == code
    assert fragment in info.value.message
    assert info.value.message.startswith(CODES[code].message)
    assert "\n" not in info.value.message and len(info.value.message) <= 300


def test_parse_request_size_limit_is_20012():
    with pytest.raises(soap_api.RequestRejected) as info:
        soap_api.parse_request(SEED_REQUEST, max_bytes=1000)
    assert info.value.code == "20012" and "exceeds the limit" in info.value.message


def test_parse_request_details():
    request = soap_api.parse_request(_request(_params(
        b'<leadRecord><Id xsi:nil="true"/><Email xsi:nil="true"/><ForeignSysPersonId>7</ForeignSysPersonId>'
        b"<leadAttributeList><attribute><attrName>Title</attrName><attrType>string</attrType><attrValue/>"
        b"</attribute></leadAttributeList></leadRecord>"
        b"<leadRecord><Id> 42 </Id><leadAttributeList xsi:nil='true'/></leadRecord>",
        b'<dedupEnabled xsi:nil="true"/>'), header=b""))
    assert request.header is None
    assert request.dedup_enabled is None
    assert request.records == (LeadRecord(foreign_sys_person_id="7", attributes=(("Title", None),)),
                               LeadRecord(lead_id=42))
    assert soap_api.parse_request(_request(_params(b""))).dedup_enabled is None
    assert soap_api.parse_request(_request(_params(b"", b"<dedupEnabled>0</dedupEnabled>"))).dedup_enabled is False
    assert soap_api.parse_request(_request(_params(b"", b"<dedupEnabled>1</dedupEnabled>"))).dedup_enabled is True


def test_auth_header_repr_hides_the_signature():
    header = soap_api.AuthHeader(SEED_USER, SEED_SIGNATURE, SEED_TIMESTAMP)
    assert SEED_SIGNATURE not in repr(header) and SEED_USER in repr(header)


# ------------------------------------------------------------------------------------------ the WSDL


def _normalize_schema(element) -> tuple:
    """A comparable form of an xs:schema subtree: QName-valued attributes resolved, comments and
    whitespace ignored, namespace prefixes irrelevant."""
    qname_attributes = {"type", "base", "ref", "itemType", "substitutionGroup"}
    attributes = []
    for name, value in sorted(element.attrib.items()):
        if name in qname_attributes and ":" in value:
            prefix, local = value.split(":", 1)
            value = f"{{{element.nsmap[prefix]}}}{local}"
        attributes.append((name, value))
    children = tuple(_normalize_schema(child) for child in element if isinstance(child.tag, str))
    return element.tag, tuple(attributes), (element.text or "").strip(), children


def _inline_schema():
    wsdl = etree.parse(str(WSDL_PATH)).getroot()
    schemas = wsdl.findall("{http://schemas.xmlsoap.org/wsdl/}types/{http://www.w3.org/2001/XMLSchema}schema")
    assert len(schemas) == 1
    return schemas[0]


def test_wsdl_inline_types_are_equivalent_to_the_xsd():
    xsd = etree.parse(str(XSD_PATH)).getroot()
    assert _normalize_schema(_inline_schema()) == _normalize_schema(xsd)


def test_schema_comparison_would_notice_a_difference():
    inline = _inline_schema()
    inline.find(".//{http://www.w3.org/2001/XMLSchema}enumeration").set("value", "CUSTOMER")
    assert _normalize_schema(inline) != _normalize_schema(etree.parse(str(XSD_PATH)).getroot())


def test_wsdl_text_sets_the_address_and_escapes_it():
    endpoint = 'http://127.0.0.1:8080/soap/mktows/2_1?a=1&b="2"'
    text = soap_api.wsdl_text(endpoint)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!--')
    assert soap_api.WSDL_ADDRESS_PLACEHOLDER not in text
    root = etree.fromstring(text.encode())
    address = root.find("{http://schemas.xmlsoap.org/wsdl/}service/{http://schemas.xmlsoap.org/wsdl/}port/"
                        "{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address.get("location") == endpoint
    assert WSDL_PATH.read_text().replace(soap_api.WSDL_ADDRESS_PLACEHOLDER, "X") == \
        soap_api.wsdl_text("X").replace(soap_api.WSDL_ADDRESS_PLACEHOLDER, "X")
    with pytest.raises(ValueError):
        soap_api.wsdl_text("http://x/\x00")


@pytest.fixture(scope="module")
def zeep_client(tmp_path_factory):
    path = tmp_path_factory.mktemp("wsdl") / "mktows.wsdl"
    path.write_text(soap_api.wsdl_text("http://127.0.0.1:8765/soap/mktows/2_1"), encoding="utf-8")
    return zeep.Client(str(path))


def test_zeep_loads_the_wsdl_with_the_served_address(zeep_client):
    service = zeep_client.wsdl.services["MktMktowsApiService"]
    port = service.ports["MktowsApiSoapPort"]
    assert port.binding_options["address"] == "http://127.0.0.1:8765/soap/mktows/2_1"
    operation = port.binding.get("syncMultipleLeads")
    assert operation.soapaction == soap.SOAP_ACTION
    assert zeep.Client(str(WSDL_PATH)).service._binding_options["address"] == soap_api.WSDL_ADDRESS_PLACEHOLDER


def test_a_zeep_request_is_understood_by_parse_request(zeep_client):
    signature = soap.sign(TEST_KEY, TEST_TIMESTAMP, TEST_USER)
    message = zeep_client.create_message(
        zeep_client.service, "syncMultipleLeads",
        leadRecordList={"leadRecord": [
            {"Email": "a@example.com", "leadAttributeList": {"attribute": [
                {"attrName": "Company", "attrValue": "A & B"}, {"attrName": "Title", "attrValue": ""}]}},
            {"Id": 5, "ForeignSysPersonId": "p-1", "ForeignSysType": "SFDC"},
        ]},
        dedupEnabled=True,
        _soapheaders={"AuthenticationHeader": {"mktowsUserId": TEST_USER, "requestSignature": signature,
                                               "requestTimestamp": TEST_TIMESTAMP}})
    request = soap_api.parse_request(etree.tostring(message, xml_declaration=True, encoding="UTF-8"))
    assert request.header == soap_api.AuthHeader(TEST_USER, signature, TEST_TIMESTAMP)
    assert request.dedup_enabled is True
    assert request.records == (
        LeadRecord(email="a@example.com", attributes=(("Company", "A & B"), ("Title", None))),
        LeadRecord(lead_id=5, foreign_sys_person_id="p-1", foreign_sys_type="SFDC"))


def _zeep_reply(client, body: bytes, status: int):
    import requests

    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers["Content-Type"] = soap.CONTENT_TYPE
    binding = client.service._binding
    return binding.process_reply(client, binding.get("syncMultipleLeads"), response)


def test_zeep_understands_our_responses_and_faults(zeep_client):
    result = _zeep_reply(zeep_client, soap_api.build_response([SyncStatus(7, "CREATED", None),
                                                           SyncStatus(0, "FAILED", "Lead Not Found")]), 200)
    assert [(s.leadId, s.status, s.error) for s in result.syncStatus] == [
        (7, "CREATED", None), (0, "FAILED", "Lead Not Found")]
    with pytest.raises(zeep.exceptions.Fault) as info:
        _zeep_reply(zeep_client, soap_api.build_fault("20016", "Request Expired"), 500)
    assert info.value.message == "20016 - Request Expired"
    assert info.value.detail.find(f"{{{soap.NS_MKTOWS}}}serviceException").findtext("code") == "20016"


# ----------------------------------------------------------------------------- cost and concurrency


def _big_batch() -> list[LeadRecord]:
    return [LeadRecord(email=f"lead{i}@example.com",
                       attributes=tuple((f"Attribute{j}", f"value {i}-{j}") for j in range(7)))
            for i in range(300)]


def test_importing_soap_does_not_import_lxml_or_xmlschema():
    code = ("import sys, reconcile.remote.soap.envelope; "
            "bad = [m for m in ('lxml', 'lxml.etree', 'xmlschema', 'zeep') if m in sys.modules]; "
            "sys.exit(', '.join(bad) or 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_concurrent_builds_agree():
    batch = _big_batch()[:50]
    expected = soap.build_request(batch, user_id="u", encryption_key="k", timestamp=TEST_TIMESTAMP)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: soap.build_request(batch, user_id="u", encryption_key="k",
                                                             timestamp=TEST_TIMESTAMP), range(8)))
    assert all(result == expected for result in results)


def test_full_batch_builds_and_parses_in_reasonable_time():
    batch = _big_batch()
    soap.build_request(batch[:1], user_id="u", encryption_key="k", timestamp=TEST_TIMESTAMP)  # warm the schema
    started = time.perf_counter()
    envelope = soap.build_request(batch, user_id="u", encryption_key="k", timestamp=TEST_TIMESTAMP)
    build_seconds = time.perf_counter() - started
    response = soap_api.build_response([SyncStatus(1000 + i, "CREATED", None) for i in range(300)])
    started = time.perf_counter()
    statuses = soap.parse_response(response)
    parse_seconds = time.perf_counter() - started
    assert len(soap_api.parse_request(envelope).records) == 300
    assert [s.lead_id for s in statuses] == list(range(1000, 1300))
    # Generous bounds (typically ~0.08 s and ~0.02 s): catch pathological regressions, not noise.
    assert build_seconds < 2.0 and parse_seconds < 1.0



def test_the_shared_validator_is_compiled_once_when_threads_race_to_it(monkeypatch):
    # libxml2 fails with "Internal error: xmlSchemaPValAttrNodeValue" about one time in ten when two
    # threads compile the XSD at once, as the first calls of a concurrent apply did. A slow stand-in
    # for the compile makes the race certain: only one compile may ever run.
    from reconcile.remote.soap import wire

    compiles, running, overlap = [], [0], [0]

    class SlowCompile:
        def __init__(self):
            running[0] += 1
            overlap[0] = max(overlap[0], running[0])
            time.sleep(0.05)
            compiles.append(self)
            running[0] -= 1

    monkeypatch.setattr(wire, "XsdValidator", SlowCompile)
    monkeypatch.setattr(wire, "_shared", [])
    barrier = concurrent.futures.ThreadPoolExecutor(max_workers=8)
    with barrier:
        results = list(barrier.map(lambda _: wire.shared_validator(), range(8)))
    assert len(compiles) == 1 and overlap[0] == 1
    assert all(result is compiles[0] for result in results)
