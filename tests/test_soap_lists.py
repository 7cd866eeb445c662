"""listOperation from the client side (reconcile.remote.soap.lists): envelopes, answers, and calls
against the emulator through SoapTransport."""

from __future__ import annotations

import pytest
import xmlschema
from lxml import etree

from reconcile.emulator import Faults
from reconcile.emulator.soap_lists import build_list_response
from reconcile.errors import ResponseError
from reconcile.remote.base import outcome_unknown
from reconcile.remote.http import RetryPolicy
from reconcile.remote.membership import LeadOutcome, Outcome
from reconcile.remote.soap import codes
from reconcile.remote.soap import envelope as soap
from reconcile.remote.soap.fault import SoapFault
from reconcile.remote.soap.lists import (ADD_TO_LIST, REMOVE_FROM_LIST, SoapLists, build_list_request,
                                         parse_list_response)
from reconcile.remote.soap.transport import Credentials, SoapTransport
from reconcile.remote.soap.wire import resource_bytes

USER, KEY, STAMP = "user_1", "secret-key", "2026-12-07T18:00:00+00:00"


def request(operation=ADD_TO_LIST, name="VIP Customers", ids=(7, 8), **kwargs) -> bytes:
    return build_list_request(operation, name, list(ids), user_id=USER, encryption_key=KEY, timestamp=STAMP, **kwargs)


def test_the_envelope_is_signed_and_valid_against_the_xsd():
    root = etree.fromstring(request(strict=True))
    schema = xmlschema.XMLSchema(resource_bytes("mktows.xsd").decode())
    header = root.find(f"{{{soap.NS_SOAP}}}Header")[0]
    params = root.find(f"{{{soap.NS_SOAP}}}Body")[0]
    assert schema.is_valid(header) and schema.is_valid(params)
    assert header.findtext("requestSignature") == soap.sign(KEY, STAMP, USER)
    assert params.findtext("listOperation") == "ADDTOLIST" and params.findtext("strict") == "true"
    assert params.find("listKey").findtext("keyType") == "MKTOLISTNAME"
    assert params.find("listKey").findtext("keyValue") == "VIP Customers"
    assert [(k.findtext("keyType"), k.findtext("keyValue")) for k in params.find("listMemberList")] == [
        ("IDNUM", "7"), ("IDNUM", "8")]
    assert etree.fromstring(request()).find(f"{{{soap.NS_SOAP}}}Body")[0].find("strict") is None


@pytest.mark.parametrize("arguments", [
    dict(ids=range(1, 1002)), dict(ids=["7"]), dict(ids=[True]), dict(name="bad\x00name"),
    dict(operation="DELETELEAD"), dict(ids=[0]),
])
def test_what_the_schema_or_the_call_cannot_carry_is_never_sent(arguments):
    with pytest.raises(soap.EnvelopeInvalid):
        request(**arguments)


def test_the_answer_is_read_per_lead_and_a_fault_is_raised():
    answer = build_list_response(False, (("IDNUM", "7"), ("IDNUM", "8")), [True, False])
    assert parse_list_response(answer, 200, REMOVE_FROM_LIST, [8, 7]) == [
        LeadOutcome(8, Outcome.NOT_ON_LIST), LeadOutcome(7, Outcome.REMOVED)]
    with pytest.raises(ResponseError):
        parse_list_response(answer, 200, ADD_TO_LIST, [7, 9])
    with pytest.raises(ResponseError):
        parse_list_response(soap.build_request([], user_id=USER, encryption_key=KEY, timestamp=STAMP), 200,
                            ADD_TO_LIST, [7])
    from reconcile.emulator.soap_api import build_fault

    with pytest.raises(SoapFault) as fault:
        parse_list_response(build_fault(codes.LIST_NOT_FOUND, "List Not Found"), 500, ADD_TO_LIST, [7])
    assert fault.value.code == codes.LIST_NOT_FOUND


