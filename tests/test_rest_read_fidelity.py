"""Reading leads as Marketo answers them (../shared/marketo-rest-facts.md, Get Leads): a requested field
that is null is left out of the answer, and numbers and booleans come back as JSON numbers and booleans.
Refresh and import must read both as a lead file's text would hold them."""

from __future__ import annotations

from rest_fake import CLIENT_ID, CLIENT_SECRET, FakeMarketo
from reconcile.apply.refresh import refresh
from reconcile.core.model import State, StateLead
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
