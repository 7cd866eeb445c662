"""The emulator's REST list calls and Delete Leads, driven with plain `requests` as Marketo's REST
documentation shows them, and with marketorestpython 0.5.25, unchanged."""

from __future__ import annotations

import pytest
import requests

from reconcile.emulator import Faults, Reason
from reconcile.remote.rest import codes
from conftest import make_leads
from test_emulator_rest import error_code


def token_of(emu) -> str:
    answer = requests.get(f"{emu.rest_endpoint}/identity/oauth/token", params={
        "grant_type": "client_credentials", "client_id": emu.config.client_id,
        "client_secret": emu.config.client_secret}, timeout=10)
    return answer.json()["access_token"]


class Rest:
    def __init__(self, emu):
        self.base = emu.rest_endpoint
        self.auth = {"Authorization": f"Bearer {token_of(emu)}"}

    def call(self, method: str, path: str, **kwargs) -> dict:
        answer = requests.request(method, f"{self.base}{path}", headers=self.auth, timeout=10, **kwargs)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture
def rest(emulator):
    return Rest(emulator)


def statuses(answer: dict) -> list[tuple]:
    assert answer["success"] is True, answer
    return [(entry["id"], entry["status"], *(r["code"] for r in entry.get("reasons", ()))) for entry in answer["result"]]


# -------------------------------------------------------------------------------- finding lists


def test_a_list_is_found_by_its_exact_name_or_id(emulator, rest):
    vip = emulator.lists.create("VIP Customers")
    emulator.lists.create("VIP customers")
    found = rest.call("GET", "/rest/asset/v1/staticList/byName.json", params={"name": "VIP Customers"})
    assert [(e["id"], e["name"], e["folder"]["type"]) for e in found["result"]] == [(vip["id"], "VIP Customers", "Folder")]
    missing = rest.call("GET", "/rest/asset/v1/staticList/byName.json", params={"name": "VIP"})
    assert missing["success"] is True and "result" not in missing and missing["warnings"]

    by_name = rest.call("GET", "/rest/v1/lists.json", params={"name": "VIP Customers"})
    assert [e["id"] for e in by_name["result"]] == [vip["id"]]
    by_id = rest.call("GET", "/rest/v1/lists.json", params={"id": str(vip["id"])})
    assert [e["name"] for e in by_id["result"]] == ["VIP Customers"]
    assert rest.call("GET", "/rest/v1/lists.json", params={"name": "nope"})["result"] == []
    assert rest.call("GET", f"/rest/asset/v1/staticList/{vip['id']}.json")["result"][0]["name"] == "VIP Customers"
    assert error_code(rest.call("GET", "/rest/asset/v1/staticList/99999.json")) == codes.NOT_FOUND


def test_a_list_is_created_through_the_asset_api(emulator, rest):
    created = rest.call("POST", "/rest/asset/v1/staticLists.json",
                        data={"name": "Webinar 2026-12", "folder": '{"id": 34, "type": "Folder"}'})
    entry = created["result"][0]
    assert entry["name"] == "Webinar 2026-12" and entry["folder"] == {"id": 34, "type": "Folder"}
    assert [e["id"] for e in emulator.lists.named("Webinar 2026-12")] == [entry["id"]]
    bad = rest.call("POST", "/rest/asset/v1/staticLists.json", data={"name": "X", "folder": "34"})
    assert error_code(bad) == codes.INVALID_DATA and emulator.lists.named("X") == []
    unnamed = rest.call("POST", "/rest/asset/v1/staticLists.json", data={"name": " "})
    assert error_code(unnamed) == codes.INVALID_DATA and [e["name"] for e in emulator.lists.lists()] == [
        "Webinar 2026-12"]


# ---------------------------------------------------------------------------------- membership


def test_add_and_remove_answer_per_id_in_input_order(emulator, rest):
    ada, bob = make_leads(emulator, 2)
    vip = emulator.lists.create("VIP")["id"]
    added = rest.call("POST", f"/rest/v1/lists/{vip}/leads.json", params=[("id", ada), ("id", 424242)])
    assert statuses(added) == [(ada, "added"), (424242, "skipped", codes.LEAD_NOT_FOUND)]
    added = rest.call("POST", f"/rest/v1/lists/{vip}/leads.json", json={"input": [{"id": bob}, {"id": ada}]})
    assert statuses(added) == [(bob, "added"), (ada, "added")]
    assert emulator.lists.members(vip) == [ada, bob]

    removed = rest.call("DELETE", f"/rest/v1/lists/{vip}/leads.json", json={"input": [{"id": ada}, {"id": 424242}]})
    assert statuses(removed) == [(ada, "removed"), (424242, "skipped", codes.LEAD_NOT_FOUND)]
    removed = rest.call("POST", f"/rest/v1/lists/{vip}/leads.json?_method=DELETE", params={"id": f"{bob},{ada}"})
    assert statuses(removed) == [(bob, "removed"), (ada, "skipped", codes.NOT_IN_LIST)]
    assert emulator.lists.members(vip) == []


