"""Reading leads as Marketo answers them (../shared/marketo-rest-facts.md, Get Leads): a requested field
that is null is left out of the answer, and numbers and booleans come back as JSON numbers and booleans.
Refresh and import must read both as a lead file's text would hold them."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from rest_fake import CLIENT_ID, CLIENT_SECRET, FakeMarketo
from reconcile.adopt.leads import FieldChoice, entries_of
from reconcile.adopt.yamlout import render
from reconcile.apply.refresh import refresh
from reconcile.core.drift import marketo_text
from reconcile.core.model import State, StateLead
from reconcile.inputs.leadfiles import parse_lead_file
from reconcile.remote.http import RetryPolicy
from reconcile.remote.rest.client import RestClient
from reconcile.remote.rest.config import RestCredentials

REST_NAMES = {"Title": "title", "FirstName": "firstName", "NumberOfEmployees": "numberOfEmployees",
              "Unsubscribed": "unsubscribed"}


def make_client(fake: FakeMarketo) -> RestClient:
    credentials = RestCredentials(base_url="https://123-ABC-456.mktorest.com/rest",
                                  identity_url="https://123-ABC-456.mktorest.com/identity",
                                  client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    return RestClient(credentials, session=fake, monotonic=fake.clock, sleep=lambda s: None,
                      retry=RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0))


def state_of(**attributes: str | None) -> State:
    return State(lineage="l", serial=1, leads={"email:ada@example.com": StateLead(7, "ada@example.com", None, None,
                                                                                 dict(attributes))})


def test_a_title_cleared_in_marketo_is_drift_although_the_answer_leaves_it_out() -> None:
    fake = FakeMarketo()
    fake.leads[7] = {"id": 7, "email": "ada@example.com", "firstName": "Ada"}  # no title: Marketo omits nulls
    drift = refresh(state_of(Title="CTO", FirstName="Ada"), make_client(fake), REST_NAMES)
    assert [(change.name, change.recorded, change.current) for lead in drift.leads for change in lead.changes] \
        == [("Title", "CTO", None)]
    assert drift.refreshed.leads["email:ada@example.com"].attributes == {"Title": None, "FirstName": "Ada"}


# Every form a JSON number or boolean of a Get Leads answer may take: whole and real numbers, small,
# huge and negative, and the floats that print with an exponent (`1e3` is read as 1000.0).
MARKETO_VALUES = st.one_of(st.booleans(), st.integers(min_value=-10**18, max_value=10**18),
                           st.floats(allow_nan=False, allow_infinity=False),
                           st.sampled_from([1e3, 1e21, 1e-7, 1500.5, -0.0, 0.1, 42.0]))


@settings(max_examples=300, deadline=None)
@given(value=MARKETO_VALUES, numeric=st.booleans())
def test_import_then_plan_is_empty_for_every_number_and_boolean_marketo_sends(value, numeric: bool) -> None:
    choice = FieldChoice({"NumberOfEmployees": "numberOfEmployees"}, explicit=True)
    row = {"id": 7, "email": "ada@example.com", "numberOfEmployees": value}
    [entry], problems = entries_of([row], choice)
    assert problems == []
    text = entry.attributes["NumberOfEmployees"]
    # as a person writes it: 1000, not 1000.0 or 1e3
    assert re.fullmatch(r"true|false" if isinstance(value, bool) else r"-?[0-9]+(\.[0-9]*[1-9])?", text), text

    # the lead file the import writes reads back as that text
    written = parse_lead_file(render([entry], schema_ref="leads.schema.json"), "leads/imported.yaml")
    assert written.document["leads"][0]["attributes"]["NumberOfEmployees"] == text

    # and a refresh reading the same JSON value finds Marketo matching the state the import recorded
    fake = FakeMarketo()
    fake.leads[7] = dict(row)
    drift = refresh(state_of(NumberOfEmployees=text), make_client(fake), REST_NAMES,
                    numeric=frozenset({"NumberOfEmployees"}) if numeric else frozenset())
    assert not drift.has_drift
    assert drift.refreshed.leads["email:ada@example.com"].attributes == {"NumberOfEmployees": text}


def test_numbers_and_booleans_read_as_a_lead_file_holds_them() -> None:
    assert [marketo_text(value) for value in (42, 1500.5, 1e3, True, False, 1e-7, -0.0, 10**20 * 1.0)] == \
        ["42", "1500.5", "1000", "true", "false", "0.0000001", "0", "100000000000000000000"]
