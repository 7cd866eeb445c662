"""syncMultipleLeads on the Marketo SOAP emulator behaves as Marketo does: realistic increasing IDs,
statuses in request order, dedupEnabled (absent is true) matching email case-insensitively or
creating duplicates, records of one call seeing the ones before them, Id before ForeignSysPersonId
before Email, Marketo's per-record failures (20101, 20102, 20103, a bad attribute failing its record
only), extra fields, empty values clearing a field, and Marketo's standard field names.
"""

from __future__ import annotations

from reconcile.remote.soap import envelope as soap
from reconcile.emulator import DEFAULT_FIELDS
from soap_emulator_helpers import R, by_id, envelope, post, sync, without_dedup

# --------------------------------------------------------------------------------------------------
# syncMultipleLeads semantics


def test_create_by_email_with_increasing_realistic_ids(emulator):
    statuses = sync(emulator, [R(email=f"em{i}@etestd.marketo.net", attributes={"Company": f"Marketo{i}"})
                               for i in (1000, 1001, 1002)])
    assert [s.status for s in statuses] == ["CREATED"] * 3
    assert [s.lead_id for s in statuses] == [1000001, 1000002, 1000003]
    assert all(s.error is None for s in statuses)
    later = sync(emulator, [R(email="em1003@etestd.marketo.net")])
    assert later[0].lead_id == 1000004
    lead = by_id(emulator)[1000001]
    assert lead["email"] == "em1000@etestd.marketo.net"
    assert lead["attributes"] == {"Company": "Marketo1000"}
    assert lead["createdAt"] and lead["updatedAt"]


def test_statuses_come_back_in_request_order(emulator):
    sync(emulator, [R(email="b@example.com")])
    statuses = sync(emulator, [R(email="a@example.com"), R(lead_id=42), R(email="B@example.com"), R()])
    assert [s.status for s in statuses] == ["CREATED", "FAILED", "UPDATED", "FAILED"]
    assert statuses[2].lead_id == 1000001


def test_dedup_true_updates_lead_with_same_email_case_insensitively(emulator):
    created = sync(emulator, [R(email="Jane@Example.com", attributes={"FirstName": "Jane"})])[0]
    updated = sync(emulator, [R(email="jane@example.COM", attributes={"LastName": "Doe"})], dedup=True)[0]
    assert (updated.status, updated.lead_id) == ("UPDATED", created.lead_id)
    [lead] = emulator.leads()
    assert lead["attributes"] == {"FirstName": "Jane", "LastName": "Doe"}
    assert lead["email"] == "Jane@Example.com"  # the key is not rewritten


def test_dedup_absent_behaves_as_true(emulator):
    created = sync(emulator, [R(email="jane@example.com")])[0]
    body = without_dedup(envelope(emulator, [R(email="JANE@example.com", attributes={"Title": "CTO"})]))
    response = post(emulator, body)
    [status] = soap.parse_response(response.content, response.status_code)
    assert (status.status, status.lead_id) == ("UPDATED", created.lead_id)
    assert len(emulator.leads()) == 1


def test_dedup_false_creates_duplicates_and_dedup_then_picks_lowest_id(emulator):
    first = sync(emulator, [R(email="dup@example.com")], dedup=False)[0]
    second = sync(emulator, [R(email="dup@example.com")], dedup=False)[0]
    assert (first.status, second.status) == ("CREATED", "CREATED")
    assert second.lead_id > first.lead_id
    assert len(emulator.leads()) == 2
    again = sync(emulator, [R(email="DUP@example.com", attributes={"Title": "x"})], dedup=True)[0]
    assert (again.status, again.lead_id) == ("UPDATED", first.lead_id)


def test_records_of_one_call_see_the_ones_before_them(emulator):
    statuses = sync(emulator, [R(email="same@example.com", attributes={"FirstName": "A"}),
                               R(email="same@example.com", attributes={"LastName": "B"})])
    assert [s.status for s in statuses] == ["CREATED", "UPDATED"]
    assert statuses[0].lead_id == statuses[1].lead_id
    assert emulator.leads()[0]["attributes"] == {"FirstName": "A", "LastName": "B"}


