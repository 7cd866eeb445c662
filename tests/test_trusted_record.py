"""The apply's unchecked LeadRecord constructor makes the very record the checked one makes."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.core.records import LeadRecord, trusted_record

texts = st.none() | st.text(max_size=8)
pairs = st.lists(st.tuples(st.text(max_size=6), texts), max_size=4).map(tuple)


@given(st.none() | st.integers(1, 2**31 - 1), texts, texts, texts, pairs)
def test_a_trusted_record_is_equal_hashed_and_frozen_as_a_checked_one(lead_id, email, fsp, fsp_type, attributes):
    trusted = trusted_record(lead_id, email, fsp, fsp_type, attributes)
    checked = LeadRecord(lead_id=lead_id, email=email, foreign_sys_person_id=fsp, foreign_sys_type=fsp_type,
                         attributes=attributes)
    assert trusted == checked and hash(trusted) == hash(checked) and repr(trusted) == repr(checked)
    with pytest.raises(dataclasses.FrozenInstanceError):
        trusted.email = "changed@example.com"  # type: ignore[misc]
