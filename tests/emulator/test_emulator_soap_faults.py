"""The Marketo SOAP emulator refuses what Marketo refuses, with Marketo's faults in SOAP 1.1 shape:
malformed or hostile XML and oversized bodies are 20012, XSD-invalid requests 20017, other operations
20019, a missing header, unknown user or wrong signature 20014, a stale or unparsable timestamp 20016
(15 minutes either way, any offset, is accepted), and the checks run in Marketo's order: parse, then
authentication, then freshness, then limits.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from reconcile.remote.soap import envelope as soap
from reconcile.emulator.soap_api import parse_w3c_timestamp
from reconcile.remote.soap.fault import SoapFault
from soap_emulator_helpers import R, envelope, fault_code, post, sync, sync_fault

# --------------------------------------------------------------------------------------------------
# Parse -> auth -> freshness: faults


def test_fault_shape_is_soap_1_1_with_mktows_detail(emulator):
    response = post(emulator, envelope(emulator, [R(email="a@example.com")], key="wrong-key"))
    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/xml")
    text = response.text
    assert "SOAP-ENV:Fault" in text or ":Fault" in text
    assert "<faultcode>SOAP-ENV:Client</faultcode>" in text
    assert "<faultstring>20014 - Authentication failed</faultstring>" in text
    assert "<code>20014</code>" in text and "mktServiceException" in text
    with pytest.raises(SoapFault) as info:
        soap.parse_response(response.content, response.status_code)
    assert info.value.code == "20014"


def test_malformed_xml_is_20012(emulator):
    assert fault_code(emulator, b"<SOAP-ENV:Envelope xmlns:SOAP-ENV='x'><unclosed>") == "20012"
    assert fault_code(emulator, b"") == "20012"


def test_hostile_xml_is_20012(emulator):
    body = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>'
            b'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">'
            b'<SOAP-ENV:Body>&a;</SOAP-ENV:Body></SOAP-ENV:Envelope>')
    assert fault_code(emulator, body) == "20012"


def test_oversized_body_is_20012(emulator_factory):
    emu = emulator_factory(max_body_bytes=2000)
    records = [R(email=f"big{i}@example.com", attributes={"Company": "x" * 50}) for i in range(30)]
    assert sync_fault(emu, records) == "20012"
    assert emu.leads() == []


def test_xsd_invalid_request_is_20017(emulator):
    body = envelope(emulator, [R(email="a@example.com")])
    invalid = body.replace(b"<Email>a@example.com</Email>", b"<Id>not-a-number</Id>")
    assert invalid != body
    assert fault_code(emulator, invalid) == "20017"
    assert emulator.leads() == []


def test_other_operation_is_20019(emulator):
    body = envelope(emulator, [R(email="a@example.com")]).replace(b"paramsSyncMultipleLeads", b"paramsGetLead")
    assert fault_code(emulator, body) == "20019"


def test_missing_authentication_header_is_20014(emulator):
    body = envelope(emulator, [R(email="a@example.com")])
    headerless = re.sub(rb"<SOAP-ENV:Header>.*</SOAP-ENV:Header>\s*", b"", body, flags=re.DOTALL)
    assert headerless != body
    assert fault_code(emulator, headerless) == "20014"


def test_unknown_user_is_20014(emulator):
    assert sync_fault(emulator, [R(email="a@example.com")], user_id="someone-else") == "20014"


def test_wrong_signature_is_20014(emulator):
    assert sync_fault(emulator, [R(email="a@example.com")], key="not-the-key") == "20014"
    # a signature for another timestamp does not verify either
    body = envelope(emulator, [R(email="a@example.com")])
    other = soap.sign(emulator.encryption_key, "2013-08-01T18:22:30-07:00", emulator.user_id)
    forged = re.sub(rb"<requestSignature>[0-9a-f]+</requestSignature>",
                    b"<requestSignature>" + other.encode() + b"</requestSignature>", body)
    assert forged != body
    assert fault_code(emulator, forged) == "20014"
    assert emulator.leads() == []


@pytest.mark.parametrize("stamp", [
    lambda now: soap.w3c_timestamp(now - timedelta(minutes=16)),
    lambda now: soap.w3c_timestamp(now + timedelta(minutes=16)),
    lambda now: soap.w3c_timestamp(now.astimezone(timezone(timedelta(hours=-7))) - timedelta(hours=1)),
    lambda now: now.replace(tzinfo=None).isoformat(timespec="seconds"),  # no offset
    lambda now: "yesterday",
], ids=["16-min-old", "16-min-ahead", "hour-old-in-PDT", "no-offset", "unparsable"])
def test_stale_or_unparsable_timestamp_is_20016(emulator, stamp):
    assert sync_fault(emulator, [R(email="a@example.com")], timestamp=stamp(datetime.now(timezone.utc))) == "20016"
    assert emulator.leads() == []


def test_timestamp_within_15_minutes_either_way_and_any_offset_is_accepted(emulator):
    now = datetime.now(timezone.utc)
    pacific = timezone(timedelta(hours=-7))
    for moment in (now - timedelta(minutes=14), now + timedelta(minutes=14), now.astimezone(pacific)):
        assert sync(emulator, [R(email="a@example.com")], now=moment)[0].status in ("CREATED", "UPDATED")
    assert parse_w3c_timestamp("2013-08-01T18:22:30-07:00") == datetime(2013, 8, 2, 1, 22, 30, tzinfo=timezone.utc)
    assert parse_w3c_timestamp("2013-08-01T18:22:30Z") is not None
    assert parse_w3c_timestamp("2013-08-01") is None


def test_check_order_parse_then_auth_then_freshness_then_limits(emulator_factory):
    emu = emulator_factory(max_batch=1)
    two = [R(email="a@example.com"), R(email="b@example.com")]
    old = datetime.now(timezone.utc) - timedelta(hours=1)
    # auth before freshness and limits
    assert sync_fault(emu, two, key="wrong", now=old) == "20014"
    # freshness before limits
    assert sync_fault(emu, two, now=old) == "20016"
    # parse before auth: an unsigned, schema-invalid body is 20017, not 20014
    body = envelope(emu, two, key="wrong").replace(b"<leadRecordList>", b"<leadRecordList><bogus/>")
    assert fault_code(emu, body) == "20017"
    # limits before semantics
    assert sync_fault(emu, two) == "20110"
    assert emu.leads() == []
