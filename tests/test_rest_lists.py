"""The REST list and delete calls (reconcile.remote.rest.lists) against the emulator."""

from __future__ import annotations

import pytest
import requests

from reconcile.emulator import Faults
from reconcile.errors import RemoteError
from reconcile.remote.base import outcome_unknown
from reconcile.remote.http import RetryPolicy
from reconcile.remote.membership import LeadOutcome, Outcome, StaticList
from reconcile.remote.rest.client import RestClient
from reconcile.remote.rest.config import RestCredentials
from reconcile.remote.rest.lists import RestLists

FAST = RetryPolicy(base_delay=0.01, max_delay=0.05)


def lists_of(emu, **kwargs) -> RestLists:
    credentials = RestCredentials(base_url=emu.rest_endpoint, identity_url=f"{emu.rest_endpoint}/identity",
                                  client_id=emu.config.client_id, client_secret=emu.config.client_secret)
    return RestLists(RestClient(credentials, retry=kwargs.pop("retry", FAST), **kwargs))


def make_leads(emu, count: int) -> list[int]:
    with emu.store.transaction() as tx:
        ids = []
        for number in range(count):
            lead = tx.create()
            tx.set_email(lead, f"lead{number}@example.com")
            ids.append(lead["id"])
    return ids


def rest_calls(emu) -> list[str]:
    return [call.operation for call in emu.calls if call.api == "rest" and call.operation != "token"]


def test_lists_are_found_by_exact_name_and_all_listed(emulator):
    vip = emulator.lists.create("VIP Customers")
    emulator.lists.create("vip customers")
    lists = lists_of(emulator)
    assert lists.find("VIP Customers") == [StaticList(vip["id"], "VIP Customers", 12)]
    assert lists.find("VIP") == []
    assert [found.name for found in lists.all_lists()] == ["VIP Customers", "vip customers"]


def test_adding_900_leads_takes_three_calls_and_says_what_happened_to_each(emulator):
    ids = make_leads(emulator, 900)
    vip = emulator.lists.create("VIP")["id"]
    emulator.reset_counters()
    outcomes = lists_of(emulator).add(vip, [*ids, 424242, ids[0]])
    assert rest_calls(emulator) == ["write"] * 4
    assert [call.records for call in emulator.calls if call.operation == "write"] == [300, 300, 300, 1]
    assert outcomes[:2] == [LeadOutcome(ids[0], Outcome.ADDED), LeadOutcome(ids[1], Outcome.ADDED)]
    assert len(outcomes) == 901 and outcomes[-1].lead_id == 424242
    assert outcomes[-1].outcome is Outcome.LEAD_NOT_FOUND and "1004" in outcomes[-1].reason
    assert emulator.lists.members(vip) == ids


def test_members_are_read_300_a_page(emulator):
    ids = make_leads(emulator, 650)
    vip = emulator.lists.create("VIP")["id"]
    emulator.lists.add(vip, ids)
    emulator.reset_counters()
    assert lists_of(emulator).members(vip) == ids
    assert [call.records for call in emulator.calls if call.operation == "read"] == [300, 300, 50]


def test_remove_says_which_leads_were_not_on_the_list(emulator):
    ada, bob = make_leads(emulator, 2)
    vip = emulator.lists.create("VIP")["id"]
    emulator.lists.add(vip, [ada])
    outcomes = lists_of(emulator).remove(vip, [ada, bob, 424242])
    assert [(o.lead_id, o.outcome) for o in outcomes] == [
        (ada, Outcome.REMOVED), (bob, Outcome.NOT_ON_LIST), (424242, Outcome.LEAD_NOT_FOUND)]
    assert emulator.lists.members(vip) == []


def test_delete_leads_in_calls_of_300(emulator):
    ids = make_leads(emulator, 301)
    emulator.reset_counters()
    outcomes = lists_of(emulator).delete_leads([*ids, 424242])
    assert [call.records for call in emulator.calls if call.operation == "write"] == [300, 2]
    assert {o.outcome for o in outcomes[:301]} == {Outcome.DELETED}
    assert outcomes[301] == LeadOutcome(424242, Outcome.LEAD_NOT_FOUND, outcomes[301].reason)
    assert emulator.leads() == []
    again = lists_of(emulator).delete_leads(ids[:2])
    assert [o.outcome for o in again] == [Outcome.LEAD_NOT_FOUND] * 2, "deleting again is harmless"


def test_rate_limit_refusals_are_waited_out_with_the_sync_leads_machinery(emulator_factory):
    emu = emulator_factory(rate_calls=2, rate_window=1.0)
    ids = make_leads(emu, 3)
    vip = emu.lists.create("VIP")["id"]
    lists = lists_of(emu, retry=RetryPolicy(base_delay=0.1, max_delay=0.5, max_elapsed=20))
    for lead_id in ids:  # three calls against a window of two: the third is refused (606), then retried
        lists.add(vip, [lead_id])
    assert emu.lists.members(vip) == ids
    assert [call.code for call in emu.calls if call.code] == ["606"] * lists.client.stats.retries


def test_a_transient_failure_is_retried_and_a_lost_answer_after_a_chunk_is_reported(emulator_factory):
    emu = emulator_factory(faults=Faults())
    ids = make_leads(emu, 301)
    vip = emu.lists.create("VIP")["id"]
    emu.faults.update(fail_every=2, fail_reason="unavailable")  # every second call: 608, then retried
    outcomes = lists_of(emu).add(vip, ids)
    assert len(outcomes) == 301 and emu.lists.members(vip) == ids

    emu.faults.update(fail_every=2, fail_code="603")  # access denied: not retried
    emu.reset_counters()
    with pytest.raises(RemoteError) as raised:
        lists_of(emu).remove(vip, ids)  # the first call removes 300, the second is denied
    assert outcome_unknown(raised.value), "the first call of the set was applied"
    assert emu.lists.members(vip) == ids[300:]


def test_the_token_is_sent_in_the_header_only(emulator):
    vip = emulator.lists.create("VIP")["id"]
    seen = []
    session = requests.Session()
    original = session.request

    def spy(method, url, **kwargs):
        seen.append((url, dict(kwargs.get("headers") or {})))
        return original(method, url, **kwargs)

    session.request = spy
    lists_of(emulator, session=session).members(vip)
    calls = [(url, headers) for url, headers in seen if "/rest/" in url]
    assert calls and all("access_token" not in url and headers["Authorization"].startswith("Bearer ")
                         for url, headers in calls)
