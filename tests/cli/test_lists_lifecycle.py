"""Static lists declared in lead files: parsed with their lines, planned as `+ list` / `- list` under the
lead, resolved against the instance's lists, applied after the lead's record (REST and SOAP), recorded
in the state only once Marketo confirmed them, and planned empty afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconcile.core.model import Lead, State, StateLead
from reconcile.core.planner import plan
from reconcile.core.render import render_json, render_markdown, render_text
from reconcile.errors import Location
from reconcile.store.statecodec import lead_line, parse_lead_line
from clirunner import invoke
from conftest import emulator_environ as env_for

LEADS = """leads:
  - email: ada@example.com
    attributes: {Company: Analytical Engines}
    lists: [VIP Customers, "Webinar 2026-12"]
  - email: bob@example.com
    attributes: {Company: Bobco}
"""


@pytest.fixture
def workspace(make_workspace) -> Path:
    return make_workspace({"people.yaml": LEADS})


@pytest.fixture
def lists(emulator):
    return {name: emulator.lists.create(name)["id"] for name in ("VIP Customers", "Webinar 2026-12", "Other")}


def lead_id_of(emulator, email: str) -> int:
    return next(lead["id"] for lead in emulator.leads() if lead["email"] == email)


# -- parsing and planning ----------------------------------------------------------------------------


def test_lists_are_read_with_the_lead_and_planned_under_it(workspace: Path) -> None:
    result = invoke("plan")
    assert result.exit_code == 0, result.stderr
    block = result.stdout.split("# email:ada@example.com will be created (leads/people.yaml:2)")[1].split("}")[0]
    assert '      + list "VIP Customers"\n      + list "Webinar 2026-12"\n' in block
    assert "list" not in result.stdout.split("# email:bob@example.com")[1].split("}")[0]
    assert "; 2 list additions, 0 removals; " in result.stdout


def test_a_list_by_id_must_be_a_number_with_its_line(workspace: Path) -> None:
    (workspace / "leads" / "people.yaml").write_text(LEADS.replace('"Webinar 2026-12"', '"id:12x"'))
    result = invoke("validate")
    assert result.exit_code == 3
    assert "leads/people.yaml:4:" in result.stderr and "id:12x" in result.stderr


def test_a_list_named_twice_in_one_lead_is_refused(workspace: Path) -> None:
    (workspace / "leads" / "people.yaml").write_text(LEADS.replace('"Webinar 2026-12"', '"VIP Customers"'))
    result = invoke("validate")
    assert result.exit_code == 3 and "leads/people.yaml:4" in result.stderr


def _lead(lists=()) -> Lead:
    return Lead(Location("leads/people.yaml", 2), email="ada@example.com", attributes={"Company": "A"},
                lists=tuple(lists))


def _state(lists) -> State:
    return State(lineage="l", serial=1, leads={"email:ada@example.com": StateLead(
        1001, "ada@example.com", None, None, {"Company": "A"}, "2026-01-01T00:00:00Z", lists)})


def test_removing_a_name_removes_the_lead_from_that_list_only() -> None:
    planned = plan([_lead(["Webinar"])], _state({"VIP Customers": 7, "Webinar": 8}))
    (action,) = planned.actions
    assert [(c.ref, c.add, c.list_id) for c in action.list_changes] == [("VIP Customers", False, 7)]
    assert not action.sends_record
    text = render_text(planned)
    assert '      - list "VIP Customers"\n' in text and "Webinar" not in text
    assert "; 0 list additions, 1 removal; " in text
    data = json.loads(render_json(planned))
    assert data["summary"]["list_removals"] == 1 and data["summary"]["list_additions"] == 0
    assert data["actions"][0]["list_changes"] == [{"list": "VIP Customers", "change": "remove", "list_id": 7}]
    assert "| +0 / -1 |" in render_markdown(planned)


def test_memberships_the_state_records_as_declared_plan_nothing() -> None:
    planned = plan([_lead(["VIP Customers"])], _state({"VIP Customers": 7}))
    assert planned.unchanged == ("email:ada@example.com",) and not planned.has_changes


def test_state_lines_carry_memberships_and_old_lines_still_load() -> None:
    key = "email:ada@example.com"
    lead = _state({"VIP Customers": 7}).leads[key]
    line = lead_line(key, lead)
    assert '"lists":{"VIP Customers":7}' in line
    assert parse_lead_line(line, Location("s"))[1] == lead
    old = '{"email:ada@example.com":{"Company":"A"},"leadId":1001,"syncedAt":"2026-01-01T00:00:00Z"}'
    assert parse_lead_line(old, Location("s"))[1].lists == {}


# -- names resolved against the instance ---------------------------------------------------------------


def test_a_name_that_matches_no_list_is_exit_3_at_plan_time_with_its_line(workspace, emulator, lists) -> None:
    (workspace / "leads" / "people.yaml").write_text(LEADS.replace('"Webinar 2026-12"', '"Webinar 2027"'))
    result = invoke("plan", environ=env_for(emulator, "rest"))
    assert result.exit_code == 3, result.stderr
    assert "leads/people.yaml:2" in result.stderr and "'Webinar 2027' matches no static list" in result.stderr


def test_a_name_that_matches_several_lists_names_their_ids(workspace, emulator, lists) -> None:
    again = emulator.lists.create("VIP Customers")["id"]
    result = invoke("plan", environ=env_for(emulator, "rest"))
    assert result.exit_code == 3, result.stderr
    assert f"id:{lists['VIP Customers']}, id:{again}" in result.stderr and "leads/people.yaml:2" in result.stderr
    (workspace / "leads" / "people.yaml").write_text(LEADS.replace("VIP Customers", f"id:{again}"))
    assert invoke("plan", environ=env_for(emulator, "rest")).exit_code == 0


# -- apply -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["rest", "soap"])
def test_apply_puts_the_lead_on_its_lists_and_the_next_plan_is_empty(workspace, emulator, lists, api) -> None:
    env = env_for(emulator, api)
    result = invoke("apply", "--auto-approve", environ=env)
    assert result.exit_code == 0, result.stderr
    ada, bob = lead_id_of(emulator, "ada@example.com"), lead_id_of(emulator, "bob@example.com")
    assert emulator.lists.members(lists["VIP Customers"]) == [ada]
    assert emulator.lists.members(lists["Webinar 2026-12"]) == [ada]
    assert bob not in emulator.lists.members(lists["Other"])
    assert "2 list addition(s), 0 removal(s)" in result.stdout
    again = invoke("plan", "--detailed-exitcode", environ=env)
    assert again.exit_code == 0, again.stdout

    emulator.lists.add(lists["VIP Customers"], [bob])  # another member, put there by someone else
    (workspace / "leads" / "people.yaml").write_text(LEADS.replace(', "Webinar 2026-12"', ""))
    assert invoke("apply", "--auto-approve", environ=env).exit_code == 0
    assert emulator.lists.members(lists["Webinar 2026-12"]) == []
    assert sorted(emulator.lists.members(lists["VIP Customers"])) == sorted([ada, bob])  # never touched
    assert invoke("plan", "--detailed-exitcode", environ=env).exit_code == 0


def state_text(workspace: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((workspace / "reconcile.state.d").glob("*.jsonl")))


def test_a_membership_marketo_did_not_confirm_is_not_recorded_and_is_sent_next_time(workspace, emulator,
                                                                                     lists) -> None:
    env = env_for(emulator, "rest")
    (workspace / "leads" / "people.yaml").write_text(LEADS.replace(', "Webinar 2026-12"', ""))
    assert invoke("apply", "--auto-approve", environ=env).exit_code == 0
    (workspace / "leads" / "people.yaml").write_text(LEADS)
    emulator.faults.update(fail_every=1, fail_code="1003")  # every call refused, nothing applied
    failed = invoke("apply", "--auto-approve", environ=env)
    assert failed.exit_code != 0
    assert '"VIP Customers"' in state_text(workspace) and "Webinar" not in state_text(workspace)
    assert emulator.lists.members(lists["Webinar 2026-12"]) == []
    emulator.faults.update(fail_every=0)
    assert invoke("apply", "--auto-approve", environ=env).exit_code == 0
    assert emulator.lists.members(lists["Webinar 2026-12"]) == [lead_id_of(emulator, "ada@example.com")]
    assert invoke("plan", "--detailed-exitcode", environ=env).exit_code == 0


class _Answers:
    """List calls that answer each lead as told, and remember what was sent."""

    max_ids = 2

    def __init__(self, outcome):
        self.outcome, self.sent = outcome, []

    def add(self, target, lead_ids, *, stop=None):
        from reconcile.remote.membership import LeadOutcome

        self.sent.append((target.id, list(lead_ids)))
        return [LeadOutcome(lead_id, self.outcome(lead_id), "1004 Lead not found") for lead_id in lead_ids]

    remove = add


def test_only_the_leads_marketo_confirmed_are_recorded_a_call_at_a_time() -> None:
    from reconcile.apply.memberships import ListTarget, Memberships, pending_calls, run_list_calls
    from reconcile.remote.membership import Outcome

    leads = [Lead(Location("leads/p.yaml", n), email=f"u{n}@example.com", lists=("VIP",)) for n in range(3)]
    planned = plan(leads, State(lineage="l", serial=0, leads={}))
    records = {f"email:u{n}@example.com": StateLead(100 + n, f"u{n}@example.com", None, None, {}, None)
               for n in range(3)}
    calls = _Answers(lambda lead_id: Outcome.LEAD_NOT_FOUND if lead_id == 101 else Outcome.ADDED)
    memberships = Memberships(calls=calls, lists={"VIP": ListTarget(7, "VIP")})
    journaled = []
    outcome = run_list_calls(pending_calls(planned.actions, records, memberships), memberships, records,
                             lambda number, accepted: journaled.append([m.lead_id for m, _ in accepted]),
                             lambda: None)
    assert calls.sent == [(7, [100, 101]), (7, [102])]  # at most max_ids a call
    assert journaled == [[100], [102]]
    assert [identity for identity, _ in outcome.failed] == ["email:u1@example.com"]
    assert records["email:u1@example.com"].lists == {} and records["email:u2@example.com"].lists == {"VIP": 7}


# -- membership drift ----------------------------------------------------------------------------------


def test_plan_refresh_sees_membership_drift_and_refresh_only_records_it(workspace, emulator, lists) -> None:
    env = env_for(emulator, "rest")
    assert invoke("apply", "--auto-approve", environ=env).exit_code == 0
    ada, bob = lead_id_of(emulator, "ada@example.com"), lead_id_of(emulator, "bob@example.com")
    emulator.lists.remove(lists["Webinar 2026-12"], [ada])  # as a person would, in Marketo
    emulator.lists.add(lists["VIP Customers"], [bob])

    refreshed = invoke("plan", "--refresh", environ=env)
    assert refreshed.exit_code == 0, refreshed.stderr
    assert 'email:ada@example.com (leadId %d): no longer on list "Webinar 2026-12" in Marketo' % ada \
        in refreshed.stdout
    assert 'email:bob@example.com (leadId %d): on list "VIP Customers" in Marketo' % bob in refreshed.stdout
    assert "; 1 list addition, 1 removal; " in refreshed.stdout  # put back, taken off
    drift = json.loads(invoke("plan", "--refresh", "--format", "json", environ=env).stdout)["drift"]
    assert {(m["state_key"], m["list"], m["member"]) for m in drift["memberships"]} == {
        ("email:ada@example.com", "Webinar 2026-12", False), ("email:bob@example.com", "VIP Customers", True)}

    recorded = invoke("apply", "--refresh-only", "--auto-approve", environ=env)
    assert recorded.exit_code == 0, recorded.stderr
    assert '"Webinar 2026-12"' not in state_text(workspace) and '"lists":{"VIP Customers"' in state_text(workspace)
    assert invoke("apply", "--auto-approve", environ=env).exit_code == 0
    assert emulator.lists.members(lists["Webinar 2026-12"]) == [ada]
    assert emulator.lists.members(lists["VIP Customers"]) == [ada]
    assert invoke("plan", "--refresh", "--detailed-exitcode", environ=env).exit_code == 0


def test_reconcile_lists_shows_the_instance_lists_cached_until_refreshed(workspace, emulator, lists) -> None:
    env = env_for(emulator, "rest")
    shown = invoke("lists", environ=env)
    assert shown.exit_code == 0, shown.stderr
    assert f"{lists['VIP Customers']}  VIP Customers" in shown.stdout and "3 static lists of" in shown.stdout
    emulator.lists.create("Spring \x1b[31mSale")  # a name from the server is shown, never obeyed
    assert "Spring" not in invoke("lists", environ=env).stdout  # from the cache
    again = invoke("lists", "--refresh", environ=env).stdout
    assert "4 static lists of" in again and "Spring" in again and "\x1b" not in again


def test_import_lists_writes_memberships_and_the_next_plan_is_empty(workspace, emulator, lists) -> None:
    env = env_for(emulator, "rest")
    (workspace / "leads" / "people.yaml").unlink()
    with emulator.store.transaction() as tx:
        lead = tx.create()
        tx.set_email(lead, "cy@example.com")
    emulator.lists.add(lists["Webinar 2026-12"], [lead["id"]])
    emulator.lists.add(lists["VIP Customers"], [lead["id"]])
    twin = emulator.lists.create("Webinar 2026-12")["id"]  # a shared name: the file names it by ID
    emulator.lists.add(twin, [lead["id"]])
    result = invoke("import", "--id", str(lead["id"]), "--lists", "--out", "leads/imported.yaml", environ=env)
    assert result.exit_code == 0, result.stderr
    written = (workspace / "leads" / "imported.yaml").read_text()
    assert (f"    lists:\n      - VIP Customers\n      - \"id:{lists['Webinar 2026-12']}\"\n      - \"id:{twin}\"\n"
            in written)
    assert invoke("plan", "--detailed-exitcode", environ=env).exit_code == 0


def test_a_recorded_list_marketo_no_longer_has_reads_as_empty(workspace, emulator, lists) -> None:
    env = env_for(emulator, "rest")
    assert invoke("apply", "--auto-approve", environ=env).exit_code == 0
    for shard in (workspace / "reconcile.state.d").glob("*.jsonl"):  # as if the list was deleted since
        shard.write_text(shard.read_text().replace(f'"VIP Customers":{lists["VIP Customers"]}', '"VIP Customers":9999'))
    refreshed = invoke("plan", "--refresh", environ=env)
    assert refreshed.exit_code == 0, refreshed.stderr
    assert "static list VIP Customers (id:9999) no longer exists in Marketo" in refreshed.stderr
    assert 'no longer on list "VIP Customers" in Marketo' in refreshed.stdout


def test_list_calls_in_flight_together_send_every_removal_before_any_addition() -> None:
    """A list named two ways ("VIP" recorded, "id:7" declared) is left, then joined: never the reverse."""
    import threading
    import time

    from reconcile.apply.memberships import ListTarget, Memberships, pending_calls, run_list_calls
    from reconcile.remote.membership import LeadOutcome, Outcome

    order, lock = [], threading.Lock()

    class Calls:
        max_ids = 1

        def add(self, target, lead_ids, *, stop=None):
            with lock:
                order.append(("add", target.id, tuple(lead_ids)))
            return [LeadOutcome(lead_id, Outcome.ADDED) for lead_id in lead_ids]

        def remove(self, target, lead_ids, *, stop=None):
            time.sleep(0.02)  # a slow removal: an addition sent beside it would overtake it
            with lock:
                order.append(("remove", target.id, tuple(lead_ids)))
            return [LeadOutcome(lead_id, Outcome.REMOVED) for lead_id in lead_ids]

    leads = [Lead(Location("leads/p.yaml", n), email=f"u{n}@example.com", lists=("id:7",)) for n in range(6)]
    records = {f"email:u{n}@example.com": StateLead(100 + n, f"u{n}@example.com", None, None, {}, None,
                                                    {"VIP": 7}) for n in range(6)}
    planned = plan(leads, State(lineage="l", serial=1, leads=records))
    memberships = Memberships(calls=Calls(), lists={"id:7": ListTarget(7, "VIP")}, concurrency=4)
    outcome = run_list_calls(pending_calls(planned.actions, dict(records), memberships), memberships,
                             dict(records), lambda number, accepted: None, lambda: None)
    assert (outcome.removed, outcome.added, outcome.calls) == (6, 6, 12)
    kinds = [kind for kind, _, _ in order]
    assert kinds == ["remove"] * 6 + ["add"] * 6


def test_a_plan_that_fetched_the_instances_lists_is_found_in_the_plan_cache_next_time(
        workspace: Path, emulator, lists, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconcile.app import plan as plan_module
    from reconcile.inputs import cache

    monkeypatch.setattr(cache, "MIN_INPUT_BYTES", 0)  # these small files: cached as large ones are
    rendered = []
    real_render = plan_module._render
    monkeypatch.setattr(plan_module, "_render", lambda *a, **k: rendered.append(1) or real_render(*a, **k))
    environ = {**env_for(emulator, "rest"), "RECONCILE_CACHE_DIR": str(workspace.parent / "user-cache")}
    first = invoke("plan", environ=environ)  # no lists kept yet: this plan fetches and keeps them
    assert first.exit_code == 0, first.stderr
    assert "Saved" in first.stderr and "static lists" in first.stderr
    second = invoke("plan", environ=environ)
    assert second.exit_code == 0 and second.stdout == first.stdout
    assert rendered == [1], "the second plan was made again instead of being taken from the cache"


def test_an_apply_that_only_changes_memberships_spends_no_call_on_describe(workspace: Path, emulator, lists) -> None:
    """Marketo counts every call in its rate window: Describe, which only Sync Leads needs, is not read."""
    from reconcile.inputs.cache import workspace_dir

    environ = {**env_for(emulator, "rest"), "RECONCILE_CACHE_DIR": str(workspace.parent / "user-cache")}
    (workspace / "leads" / "people.yaml").write_text(LEADS.replace('    lists: [VIP Customers, "Webinar 2026-12"]\n', ""))
    assert invoke("apply", "--auto-approve", environ=environ).exit_code == 0
    kept = workspace_dir(workspace / "reconcile.state.json", environ) / "describe"
    assert list(kept.glob("*.json")), "the first apply (records sent) kept the instance's Describe"
    for path in kept.glob("*.json"):
        path.unlink()
    (workspace / "leads" / "people.yaml").write_text(LEADS)
    listed = invoke("apply", "--auto-approve", environ=environ)
    assert listed.exit_code == 0, listed.stderr
    assert "2 list addition(s)" in listed.stdout
    assert "lead fields" not in listed.stderr and not list(kept.glob("*.json"))