def test_id_takes_precedence_over_foreign_id_which_is_updated(emulator):
    lead_id = sync(emulator, [R(email="a@example.com")])[0].lead_id
    other = sync(emulator, [R(email="b@example.com")])[0].lead_id
    [status] = sync(emulator, [R(lead_id=lead_id, email="b@example.com", foreign_sys_person_id="SF-1",
                                 foreign_sys_type="SFDC", attributes={"Title": "CTO"})])
    assert (status.status, status.lead_id) == ("UPDATED", lead_id)
    lead = by_id(emulator)[lead_id]
    assert (lead["foreignSysPersonId"], lead["foreignSysType"]) == ("SF-1", "SFDC")
    assert lead["attributes"] == {"Title": "CTO"}
    assert by_id(emulator)[other]["attributes"] == {}
    # the foreign ID now finds that lead
    [status] = sync(emulator, [R(foreign_sys_person_id="SF-1", foreign_sys_type="SFDC", attributes={"City": "X"})])
    assert (status.status, status.lead_id) == ("UPDATED", lead_id)
    # ... and moving it again replaces it (type defaults to CUSTOM)
    sync(emulator, [R(lead_id=lead_id, foreign_sys_person_id="C-9")])
    lead = by_id(emulator)[lead_id]
    assert (lead["foreignSysPersonId"], lead["foreignSysType"]) == ("C-9", "CUSTOM")
    [status] = sync(emulator, [R(foreign_sys_person_id="SF-1", foreign_sys_type="SFDC")])
    assert status.status == "CREATED"


def test_foreign_id_of_another_lead_is_20102(emulator):
    a, b = (s.lead_id for s in sync(emulator, [R(foreign_sys_person_id="F1"), R(foreign_sys_person_id="F2")]))
    [status] = sync(emulator, [R(lead_id=a, foreign_sys_person_id="F2", attributes={"Title": "x"})])
    assert status.status == "FAILED" and status.error.startswith("20102")
    assert status.lead_id == a
    assert by_id(emulator)[a]["foreignSysPersonId"] == "F1" and by_id(emulator)[a]["attributes"] == {}


def test_email_element_with_id_is_not_an_update(emulator):
    lead_id = sync(emulator, [R(email="old@example.com")])[0].lead_id
    [status] = sync(emulator, [R(lead_id=lead_id, email="new@example.com", attributes={"Title": "CTO"})])
    assert status.status == "UPDATED"
    assert by_id(emulator)[lead_id]["email"] == "old@example.com"


def test_email_attribute_updates_email(emulator):
    lead_id = sync(emulator, [R(email="old@example.com")])[0].lead_id
    sync(emulator, [R(lead_id=lead_id, email="old@example.com", attributes={"Email": "new@example.com"})])
    assert by_id(emulator)[lead_id]["email"] == "new@example.com"
    # the email index follows: dedup now finds the lead by its new email only
    assert sync(emulator, [R(email="NEW@example.com")])[0].lead_id == lead_id
    assert sync(emulator, [R(email="old@example.com")])[0].status == "CREATED"


