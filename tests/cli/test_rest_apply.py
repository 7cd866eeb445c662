"""`reconcile apply --api rest` end to end, through the CLI, against the emulator's REST face."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from clirunner import invoke
from reconcile.inputs.cache import workspace_dir
from conftest import assert_state_matches_emulator
from reconcile.store.state import load_state

LEADS = (
    "leads:\n"
    "  - email: ada@example.com\n"
    "    attributes: {FirstName: Ada, PostalCode: 01234, Title: Countess}\n"
    "  - foreignSysPersonId: \"0042\"\n"
    "    email: grace@example.com\n"
    "    attributes: {FirstName: Grace, Title: Admiral}\n"
    "  - email: alan@example.com\n"
    "    attributes: {FirstName: Alan, Unsubscribed: 'false', Phone: '+44 20 7946 0000'}\n"
)
FOREIGN_ID_FIELD = "ForeignId"  # the custom field that carries foreignSysPersonId through REST


def rest_env(emulator, **extra: str) -> dict[str, str]:
    return {"MARKETO_REST_ENDPOINT": emulator.rest_endpoint, "MARKETO_CLIENT_ID": emulator.config.client_id,
            "MARKETO_CLIENT_SECRET": emulator.config.client_secret,
            "RECONCILE_FOREIGN_ID_FIELD": FOREIGN_ID_FIELD, **extra}


def soap_env(emulator) -> dict[str, str]:
    return {"MARKETO_SOAP_ENDPOINT": emulator.endpoint, "MARKETO_USER_ID": emulator.user_id,
            "MARKETO_ENCRYPTION_KEY": emulator.encryption_key}


def workspace(root: Path, leads: str = LEADS) -> Path:
    (root / "leads").mkdir(parents=True)
    (root / "leads" / "people.yaml").write_text(leads)
    return root


def comparable(state_path: Path) -> dict:
    """The state's leads without what differs by nature between two runs (sync times)."""
    from reconcile.store.state import lead_to_json, load_state

    leads = {key: lead_to_json(lead) for key, lead in load_state(state_path).leads.items()}
    return {key: {k: v for k, v in lead.items() if k != "syncedAt"} for key, lead in leads.items()}


def apply(work: Path, environ: dict[str, str], *args: str):
    return invoke("apply", "--auto-approve", "--leads", str(work / "leads"), "--state",
                  str(work / "reconcile.state.json"), *args, environ=environ)


def assert_rest_state_matches_emulator(state_path: Path, emulator) -> None:
    """Like conftest's check, with the foreign ID read from the custom field REST writes it to."""
    db = {lead["id"]: lead for lead in emulator.leads()}
    state = load_state(state_path)
    assert sorted(lead.lead_id for lead in state.leads.values()) == sorted(db)
    for key, lead in state.leads.items():
        remote = db[lead.lead_id]
        assert (remote["email"] or "").lower() == (lead.email or "").lower(), key
        if lead.foreign_sys_person_id is not None:
            assert remote["attributes"][FOREIGN_ID_FIELD] == lead.foreign_sys_person_id, key
        for name, value in lead.attributes.items():
            assert remote["attributes"].get(name) == value, (key, name)


def test_same_leads_through_soap_and_rest_give_identical_states(tmp_path: Path, emulator_factory) -> None:
    states = {}
    for api in ("soap", "rest"):
        emulator = emulator_factory(extra_fields=frozenset({FOREIGN_ID_FIELD}))
        work = workspace(tmp_path / api)
        environ = soap_env(emulator) if api == "soap" else rest_env(emulator)
        first = apply(work, environ, "--concurrency", "1")
        assert first.exit_code == 0, first.stderr
        assert "Apply complete: 3 created" in first.stdout
        (work / "leads" / "people.yaml").write_text(
            LEADS.replace("Title: Countess", "Title: Analyst").replace("FirstName: Alan", "FirstName: Alan M.")
            + "  - email: new@example.com\n    attributes: {Company: ACME}\n")
        second = apply(work, environ, "--concurrency", "1")
        assert second.exit_code == 0, second.stderr
        assert "1 created, 2 updated" in second.stdout
        if api == "soap":
            assert_state_matches_emulator(load_state(work / "reconcile.state.json"), emulator)
        else:
            assert "2 Sync Leads calls" in first.stdout  # email and foreign-ID leads apart
            assert_rest_state_matches_emulator(work / "reconcile.state.json", emulator)
        states[api] = comparable(work / "reconcile.state.json")
    # lead IDs are each emulator's own numbering; everything else recorded must be the same
    strip = lambda state: {k: {f: v for f, v in lead.items() if f != "leadId"} for k, lead in state.items()}
    assert strip(states["soap"]) == strip(states["rest"])
    assert all(lead["leadId"] for state in states.values() for lead in state.values())


