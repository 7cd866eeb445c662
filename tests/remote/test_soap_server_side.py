"""The emulator's side of SOAP (reconcile.emulator.soap_api): parse_request reads Marketo's example
and refuses malformed, hostile, unsupported or invalid requests with the right Marketo code and a
short one-line message; the signature never shows in a header's repr; the WSDL's inline types equal
the XSD, its served address is set and escaped, and zeep loads it, sends requests parse_request
understands and reads the emulator's responses and faults.
"""

from __future__ import annotations

import pytest
import zeep
from lxml import etree

from reconcile.emulator import soap_api
from reconcile.remote.soap import envelope as soap
from reconcile.remote.soap.codes import CODES
from reconcile.remote.soap.envelope import LeadRecord, SyncStatus
from soap_samples import (BILLION_LAUGHS, EXTERNAL_ENTITY, SEED_REQUEST, SEED_SIGNATURE, SEED_TIMESTAMP,
                          SEED_USER, TEST_KEY, TEST_TIMESTAMP, TEST_USER, WSDL_PATH, XSD_PATH)

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
