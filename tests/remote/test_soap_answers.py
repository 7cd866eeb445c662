"""reconcile.remote.soap.envelope reads Marketo's answers: sync statuses round-trip from the emulator's
responses, faults come back as SoapFault with their code whether it sits in the detail or the
faultstring, hostile messages are made safe, and anything unusable (DTDs, entity bombs, external
entities, HTML error pages, truncated or off-schema XML, oversized bodies) raises a ResponseError
quickly without reading a DTD, an entity or a schema hint.
"""

from __future__ import annotations

import time

import pytest

from reconcile.emulator import soap_api
from reconcile.remote.soap import envelope as soap
from reconcile.errors import ExitStatus, ResponseError
from reconcile.remote.soap.codes import CODES
from reconcile.remote.soap.fault import SoapFault
from reconcile.remote.soap.envelope import SyncStatus
from soap_samples import BILLION_LAUGHS, EXTERNAL_ENTITY, SEED_RESPONSE

# The fault shape from the facts file (marketo-soap-facts.md), verbatim.
FACTS_FAULT = b"""<SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode>
<faultstring>20014 - Authentication failed</faultstring>
<detail><ns1:serviceException xmlns:ns1="http://www.marketo.com/mktows/">
<name>mktServiceException</name><message>Authentication failed (20014)</message>
<code>20014</code></ns1:serviceException></detail></SOAP-ENV:Fault>"""


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
