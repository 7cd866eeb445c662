"""Leads read from checked lead-file records are made without the dataclass constructor: each is the
very Lead (and Location) the constructor makes."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.core.model import Lead, trusted_lead
from reconcile.errors import Location, location_at

texts = st.none() | st.text(max_size=8)
keys = st.one_of(
    st.tuples(st.integers(1, 2**31 - 1), texts, texts, texts),
    st.tuples(st.none(), texts, st.text(min_size=1, max_size=8), st.none() | st.sampled_from(["SFDC", "CUSTOM"])),
    st.tuples(st.none(), st.text(min_size=1, max_size=8), st.none(), st.none()),
)
attributes = st.dictionaries(st.text(max_size=6), texts, max_size=4)


@given(st.text(max_size=10), st.none() | st.integers(1, 10**6), keys, attributes)
def test_a_trusted_lead_is_equal_hashed_shown_and_frozen_as_a_constructed_one(path, line, key, attrs):
    lead_id, email, fsp, fsp_type = key
    made = Lead(location=Location(path, line), lead_id=lead_id, email=email, foreign_sys_person_id=fsp,
                foreign_sys_type=fsp_type, attributes=attrs)
    trusted = trusted_lead(location_at(path, line), lead_id, email, fsp, fsp_type, attrs)
    assert trusted == made and repr(trusted) == repr(made) and trusted.identity == made.identity
    assert trusted.location == made.location and hash(trusted.location) == hash(made.location)
    assert str(trusted.location) == str(made.location) and not trusted.location < made.location
    with pytest.raises(dataclasses.FrozenInstanceError):
        trusted.email = "changed@example.com"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        trusted.location.line = 0  # type: ignore[misc]


def test_a_trusted_lead_without_a_key_is_refused_as_a_constructed_one():
    with pytest.raises(ValueError, match="needs a leadId"):
        trusted_lead(location_at("a.yaml", 1), None, None, None, "SFDC", {})