def test_members_come_300_a_page_with_a_next_page_token(emulator, rest):
    ids = make_leads(emulator, 650)
    vip = emulator.lists.create("VIP")["id"]
    for start in range(0, 650, 300):
        rest.call("POST", f"/rest/v1/lists/{vip}/leads.json", json={"input": [{"id": i} for i in ids[start:start + 300]]})
    pages, token = [], None
    while True:
        params = {"fields": "id,email"} | ({"nextPageToken": token} if token else {})
        page = rest.call("GET", f"/rest/v1/lists/{vip}/leads.json", params=params)
        pages.append(page["result"])
        if not page["moreResult"]:
            assert "nextPageToken" not in page
            break
        token = page["nextPageToken"]
    assert [len(p) for p in pages] == [300, 300, 50]
    assert [lead["id"] for p in pages for lead in p] == ids and pages[0][0]["email"] == "lead0@example.com"

    form = rest.call("POST", f"/rest/v1/list/{vip}/leads.json?_method=GET", data={"batchSize": "2", "fields": "id"})
    assert [lead["id"] for lead in form["result"]] == ids[:2] and form["moreResult"] is True


def test_a_member_removed_between_pages_moves_no_other_member(emulator, rest):
    ids = make_leads(emulator, 4)
    vip = emulator.lists.create("VIP")["id"]
    emulator.lists.add(vip, ids)
    first = rest.call("GET", f"/rest/v1/lists/{vip}/leads.json", params={"batchSize": "2", "fields": "id"})
    emulator.lists.remove(vip, [ids[0]])
    second = rest.call("GET", f"/rest/v1/lists/{vip}/leads.json",
                       params={"batchSize": "2", "fields": "id", "nextPageToken": first["nextPageToken"]})
    assert [lead["id"] for lead in second["result"]] == ids[2:] and second["moreResult"] is False


def test_is_member(emulator, rest):
    ada, bob = make_leads(emulator, 2)
    vip = emulator.lists.create("VIP")["id"]
    emulator.lists.add(vip, [ada])
    answer = rest.call("GET", f"/rest/v1/lists/{vip}/leads/ismember.json", params={"id": f"{ada},{bob},424242"})
    assert statuses(answer) == [(ada, "memberof"), (bob, "notmemberof"), (424242, "skipped", codes.LEAD_NOT_FOUND)]


# -------------------------------------------------------------------------------- Delete Leads


def test_delete_leads_deletes_per_id_and_takes_the_lead_off_its_lists(emulator, rest):
    ada, bob, cy = make_leads(emulator, 3)
    vip = emulator.lists.create("VIP")["id"]
    emulator.lists.add(vip, [ada, bob])
    deleted = rest.call("POST", "/rest/v1/leads/delete.json", json={"input": [{"id": ada}, {"id": 424242}]})
    assert statuses(deleted) == [(ada, "deleted"), (424242, "skipped", codes.LEAD_NOT_FOUND)]
    assert [lead["id"] for lead in emulator.leads()] == [bob, cy]
    assert emulator.lists.members(vip) == [bob]
    again = rest.call("DELETE", "/rest/v1/leads.json", json={"input": [{"id": ada}, {"id": cy}]})
    assert statuses(again) == [(ada, "skipped", codes.LEAD_NOT_FOUND), (cy, "deleted")]
    assert [lead["id"] for lead in emulator.leads()] == [bob]


# ------------------------------------------------------------------------ call-level refusals