def test_a_soap_state_carries_on_through_rest_unchanged(tmp_path: Path, emulator_factory) -> None:
    emulator = emulator_factory(extra_fields=frozenset({FOREIGN_ID_FIELD}))
    work = workspace(tmp_path)
    assert apply(work, soap_env(emulator)).exit_code == 0
    plan = invoke("plan", "--leads", str(work / "leads"), "--state", str(work / "reconcile.state.json"),
                  environ=rest_env(emulator))
    assert "No changes" in plan.stdout and "0 Sync Leads calls" in plan.stdout
    (work / "leads" / "people.yaml").write_text(LEADS.replace("Title: Admiral", "Title: Rear Admiral"))
    result = apply(work, rest_env(emulator))
    assert result.exit_code == 0, result.stderr
    assert "0 created, 1 updated" in result.stdout
    state = load_state(work / "reconcile.state.json")
    assert_state_matches_emulator(state, emulator)
    assert len(emulator.leads()) == 3  # updated by its lead ID, not created again


def test_token_expiring_mid_apply_is_renewed_and_nothing_is_lost(tmp_path: Path, emulator_factory) -> None:
    emulator = emulator_factory(token_ttl=1.0)
    emulator.faults.latency = 0.25
    leads = "leads:\n" + "".join(f"  - email: t{i:03d}@example.com\n    attributes: {{Title: T{i}}}\n"
                                 for i in range(40))
    work = workspace(tmp_path, leads)
    result = apply(work, rest_env(emulator), "--batch-size", "4", "--concurrency", "2")
    assert result.exit_code == 0, result.stderr
    assert "40 created, 0 updated, 0 failed" in result.stdout
    state = load_state(work / "reconcile.state.json")
    assert len(state.leads) == 40
    assert_state_matches_emulator(state, emulator)
    tokens = [call for call in emulator.calls if call.operation == "token"]
    assert len(tokens) >= 2, "the apply outlived its first token, so it must have asked for another"


def test_canary_secret_appears_in_no_output_or_file(tmp_path: Path, emulator_factory) -> None:
    canary = "CANARY-9d1e-client-secret-4b7f"
    emulator = emulator_factory(client_secret=canary, token_ttl=2.0)
    emulator.faults.update(fail_code="602", fail_every=3)  # refused tokens: renewals in the log too
    work = workspace(tmp_path, LEADS.replace("  - foreignSysPersonId: \"0042\"\n    email", "  - email"))
    result = invoke("--debug", "apply", "--auto-approve", "--leads", str(work / "leads"), "--batch-size", "1",
                    "--state", str(work / "reconcile.state.json"), environ=rest_env(emulator))
    assert result.exit_code == 0, result.stderr
    fields = invoke("--debug", "fields", "--refresh", "--state", str(work / "reconcile.state.json"),
                    environ=rest_env(emulator))
    assert fields.exit_code == 0, fields.stderr
    text = result.stdout + result.stderr + fields.stdout + fields.stderr
    assert "debug: > POST" in text and "client_secret=***" in text and "Bearer ***" in text
    assert canary not in text
    assert not re.search(r"Bearer (?!\*\*\*)", text) and not re.search(r'"access_token"\s*:\s*"(?!\*)', text)
    for path in work.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path


def test_skipped_record_exits_5_and_stays_pending(tmp_path: Path, emulator) -> None:
    work = workspace(tmp_path, "leads:\n  - leadId: 999999\n    attributes: {Title: Ghost}\n"
                               "  - email: real@example.com\n    attributes: {Title: Real}\n")
    result = apply(work, rest_env(emulator))
    assert result.exit_code == 5, result.stderr
    assert "id:999999 (" in result.stderr and "leads/people.yaml:2): 1004 Lead not found" in result.stderr
    state = load_state(work / "reconcile.state.json")
    assert list(state.leads) == ["email:real@example.com"]
    plan = invoke("plan", "--leads", str(work / "leads"), "--state", str(work / "reconcile.state.json"),
                  environ=rest_env(emulator))
    assert "1 to adopt" in plan.stdout and "id:999999 will be adopted" in plan.stdout


