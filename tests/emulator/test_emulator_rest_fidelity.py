"""The emulator's REST face against Marketo's published REST documentation (../shared/marketo-rest-facts.md):
each test names what Marketo documents, which the emulator must do too. Driven with plain `requests`."""

from __future__ import annotations

import requests

from reconcile.emulator import EmulatorConfig
from reconcile.remote.rest import codes as rest_codes
from test_emulator_rest import Rest, error_code, reasons


def form_read(rest: Rest, body: dict, query: str = "") -> dict:
    answer = requests.post(f"{rest.base}/rest/v1/leads.json{query}", data=body, headers=rest.auth, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_method_get_is_accepted_in_the_form_body_as_well_as_in_the_url(emulator):
    rest = Rest(emulator)
    [created] = rest.sync([{"email": "form@example.com", "firstName": "Form"}])["result"]
    for body, query in (({"_method": "GET", "filterType": "email", "filterValues": "form@example.com"}, ""),
                        ({"filterType": "email", "filterValues": "form@example.com"}, "?_method=GET")):
        answer = form_read(rest, body, query)
        assert answer["success"] is True, answer
        assert answer["result"] == [{"id": created["id"], "email": "form@example.com", "firstName": "Form",
                                     "createdAt": answer["result"][0]["createdAt"],
                                     "updatedAt": answer["result"][0]["updatedAt"]}]
    # a form without _method is not a Sync Leads call: Sync Leads takes JSON only
    assert error_code(form_read(rest, {"filterType": "email", "filterValues": "x@example.com"})) == \
        rest_codes.INVALID_CONTENT_TYPE


def test_an_unsupported_standard_field_as_filter_or_lookup_field_is_1011(emulator):
    rest = Rest(emulator)
    answer = rest.get(filterType="firstName", filterValues="Ada")
    assert answer["success"] is False and answer["errors"] == [{"code": "1011",
                                                               "message": "Field 'firstName' not supported"}]
    synced = rest.sync([{"email": "a@example.com", "lastName": "Lovelace"}], lookupField="lastName")
    assert synced["success"] is False and synced["errors"][0] == {"code": "1011",
                                                                  "message": "Field 'lastName' not supported"}
    assert not emulator.leads()


def test_a_custom_field_is_searchable(emulator_factory):
    emulator = emulator_factory(extra_fields=frozenset({"ForeignSysId"}))
    rest = Rest(emulator)
    assert rest.sync([{"ForeignSysId": "F-1", "firstName": "F"}], lookupField="ForeignSysId")["success"] is True
    assert [lead["firstName"] for lead in rest.get(filterType="ForeignSysId", filterValues="F-1",
                                                   fields="firstName")["result"]] == ["F"]


def test_more_than_1000_matches_is_1003_too_many_results(emulator):
    rest = Rest(emulator)
    for _ in range(4):  # 1,200 leads with one email
        assert rest.sync([{"email": "same@example.com"}] * 300, action="createDuplicate")["success"] is True
    answer = rest.get(filterType="email", filterValues="same@example.com", batchSize=300)
    assert answer["success"] is False
    assert answer["errors"] == [{"code": "1003", "message": "Too many results match the filter"}]


def test_a_paged_answer_says_more_result_true(emulator):
    rest = Rest(emulator)
    ids = [r["id"] for r in rest.sync([{"email": f"p{i}@example.com"} for i in range(3)])["result"]]
    first = rest.get(filterType="id", filterValues=",".join(map(str, ids)), batchSize=2)
    assert first["moreResult"] is True and first["nextPageToken"]
    last = rest.get(filterType="id", filterValues=",".join(map(str, ids)), batchSize=2,
                    nextPageToken=first["nextPageToken"])
    assert last.get("moreResult", False) is False and "nextPageToken" not in last


def test_null_fields_are_left_out_of_get_leads_answers(emulator):
    rest = Rest(emulator)
    [lead] = rest.sync([{"email": "n@example.com", "firstName": "N", "title": None}])["result"]
    answer = rest.get(filterType="id", filterValues=str(lead["id"]), fields="email,firstName,title,company")
    assert answer["result"] == [{"id": lead["id"], "email": "n@example.com", "firstName": "N"}]


def test_numbers_and_booleans_are_answered_as_json_numbers_and_booleans(emulator):
    rest = Rest(emulator)
    [lead] = rest.sync([{"email": "t@example.com", "numberOfEmployees": "42", "unsubscribed": "true",
                         "annualRevenue": "1500.5", "doNotCall": False, "leadScore": 7}])["result"]
    [row] = rest.get(filterType="id", filterValues=str(lead["id"]),
                     fields="numberOfEmployees,unsubscribed,annualRevenue,doNotCall,leadScore")["result"]
    assert row == {"id": lead["id"], "numberOfEmployees": 42, "unsubscribed": True, "annualRevenue": 1500.5,
                   "doNotCall": False, "leadScore": 7}
    assert all(type(row[name]) is kind for name, kind in (("numberOfEmployees", int), ("unsubscribed", bool),
                                                           ("annualRevenue", float), ("doNotCall", bool)))


def test_values_are_checked_by_data_type_with_1001(emulator):
    rest = Rest(emulator)
    bad = [{"dateOfBirth": "not-a-date"}, {"dateOfBirth": "2010-02-30"}, {"annualRevenue": "abc"},
           {"annualRevenue": "1e400"}, {"website": "not a url"}, {"website": "example.com"},
           {"personNotes": "x" * 40_000}, {"personNotes": "é" * 15_001}, {"numberOfEmployees": "4.5"}]
    records = [{"email": f"bad{n}@example.com", **fields} for n, fields in enumerate(bad)]
    results = rest.sync(records)["result"]
    assert [reasons(result) for result in results] == [[rest_codes.INVALID_VALUE]] * len(bad)
    good = [{"dateOfBirth": "2010-05-07"}, {"annualRevenue": "10.4"}, {"annualRevenue": 1500.5},
            {"annualRevenue": 10}, {"website": "https://example.com/a?b=c"}, {"personNotes": "x" * 30_000},
            {"personNotes": "é" * 15_000}]
    records = [{"email": f"good{n}@example.com", **fields} for n, fields in enumerate(good)]
    assert [result["status"] for result in rest.sync(records)["result"]] == ["created"] * len(good)
    assert {lead["email"] for lead in emulator.leads()} == {record["email"] for record in records}


def test_a_datetime_needs_iso_8601_with_an_offset() -> None:
    from reconcile.emulator.fields import Field
    from reconcile.emulator.rest_rules import Skipped, checked_text

    field = Field(90, "LastSeen", "lastSeen", "Last Seen", "datetime", None)
    assert checked_text(field, "2010-05-07T15:41:32-05:00") == "2010-05-07T15:41:32-05:00"
    assert checked_text(field, "2010-05-07T15:41:32Z") == "2010-05-07T15:41:32Z"
    for value in ("2010-05-07T15:41:32", "2010-05-07", "yesterday", "2010-13-07T15:41:32+00:00"):
        try:
            checked_text(field, value)
        except Skipped as skipped:
            assert skipped.code == rest_codes.INVALID_VALUE
        else:
            raise AssertionError(f"{value!r} was accepted")


def test_the_default_daily_quota_is_marketos_50000() -> None:
    assert EmulatorConfig().daily_quota == 50_000


def test_messages_are_marketos_documented_text(emulator_factory):
    emulator = emulator_factory(rate_calls=2)
    rest = Rest(emulator)
    rest.sync([{"email": "m@example.com"}])
    rest.sync([{"email": "m@example.com"}], action="createDuplicate")
    limited = rest.get(filterType="id", filterValues="1")
    assert limited["errors"] == [{"code": "606", "message": "Max rate limit '2' exceeded with in '20' secs"}]

    emulator.limits.reset()
    [multiple] = rest.sync([{"email": "m@example.com", "firstName": "M"}])["result"]
    assert multiple["reasons"] == [{"code": "1007", "message": "Multiple leads match the lookup criteria"}]
    emulator.limits.reset()
    [non_ascii] = rest.sync([{"email": "zoë@example.com"}])["result"]
    assert reasons(non_ascii) == [rest_codes.INVALID_VALUE]
    message = non_ascii["reasons"][0]["message"]
    assert "255" not in message and "ASCII" in message and message.isascii()


def test_partitions_a_default_one_named_ones_and_1008_1009_1010(emulator_factory):
    emulator = emulator_factory(partitions=frozenset({"Europe"}))
    rest = Rest(emulator)
    assert rest.sync([{"email": "d@example.com"}])["result"][0]["status"] == "created"  # the default partition
    assert rest.sync([{"email": "d2@example.com"}], partitionName="Default")["result"][0]["status"] == "created"
    assert rest.sync([{"email": "e@example.com"}], partitionName="Europe",
                     action="createOnly")["result"][0]["status"] == "created"
    [unknown] = rest.sync([{"email": "x@example.com"}], partitionName="Asia")["result"]
    assert unknown["reasons"] == [{"code": "1008", "message": "Access denied to partition"}]
    [unnamed] = rest.sync([{"email": "y@example.com"}], partitionName="")["result"]
    assert reasons(unnamed) == [rest_codes.PARTITION_NOT_SPECIFIED]
    [elsewhere] = rest.sync([{"email": "d@example.com", "firstName": "D"}], partitionName="Europe")["result"]
    assert elsewhere["reasons"] == [{"code": "1010", "message": "Partition update not allowed"}]
    [own] = rest.sync([{"email": "e@example.com", "firstName": "E"}], partitionName="Europe")["result"]
    assert own["status"] == "updated"
    assert error_code(rest.sync([{"email": "e@example.com"}], partitionName="Europe", action="updateOnly")) == \
        rest_codes.INVALID_DATA  # partitionName goes only with createOnly / createOrUpdate
    assert {lead["email"]: lead["partition"] for lead in emulator.leads()} == {
        "d@example.com": "Default", "d2@example.com": "Default", "e@example.com": "Europe"}
    assert next(lead for lead in emulator.leads() if lead["email"] == "d@example.com")["attributes"] == {}


def test_reconcile_emulator_partition_adds_a_partition() -> None:
    import signal

    from emulator_process import start_emulator

    process, lines = start_emulator("--partition", "Europe")
    try:
        exports = dict(line[len("export "):].split("=", 1) for line in lines if line.startswith("export "))
        base = exports["MARKETO_REST_ENDPOINT"].removesuffix("/rest")
        token = requests.get(f"{base}/identity/oauth/token", timeout=10, params={
            "grant_type": "client_credentials", "client_id": exports["MARKETO_CLIENT_ID"].strip("'"),
            "client_secret": exports["MARKETO_CLIENT_SECRET"].strip("'")}).json()["access_token"]

        def sync(partition: str) -> dict:
            return requests.post(f"{base}/rest/v1/leads.json", headers={"Authorization": f"Bearer {token}"},
                                 json={"partitionName": partition, "input": [{"email": f"{partition}@example.com"}]},
                                 timeout=10).json()["result"][0]

        assert sync("Europe")["status"] == "created" and sync("Default")["status"] == "created"
        assert reasons(sync("Asia")) == [rest_codes.NO_PARTITION_ACCESS]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