# ----------------------------------------------------------------------------- against the emulator


def lists_of(emu, **kwargs) -> SoapLists:
    credentials = Credentials(endpoint=emu.endpoint, user_id=emu.user_id, encryption_key=emu.encryption_key)
    return SoapLists(SoapTransport(credentials, retry=RetryPolicy(base_delay=0.01, max_delay=0.05), **kwargs))


def make_leads(emu, count: int) -> list[int]:
    with emu.store.transaction() as tx:
        ids = []
        for number in range(count):
            lead = tx.create()
            tx.set_email(lead, f"lead{number}@example.com")
            ids.append(lead["id"])
    return ids


def test_2500_leads_go_on_a_list_in_three_calls(emulator):
    ids = make_leads(emulator, 2500)
    vip = emulator.lists.create("VIP Customers")["id"]
    emulator.reset_counters()
    outcomes = lists_of(emulator).add("VIP Customers", [*ids, 424242])
    assert [call.records for call in emulator.calls] == [1000, 1000, 501]
    assert outcomes[-1] == LeadOutcome(424242, Outcome.LEAD_NOT_FOUND)
    assert {o.outcome for o in outcomes[:-1]} == {Outcome.ADDED} and emulator.lists.members(vip) == ids


def test_remove_and_check_membership(emulator):
    ada, bob = make_leads(emulator, 2)
    vip = emulator.lists.create("VIP")["id"]
    emulator.lists.add(vip, [ada])
    lists = lists_of(emulator)
    assert [o.outcome for o in lists.is_member("VIP", [ada, bob])] == [Outcome.MEMBER, Outcome.NOT_MEMBER]
    assert [o.outcome for o in lists.remove("VIP", [ada, bob])] == [Outcome.REMOVED, Outcome.NOT_ON_LIST]
    assert emulator.lists.members(vip) == []


def test_an_unknown_list_stops_with_its_fault(emulator):
    (ada,) = make_leads(emulator, 1)
    with pytest.raises(SoapFault) as fault:
        lists_of(emulator).add("Nope", [ada])
    assert fault.value.code == codes.LIST_NOT_FOUND
    assert len([call for call in emulator.calls if call.api == "soap"]) == 1, "not retried"


def test_a_rate_limit_refusal_is_retried_and_a_failure_after_a_call_is_reported(emulator_factory):
    emu = emulator_factory(faults=Faults())
    ids = make_leads(emu, 1001)
    vip = emu.lists.create("VIP")["id"]
    emu.faults.update(fail_every=2, fail_reason="rate")  # every second call: 20023, then retried
    assert len(lists_of(emu).add("VIP", ids)) == 1001 and emu.lists.members(vip) == ids
    assert [call.code for call in emu.calls if call.code] == [codes.RATE_LIMIT]

    emu.reset_counters()
    emu.faults.update(fail_every=2, fail_code=codes.ACCESS_DENIED)  # the second call: not retried
    with pytest.raises(SoapFault) as fault:
        lists_of(emu).remove("VIP", ids)
    assert fault.value.code == codes.ACCESS_DENIED and outcome_unknown(fault.value)
    assert emu.lists.members(vip) == ids[1000:]


def test_each_attempt_is_signed_afresh(emulator_factory):
    from datetime import datetime, timedelta, timezone

    emu = emulator_factory()
    (ada,) = make_leads(emu, 1)
    emu.lists.create("VIP")
    stamps = []

    def clock() -> datetime:  # the first signature is an hour old: Marketo answers 20016
        stamps.append(None)
        return datetime.now(timezone.utc) - (timedelta(hours=1) if len(stamps) == 1 else timedelta(0))

    lists = lists_of(emu, clock=clock)
    assert [o.outcome for o in lists.add("VIP", [ada])] == [Outcome.ADDED]
    assert [call.code for call in emu.calls] == [codes.REQUEST_EXPIRED, None]
