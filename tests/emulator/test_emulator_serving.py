"""How the Marketo SOAP emulator serves: the WSDL with its own endpoint, the leads as JSON, 404 for
anything else, a Content-Length required, no request body or signature ever logged, keep-alive
connections reused and closed on stop; a generic SOAP client (zeep, from the served WSDL) creates,
updates and sees faults; and the foreground runner behind `reconcile emulator` prints its exports
and stops cleanly.
"""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest
import requests

from reconcile.remote.soap import envelope as soap
from reconcile.emulator import EmulatorConfig, Faults, serve_forever_cli
from soap_emulator_helpers import R, envelope, post, sync

# --------------------------------------------------------------------------------------------------
# HTTP routes


def test_wsdl_is_served_with_the_emulator_endpoint(emulator):
    for query in ("?WSDL", "?wsdl", "?Wsdl="):
        response = requests.get(emulator.endpoint + query, timeout=5)
        assert response.status_code == 200
        assert "xml" in response.headers["Content-Type"]
        assert f'location="{emulator.endpoint}"' in response.text
        assert "syncMultipleLeads" in response.text


def test_leads_are_served_as_json(emulator):
    sync(emulator, [R(email="b@example.com"), R(foreign_sys_person_id="F1", foreign_sys_type="SFDC",
                                                attributes={"Title": None, "City": "Paris"})])
    response = requests.get(emulator.leads_url, timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    leads = response.json()
    assert leads == emulator.leads()
    assert [lead["id"] for lead in leads] == [1000001, 1000002]
    assert set(leads[1]) == {"id", "email", "foreignSysPersonId", "foreignSysType", "attributes",
                             "createdAt", "updatedAt", "partition"}
    assert leads[1]["partition"] == "Default"
    assert leads[1]["attributes"] == {"Title": None, "City": "Paris"}
    assert (leads[1]["foreignSysPersonId"], leads[1]["foreignSysType"], leads[1]["email"]) == ("F1", "SFDC", None)


def test_anything_else_is_404(emulator):
    base = emulator.base_url
    assert requests.get(base + "/", timeout=5).status_code == 404
    assert requests.get(emulator.endpoint, timeout=5).status_code == 404  # no ?WSDL
    assert requests.post(base + "/soap/other", data=b"x", timeout=5).status_code == 404
    assert requests.put(emulator.endpoint, data=b"x", timeout=5).status_code == 404
    assert requests.get(base + "/_emulator/other", timeout=5).status_code == 404


def test_chunked_or_unsized_bodies_need_a_content_length(emulator):
    body = envelope(emulator, [R(email="a@example.com")])
    response = requests.post(emulator.endpoint, data=iter([body]), timeout=5)  # chunked
    assert response.status_code == 411
    assert emulator.leads() == []


def test_request_bodies_and_signatures_are_never_logged(emulator, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    body = envelope(emulator, [R(email="secret-lead@example.com")])
    signature = re.search(rb"<requestSignature>([0-9a-f]+)<", body).group(1).decode()
    post(emulator, body)
    post(emulator, envelope(emulator, [R(email="x@example.com")], key="wrong"))
    requests.get(emulator.base_url + "/nowhere", timeout=5)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert signature not in logged and "secret-lead" not in logged
    out, err = capfd.readouterr()
    assert err == "" and signature not in out


def test_keep_alive_connections_are_reused_and_closed_on_stop(emulator_factory):
    emu = emulator_factory()
    with requests.Session() as session:
        for i in range(3):
            response = session.post(emu.endpoint, data=envelope(emu, [R(email=f"k{i}@example.com")]),
                                    headers={"Content-Type": soap.CONTENT_TYPE, "SOAPAction": soap.SOAP_ACTION},
                                    timeout=5)
            assert response.status_code == 200
        emu.stop()
        with pytest.raises(requests.ConnectionError):
            session.post(emu.endpoint, data=envelope(emu, [R(email="late@example.com")]), timeout=5)
    assert len(emu.leads()) == 3


# --------------------------------------------------------------------------------------------------
# Through a generic SOAP client (zeep), using the WSDL the emulator serves


def test_zeep_client_creates_updates_and_sees_faults(emulator):
    import zeep
    from zeep.transports import Transport

    session = requests.Session()
    client = zeep.Client(emulator.endpoint + "?WSDL", transport=Transport(session=session, timeout=10))

    def auth(key=emulator.encryption_key):
        stamp = soap.w3c_timestamp()
        return {"AuthenticationHeader": {"mktowsUserId": emulator.user_id, "requestTimestamp": stamp,
                                         "requestSignature": soap.sign(key, stamp, emulator.user_id)}}

    def call(records, key=emulator.encryption_key):
        return client.service.syncMultipleLeads(leadRecordList={"leadRecord": records}, dedupEnabled=True,
                                                _soapheaders=auth(key))

    def statuses(result):  # zeep unwraps the single-child result down to the ArrayOfSyncStatus
        return [(s.leadId, s.status) for s in result.syncStatus]

    created = call([{"Email": "zeep@example.com",
                     "leadAttributeList": {"attribute": [{"attrName": "Company", "attrValue": "Zeep Inc"}]}}])
    assert statuses(created) == [(1000001, "CREATED")]
    updated = call([{"Id": 1000001, "leadAttributeList": {"attribute": [{"attrName": "Title", "attrValue": "CTO"}]}}])
    assert statuses(updated) == [(1000001, "UPDATED")]
    assert emulator.leads()[0]["attributes"] == {"Company": "Zeep Inc", "Title": "CTO"}
    with pytest.raises(zeep.exceptions.Fault) as info:
        call([{"Email": "zeep@example.com"}], key="wrong-key")
    assert "20014" in info.value.message
    session.close()


# --------------------------------------------------------------------------------------------------
# The foreground runner behind `reconcile emulator`


def test_serve_forever_cli_prints_exports_and_stops_cleanly():
    lines: list[str] = []
    stop = threading.Event()
    config = EmulatorConfig(user_id="cli-user", encryption_key="cli key with spaces")
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(
        serve_forever_cli(config, "127.0.0.1", 0, Faults(latency=0.01), lines.append, stop=stop)))
    runner.start()
    deadline = time.monotonic() + 5
    while not any(line.startswith("export MARKETO_ENCRYPTION_KEY") for line in lines):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    endpoint = next(line.split("=", 1)[1] for line in lines if line.startswith("export MARKETO_SOAP_ENDPOINT="))
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/soap/mktows/2_1", endpoint)
    assert "export MARKETO_USER_ID=cli-user" in lines
    # A key the user chose is a secret: the export line points at it without printing it.
    assert "cli key with spaces" not in "\n".join(lines)
    assert any(line.startswith('export MARKETO_ENCRYPTION_KEY="$MARKETO_ENCRYPTION_KEY"') for line in lines)
    assert requests.get(endpoint + "?WSDL", timeout=5).status_code == 200
    stop.set()
    runner.join(5)
    assert not runner.is_alive() and result == [0]
    with pytest.raises(requests.ConnectionError):
        requests.get(endpoint + "?WSDL", timeout=2)
