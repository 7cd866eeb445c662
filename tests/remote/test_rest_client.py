"""The REST client and transport against a fake Marketo REST instance (tests/rest_fake.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.core.records import CREATED, FAILED, UPDATED, LeadRecord
from reconcile.errors import ConfigError, ExitStatus, InputError, RemoteError, UsageError
from reconcile.remote.base import QuotaExhausted, outcome_unknown
from reconcile.remote.http import RetryPolicy
from reconcile.remote.rest import payload
from reconcile.remote.rest.config import RestCredentials
from reconcile.remote.rest.transport import RestTransport
from rest_fake import CLIENT_SECRET, NAMES, FakeMarketo, make_client

@pytest.fixture
def fake() -> FakeMarketo:
    return FakeMarketo()


def make_transport(fake: FakeMarketo, foreign_id_field: str | None = "externalId", **kwargs) -> RestTransport:
    return RestTransport(make_client(fake, **kwargs), NAMES, foreign_id_field)


def test_each_key_type_gets_its_own_action_and_lookup_field(fake: FakeMarketo) -> None:
    fake.leads[7] = {"id": 7, "email": "old@example.com"}
    transport = make_transport(fake)
    batch = [LeadRecord(email="ada@example.com", attributes={"FirstName": "Ada", "PostalCode": "01234"}),
             LeadRecord(lead_id=7, attributes={"Title": "CTO", "Email": "new@example.com"}),
             LeadRecord(email="grace@example.com", foreign_sys_person_id="0042", foreign_sys_type="SFDC",
                        attributes={"Company": None}),
             LeadRecord(email="alan@example.com", attributes={"LastName": "Turing"})]
    statuses = transport.send(batch)
    bodies = [request.json() for request in fake.calls()]
    by_group = {(body["action"], body.get("lookupField")): body["input"] for body in bodies}
    assert by_group == {
        ("createOrUpdate", "email"): [{"email": "ada@example.com", "firstName": "Ada", "postalCode": "01234"},
                                      {"email": "alan@example.com", "lastName": "Turing"}],
        ("updateOnly", "id"): [{"id": 7, "title": "CTO", "email": "new@example.com"}],
        ("createOrUpdate", "externalId"): [{"email": "grace@example.com", "externalId": "0042", "company": None}],
    }
    assert [s.status for s in statuses] == [CREATED, UPDATED, CREATED, CREATED]  # in the batch's order
    assert statuses[1].lead_id == 7
    assert fake.leads[7]["email"] == "new@example.com"


def test_no_dedup_sends_email_leads_as_create_duplicate(fake: FakeMarketo) -> None:
    transport = make_transport(fake)
    transport.send([LeadRecord(email="a@example.com")], dedup_enabled=False)
    transport.send([LeadRecord(email="a@example.com")], dedup_enabled=False)
    bodies = [request.json() for request in fake.calls()]
    assert [body["action"] for body in bodies] == ["createDuplicate", "createDuplicate"]
    assert all("lookupField" not in body for body in bodies)
    assert len(fake.leads) == 2


def test_group_of_and_size_of_are_what_the_engine_batches_by(fake: FakeMarketo) -> None:
    transport = make_transport(fake)
    assert str(transport.group_of(LeadRecord(lead_id=1))) == "updateOnly/id"
    assert str(transport.group_of(LeadRecord(email="a@b.c"))) == "createOrUpdate/email"
    assert str(transport.group_of(LeadRecord(email="a@b.c"), dedup_enabled=False)) == "createDuplicate"
    assert str(transport.group_of(LeadRecord(foreign_sys_person_id="9"))) == "createOrUpdate/externalId"
    small = transport.size_of(LeadRecord(email="a@b.c"))
    large = transport.size_of(LeadRecord(email="a@b.c", attributes={"Title": "x" * 1000}))
    assert large - small >= 1000
    assert transport.max_call_bytes <= 1_000_000


def test_attribute_names_travel_as_rest_names_and_an_unknown_one_is_refused() -> None:
    names = payload.FieldNames({"FirstName": "firstName", "Email": "notTheKey"}, None)
    record = LeadRecord(email="a@b.c", attributes=(("FirstName", "Ada"), ("Email", "x@b.c")))
    assert payload.lead_input(record, names) == {"email": "x@b.c", "firstName": "Ada"}
    unknown = LeadRecord(email="a@b.c", attributes=(("FirstName", "Ada"), ("ShoeSize", "44")))
    with pytest.raises(InputError, match="'ShoeSize' is not a lead field of this Marketo instance"):
        payload.lead_input(unknown, names)


_TEXT = st.text(st.sampled_from(["a", "é", '"', "\\", "\n", "\x00", "\x7f", "\u2028", "😀", " "]), max_size=12)


@settings(max_examples=200, deadline=None)
@given(lead_id=st.none() | st.integers(1, 2**31 - 1), email=st.none() | _TEXT, foreign_id=st.none() | _TEXT,
       attributes=st.lists(st.tuples(st.sampled_from(["FirstName", "Title", "Email"]), st.none() | _TEXT), max_size=4))
def test_size_of_is_the_length_of_the_record_in_the_body(lead_id, email, foreign_id, attributes) -> None:
    names = payload.FieldNames({"FirstName": "firstName", "Title": "title"}, "externalId")
    record = LeadRecord(lead_id=lead_id, email=email, foreign_sys_person_id=foreign_id, attributes=tuple(attributes))
    one = payload.body_for([record], payload.Group("createOrUpdate", "email"), names)
    two = payload.body_for([record, record], payload.Group("createOrUpdate", "email"), names)
    assert payload.size_of(record, names) == len(two) - len(one)


@settings(max_examples=300, deadline=None)
@given(lead_id=st.none() | st.integers(1, 2**31 - 1), email=st.none() | _TEXT, foreign_id=st.none() | _TEXT,
       attributes=st.lists(st.tuples(st.sampled_from(["FirstName", "Title", "Email"]), st.none() | _TEXT), max_size=4),
       rest_names=st.tuples(st.sampled_from(["f", "firstName", "a" * 40]), st.sampled_from(["t", "title" * 9])))
def test_the_size_bound_is_never_below_the_size(lead_id, email, foreign_id, attributes, rest_names) -> None:
    names = payload.FieldNames({"FirstName": rest_names[0], "Title": rest_names[1]}, "externalId")
    record = LeadRecord(lead_id=lead_id, email=email, foreign_sys_person_id=foreign_id, attributes=tuple(attributes))
    assert payload.size_bound_of(record, names) >= payload.size_of(record, names)


def test_foreign_id_leads_without_a_field_are_refused_before_sending(fake: FakeMarketo) -> None:
    transport = make_transport(fake, foreign_id_field=None)
    with pytest.raises(UsageError) as caught:
        transport.send([LeadRecord(foreign_sys_person_id="0042", foreign_sys_type="SFDC")])
    assert caught.value.exit_status == ExitStatus.USAGE
    assert "--foreign-id-field" in caught.value.message and "foreignSysPersonId" in caught.value.message
    assert fake.calls() == []


def test_unknown_attribute_name_is_an_input_error_not_a_call(fake: FakeMarketo) -> None:
    transport = make_transport(fake)
    with pytest.raises(InputError) as caught:
        transport.send([LeadRecord(email="a@example.com", attributes={"firstName": "Ada"})])
    assert "'firstName'" in caught.value.message
    assert fake.calls() == []


def test_skipped_record_fails_with_its_reasons(fake: FakeMarketo) -> None:
    transport = make_transport(fake)
    statuses = transport.send([LeadRecord(lead_id=404, attributes={"Title": "CTO"}),
                               LeadRecord(email="a@example.com")])
    assert statuses[0].status == FAILED and statuses[0].error == "1004 Lead not found"
    assert statuses[1].status == CREATED


def test_one_token_serves_many_calls_and_is_renewed_before_it_runs_out(fake: FakeMarketo) -> None:
    fake.token_ttl = 3600
    transport = make_transport(fake)
    for index in range(3):
        transport.send([LeadRecord(email=f"lead{index}@example.com")])
    assert len(fake.calls("/identity/oauth/token")) == 1
    fake.now = 3600 - 30  # within the renewal margin: ask again before the token runs out
    fake.expire_token()  # and Marketo hands out a new one
    transport.send([LeadRecord(email="late@example.com")])
    assert len(fake.calls("/identity/oauth/token")) == 2
    assert len(fake.calls()) == 4  # renewed ahead of time: no call was refused for an expired token
    tokens = {request.headers["Authorization"] for request in fake.calls()}
    assert len(tokens) == 2
    assert all("access_token" not in request.url for request in fake.calls())


def test_expired_token_602_is_renewed_once_and_the_call_retried(fake: FakeMarketo) -> None:
    transport = make_transport(fake)
    transport.send([LeadRecord(email="first@example.com")])
    fake.expire_token()  # Marketo says the token expired before the client expected it to
    statuses = transport.send([LeadRecord(email="second@example.com")])
    assert statuses[0].status == CREATED
    assert len(fake.calls("/identity/oauth/token")) == 2
    assert len(fake.calls()) == 3  # first, refused with 602, resent with the new token
    assert len(fake.leads) == 2


def test_a_token_refused_twice_stops_with_exit_4(fake: FakeMarketo) -> None:
    transport = make_transport(fake)
    fake.fail_next("601", "601")
    with pytest.raises(RemoteError) as caught:
        transport.send([LeadRecord(email="a@example.com")])
    assert caught.value.exit_status == ExitStatus.REMOTE_FAILURE
    assert "601" in caught.value.message
    assert fake.leads == {}


def test_bad_client_secret_exits_4_with_one_line_and_no_secret(fake: FakeMarketo) -> None:
    canary = "canary-secret-9f8e7d6c"
    transport = make_transport(fake, secret=canary)
    with pytest.raises(RemoteError) as caught:
        transport.send([LeadRecord(email="a@example.com")])
    error = caught.value
    assert error.exit_status == ExitStatus.REMOTE_FAILURE
    assert "invalid_client" in error.message and "MARKETO_CLIENT_SECRET" in error.message
    assert "\n" not in error.message and canary not in error.message
    assert fake.calls() == []


def test_rate_limit_606_is_retried_with_backoff(fake: FakeMarketo) -> None:
    transport = make_transport(fake)
    fake.fail_next("606", "615", "713")
    retries = []
    statuses = transport.send([LeadRecord(email="a@example.com")], on_retry=retries.append)
    assert statuses[0].status == CREATED
    assert [info.reason.split()[0] for info in retries] == ["606", "615", "713"]
    assert len(fake.leads) == 1


def test_bad_gateway_is_retried_for_keyed_leads_but_not_for_duplicates(fake: FakeMarketo) -> None:
    transport = make_transport(fake)
    fake.fail_next(502)
    assert transport.send([LeadRecord(email="a@example.com")])[0].status == CREATED
    fake.fail_next(502)
    with pytest.raises(RemoteError) as caught:
        transport.send([LeadRecord(email="b@example.com")], dedup_enabled=False)
    assert outcome_unknown(caught.value)
    assert "not resent" in caught.value.message


def test_daily_quota_607_stops_and_says_when_it_resets(fake: FakeMarketo) -> None:
    transport = make_transport(fake)
    fake.fail_next("607")
    with pytest.raises(QuotaExhausted) as caught:
        transport.send([LeadRecord(email="a@example.com")])
    assert caught.value.exit_status == ExitStatus.REMOTE_FAILURE
    assert "607" in caught.value.message and "resets at midnight US Central" in caught.value.message
    assert len(fake.calls()) == 1


def test_access_denied_603_names_the_permission(fake: FakeMarketo) -> None:
    transport = make_transport(fake)
    fake.fail_next("603")
    with pytest.raises(RemoteError) as caught:
        transport.send([LeadRecord(email="a@example.com")])
    assert caught.value.exit_status == ExitStatus.REMOTE_FAILURE
    assert "Read-Write Lead" in caught.value.message
    assert len(fake.calls()) == 1


@pytest.mark.parametrize("code", ["609", "612", "610", "1003"])
def test_call_level_bugs_stop_with_exit_4_and_point_at_debug(fake: FakeMarketo, code: str) -> None:
    transport = make_transport(fake)
    fake.fail_next(code)
    with pytest.raises(RemoteError) as caught:
        transport.send([LeadRecord(email="a@example.com")])
    assert caught.value.exit_status == ExitStatus.REMOTE_FAILURE
    assert code in caught.value.message and "--debug" in caught.value.message
    assert len(fake.calls()) == 1


def test_debug_log_shows_exchanges_without_secret_or_token(fake: FakeMarketo) -> None:
    lines: list[str] = []
    transport = make_transport(fake, log=lines.append)
    fake.fail_next("602")
    transport.send([LeadRecord(email="a@example.com", attributes={"FirstName": "Ada"})])
    log = "\n".join(lines)
    tokens = {request.headers["Authorization"].split()[1] for request in fake.calls()}
    assert "/identity/oauth/token" in log and "firstName" in log and "Bearer ***" in log
    assert CLIENT_SECRET not in log
    assert not any(token in log for token in tokens)


def test_get_leads_reads_by_filter_and_switches_to_post_for_long_urls(fake: FakeMarketo) -> None:
    client = make_client(fake)
    fake.leads = {n: {"id": n, "email": f"lead-number-{n}@example-company.com", "firstName": f"F{n}"}
                  for n in range(1, 301)}
    rows = client.get_leads("id", [1, 2, 3], ["id", "firstName"])
    assert rows == [{"id": 1, "firstName": "F1"}, {"id": 2, "firstName": "F2"}, {"id": 3, "firstName": "F3"}]
    assert fake.requests[-1].method == "GET"
    emails = [f"lead-number-{n}@example-company.com" for n in range(1, 301)]  # over 8 KB as a URL
    rows = client.get_leads("email", emails, ["id", "email"])
    assert len(rows) == 300
    last = fake.requests[-1]
    assert last.method == "POST" and "_method=GET" in last.url
    assert last.headers["Content-Type"] == "application/x-www-form-urlencoded"
    with pytest.raises(ValueError):
        client.get_leads("id", list(range(301)), ["id"])


def test_get_leads_follows_next_page_tokens(fake: FakeMarketo) -> None:
    fake.page_size = 2
    fake.leads = {n: {"id": n, "company": "ACME"} for n in range(1, 6)}
    rows = make_client(fake).get_leads("company", ["ACME"], ["id"])
    assert [row["id"] for row in rows] == [1, 2, 3, 4, 5]
    assert len(fake.calls()) == 3


def test_describe_returns_marketo_entries(fake: FakeMarketo) -> None:
    entries = make_client(fake).describe()
    assert {entry["soap"]["name"]: entry["rest"]["name"] for entry in entries}["FirstName"] == "firstName"


@pytest.mark.parametrize("endpoint, base", [
    ("https://123-ABC-456.mktorest.com", "https://123-ABC-456.mktorest.com"),
    ("https://123-ABC-456.mktorest.com/rest", "https://123-ABC-456.mktorest.com"),
    ("https://123-ABC-456.mktorest.com/rest/", "https://123-ABC-456.mktorest.com"),
])
def test_rest_endpoint_with_or_without_rest_suffix(endpoint: str, base: str) -> None:
    credentials = RestCredentials.from_env({"MARKETO_REST_ENDPOINT": endpoint, "MARKETO_CLIENT_ID": "id",
                                            "MARKETO_CLIENT_SECRET": "s3cr3t-value"})
    assert credentials.base_url == base
    assert credentials.identity_url == base + "/identity"
    assert "s3cr3t-value" not in repr(credentials) and "s3cr3t-value" not in str(credentials)


def test_identity_endpoint_override_and_plain_http_refused() -> None:
    environ = {"MARKETO_REST_ENDPOINT": "https://a.mktorest.com", "MARKETO_CLIENT_ID": "id",
               "MARKETO_CLIENT_SECRET": "secret", "MARKETO_IDENTITY_ENDPOINT": "https://id.example.com/identity"}
    assert RestCredentials.from_env(environ).identity_url == "https://id.example.com/identity"
    with pytest.raises(ConfigError):
        RestCredentials.from_env({**environ, "MARKETO_REST_ENDPOINT": "http://a.mktorest.com"})
    with pytest.raises(ConfigError) as caught:
        RestCredentials.from_env({**environ, "MARKETO_REST_ENDPOINT": "a.mktorest.com"})
    assert "MARKETO_REST_ENDPOINT must be an https:// URL such as https://123-ABC-456.mktorest.com" \
        in caught.value.message
    assert RestCredentials.from_env({**environ, "MARKETO_REST_ENDPOINT": "http://127.0.0.1:9/rest"}).base_url \
        == "http://127.0.0.1:9"


def test_a_failed_token_request_is_reported_without_the_secret(fake: FakeMarketo) -> None:
    import requests

    class Refusing(FakeMarketo):
        def request(self, method, url, **kwargs):
            if "/identity/" in url:  # an error quoting the whole URL, query string and all
                raise requests.exceptions.InvalidHeader(f"cannot send {url}")
            return super().request(method, url, **kwargs)

    transport = make_transport(Refusing(), retry=RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0))
    with pytest.raises(RemoteError) as caught:
        transport.send([LeadRecord(email="a@example.com")])
    chain, error = [], caught.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert caught.value.exit_status == ExitStatus.REMOTE_FAILURE
    assert "/identity/oauth/token" in chain[0]
    assert not any(CLIENT_SECRET in text for text in chain)
