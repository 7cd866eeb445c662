"""Property tests of the pure core: for any desired set and state, recording a plan's effects and
planning again finds nothing to do and no orphan the declarations did not cause; planning is
deterministic and independent of input order."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.errors import Location
from reconcile.core.model import CREATE, ORPHANED, UNCHANGED, UPDATE, Lead, State
from reconcile.core.planner import plan, record_outcomes, recorded_lead

EMAILS = ["a@example.com", "A@example.com", "b@example.com", "c@example.com", "d@example.com"]
FOREIGN_IDS = ["1", "2", "01"]
ATTRIBUTE_NAMES = ["Company", "Title", "Phone"]
values = st.one_of(st.none(), st.sampled_from(["", "x", "y", "01234", "no", "true"]))


@st.composite
def leads(draw) -> Lead:
    lead_id = draw(st.one_of(st.none(), st.integers(1, 6)))
    email = draw(st.one_of(st.none(), st.sampled_from(EMAILS)))
    foreign_id = draw(st.one_of(st.none(), st.sampled_from(FOREIGN_IDS)))
    if lead_id is None and email is None and foreign_id is None:
        email = draw(st.sampled_from(EMAILS))
    foreign_type = draw(st.sampled_from([None, "CUSTOM", "SFDC"])) if foreign_id is not None else None
    attributes = draw(st.dictionaries(st.sampled_from(ATTRIBUTE_NAMES), values, max_size=3))
    return Lead(location=Location("leads/x.yaml", 1), lead_id=lead_id, email=email,
                foreign_sys_person_id=foreign_id, foreign_sys_type=foreign_type, attributes=attributes)


def unique_by_identity(candidates: list[Lead]) -> list[Lead]:
    seen: dict[str, Lead] = {}
    for lead in candidates:
        seen.setdefault(lead.identity, lead)
    return list(seen.values())


desired_sets = st.lists(leads(), max_size=8).map(unique_by_identity)


def apply_effects(state: State, current_plan, next_id: itertools.count) -> State:
    """What a fully successful apply records: every sent or state-only action, with Marketo's ID."""
    outcomes = []
    for action in current_plan.actions:
        if action.kind in (CREATE, UPDATE):
            lead_id = action.known_lead_id if action.known_lead_id is not None else next(next_id)
            outcomes.append((action, recorded_lead(action, lead_id, "2026-11-28T00:00:00+00:00")))
    return State(lineage=state.lineage, serial=state.serial + 1, leads=record_outcomes(state.leads, outcomes))


@st.composite
def states(draw) -> State:
    """A state some earlier apply could have written: the recorded effects of an earlier desired set."""
    earlier = draw(desired_sets)
    empty = State(lineage="l", serial=0, leads={})
    return apply_effects(empty, plan(earlier, empty), itertools.count(100))


@settings(max_examples=400, deadline=None)
@given(desired=desired_sets, state=states())
def test_plan_after_apply_has_nothing_to_do(desired: list[Lead], state: State) -> None:
    first = plan(desired, state)
    after = apply_effects(state, first, itertools.count(1000))
    second = plan(desired, after)
    assert not second.has_changes, [a for a in second.actions if a.kind in (CREATE, UPDATE)]
    assert second.count(UNCHANGED) == len(desired)
    # The only orphans are the records the declarations left unclaimed before the apply, under the
    # same keys: an applied lead whose key moved leaves no record behind under its old key.
    orphans_before = {a.identity for a in first.actions if a.kind == ORPHANED}
    assert {a.identity for a in second.actions if a.kind == ORPHANED} == orphans_before
    assert set(after.leads) == orphans_before | {lead.identity for lead in desired}


@settings(max_examples=200, deadline=None)
@given(desired=desired_sets, state=states(), seed=st.randoms(use_true_random=False))
def test_plan_is_deterministic_and_order_independent(desired, state, seed) -> None:
    shuffled = list(desired)
    seed.shuffle(shuffled)
    assert plan(desired, state) == plan(shuffled, state)


@settings(max_examples=200, deadline=None)
@given(desired=desired_sets, state=states())
def test_every_desired_lead_has_exactly_one_action_and_no_state_record_is_claimed_twice(desired, state) -> None:
    result = plan(desired, state)
    declared = [a.identity for a in result.actions if a.kind != ORPHANED] + list(result.unchanged)
    assert sorted(declared) == sorted(lead.identity for lead in desired)
    assert not set(result.unchanged) & {a.identity for a in result.actions}
    # an unchanged lead sits in the state under its own identity
    claimed = [a.state_key for a in result.actions if a.state_key is not None] + list(result.unchanged)
    assert len(claimed) == len(set(claimed))
    assert set(claimed) == set(state.leads), "every state record is either matched or orphaned"