def test_foreign_id_creates_with_email_then_updates_without_touching_email(emulator):
    [created] = sync(emulator, [R(foreign_sys_person_id="1224191", foreign_sys_type="SFDC",
                                  email="jane@example.com", attributes={"FirstName": "Jane"})])
    assert created.status == "CREATED"
    lead = by_id(emulator)[created.lead_id]
    assert (lead["email"], lead["foreignSysPersonId"], lead["foreignSysType"]) == \
        ("jane@example.com", "1224191", "SFDC")
    [updated] = sync(emulator, [R(foreign_sys_person_id="1224191", foreign_sys_type="SFDC",
                                  email="other@example.com", attributes={"Title": "CEO"})])
    assert (updated.status, updated.lead_id) == ("UPDATED", created.lead_id)
    assert by_id(emulator)[created.lead_id]["email"] == "jane@example.com"
    # the key is type + id: the same id of another type is another lead; no type means CUSTOM
    [custom] = sync(emulator, [R(foreign_sys_person_id="1224191")])
    assert custom.status == "CREATED" and by_id(emulator)[custom.lead_id]["foreignSysType"] == "CUSTOM"
    [again] = sync(emulator, [R(foreign_sys_person_id="1224191", foreign_sys_type="CUSTOM")])
    assert (again.status, again.lead_id) == ("UPDATED", custom.lead_id)


def test_foreign_id_does_not_dedup_by_email(emulator):
    by_email = sync(emulator, [R(email="jane@example.com")])[0]
    [status] = sync(emulator, [R(foreign_sys_person_id="X1", email="jane@example.com")])
    assert status.status == "CREATED" and status.lead_id != by_email.lead_id


def test_unknown_id_fails_20103_with_the_requested_id(emulator):
    [status] = sync(emulator, [R(lead_id=999, email="a@example.com", attributes={"Title": "x"})])
    assert (status.status, status.lead_id) == ("FAILED", 999)
    assert status.error == "20103 - Lead Not Found"
    assert emulator.leads() == []


def test_record_without_key_fails_20101(emulator):
    [status] = sync(emulator, [R(attributes={"FirstName": "Nobody"})])
    assert (status.status, status.lead_id, status.error) == ("FAILED", 0, "20101 - Lead Key Required")
    assert emulator.leads() == []


def test_bad_attribute_fails_the_whole_record_only(emulator):
    lead_id = sync(emulator, [R(email="a@example.com", attributes={"Title": "Old"})])[0].lead_id
    statuses = sync(emulator, [
        R(email="a@example.com", attributes={"Title": "New", "NoSuchField": "x"}),
        R(email="b@example.com", attributes={"company": "lower-case is another name"}),
        R(email="c@example.com", attributes={"Company": "C"}),
    ])
    assert (statuses[0].status, statuses[0].lead_id) == ("FAILED", lead_id)
    assert statuses[0].error == "20105 - Lead Attribute Bad: NoSuchField"
    assert (statuses[1].status, statuses[1].lead_id) == ("FAILED", 0)
    assert statuses[1].error == "20105 - Lead Attribute Bad: company"
    assert statuses[2].status == "CREATED"
    leads = by_id(emulator)
    assert leads[lead_id]["attributes"] == {"Title": "Old"}
    assert [lead["email"] for lead in leads.values()] == ["a@example.com", "c@example.com"]


def test_extra_fields_are_accepted(emulator_factory):
    emu = emulator_factory(extra_fields=frozenset({"Favorite_Color__c"}))
    assert sync(emu, [R(email="a@example.com", attributes={"Favorite_Color__c": "teal"})])[0].status == "CREATED"
    assert emu.leads()[0]["attributes"] == {"Favorite_Color__c": "teal"}


def test_empty_value_clears_the_field(emulator):
    lead_id = sync(emulator, [R(email="a@example.com", attributes={"Title": "CTO", "Phone": "1"})])[0].lead_id
    sync(emulator, [R(lead_id=lead_id, attributes={"Title": None})])
    assert by_id(emulator)[lead_id]["attributes"] == {"Title": None, "Phone": "1"}


def test_default_fields_are_marketo_standard_names():
    assert len(DEFAULT_FIELDS) >= 60
    for name in ("FirstName", "LastName", "Email", "Company", "Title", "Phone", "MobilePhone", "Address",
                 "City", "State", "PostalCode", "Country", "Website", "Industry", "AnnualRevenue",
                 "NumberOfEmployees", "LeadSource", "LeadStatus", "Unsubscribed", "DoNotCall"):
        assert name in DEFAULT_FIELDS