def test_daily_quota_607_exits_4_with_the_reset_time(tmp_path: Path, emulator) -> None:
    work = workspace(tmp_path, "leads:\n  - email: q@example.com\n")
    assert invoke("fields", "--state", str(work / "reconcile.state.json"), environ=rest_env(emulator)).exit_code == 0
    emulator.faults.update(fail_code="607", fail_every=1)
    result = apply(work, rest_env(emulator))
    assert result.exit_code == 4, result.stderr
    assert "607" in result.stderr and "resets at midnight US Central time" in result.stderr
    assert emulator.leads() == [] or all(lead["email"] != "q@example.com" for lead in emulator.leads())


def test_access_denied_603_exits_4_naming_the_permission(tmp_path: Path, emulator) -> None:
    work = workspace(tmp_path, "leads:\n  - email: d@example.com\n")
    assert invoke("fields", "--state", str(work / "reconcile.state.json"), environ=rest_env(emulator)).exit_code == 0
    emulator.faults.update(fail_code="603", fail_every=1)
    result = apply(work, rest_env(emulator))
    assert result.exit_code == 4, result.stderr
    assert "603" in result.stderr and "Read-Write Lead" in result.stderr


def test_bad_client_secret_exits_4_in_one_line(tmp_path: Path, emulator) -> None:
    work = workspace(tmp_path, "leads:\n  - email: s@example.com\n")
    result = apply(work, rest_env(emulator, MARKETO_CLIENT_SECRET="wrong-secret-value"))
    assert result.exit_code == 4
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "MARKETO_CLIENT_SECRET" in errors[0]
    assert "wrong-secret-value" not in result.stderr + result.stdout


def test_fields_shows_and_caches_the_instance_fields(tmp_path: Path, emulator) -> None:
    state = tmp_path / "reconcile.state.json"
    first = invoke("fields", "--state", str(state), environ=rest_env(emulator))
    assert first.exit_code == 0, first.stderr
    assert re.search(r"^FirstName\s+firstName\s+string\s+255", first.stdout, re.M)
    cached = list((workspace_dir(state, {}) / "describe").glob("*.json"))
    assert not (tmp_path / ".reconcile").exists()
    assert len(cached) == 1
    describes = sum(1 for call in emulator.calls if call.operation == "read")
    again = invoke("fields", "--state", str(state), environ=rest_env(emulator))
    assert again.stdout == first.stdout
    assert sum(1 for call in emulator.calls if call.operation == "read") == describes  # from the cache
    invoke("fields", "--refresh", "--state", str(state), environ=rest_env(emulator))
    assert sum(1 for call in emulator.calls if call.operation == "read") == describes + 1


def test_embedded_emulator_applies_the_example_leads_through_rest(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(Path(__file__).resolve().parents[2] / "leads", tmp_path / "leads")
    monkeypatch.chdir(tmp_path)
    result = invoke("apply", "--emulator", "--api", "rest", "--auto-approve")
    assert result.exit_code == 0, result.stderr
    assert "Sync Leads call" in result.stdout and "0 failed" in result.stdout
    again = invoke("apply", "--emulator", "--auto-approve")  # SOAP stays the emulator's default
    assert again.exit_code == 0 and "Nothing to apply" in again.stdout, again.stderr
    assert invoke("validate").exit_code == 0  # the examples also pass the emulator's describe cache


def test_emulator_api_rest_exports_only_rest_credentials_which_then_choose_rest(tmp_path: Path) -> None:
    import signal

    from emulator_process import start_emulator

    process, lines = start_emulator("--api", "rest", env={"RECONCILE_API": ""})
    try:
        exports = dict(line[len("export "):].split("=", 1) for line in lines if line.startswith("export "))
        assert set(exports) == {"MARKETO_REST_ENDPOINT", "MARKETO_CLIENT_ID", "MARKETO_CLIENT_SECRET"}
        work = workspace(tmp_path, "leads:\n  - email: x@example.com\n")
        environ = {name: value.strip("'") for name, value in exports.items()}
        result = apply(work, environ)  # no --api: the REST credentials decide
        assert result.exit_code == 0, result.stderr
        assert "1 Sync Leads call." in result.stdout
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    both, lines = start_emulator(env={"RECONCILE_API": ""})
    both.send_signal(signal.SIGINT)
    both.communicate(timeout=30)
    assert sum(line.startswith("export MARKETO_") for line in lines) == 6
    assert "export RECONCILE_API=rest" in "\n".join(lines)