def test_call_level_errors_apply_nothing(emulator, rest):
    ids = make_leads(emulator, 301)
    vip = emulator.lists.create("VIP")["id"]
    too_many = {"input": [{"id": i} for i in ids]}
    assert error_code(rest.call("POST", f"/rest/v1/lists/{vip}/leads.json", json=too_many)) == codes.INVALID_DATA
    assert error_code(rest.call("POST", "/rest/v1/leads/delete.json", json=too_many)) == codes.INVALID_DATA
    assert error_code(rest.call("POST", f"/rest/v1/lists/{vip}/leads.json", json={"input": []})) == codes.INVALID_DATA
    assert error_code(rest.call("POST", f"/rest/v1/lists/{vip}/leads.json", params={"id": "x"})) == codes.INVALID_DATA
    assert error_code(rest.call("POST", "/rest/v1/lists/999/leads.json", params={"id": ids[0]})) == codes.NOT_FOUND
    assert error_code(rest.call("GET", "/rest/v1/lists/999/leads.json")) == codes.NOT_FOUND
    no_token = requests.post(f"{emulator.rest_endpoint}/rest/v1/leads/delete.json", json={"input": [{"id": ids[0]}]},
                             timeout=10).json()
    assert error_code(no_token) == codes.TOKEN_INVALID
    assert emulator.lists.members(vip) == [] and len(emulator.leads()) == 301
    assert not any(call.admitted for call in emulator.calls if call.api == "rest" and call.operation != "token")


def test_list_calls_count_against_the_limits_and_take_injected_faults(emulator_factory):
    emu = emulator_factory(rate_calls=3, faults=Faults())
    rest = Rest(emu)
    (ada,) = make_leads(emu, 1)
    vip = emu.lists.create("VIP")["id"]
    emu.faults.update(fail_every=1, fail_reason=Reason.UNAVAILABLE)
    failed = rest.call("POST", f"/rest/v1/lists/{vip}/leads.json", params={"id": ada})
    assert error_code(failed) == codes.TEMPORARILY_UNAVAILABLE and emu.lists.members(vip) == []
    emu.faults.update(fail_every=0, drop_every=1)
    with pytest.raises(requests.ConnectionError):
        rest.call("POST", f"/rest/v1/lists/{vip}/leads.json", params={"id": ada})
    assert emu.lists.members(vip) == [ada], "applied, then the answer was lost"
    emu.faults.clear()
    rest.call("GET", "/rest/asset/v1/staticList/byName.json", params={"name": "VIP"})
    limited = rest.call("POST", "/rest/v1/leads/delete.json", json={"input": [{"id": ada}]})
    assert error_code(limited) == codes.RATE_LIMIT and [lead["id"] for lead in emu.leads()] == [ada]


# ------------------------------------------------------------------- marketorestpython, unchanged


@pytest.fixture
def mrp(emulator):
    from marketorestpython.client import MarketoClient

    client = MarketoClient("emulator", client_id=emulator.config.client_id,
                           client_secret=emulator.config.client_secret, max_retry_time=5)
    client.host = emulator.rest_endpoint  # the client builds https://<munchkin>.mktorest.com otherwise
    return client


def test_marketorestpython_finds_creates_and_fills_lists(emulator, mrp):
    ids = make_leads(emulator, 5)
    emulator.lists.create("VIP Customers")
    created = mrp.execute("create_list", name="Webinar 2026-12", folderId=12, folderType="Folder")
    webinar = created[0]["id"]
    assert [e["id"] for e in mrp.execute("get_list_by_name", name="Webinar 2026-12")] == [webinar]
    assert {e["name"] for e in mrp.execute("get_multiple_lists")} == {"VIP Customers", "Webinar 2026-12"}

    added = mrp.execute("add_leads_to_list", listId=webinar, id=ids)
    assert [e["status"] for e in added] == ["added"] * 5
    removed = mrp.execute("remove_leads_from_list", listId=webinar, id=ids[:2])
    assert [e["status"] for e in removed] == ["removed"] * 2
    members = mrp.execute("member_of_list", listId=webinar, id=ids[:3])
    assert [e["status"] for e in members] == ["notmemberof", "notmemberof", "memberof"]
    paged = mrp.execute("get_multiple_leads_by_list_id", listId=webinar, fields="id,email", batchSize=2)
    assert [lead["id"] for lead in paged] == ids[2:]


def test_marketorestpython_deletes_leads(emulator, mrp):
    ada, bob = make_leads(emulator, 2)
    deleted = mrp.execute("delete_lead", id=[ada])
    assert [(e["id"], e["status"]) for e in deleted] == [(ada, "deleted")]
    assert [lead["id"] for lead in emulator.leads()] == [bob]
