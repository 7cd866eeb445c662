"""The emulator's SOAP listOperation, driven through zeep (unchanged) with the WSDL the emulator serves."""

from __future__ import annotations

import pytest
import requests
import zeep
from lxml import etree
from zeep.transports import Transport

from reconcile.emulator import Faults
from reconcile.emulator.soap_lists import build_list_response
from reconcile.remote.soap import codes
from reconcile.remote.soap import envelope as soap
from reconcile.remote.soap.wire import shared_validator


class Zeep:
    def __init__(self, emu):
        self.emu = emu
        self.session = requests.Session()
        self.client = zeep.Client(emu.endpoint + "?WSDL", transport=Transport(session=self.session, timeout=10))

    def auth(self, key=None) -> dict:
        emu, stamp = self.emu, soap.w3c_timestamp()
        return {"AuthenticationHeader": {"mktowsUserId": emu.user_id, "requestTimestamp": stamp,
                                         "requestSignature": soap.sign(key or emu.encryption_key, stamp, emu.user_id)}}

    def list_operation(self, operation: str, list_name: str, lead_ids, strict=None, key=None, key_type="IDNUM"):
        members = {"leadKey": [{"keyType": key_type, "keyValue": str(i)} for i in lead_ids]}
        return self.client.service.listOperation(
            listOperation=operation, listKey={"keyType": "MKTOLISTNAME", "keyValue": list_name},
            listMemberList=members, strict=strict, _soapheaders=self.auth(key))


@pytest.fixture
def client(emulator):
    made = Zeep(emulator)
    yield made
    made.session.close()


def make_leads(emu, count: int) -> list[int]:
    with emu.store.transaction() as tx:
        ids = []
        for number in range(count):
            lead = tx.create()
            tx.set_email(lead, f"lead{number}@example.com")
            ids.append(lead["id"])
    return ids


def statuses(result) -> tuple[bool, list[tuple[str, bool]]]:
    return result.success, [(s.leadKey.keyValue, s.status) for s in result.statusList.leadStatus]


def fault_code(info) -> str:
    return info.value.detail.find(f"{{{soap.NS_MKTOWS}}}serviceException").findtext("code")


def test_add_check_and_remove_members_by_list_name(emulator, client):
    ada, bob = make_leads(emulator, 2)
    vip = emulator.lists.create("VIP Customers")["id"]
    added = client.list_operation("ADDTOLIST", "VIP Customers", [ada, 424242])
    assert statuses(added) == (False, [(str(ada), True), ("424242", False)])
    assert emulator.lists.members(vip) == [ada]
    member = client.list_operation("ISMEMBEROFLIST", "VIP Customers", [ada, bob])
    assert statuses(member) == (True, [(str(ada), True), (str(bob), False)])
    removed = client.list_operation("REMOVEFROMLIST", "VIP Customers", [ada, bob])
    assert statuses(removed) == (False, [(str(ada), True), (str(bob), False)])
    assert emulator.lists.members(vip) == []
    assert statuses(client.list_operation("ADDTOLIST", "VIP Customers", [ada, bob])) == (
        True, [(str(ada), True), (str(bob), True)])
    assert [call.operation for call in emulator.calls] == ["write", "read", "write", "write"]


def test_strict_applies_all_or_nothing(emulator, client):
    (ada,) = make_leads(emulator, 1)
    vip = emulator.lists.create("VIP")["id"]
    with pytest.raises(zeep.exceptions.Fault) as info:
        client.list_operation("ADDTOLIST", "VIP", [ada, 424242], strict=True)
    assert fault_code(info) == codes.LEAD_NOT_FOUND and emulator.lists.members(vip) == []
    with pytest.raises(zeep.exceptions.Fault) as info:
        client.list_operation("REMOVEFROMLIST", "VIP", [ada], strict=True)
    assert fault_code(info) == codes.BAD_PARAMETER
    assert statuses(client.list_operation("ADDTOLIST", "VIP", [ada], strict=True)) == (True, [(str(ada), True)])


def test_refusals_are_faults_and_change_nothing(emulator, client):
    ids = make_leads(emulator, 1001)
    vip = emulator.lists.create("VIP")["id"]
    emulator.lists.create("Twice")
    emulator.lists.create("Twice")
    cases = [
        (dict(operation="ADDTOLIST", list_name="Nope", lead_ids=ids[:1]), codes.LIST_NOT_FOUND),
        (dict(operation="ADDTOLIST", list_name="vip", lead_ids=ids[:1]), codes.LIST_NOT_FOUND),
        (dict(operation="ADDTOLIST", list_name="Twice", lead_ids=ids[:1]), codes.BAD_PARAMETER),
        (dict(operation="ADDTOLIST", list_name="VIP", lead_ids=ids), codes.BAD_PARAMETER),
        (dict(operation="ADDTOLIST", list_name="VIP", lead_ids=["x@example.com"], key_type="EMAIL"),
         codes.LEAD_KEY_BAD),
        (dict(operation="ADDTOLIST", list_name="VIP", lead_ids=ids[:1], key_type="COOKIE"), codes.LEAD_KEY_BAD),
        (dict(operation="ADDTOLIST", list_name="VIP", lead_ids=ids[:1], key="wrong"), codes.AUTH_FAILED),
    ]
    for arguments, code in cases:
        with pytest.raises(zeep.exceptions.Fault) as info:
            client.list_operation(**arguments)
        assert fault_code(info) == code, arguments
    assert emulator.lists.members(vip) == []
    assert statuses(client.list_operation("ADDTOLIST", "VIP", ids[:1000]))[0] is True, "1,000 is allowed"


def test_list_operations_take_the_limits_and_injected_faults(emulator_factory):
    emu = emulator_factory(rate_calls=2, faults=Faults())
    client = Zeep(emu)
    (ada,) = make_leads(emu, 1)
    vip = emu.lists.create("VIP")["id"]
    emu.faults.update(fail_every=1, fail_reason="unavailable")
    with pytest.raises(zeep.exceptions.Fault) as info:
        client.list_operation("ADDTOLIST", "VIP", [ada])
    assert fault_code(info) == codes.INTERNAL_ERROR and emu.lists.members(vip) == []
    emu.faults.clear()
    client.list_operation("ADDTOLIST", "VIP", [ada])
    with pytest.raises(zeep.exceptions.Fault) as info:
        client.list_operation("REMOVEFROMLIST", "VIP", [ada])
    assert fault_code(info) == codes.RATE_LIMIT and emu.lists.members(vip) == [ada]
    client.session.close()


def test_the_answer_is_valid_against_the_xsd():
    answer = build_list_response(True, (("IDNUM", "7"), ("IDNUM", "8")), [True, False])
    success = etree.fromstring(answer).find(f"{{{soap.NS_SOAP}}}Body")[0]
    assert shared_validator().first_error(success) is None
