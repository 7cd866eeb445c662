"""Contract test of the emulator's REST face: marketorestpython 0.5.25, a widely used third-party
client written against Marketo itself, drives the emulator UNCHANGED, as zeep does the SOAP face.

The only thing set from outside is its public `host` attribute (it builds
`https://<munchkin>.mktorest.com` itself), pointed at the emulator on a free loopback port.
Where marketorestpython is itself wrong, the tests say so and work around it; the emulator is not
bent to it:
- its backoff retry (606 and the like) resends the request without the Authorization header, so the
  retry is answered 601, which it then fixes by calling again;
- after 601/602 it re-authenticates only when its own clock says the token is old: a token the server
  refused while it "looks fresh" makes `execute` give up silently and return None;
- an answer that is not JSON (an HTTP 502 from a gateway) raises a JSON decoding error instead of
  being retried.
"""

from __future__ import annotations

import pytest

marketorestpython = pytest.importorskip("marketorestpython.client")

from reconcile.emulator import Faults  # noqa: E402

FOREIGN_ID = "ForeignSysId"


def client_for(emulator):
    client = marketorestpython.MarketoClient("123-ABC-456", emulator.config.client_id,
                                             emulator.config.client_secret, max_retry_time=30)
    client.host = emulator.rest_endpoint
    return client


@pytest.fixture
def marketo(emulator_factory):
    emulator = emulator_factory(extra_fields=frozenset({FOREIGN_ID}))
    return emulator, client_for(emulator)


def calls(emulator, operation: str) -> list:
    return [call for call in emulator.calls if call.api == "rest" and call.operation == operation]


def reason_codes(result: list[dict]) -> list[str | None]:
    return [entry["reasons"][0]["code"] if entry["status"] == "skipped" else None for entry in result]


def test_authentication_and_token_reuse(marketo):
    emulator, client = marketo
    client.execute("describe")
    first = client.token
    client.execute("get_multiple_leads_by_filter_type", "email", ["nobody@example.com"])
    client.execute("create_update_leads", [{"email": "t@example.com"}])
    assert client.token == first and client.token_type == "bearer" and client.scope
    assert 3000 < client.expires_in <= 3600
    assert len(calls(emulator, "token")) == 1  # one token serves every call while it lives


def test_sync_leads_with_each_action_and_lookup_field(marketo):
    emulator, client = marketo
    sync = lambda leads, **options: client.execute("create_update_leads", leads, **options)  # noqa: E731

    [created] = sync([{"email": "ada@example.com", "firstName": "Ada"}], action="createOnly")
    assert created["status"] == "created"
    assert reason_codes(sync([{"email": "ada@example.com"}], action="createOnly")) == ["1005"]
    assert sync([{"email": "ADA@example.com", "title": "CTO"}])[0] == {"id": created["id"], "status": "updated"}
    assert sync([{"id": created["id"], "lastName": "Lovelace"}], action="updateOnly", lookupField="id")[0] == \
        {"id": created["id"], "status": "updated"}
    assert reason_codes(sync([{"id": 999, "lastName": "X"}], action="updateOnly", lookupField="id")) == ["1004"]
    [by_foreign_id] = sync([{FOREIGN_ID: "SF-1", "firstName": "Alan"}], lookupField=FOREIGN_ID)
    assert by_foreign_id["status"] == "created"
    assert sync([{FOREIGN_ID: "SF-1", "title": "Researcher"}], lookupField=FOREIGN_ID,
                action="updateOnly")[0] == {"id": by_foreign_id["id"], "status": "updated"}
    [twin] = sync([{"email": "ada@example.com"}], action="createDuplicate")
    assert twin["status"] == "created" and twin["id"] != created["id"]
    assert reason_codes(sync([{"email": "ada@example.com", "title": "x"}])) == ["1007"]
    assert reason_codes(sync([{"email": "new@example.com"}, {"email": "NEW@example.com"}])) == [None, "1036"]
    results = sync([{"email": "n@example.com", "numberOfEmployees": "many"},
                    {"email": "w@example.com", "website": "no url"},
                    {"email": "f@example.com", "noSuchField": "x"}])
    assert reason_codes(results) == ["1001", "1001", "1006"]
    assert reason_codes(sync([{"id": created["id"], "title": "y"}], lookupField="id")) == ["1003"]
    by_id = {lead["id"]: lead for lead in emulator.leads()}
    assert by_id[created["id"]]["attributes"] == {"FirstName": "Ada", "Title": "CTO", "LastName": "Lovelace"}


