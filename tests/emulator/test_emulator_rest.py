"""The emulator's REST face, driven with plain `requests` the way Marketo's REST documentation shows.

Nothing here uses reconcile's own client: these tests pin the wire format a REST client is written
against (../shared/marketo-rest-facts.md).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
import requests

from reconcile.core.records import LeadRecord
from reconcile.emulator import Faults, Reason
from reconcile.emulator import rest_api, soap_api
from reconcile.emulator.store import LeadStore
from reconcile.remote.rest import codes as rest_codes
from reconcile.remote.soap import codes as soap_codes
from reconcile.remote.soap import envelope as soap
from conftest import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def token_of(emu) -> str:
    answer = requests.get(f"{emu.rest_endpoint}/identity/oauth/token", params={
        "grant_type": "client_credentials", "client_id": emu.config.client_id,
        "client_secret": emu.config.client_secret}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


class Rest:
    """A few lines of `requests`, as any script following Marketo's docs would have."""

    def __init__(self, emu):
        self.emu = emu
        self.base = emu.rest_endpoint
        self.token = token_of(emu)

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def sync(self, records, **body) -> dict:
        answer = requests.post(f"{self.base}/rest/v1/leads.json", json={**body, "input": records},
                               headers=self.auth, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def get(self, **params) -> dict:
        answer = requests.get(f"{self.base}/rest/v1/leads.json", params=params, headers=self.auth, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture
def rest(emulator):
    return Rest(emulator)


def error_code(answer: dict) -> str:
    assert answer["success"] is False and len(answer["errors"]) == 1, answer
    return answer["errors"][0]["code"]


def reasons(entry: dict) -> list[str]:
    assert entry["status"] == "skipped" and "id" not in entry, entry
    return [reason["code"] for reason in entry["reasons"]]


# -------------------------------------------------------------------------------------------- OAuth


def test_token_is_reused_until_it_expires_then_renewed_and_the_old_one_is_602(emulator_factory):
    clock = FakeClock()
    emu = emulator_factory(token_ttl=60, monotonic=clock)
    url = f"{emu.rest_endpoint}/identity/oauth/token"
    params = {"grant_type": "client_credentials", "client_id": emu.config.client_id,
              "client_secret": emu.config.client_secret}
    first = requests.get(url, params=params, timeout=10).json()
    assert first["token_type"] == "bearer" and first["expires_in"] == 60 and first["access_token"]
    clock.now += 20
    again = requests.get(url, params=params, timeout=10).json()
    assert again["access_token"] == first["access_token"] and again["expires_in"] == 40

    headers = {"Authorization": f"Bearer {first['access_token']}"}
    describe = f"{emu.rest_endpoint}/rest/v1/leads/describe.json"
    assert requests.get(describe, headers=headers, timeout=10).json()["success"] is True
    clock.now += 41
    assert error_code(requests.get(describe, headers=headers, timeout=10).json()) == rest_codes.TOKEN_EXPIRED
    renewed = requests.get(url, params=params, timeout=10).json()
    assert renewed["access_token"] != first["access_token"] and renewed["expires_in"] == 60
    answer = requests.get(describe, headers={"Authorization": f"Bearer {renewed['access_token']}"}, timeout=10)
    assert answer.json()["success"] is True


def test_a_short_token_ttl_expires_in_real_time(emulator_factory):
    emu = emulator_factory(token_ttl=0.5)
    rest = Rest(emu)
    assert rest.get(filterType="id", filterValues="1")["success"] is True
    time.sleep(0.6)
    assert error_code(rest.get(filterType="id", filterValues="1")) == rest_codes.TOKEN_EXPIRED
    rest.token = token_of(emu)
    assert rest.get(filterType="id", filterValues="1")["success"] is True


def test_a_bad_client_is_http_401_in_oauth_shape(emulator):
    answer = requests.get(f"{emulator.rest_endpoint}/identity/oauth/token", params={
        "grant_type": "client_credentials", "client_id": emulator.config.client_id,
        "client_secret": "wrong"}, timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized" and answer.json()["error_description"]
    assert emulator.config.client_secret not in answer.text


def test_token_only_from_the_authorization_header(emulator, rest):
    url = f"{emulator.rest_endpoint}/rest/v1/leads/describe.json"
    in_query = requests.get(url, params={"access_token": rest.token}, timeout=10)
    assert in_query.status_code == 200 and error_code(in_query.json()) == rest_codes.TOKEN_INVALID
    both = requests.get(url, params={"access_token": rest.token}, headers=rest.auth, timeout=10)
    assert error_code(both.json()) == rest_codes.TOKEN_INVALID, "the query parameter is refused outright"
    assert error_code(requests.get(url, timeout=10).json()) == rest_codes.TOKEN_INVALID
    forged = requests.get(url, headers={"Authorization": "Bearer not-a-token:emu"}, timeout=10)
    assert error_code(forged.json()) == rest_codes.TOKEN_INVALID
    assert requests.get(url, headers=rest.auth, timeout=10).json()["success"] is True


# --------------------------------------------------------------------------------------- Sync Leads


def test_create_or_update_by_email_answers_in_input_order(rest):
    first = rest.sync([{"email": "kjashaedd@klooblept.com", "firstName": "Kataldar", "postalCode": "04828"},
                       {"email": "kjashaedd-1@klooblept.com", "firstName": "Kataldar-1"}],
                      action="createOrUpdate", lookupField="email")
    assert first["success"] is True and first["requestId"]
    assert [r["status"] for r in first["result"]] == ["created", "created"]
    ids = [r["id"] for r in first["result"]]
    assert ids[1] == ids[0] + 1
    second = rest.sync([{"email": "KJASHAEDD-1@klooblept.com", "lastName": "Ekkaptak"},
                        {"email": "new@klooblept.com"}])  # action and lookupField default
    assert second["result"] == [{"id": ids[1], "status": "updated"}, {"id": ids[1] + 1, "status": "created"}]
    lead = {lead["id"]: lead for lead in rest.emu.leads()}[ids[0]]
    assert lead["attributes"] == {"FirstName": "Kataldar", "PostalCode": "04828"}, "kept under SOAP names"


def test_update_only_by_id_and_the_record_reasons(rest):
    created = rest.sync([{"email": "a@example.com"}, {"email": "b@example.com"}])["result"]
    a_id = created[0]["id"]
    answer = rest.sync([{"id": a_id, "title": "CTO"}, {"id": 999}, {"id": "x1"}],
                       action="updateOnly", lookupField="id")
    assert answer["result"][0] == {"id": a_id, "status": "updated"}
    assert reasons(answer["result"][1]) == [rest_codes.LEAD_NOT_FOUND]
    assert reasons(answer["result"][2]) == [rest_codes.INVALID_VALUE]
    by_id = rest.sync([{"id": a_id, "title": "CEO"}], action="createOrUpdate", lookupField="id")
    assert reasons(by_id["result"][0]) == [rest_codes.INVALID_DATA], "id goes with updateOnly only"
    exists = rest.sync([{"email": "a@example.com"}, {"email": "c@example.com"}], action="createOnly")
    assert reasons(exists["result"][0]) == [rest_codes.LEAD_EXISTS]
    assert exists["result"][1]["status"] == "created"
    skipped = rest.sync([{"email": "d@example.com", "shoeSize": "44"}, {"email": "e@example.com", "createdAt": "x"},
                         {"email": "e@example.com"}, {"email": "E@EXAMPLE.COM"}, {"firstName": "no key"},
                         {"email": "f@example.com", "numberOfEmployees": "many"}])["result"]
    assert [reasons(s) if s["status"] == "skipped" else s["status"] for s in skipped] == [
        [rest_codes.FIELD_NOT_FOUND], [rest_codes.INVALID_DATA], "created", [rest_codes.DUPLICATE_IN_INPUT],
        [rest_codes.MISSING_VALUE], [rest_codes.INVALID_VALUE]]
    assert skipped[0]["reasons"][0]["message"] == "Field 'shoeSize' not found"
    assert {lead["attributes"].get("Title") for lead in rest.emu.leads()} == {"CTO", None}
    assert "d@example.com" not in {lead["email"] for lead in rest.emu.leads()}, "a skipped record changes nothing"


def test_values_are_checked_against_the_fields_type_and_length(rest):
    at_most = "x" * 255
    answer = rest.sync([{"email": "ok@example.com", "title": at_most, "phone": "+1 650 555 0100",
                         "numberOfEmployees": 12, "unsubscribed": "true"},
                        {"email": "long@example.com", "title": at_most + "x"},
                        {"email": "tel@example.com", "phone": "5" * 256},
                        {"email": "ü@example.com"},
                        {"email": "bool@example.com", "unsubscribed": "maybe"},
                        {"email": "obj@example.com", "company": {"name": "Acme"}}])["result"]
    assert answer[0]["status"] == "created"
    assert [reasons(entry) for entry in answer[1:]] == [[rest_codes.INVALID_VALUE]] * 5
    [lead] = rest.emu.leads()
    assert lead["attributes"]["Title"] == at_most and lead["attributes"]["NumberOfEmployees"] == "12"


def test_several_matches_are_1007_and_create_duplicate_always_creates(rest):
    rest.sync([{"email": "twin@example.com"}])
    again = rest.sync([{"email": "twin@example.com"}], action="createDuplicate")
    assert again["result"][0]["status"] == "created"
    assert reasons(rest.sync([{"email": "twin@example.com", "title": "x"}])["result"][0]) == [
        rest_codes.MULTIPLE_MATCHES]
    assert reasons(rest.sync([{"email": "twin@example.com"}], action="updateOnly")["result"][0]) == [
        rest_codes.MULTIPLE_MATCHES]


def test_a_custom_field_is_a_lookup_field(emulator_factory):
    rest = Rest(emulator_factory(extra_fields={"externalPersonId"}))
    created = rest.sync([{"externalPersonId": "SF-1", "email": "x@example.com"}], lookupField="externalPersonId")
    again = rest.sync([{"externalPersonId": "SF-1", "firstName": "X"}], lookupField="externalPersonId")
    assert again["result"] == [{"id": created["result"][0]["id"], "status": "updated"}]
    bad = requests.post(f"{rest.base}/rest/v1/leads.json", json={"lookupField": "nope", "input": []},
                        headers=rest.auth, timeout=10)
    assert error_code(bad.json()) == rest_codes.INVALID_DATA


def test_call_level_errors_of_sync(emulator, rest):
    url = f"{emulator.rest_endpoint}/rest/v1/leads.json"
    too_many = rest.sync([{"email": f"u{i}@example.com"} for i in range(301)])
    assert error_code(too_many) == rest_codes.INVALID_DATA and "301" in too_many["errors"][0]["message"]
    assert rest.sync([{"email": f"u{i}@example.com"} for i in range(300)])["success"] is True
    as_text = requests.post(url, data='{"input": []}', headers={**rest.auth, "Content-Type": "text/plain"},
                            timeout=10)
    assert error_code(as_text.json()) == rest_codes.INVALID_CONTENT_TYPE
    broken = requests.post(url, data="{not json", headers={**rest.auth, "Content-Type": "application/json"},
                           timeout=10)
    assert error_code(broken.json()) == rest_codes.INVALID_JSON
    assert error_code(rest.sync([], action="upsert")) == rest_codes.INVALID_DATA
    big = requests.post(url, json={"input": [{"email": "big@example.com", "personNotes": "x" * (1 << 20)}]},
                        headers=rest.auth, timeout=10)
    assert big.status_code == 413
    assert "big@example.com" not in {lead["email"] for lead in emulator.leads()}
    unknown = requests.get(f"{emulator.rest_endpoint}/rest/v1/nothing.json", headers=rest.auth, timeout=10)
    assert unknown.status_code == 200 and error_code(unknown.json()) == rest_codes.NOT_FOUND


# ---------------------------------------------------------------------------------------- Get Leads


def test_get_leads_by_filter_with_default_and_chosen_fields(rest):
    ids = [r["id"] for r in rest.sync([{"email": "g1@example.com", "firstName": "G", "company": "Acme"},
                                       {"email": "g2@example.com"}])["result"]]
    default = rest.get(filterType="email", filterValues="G1@example.com,nobody@example.com")
    assert default["success"] is True and len(default["result"]) == 1
    # the default fields, null ones (lastName) left out as Marketo does
    assert set(default["result"][0]) == {"id", "email", "updatedAt", "createdAt", "firstName"}
    assert default["result"][0]["firstName"] == "G"
    chosen = rest.get(filterType="id", filterValues=f"{ids[1]},{ids[0]}", fields="company,email")
    assert chosen["result"] == [{"id": ids[0], "company": "Acme", "email": "g1@example.com"},
                                {"id": ids[1], "email": "g2@example.com"}]
    assert rest.get(filterType="id", filterValues="1")["result"] == []
    assert error_code(rest.get(filterType="id", filterValues=",".join(map(str, range(1, 302))))) == \
        rest_codes.INVALID_DATA
    assert error_code(rest.get(filterType="id", filterValues="1", fields="nope")) == rest_codes.FIELD_NOT_FOUND


def test_get_leads_pages_with_next_page_token(rest):
    ids = [r["id"] for r in rest.sync([{"email": f"p{i}@example.com"} for i in range(5)])["result"]]
    values = ",".join(map(str, ids))
    first = rest.get(filterType="id", filterValues=values, batchSize=2)
    second = rest.get(filterType="id", filterValues=values, batchSize=2, nextPageToken=first["nextPageToken"])
    third = rest.get(filterType="id", filterValues=values, batchSize=2, nextPageToken=second["nextPageToken"])
    assert [lead["id"] for page in (first, second, third) for lead in page["result"]] == ids
    assert "nextPageToken" not in third


def test_method_get_form_and_the_8_kb_url_limit(emulator, rest):
    ids = [r["id"] for r in rest.sync([{"email": "form@example.com"}])["result"]]
    values = ",".join(["form@example.com"] + [f"someone.with.a.long.name.{i}@example.com" for i in range(299)])
    url = f"{emulator.rest_endpoint}/rest/v1/leads.json"
    long_get = requests.get(url, params={"filterType": "email", "filterValues": values}, headers=rest.auth,
                            timeout=10)
    assert long_get.status_code == 414 and len(long_get.request.url) > 8192
    form = requests.post(url, params={"_method": "GET"}, headers=rest.auth, timeout=10,
                         data={"filterType": "email", "filterValues": values, "fields": "email"})
    assert form.status_code == 200 and form.json()["result"] == [{"id": ids[0], "email": "form@example.com"}]
    assert [c.operation for c in emulator.calls if c.api == "rest" and c.http_status == 200][-1] == "read"


# ----------------------------------------------------------------------------------------- Describe


def test_describe_lists_both_names_types_lengths_and_read_only_fields(emulator_factory):
    rest = Rest(emulator_factory(extra_fields={"externalPersonId"}))
    answer = requests.get(f"{rest.base}/rest/v1/leads/describe.json", headers=rest.auth, timeout=10).json()
    fields = {entry["rest"]["name"]: entry for entry in answer["result"]}
    assert fields["firstName"]["soap"] == {"name": "FirstName", "readOnly": False}
    assert fields["firstName"]["dataType"] == "string" and fields["firstName"]["length"] == 255
    assert fields["updatedAt"]["rest"]["readOnly"] is True and fields["id"]["rest"]["readOnly"] is True
    assert fields["externalPersonId"]["soap"]["name"] == "externalPersonId"
    assert all({"id", "displayName", "dataType", "rest", "soap"} <= set(entry) for entry in answer["result"])


# ------------------------------------------------------------------------------- one database, two faces


def soap_sync(emu, records):
    stamp = soap.w3c_timestamp(datetime.now(timezone.utc))
    body = soap.build_request(records, user_id=emu.user_id, encryption_key=emu.encryption_key, timestamp=stamp)
    answer = requests.post(emu.endpoint, data=body, headers={"Content-Type": soap.CONTENT_TYPE}, timeout=10)
    return answer.status_code, soap.parse_response(answer.content, answer.status_code)


def test_a_lead_written_by_soap_reads_back_by_rest_and_the_other_way(emulator, rest):
    _, statuses = soap_sync(emulator, [LeadRecord(email="both@example.com",
                                                  attributes=(("FirstName", "Soap"), ("Company", "Acme")))])
    lead_id = statuses[0].lead_id
    read = rest.get(filterType="id", filterValues=str(lead_id), fields="email,firstName,company")
    assert read["result"] == [{"id": lead_id, "email": "both@example.com", "firstName": "Soap", "company": "Acme"}]
    rest.sync([{"id": lead_id, "firstName": "Rest"}], action="updateOnly", lookupField="id")
    _, again = soap_sync(emulator, [LeadRecord(email="both@example.com", attributes=(("Title", "CTO"),))])
    assert again[0].lead_id == lead_id and again[0].status == "UPDATED"
    assert emulator.leads()[0]["attributes"] == {"FirstName": "Rest", "Company": "Acme", "Title": "CTO"}


# ---------------------------------------------------------------------- limits and faults, REST codes


def test_rate_quota_and_concurrency_limits_are_606_607_615(emulator_factory):
    rest = Rest(emulator_factory(rate_calls=2, rate_window=60))
    assert rest.get(filterType="id", filterValues="1")["success"] is True
    assert rest.sync([{"email": "r@example.com"}])["success"] is True
    assert error_code(rest.get(filterType="id", filterValues="1")) == rest_codes.RATE_LIMIT
    assert token_of(rest.emu), "the identity service is not rate limited"

    rest = Rest(emulator_factory(daily_quota=1))
    rest.get(filterType="id", filterValues="1")
    assert error_code(rest.sync([{"email": "q@example.com"}])) == rest_codes.QUOTA_EXCEEDED

    emu = emulator_factory(max_concurrency=1, faults=Faults(latency=0.5))
    rest = Rest(emu)
    answers = []
    slow = threading.Thread(target=lambda: answers.append(rest.sync([{"email": "slow@example.com"}])))
    slow.start()
    wait_until(lambda: emu.limits.in_flight > 0, what="the slow call to be in flight")
    assert error_code(rest.get(filterType="id", filterValues="1")) == rest_codes.CONCURRENCY_LIMIT
    slow.join(5)
    assert answers[0]["success"] is True


def test_injected_failures_speak_each_faces_codes(emulator_factory):
    emu = emulator_factory(faults=Faults(fail_every=1, fail_reason="unavailable"))
    rest = Rest(emu)
    assert error_code(rest.sync([{"email": "f@example.com"}])) == rest_codes.TEMPORARILY_UNAVAILABLE
    with pytest.raises(Exception) as fault:
        soap_sync(emu, [LeadRecord(email="f@example.com")])
    assert getattr(fault.value, "code", None) == soap_codes.INTERNAL_ERROR
    emu.faults.update(fail_code=soap_codes.AUTH_FAILED)
    with pytest.raises(Exception) as fault:
        soap_sync(emu, [LeadRecord(email="f@example.com")])
    assert getattr(fault.value, "code", None) == soap_codes.AUTH_FAILED, "a SOAP code is answered verbatim"
    assert error_code(rest.sync([{"email": "f@example.com"}])) == rest_codes.TEMPORARILY_UNAVAILABLE
    emu.faults.update(fail_code=rest_codes.TRANSIENT)
    assert error_code(rest.sync([{"email": "f@example.com"}])) == rest_codes.TRANSIENT
    assert emu.leads() == []
    emu.faults.update(fail_every=0, drop_every=1)
    with pytest.raises(requests.ConnectionError):
        rest.sync([{"email": "dropped@example.com"}])
    assert [lead["email"] for lead in emu.leads()] == ["dropped@example.com"], "committed, then dropped"


@pytest.mark.parametrize("face", [soap_api, rest_api])
def test_every_neutral_reason_has_a_code_in_each_faces_table(face):
    table = soap_codes.CODES if face is soap_api else rest_codes.CODES
    assert set(face.REASON_CODES) == set(Reason)
    assert all(code in table for code in face.REASON_CODES.values())


# ------------------------------------------------------------------------------ admin and the call log


def test_admin_edit_is_seen_by_get_leads_and_sends_no_api_write(emulator, rest):
    lead_id = rest.sync([{"email": "drift@example.com", "title": "VP"}])["result"][0]["id"]
    emulator.reset_counters()
    edited = requests.post(f"{emulator.base_url}/_emulator/leads/{lead_id}",
                           json={"Title": "CTO", "company": "Elsewhere"}, timeout=10)
    assert edited.status_code == 200 and edited.json()["attributes"] == {"Title": "CTO", "Company": "Elsewhere"}
    read = rest.get(filterType="id", filterValues=str(lead_id), fields="title,company")
    assert read["result"] == [{"id": lead_id, "title": "CTO", "company": "Elsewhere"}]
    assert [(c.api, c.operation) for c in emulator.calls] == [("admin", "write"), ("rest", "read")]
    assert not any(c.operation == "write" for c in emulator.calls if c.api != "admin")
    refused = [requests.post(f"{emulator.base_url}/_emulator/leads/{lead_id}", json=body, timeout=10).status_code
               for body in ({"nope": 1}, {"updatedAt": "x"}, [1])]
    assert refused == [400, 400, 400]
    assert requests.post(f"{emulator.base_url}/_emulator/leads/1", json={"Title": "x"}, timeout=10).status_code == 404


def test_admin_merge_keeps_the_winner_and_the_loser_disappears(emulator, rest):
    winner, loser = [r["id"] for r in rest.sync([{"email": "w@example.com", "title": "Winner"},
                                                 {"email": "l@example.com", "title": "Loser", "company": "L"}])[
        "result"]]
    merged = requests.post(f"{emulator.base_url}/_emulator/merge", json={"winner": winner, "loser": loser}, timeout=10)
    assert merged.status_code == 200
    assert rest.get(filterType="id", filterValues=str(loser))["result"] == []
    kept = rest.get(filterType="id", filterValues=str(winner), fields="email,title,company")["result"]
    assert kept == [{"id": winner, "email": "w@example.com", "title": "Winner", "company": "L"}]
    assert rest.get(filterType="email", filterValues="l@example.com")["result"] == []
    again = requests.post(f"{emulator.base_url}/_emulator/merge", json={"winner": winner, "loser": loser}, timeout=10)
    assert again.status_code == 404
    deleted = requests.delete(f"{emulator.base_url}/_emulator/leads/{winner}", timeout=10)
    assert deleted.status_code == 200 and emulator.leads() == []


def test_one_key_in_two_calls_at_once_can_create_a_duplicate_as_marketo_warns(emulator_factory):
    emu = emulator_factory(faults=Faults(latency=0.3))
    rest = Rest(emu)

    def together(*batches):
        answers = [None] * len(batches)

        def send(index, records):
            answers[index] = rest.sync(records)

        threads = [threading.Thread(target=send, args=(i, b)) for i, b in enumerate(batches)]
        for thread in threads:
            thread.start()
            wait_until(lambda: emu.limits.in_flight >= threads.index(thread) + 1, what="the call to be in flight")
        for thread in threads:
            thread.join(5)
        return answers

    together([{"email": "a@example.com"}], [{"email": "b@example.com"}])
    assert sorted(lead["email"] for lead in emu.leads()) == ["a@example.com", "b@example.com"]
    assert all(call.racing_keys == 0 for call in emu.calls)

    first, second = together([{"email": "race@example.com", "firstName": "One"}],
                             [{"email": "RACE@example.com", "lastName": "Two"}])
    assert first["result"][0]["status"] == second["result"][0]["status"] == "created"
    assert [lead["email"].lower() for lead in emu.leads()].count("race@example.com") == 2
    assert sorted(call.racing_keys for call in emu.calls if call.operation == "write")[-1] == 1

    rest.sync([{"email": "race@example.com", "title": "x"}])  # alone: the duplicates now match twice
    later = together([{"email": "a@example.com", "title": "A"}], [{"email": "a@example.com", "title": "B"}])
    assert [answer["result"][0]["status"] for answer in later] == ["updated", "updated"], \
        "a lead that existed before both calls is found by both"


def test_a_merge_and_a_delete_are_persisted(emulator_factory, tmp_path):
    db = tmp_path / "emulator.json"
    emu = emulator_factory(db_path=db)
    rest = Rest(emu)
    winner, loser, gone = [r["id"] for r in rest.sync([{"email": "w@example.com"}, {"email": "l@example.com"},
                                                       {"email": "gone@example.com"}])["result"]]
    requests.post(f"{emu.base_url}/_emulator/merge", json={"winner": winner, "loser": loser}, timeout=10)
    requests.delete(f"{emu.base_url}/_emulator/leads/{gone}", timeout=10)
    reloaded = LeadStore(fields=frozenset(), path=db).leads()  # as a restart after kill -9 loads it
    assert [(lead["id"], lead["email"]) for lead in reloaded] == [(winner, "w@example.com")]
