"""Describe-based checks of attribute names and values (inputs/fields.py)."""

from __future__ import annotations

import pytest

from reconcile.errors import UsageError
from reconcile.inputs.fields import FieldCatalog
from rest_fake import describe_entries


@pytest.fixture
def catalog() -> FieldCatalog:
    return FieldCatalog(describe_entries(), instance="123-abc-456.mktorest.com")


@pytest.mark.parametrize("name, meant", [("firstName", "FirstName"), ("FIRSTNAME", "FirstName"), ("externalid__C", "ExternalId__c"),
                                         ("Compnay", "Company"), ("externalId", "ExternalId__c")])
def test_did_you_mean_finds_the_lead_file_name(catalog: FieldCatalog, name: str, meant: str) -> None:
    assert catalog.suggestion(name) == meant
    assert f"did you mean {meant!r}?" in catalog.name_problem(name)


def test_known_fields_pass_and_unrelated_names_get_no_guess(catalog: FieldCatalog) -> None:
    assert catalog.name_problem("FirstName") is None
    assert catalog.name_problem("Favourite_Colour") == "'Favourite_Colour' is not a lead field of " \
                                                      "123-abc-456.mktorest.com"


@pytest.mark.parametrize("name, value, ok", [
    ("NumberOfEmployees", "120", True), ("NumberOfEmployees", "-3", True), ("NumberOfEmployees", "12.5", False),
    ("Unsubscribed", "true", True), ("Unsubscribed", "FALSE", True), ("Unsubscribed", "yes", False),
    ("Email", "ada@example.com", True), ("Email", "adá@example.com", False),
    ("CreatedAt", "2024-01-05T10:00:00Z", True), ("CreatedAt", "05/01/2024", False),
    ("ExternalId__c", "x" * 64, True), ("ExternalId__c", "x" * 65, False), ("ExternalId__c", None, True),
])
def test_values_are_checked_against_type_and_length(catalog: FieldCatalog, name: str, value, ok: bool) -> None:
    assert (catalog.value_problem(name, value) is None) is ok


def test_foreign_id_field_resolves_either_name_to_the_rest_name(catalog: FieldCatalog) -> None:
    assert catalog.resolve_rest_name("ExternalId__c", "--foreign-id-field") == "externalId"
    assert catalog.resolve_rest_name("externalId", "--foreign-id-field") == "externalId"
    with pytest.raises(UsageError) as caught:
        catalog.resolve_rest_name("ExternalID", "--foreign-id-field")
    assert "did you mean 'ExternalId__c'" in caught.value.message


def test_hostile_describe_entries_are_left_out() -> None:
    entries = describe_entries() + [{"dataType": "string", "soap": {"name": "Evil\x1b]8;;http://x\x07"},
                                     "rest": {"name": "evil name"}}]
    catalog = FieldCatalog(entries)
    assert not any("\x1b" in name or " " in name for name in catalog.fields)
    assert not any(spec.rest_name and " " in spec.rest_name for spec in catalog.fields.values())