def test_get_leads_by_email_and_id_with_fields_batch_size_and_paging(marketo):
    emulator, client = marketo
    created = client.execute("create_update_leads", [
        {"email": f"p{n}@example.com", "firstName": f"P{n}", "numberOfEmployees": n, "unsubscribed": n % 2 == 0}
        for n in range(5)])
    ids = [entry["id"] for entry in created]
    before = len(calls(emulator, "read"))
    rows = client.execute("get_multiple_leads_by_filter_type", "id", [str(i) for i in ids],
                          fields="firstName,numberOfEmployees,unsubscribed,title", batchSize=2)
    assert len(calls(emulator, "read")) - before == 3  # 5 leads, 2 a page
    assert rows == [{"id": ids[n], "firstName": f"P{n}", "numberOfEmployees": n, "unsubscribed": n % 2 == 0}
                    for n in range(5)]  # title is null: left out; numbers and booleans as JSON
    by_email = client.execute("get_multiple_leads_by_filter_type", "email", ["P3@example.com", "none@example.com"],
                              fields="email,firstName")
    assert by_email == [{"id": ids[3], "email": "p3@example.com", "firstName": "P3"}]
    default = client.execute("get_multiple_leads_by_filter_type", "email", "p0@example.com")
    assert set(default[0]) == {"id", "email", "firstName", "createdAt", "updatedAt"}  # lastName is null
    with pytest.raises(Exception) as unsupported:
        client.execute("get_multiple_leads_by_filter_type", "firstName", ["P1"])
    assert unsupported.value.args[0] == {"message": "Field 'firstName' not supported", "code": "1011"}


def test_more_than_1000_matches_is_1003(marketo):
    emulator, client = marketo
    for _ in range(4):
        client.execute("create_update_leads", [{"email": "same@example.com"}] * 300, action="createDuplicate")
    with pytest.raises(Exception) as too_many:
        client.execute("get_multiple_leads_by_filter_type", "email", ["same@example.com"])
    assert too_many.value.args[0] == {"message": "Too many results match the filter", "code": "1003"}


def test_describe(marketo):
    emulator, client = marketo
    fields = {entry["rest"]["name"]: entry for entry in client.execute("describe")}
    assert fields["email"]["dataType"] == "email" and fields["email"]["length"] == 255
    assert fields["numberOfEmployees"]["dataType"] == "integer"
    assert fields["id"]["rest"]["readOnly"] is True
    assert fields[FOREIGN_ID]["soap"] == {"name": FOREIGN_ID, "readOnly": False}


def test_its_backoff_retry_drops_the_authorization_header_and_it_recovers_by_calling_again(emulator_factory):
    # marketorestpython's own bug: the backoff resend after 606 carries no token (it popped it from the
    # request's arguments on the first try), so the emulator answers 601, as Marketo would.
    emulator = emulator_factory(rate_calls=2, rate_window=1.0)
    client = client_for(emulator)
    client.execute("create_update_leads", [{"email": "r@example.com"}])  # the token, and one call of the window
    for _ in range(3):
        rows = client.execute("get_multiple_leads_by_filter_type", "email", ["r@example.com"], fields="email")
        assert [row["email"] for row in rows] == ["r@example.com"]
    answered = [call.code for call in emulator.calls if call.api == "rest" and call.operation == "read"]
    assert "606" in answered and "601" in answered  # the retry without a token was refused, not served


def test_a_refused_token_that_looks_fresh_makes_it_return_none(marketo):
    # marketorestpython's own bug: on 601 it re-authenticates only if its clock says the token is old,
    # retries ten times with the same token, then returns None instead of raising.
    emulator, client = marketo
    client.execute("describe")
    client.token = "revoked-token"
    assert client.execute("describe") is None
    refused = [call.code for call in emulator.calls if call.api == "rest" and call.operation == "read"]
    assert refused.count("601") == 10


def test_a_non_json_502_is_not_retried_by_it(emulator_factory):
    # marketorestpython's own bug: it decodes every answer as JSON before looking at the status, so a
    # gateway's HTML 502 raises a decoding error; the caller has to retry.
    emulator = emulator_factory(faults=Faults(fail_every=2, fail_http_status=502))
    client = client_for(emulator)
    client.execute("describe")  # call 1 answers
    with pytest.raises(ValueError):
        client.execute("describe")  # call 2: HTTP 502 with a body that is not JSON
    assert client.execute("describe")  # the caller's retry
