"""A declared lead's identity: its strongest key, as the state records it; a lead needs one."""

from __future__ import annotations

import dataclasses

import pytest

from reconcile.core.model import Lead
from reconcile.errors import Location


@pytest.mark.parametrize("keys,identity", [
    (dict(lead_id=1090240, email="Jane@Example.com", foreign_sys_person_id="42"), "id:1090240"),
    (dict(email="Jane@Example.com", foreign_sys_person_id="42", foreign_sys_type="SFDC"), "fsp:SFDC:42"),
    (dict(foreign_sys_person_id="42"), "fsp:CUSTOM:42"),
    (dict(email="Jane@Example.com"), "email:jane@example.com"),
])
def test_a_lead_is_known_by_its_strongest_key(keys, identity):
    assert Lead(Location("leads/a.yaml", 3), **keys).identity == identity


def test_a_lead_without_a_key_is_refused():
    with pytest.raises(ValueError, match="needs a leadId"):
        Lead(Location("a.yaml", 1), None, None, None, "SFDC", {})


def test_a_lead_and_its_location_are_frozen():
    lead = Lead(Location("a.yaml", 1), email="a@example.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        lead.email = "changed@example.com"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        lead.location.line = 0  # type: ignore[misc]
