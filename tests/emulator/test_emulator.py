"""The Marketo SOAP emulator: wire contract, syncMultipleLeads semantics, limits, faults, zeep."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from reconcile.remote.soap import envelope as soap
from reconcile.emulator import DEFAULT_FIELDS, Emulator, EmulatorConfig, Faults, serve_forever_cli
from reconcile.emulator.store import LeadStore, create_database
from reconcile.emulator.limits import quota_day
from reconcile.emulator.soap_api import parse_w3c_timestamp
from reconcile.emulator.store import StoreError
from reconcile.remote.soap.fault import SoapFault

R = soap.LeadRecord


# --------------------------------------------------------------------------------------------------
# A minimal client, built on reconcile.remote.soap.envelope (the same code the real client uses)


def envelope(emu, records, *, dedup=True, user_id=None, key=None, timestamp=None, now=None):
    stamp = timestamp if timestamp is not None else soap.w3c_timestamp(now or emu.config.now())
    return soap.build_request(list(records), user_id=user_id or emu.user_id,
                              encryption_key=key or emu.encryption_key, timestamp=stamp,
                              dedup_enabled=dedup)


def post(emu, body: bytes, timeout: float = 10.0) -> requests.Response:
    return requests.post(emu.endpoint, data=body, timeout=timeout,
                         headers={"Content-Type": soap.CONTENT_TYPE, "SOAPAction": soap.SOAP_ACTION})


def sync(emu, records, **kwargs) -> list[soap.SyncStatus]:
    response = post(emu, envelope(emu, records, **kwargs))
    return soap.parse_response(response.content, response.status_code)


def fault_code(emu, body: bytes) -> str:
    response = post(emu, body)
    assert response.status_code == 500, response.text
    with pytest.raises(SoapFault) as info:
        soap.parse_response(response.content, response.status_code)
    return info.value.code


def sync_fault(emu, records, **kwargs) -> str:
    return fault_code(emu, envelope(emu, records, **kwargs))


def without_dedup(body: bytes) -> bytes:
    stripped = re.sub(rb"<dedupEnabled>[^<]*</dedupEnabled>\s*", b"", body)
    assert stripped != body
    return stripped


def by_id(emu) -> dict[int, dict]:
    return {lead["id"]: lead for lead in emu.leads()}


class FakeClock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


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


# --------------------------------------------------------------------------------------------------
# syncMultipleLeads semantics


def test_create_by_email_with_increasing_realistic_ids(emulator):
    statuses = sync(emulator, [R(email=f"em{i}@etestd.marketo.net", attributes={"Company": f"Marketo{i}"})
                               for i in (1000, 1001, 1002)])
    assert [s.status for s in statuses] == ["CREATED"] * 3
    assert [s.lead_id for s in statuses] == [1000001, 1000002, 1000003]
    assert all(s.error is None for s in statuses)
    later = sync(emulator, [R(email="em1003@etestd.marketo.net")])
    assert later[0].lead_id == 1000004
    lead = by_id(emulator)[1000001]
    assert lead["email"] == "em1000@etestd.marketo.net"
    assert lead["attributes"] == {"Company": "Marketo1000"}
    assert lead["createdAt"] and lead["updatedAt"]


def test_statuses_come_back_in_request_order(emulator):
    sync(emulator, [R(email="b@example.com")])
    statuses = sync(emulator, [R(email="a@example.com"), R(lead_id=42), R(email="B@example.com"), R()])
    assert [s.status for s in statuses] == ["CREATED", "FAILED", "UPDATED", "FAILED"]
    assert statuses[2].lead_id == 1000001


def test_dedup_true_updates_lead_with_same_email_case_insensitively(emulator):
    created = sync(emulator, [R(email="Jane@Example.com", attributes={"FirstName": "Jane"})])[0]
    updated = sync(emulator, [R(email="jane@example.COM", attributes={"LastName": "Doe"})], dedup=True)[0]
    assert (updated.status, updated.lead_id) == ("UPDATED", created.lead_id)
    [lead] = emulator.leads()
    assert lead["attributes"] == {"FirstName": "Jane", "LastName": "Doe"}
    assert lead["email"] == "Jane@Example.com"  # the key is not rewritten


def test_dedup_absent_behaves_as_true(emulator):
    created = sync(emulator, [R(email="jane@example.com")])[0]
    body = without_dedup(envelope(emulator, [R(email="JANE@example.com", attributes={"Title": "CTO"})]))
    response = post(emulator, body)
    [status] = soap.parse_response(response.content, response.status_code)
    assert (status.status, status.lead_id) == ("UPDATED", created.lead_id)
    assert len(emulator.leads()) == 1


def test_dedup_false_creates_duplicates_and_dedup_then_picks_lowest_id(emulator):
    first = sync(emulator, [R(email="dup@example.com")], dedup=False)[0]
    second = sync(emulator, [R(email="dup@example.com")], dedup=False)[0]
    assert (first.status, second.status) == ("CREATED", "CREATED")
    assert second.lead_id > first.lead_id
    assert len(emulator.leads()) == 2
    again = sync(emulator, [R(email="DUP@example.com", attributes={"Title": "x"})], dedup=True)[0]
    assert (again.status, again.lead_id) == ("UPDATED", first.lead_id)


def test_records_of_one_call_see_the_ones_before_them(emulator):
    statuses = sync(emulator, [R(email="same@example.com", attributes={"FirstName": "A"}),
                               R(email="same@example.com", attributes={"LastName": "B"})])
    assert [s.status for s in statuses] == ["CREATED", "UPDATED"]
    assert statuses[0].lead_id == statuses[1].lead_id
    assert emulator.leads()[0]["attributes"] == {"FirstName": "A", "LastName": "B"}


def test_id_takes_precedence_over_foreign_id_which_is_updated(emulator):
    lead_id = sync(emulator, [R(email="a@example.com")])[0].lead_id
    other = sync(emulator, [R(email="b@example.com")])[0].lead_id
    [status] = sync(emulator, [R(lead_id=lead_id, email="b@example.com", foreign_sys_person_id="SF-1",
                                 foreign_sys_type="SFDC", attributes={"Title": "CTO"})])
    assert (status.status, status.lead_id) == ("UPDATED", lead_id)
    lead = by_id(emulator)[lead_id]
    assert (lead["foreignSysPersonId"], lead["foreignSysType"]) == ("SF-1", "SFDC")
    assert lead["attributes"] == {"Title": "CTO"}
    assert by_id(emulator)[other]["attributes"] == {}
    # the foreign ID now finds that lead
    [status] = sync(emulator, [R(foreign_sys_person_id="SF-1", foreign_sys_type="SFDC", attributes={"City": "X"})])
    assert (status.status, status.lead_id) == ("UPDATED", lead_id)
    # ... and moving it again replaces it (type defaults to CUSTOM)
    sync(emulator, [R(lead_id=lead_id, foreign_sys_person_id="C-9")])
    lead = by_id(emulator)[lead_id]
    assert (lead["foreignSysPersonId"], lead["foreignSysType"]) == ("C-9", "CUSTOM")
    [status] = sync(emulator, [R(foreign_sys_person_id="SF-1", foreign_sys_type="SFDC")])
    assert status.status == "CREATED"


def test_foreign_id_of_another_lead_is_20102(emulator):
    a, b = (s.lead_id for s in sync(emulator, [R(foreign_sys_person_id="F1"), R(foreign_sys_person_id="F2")]))
    [status] = sync(emulator, [R(lead_id=a, foreign_sys_person_id="F2", attributes={"Title": "x"})])
    assert status.status == "FAILED" and status.error.startswith("20102")
    assert status.lead_id == a
    assert by_id(emulator)[a]["foreignSysPersonId"] == "F1" and by_id(emulator)[a]["attributes"] == {}


def test_email_element_with_id_is_not_an_update(emulator):
    lead_id = sync(emulator, [R(email="old@example.com")])[0].lead_id
    [status] = sync(emulator, [R(lead_id=lead_id, email="new@example.com", attributes={"Title": "CTO"})])
    assert status.status == "UPDATED"
    assert by_id(emulator)[lead_id]["email"] == "old@example.com"


def test_email_attribute_updates_email(emulator):
    lead_id = sync(emulator, [R(email="old@example.com")])[0].lead_id
    sync(emulator, [R(lead_id=lead_id, email="old@example.com", attributes={"Email": "new@example.com"})])
    assert by_id(emulator)[lead_id]["email"] == "new@example.com"
    # the email index follows: dedup now finds the lead by its new email only
    assert sync(emulator, [R(email="NEW@example.com")])[0].lead_id == lead_id
    assert sync(emulator, [R(email="old@example.com")])[0].status == "CREATED"


def test_foreign_id_creates_with_email_then_updates_without_touching_email(emulator):
    [created] = sync(emulator, [R(foreign_sys_person_id="1224191", foreign_sys_type="SFDC",
                                  email="jane@example.com", attributes={"FirstName": "Jane"})])
    assert created.status == "CREATED"
    lead = by_id(emulator)[created.lead_id]
    assert (lead["email"], lead["foreignSysPersonId"], lead["foreignSysType"]) == \
        ("jane@example.com", "1224191", "SFDC")
    [updated] = sync(emulator, [R(foreign_sys_person_id="1224191", foreign_sys_type="SFDC",
                                  email="other@example.com", attributes={"Title": "CEO"})])
    assert (updated.status, updated.lead_id) == ("UPDATED", created.lead_id)
    assert by_id(emulator)[created.lead_id]["email"] == "jane@example.com"
    # the key is type + id: the same id of another type is another lead; no type means CUSTOM
    [custom] = sync(emulator, [R(foreign_sys_person_id="1224191")])
    assert custom.status == "CREATED" and by_id(emulator)[custom.lead_id]["foreignSysType"] == "CUSTOM"
    [again] = sync(emulator, [R(foreign_sys_person_id="1224191", foreign_sys_type="CUSTOM")])
    assert (again.status, again.lead_id) == ("UPDATED", custom.lead_id)


def test_foreign_id_does_not_dedup_by_email(emulator):
    by_email = sync(emulator, [R(email="jane@example.com")])[0]
    [status] = sync(emulator, [R(foreign_sys_person_id="X1", email="jane@example.com")])
    assert status.status == "CREATED" and status.lead_id != by_email.lead_id


def test_unknown_id_fails_20103_with_the_requested_id(emulator):
    [status] = sync(emulator, [R(lead_id=999, email="a@example.com", attributes={"Title": "x"})])
    assert (status.status, status.lead_id) == ("FAILED", 999)
    assert status.error == "20103 - Lead Not Found"
    assert emulator.leads() == []


def test_record_without_key_fails_20101(emulator):
    [status] = sync(emulator, [R(attributes={"FirstName": "Nobody"})])
    assert (status.status, status.lead_id, status.error) == ("FAILED", 0, "20101 - Lead Key Required")
    assert emulator.leads() == []


def test_bad_attribute_fails_the_whole_record_only(emulator):
    lead_id = sync(emulator, [R(email="a@example.com", attributes={"Title": "Old"})])[0].lead_id
    statuses = sync(emulator, [
        R(email="a@example.com", attributes={"Title": "New", "NoSuchField": "x"}),
        R(email="b@example.com", attributes={"company": "lower-case is another name"}),
        R(email="c@example.com", attributes={"Company": "C"}),
    ])
    assert (statuses[0].status, statuses[0].lead_id) == ("FAILED", lead_id)
    assert statuses[0].error == "20105 - Lead Attribute Bad: NoSuchField"
    assert (statuses[1].status, statuses[1].lead_id) == ("FAILED", 0)
    assert statuses[1].error == "20105 - Lead Attribute Bad: company"
    assert statuses[2].status == "CREATED"
    leads = by_id(emulator)
    assert leads[lead_id]["attributes"] == {"Title": "Old"}
    assert [lead["email"] for lead in leads.values()] == ["a@example.com", "c@example.com"]


def test_extra_fields_are_accepted(emulator_factory):
    emu = emulator_factory(extra_fields=frozenset({"Favorite_Color__c"}))
    assert sync(emu, [R(email="a@example.com", attributes={"Favorite_Color__c": "teal"})])[0].status == "CREATED"
    assert emu.leads()[0]["attributes"] == {"Favorite_Color__c": "teal"}


def test_empty_value_clears_the_field(emulator):
    lead_id = sync(emulator, [R(email="a@example.com", attributes={"Title": "CTO", "Phone": "1"})])[0].lead_id
    sync(emulator, [R(lead_id=lead_id, attributes={"Title": None})])
    assert by_id(emulator)[lead_id]["attributes"] == {"Title": None, "Phone": "1"}


def test_default_fields_are_marketo_standard_names():
    assert len(DEFAULT_FIELDS) >= 60
    for name in ("FirstName", "LastName", "Email", "Company", "Title", "Phone", "MobilePhone", "Address",
                 "City", "State", "PostalCode", "Country", "Website", "Industry", "AnnualRevenue",
                 "NumberOfEmployees", "LeadSource", "LeadStatus", "Unsubscribed", "DoNotCall"):
        assert name in DEFAULT_FIELDS


# --------------------------------------------------------------------------------------------------
# Persistence


def test_database_survives_a_restart(tmp_path, emulator_factory):
    db = tmp_path / "state" / "emulator.json"
    first = emulator_factory(db_path=db)
    ids = [s.lead_id for s in sync(first, [R(email="a@example.com", attributes={"Title": "CTO"}),
                                           R(foreign_sys_person_id="F1", email="f@example.com")])]
    snapshot = first.leads()
    first.stop()
    second = emulator_factory(db_path=db)
    assert second.leads() == snapshot
    # keys and ids carry over: dedup and foreign ids find the old leads, new ids continue
    statuses = sync(second, [R(email="A@example.com"), R(foreign_sys_person_id="F1"), R(email="new@example.com")])
    assert [(s.status, s.lead_id) for s in statuses] == \
        [("UPDATED", ids[0]), ("UPDATED", ids[1]), ("CREATED", ids[1] + 1)]
    # and an Emulator object restarted in place reloads from disk too
    second.stop()
    second.start()
    assert len(second.leads()) == 3


def persisted(db):
    """The leads a database on disk holds, as a restarted emulator would load them."""
    return LeadStore(fields=frozenset(), path=db).leads()


def test_database_is_written_before_the_response(tmp_path, emulator_factory):
    db = tmp_path / "emulator.json"
    emu = emulator_factory(db_path=db)
    [status] = sync(emu, [R(email="a@example.com")])
    assert [lead["id"] for lead in persisted(db)] == [status.lead_id]  # right after the response: on disk
    emu.stop()
    assert [lead["id"] for lead in json.loads(db.read_text())["leads"]] == [status.lead_id]
    assert (tmp_path / "emulator.json.log").read_bytes() == b"", "a stopped emulator leaves one complete file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emulator.json", "emulator.json.log"]  # no temp files


def test_a_call_appends_what_it_changed_and_the_log_is_folded_once_it_outgrew_the_snapshot_and_calls_paused(
        tmp_path):
    db = tmp_path / "emulator.json"
    create_database(db, leads=[])
    clock = [0.0]
    store = LeadStore(fields=frozenset({"Title"}), path=db, min_log_bytes=2000, monotonic=lambda: clock[0])
    log = tmp_path / "emulator.json.log"
    snapshot = db.read_bytes()
    store.sync([R(email=f"u{i}@example.com") for i in range(3)], True)
    store.sync([R(email="u1@example.com", attributes=(("Title", "CTO"),))], True)
    assert db.read_bytes() == snapshot, "a call does not rewrite the whole database"
    assert [len(json.loads(line)["leads"]) for line in log.read_text().splitlines()] == [3, 1], \
        "only what each call changed"
    assert persisted(db) == store.leads()
    store.sync([R(email=f"many{i}@example.com", attributes=(("Title", "x" * 50),)) for i in range(30)], True)
    clock[0] += 0.9
    assert not store.fold_when_quiet(quiet=1.0) and log.read_bytes() and db.read_bytes() == snapshot, \
        "the log outgrew the snapshot, but a call wrote under a second ago: no fold stalls the next call"
    clock[0] += 0.2
    assert store.fold_when_quiet(quiet=1.0)
    assert log.read_bytes() == b"" and json.loads(db.read_text())["leads"] == store.leads(), \
        "folded into the snapshot once calls paused"
    lead_lines = [line for line in db.read_text().splitlines() if line.startswith("  {")]
    assert [json.loads(line.rstrip(",")) for line in lead_lines] == store.leads(), "one lead a line, diffable"
    store.sync([R(email="u2@example.com", attributes=(("Title", "CEO"),))], True)
    clock[0] += 5
    assert not store.fold_when_quiet(quiet=1.0) and log.read_bytes(), "a log smaller than the snapshot stays"


def test_a_log_that_grows_far_past_the_snapshot_with_no_pause_is_folded_by_the_call(tmp_path):
    db = tmp_path / "emulator.json"
    store = LeadStore(fields=frozenset({"Title"}), path=db, min_log_bytes=200, monotonic=lambda: 0.0)
    log = tmp_path / "emulator.json.log"
    for i in range(200):
        store.sync([R(email=f"u{i}@example.com", attributes=(("Title", "x" * 40),))], True)
        assert log.stat().st_size <= 16 * max(200, db.stat().st_size if db.exists() else 0) + 200
    assert db.exists() and persisted(db) == store.leads()


def test_the_server_folds_the_log_between_calls_once_they_pause(tmp_path, emulator_factory, monkeypatch):
    monkeypatch.setattr("reconcile.emulator.store.QUIET_SECONDS", 0.3)
    emu = emulator_factory(db_path=tmp_path / "emulator.json")
    sync(emu, [R(email=f"u{i}@example.com", attributes={"Title": "t" * 40}) for i in range(40)])
    log = tmp_path / "emulator.json.log"
    assert log.stat().st_size > 0
    emu.store._min_log_bytes = 100  # the log has outgrown the snapshot now
    deadline = time.monotonic() + 10
    while log.stat().st_size and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.stat().st_size == 0, "calls paused: the server folded the log"
    assert [lead["email"] for lead in persisted(tmp_path / "emulator.json")][:2] == ["u0@example.com", "u1@example.com"]


def test_a_torn_last_log_line_is_dropped_and_a_corrupt_one_refused(tmp_path):
    db = tmp_path / "emulator.json"
    store = LeadStore(fields=frozenset(), path=db)
    store.sync([R(email="kept@example.com")], True)
    log = tmp_path / "emulator.json.log"
    with open(log, "ab") as handle:
        handle.write(b'{"deleted": [], "leads": [{"id": 1000002, "ema')  # a crash mid-write
    assert [lead["email"] for lead in persisted(db)] == ["kept@example.com"]
    log.write_bytes(b'{"not": "a change"}\n' + log.read_bytes())
    with pytest.raises(StoreError, match="corrupt at line 1"):
        persisted(db)


def test_failed_write_rolls_the_call_back_and_faults_20011(tmp_path, emulator_factory, monkeypatch):
    emu = emulator_factory(db_path=tmp_path / "emulator.json")
    sync(emu, [R(email="a@example.com", attributes={"Title": "Old"})])

    def broken(path):
        raise StoreError("disk full")

    monkeypatch.setattr(emu.store, "_append", lambda path, changes: broken(path))
    assert sync_fault(emu, [R(email="a@example.com", attributes={"Title": "New"}), R(email="b@example.com")]) == "20011"
    assert [(lead["email"], lead["attributes"]) for lead in emu.leads()] == [("a@example.com", {"Title": "Old"})]
    monkeypatch.undo()
    assert sync(emu, [R(email="b@example.com")])[0].lead_id == 1000002  # the id was not consumed


def test_corrupt_database_is_refused_not_overwritten(tmp_path):
    db = tmp_path / "emulator.json"
    db.write_text('{"format_version": 1, "leads": [{"id": "x"}]}')
    with pytest.raises(StoreError, match="corrupt"):
        Emulator(EmulatorConfig(db_path=db))
    assert db.read_text().startswith('{"format_version": 1')


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
# Limits


def test_batch_over_300_is_20110_and_300_is_fine(emulator):
    records = [R(email=f"b{i}@example.com") for i in range(301)]
    assert sync_fault(emulator, records) == "20110"
    assert emulator.leads() == []
    assert len(sync(emulator, records[:300])) == 300
    assert len(emulator.leads()) == 300


def test_rate_limit_is_20023_over_a_sliding_window(emulator_factory):
    emu = emulator_factory(rate_calls=5, rate_window=1.0)
    outcomes = []
    for i in range(7):
        try:
            outcomes.append(sync(emu, [R(email=f"r{i}@example.com")])[0].status)
        except SoapFault as fault:
            outcomes.append(fault.code)
    assert outcomes == ["CREATED"] * 5 + ["20023"] * 2
    assert len(emu.leads()) == 5
    first_admitted = min(c.start for c in emu.calls if c.admitted)
    time.sleep(max(0.0, first_admitted + 1.05 - time.monotonic()))
    assert sync(emu, [R(email="later@example.com")])[0].status == "CREATED"
    # seen from the server: never more than 5 admitted calls within any 1 s
    starts = sorted(c.start for c in emu.calls if c.admitted)
    assert len(starts) == 6
    assert all(sum(1 for t in starts if s <= t < s + 1.0) <= 5 for s in starts)
    assert [c.code for c in emu.calls if not c.admitted] == ["20023", "20023"]


def test_concurrency_limit_is_20024(emulator_factory):
    emu = emulator_factory(max_concurrency=2)
    emu.faults.latency = 0.6
    barrier = threading.Barrier(6)
    results: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        body = envelope(emu, [R(email=f"c{i}@example.com")])
        barrier.wait(timeout=30)
        try:
            response = post(emu, body)
            outcome = soap.parse_response(response.content, response.status_code)[0].status
        except SoapFault as fault:
            outcome = fault.code
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["20024"] * 4 + ["CREATED"] * 2
    admitted = [c for c in emu.calls if c.admitted]
    assert len(admitted) == 2 and all(c.duration >= 0.6 for c in admitted)
    # measured from the server's side: at no instant were more than 2 calls admitted
    for call in admitted:
        overlapping = sum(1 for other in admitted if other.start <= call.start < other.end)
        assert overlapping <= 2
    assert emu.limits.in_flight == 0


def test_sequential_calls_never_hit_the_concurrency_limit(emulator_factory):
    emu = emulator_factory(max_concurrency=1)
    with requests.Session() as session:
        for i in range(25):
            response = session.post(emu.endpoint, data=envelope(emu, [R(email=f"s{i}@example.com")]),
                                    headers={"Content-Type": soap.CONTENT_TYPE}, timeout=5)
            assert soap.parse_response(response.content, response.status_code)[0].status == "CREATED"
    assert len(emu.calls) == 25 and all(c.outcome == "ok" for c in emu.calls)


def test_daily_quota_is_20015_and_resets_at_midnight_central(emulator_factory):
    # 23:59:00 CST on 15 Jan 2024 is 05:59:00 UTC on 16 Jan
    clock = FakeClock(datetime(2024, 1, 16, 5, 59, 0, tzinfo=timezone.utc))
    emu = emulator_factory(daily_quota=3, clock=clock)
    for i in range(3):
        assert sync(emu, [R(email=f"q{i}@example.com")])[0].status == "CREATED"
    assert sync_fault(emu, [R(email="q3@example.com")]) == "20015"
    clock.now = datetime(2024, 1, 16, 5, 59, 59, tzinfo=timezone.utc)  # still 23:59:59 in Chicago
    assert sync_fault(emu, [R(email="q3@example.com")]) == "20015"
    clock.now = datetime(2024, 1, 16, 6, 0, 1, tzinfo=timezone.utc)  # 00:00:01 CST: a new day
    assert sync(emu, [R(email="q3@example.com")])[0].status == "CREATED"
    assert len(emu.leads()) == 4
    assert emu.limits.used_today == 1


def test_quota_day_follows_central_time_including_daylight_saving():
    utc = timezone.utc
    assert quota_day(datetime(2024, 1, 16, 5, 59, 59, tzinfo=utc)).day == 15  # CST, UTC-6
    assert quota_day(datetime(2024, 1, 16, 6, 0, 0, tzinfo=utc)).day == 16
    assert quota_day(datetime(2024, 7, 16, 4, 59, 59, tzinfo=utc)).day == 15  # CDT, UTC-5
    assert quota_day(datetime(2024, 7, 16, 5, 0, 0, tzinfo=utc)).day == 16


def test_reset_counters_forgets_rate_quota_and_call_log(emulator_factory):
    emu = emulator_factory(rate_calls=1, rate_window=60.0)
    sync(emu, [R(email="a@example.com")])
    assert sync_fault(emu, [R(email="b@example.com")]) == "20023"
    assert len(emu.calls) == 2
    emu.reset_counters()
    assert emu.calls == []
    assert sync(emu, [R(email="b@example.com")])[0].status == "CREATED"


# --------------------------------------------------------------------------------------------------
# Fault injection


def test_fail_every_nth_call_faults_and_applies_nothing(emulator):
    emulator.faults.update(fail_every=3, fail_code="20011")
    outcomes = []
    for i in range(6):
        try:
            outcomes.append(sync(emulator, [R(email=f"f{i}@example.com")])[0].status)
        except SoapFault as fault:
            outcomes.append(fault.code)
    assert outcomes == ["CREATED", "CREATED", "20011", "CREATED", "CREATED", "20011"]
    assert [lead["email"] for lead in emulator.leads()] == [f"f{i}@example.com" for i in (0, 1, 3, 4)]


def test_fail_rate_is_seeded_and_deterministic(emulator_factory):
    def pattern(emu):
        out = []
        for i in range(12):
            try:
                sync(emu, [R(email=f"p{i}@example.com")])
                out.append(True)
            except SoapFault as fault:
                assert fault.code == "20013"
                out.append(False)
        return out

    first = emulator_factory(faults=Faults(fail_rate=0.5, fail_code="20013", seed=7))
    second = emulator_factory(faults=Faults(fail_rate=0.5, fail_code="20013", seed=7))
    a, b = pattern(first), pattern(second)
    assert a == b and True in a and False in a
    assert len(first.leads()) == a.count(True)


def test_injected_http_error_is_plain_non_soap(emulator):
    emulator.faults.update(fail_every=1, fail_http_status=503)
    response = post(emulator, envelope(emulator, [R(email="a@example.com")]))
    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "Envelope" not in response.text
    assert emulator.leads() == []
    assert emulator.calls[-1].outcome == "http_error"


def test_injected_faults_come_after_auth(emulator):
    emulator.faults.fail_every = 1
    assert sync_fault(emulator, [R(email="a@example.com")], key="wrong") == "20014"
    assert sync_fault(emulator, [R(email="a@example.com")]) == "20011"


def test_commit_then_drop_applies_and_persists_but_sends_nothing(tmp_path, emulator_factory):
    db = tmp_path / "emulator.json"
    emu = emulator_factory(db_path=db, faults=Faults(drop_every=2))
    assert sync(emu, [R(email="a@example.com")])[0].status == "CREATED"
    with pytest.raises(requests.ConnectionError):
        post(emu, envelope(emu, [R(email="b@example.com"), R(email="c@example.com")]))
    assert [lead["email"] for lead in emu.leads()] == ["a@example.com", "b@example.com", "c@example.com"]
    assert len(persisted(db)) == 3
    assert emu.calls[-1].outcome == "dropped" and emu.calls[-1].http_status is None
    # a retry of the same batch is answered, and dedup makes it idempotent
    statuses = sync(emu, [R(email="b@example.com"), R(email="c@example.com")])
    assert [s.status for s in statuses] == ["UPDATED", "UPDATED"]


def test_latency_is_applied_and_can_change_while_running(emulator):
    emulator.faults.latency = 0.3
    started = time.monotonic()
    sync(emulator, [R(email="a@example.com")])
    assert time.monotonic() - started >= 0.3
    emulator.faults.latency = 0
    started = time.monotonic()
    sync(emulator, [R(email="b@example.com")])
    assert time.monotonic() - started < 0.3


def test_stop_during_a_slow_call_applies_nothing(emulator_factory):
    emu = emulator_factory(faults=Faults(latency=5.0))
    errors = []

    def client():
        try:
            post(emu, envelope(emu, [R(email="slow@example.com")]))
        except requests.ConnectionError as exc:
            errors.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + 5
    while emu.limits.in_flight == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    emu.stop()
    thread.join(5)
    assert time.monotonic() - started < 2.0
    assert len(errors) == 1 and emu.leads() == []
    assert emu.calls[-1].outcome == "aborted"


def test_faults_settings_are_validated():
    faults = Faults()
    for name, value in (("fail_rate", 1.5), ("fail_every", -1), ("fail_code", "abc"), ("fail_reason", "nope"),
                        ("fail_http_status", 200), ("latency", -1), ("drop_rate", -0.1)):
        with pytest.raises(ValueError):
            setattr(faults, name, value)
    with pytest.raises(AttributeError):
        faults.nonsense = 1
    assert not faults.active
    faults.update(drop_every=3, latency=0.1)
    assert faults.active and faults.as_dict()["drop_every"] == 3
    faults.clear()
    assert not faults.active


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
