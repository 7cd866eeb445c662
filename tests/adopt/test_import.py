"""`reconcile import`: adopting existing Marketo leads through REST Get Leads, end to end against the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from clirunner import invoke
from reconcile.store.state import load_state

# Values YAML tools (and careless writers) would read as something else, and text that must survive
# quoting: every one must come back exactly.
TRICKY = {"PostalCode": "0042", "Title": "no", "Company": "1e3", "City": "2024-01-05", "State": "~",
          "Country": "null", "Department": "true", "Address": "Suite 5: floor #3", "FirstName": "Zoë 🌍 Ångström",
          "LastName": "  padded  ", "Salutation": "Yes", "MiddleName": "- dash", "Phone": "+1 (650) 555-1000",
          "MobilePhone": "'quoted' \"double\" \\back", "Website": "line one\nline two\ttab"}


def rest_env(emulator) -> dict[str, str]:
    return {"MARKETO_REST_ENDPOINT": emulator.rest_endpoint, "MARKETO_CLIENT_ID": emulator.config.client_id,
            "MARKETO_CLIENT_SECRET": emulator.config.client_secret}


def seed(emulator, count: int, attributes=lambda n: {"FirstName": f"First{n}", "LastName": f"Last{n}"}) -> list[int]:
    """`count` leads straight in the emulator's database, as if created in Marketo long ago."""
    ids = []
    with emulator.store.transaction() as tx:
        for n in range(count):
            lead = tx.create()
            tx.set_email(lead, f"lead{n:05d}@example.com")
            for name, value in attributes(n).items():
                tx.set_attribute(lead, name, value)
            ids.append(lead["id"])
    return ids


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "leads").mkdir()
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "leads.schema.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def reads(emulator) -> list:
    return [call for call in emulator.calls if call.api == "rest" and call.operation == "read"]


def test_import_of_1000_leads_is_followed_by_an_empty_plan_and_values_round_trip(work: Path, emulator) -> None:
    ids = seed(emulator, 1000, attributes=lambda n: TRICKY if n % 100 == 7 else {"FirstName": f"F{n}",
                                                                                   "PostalCode": f"{n:05d}"})
    (work / "ids.txt").write_text("# leads to adopt\n" + "\n".join(map(str, ids)) + "\n")
    fields = ",".join(sorted(TRICKY))
    result = invoke("import", "--out", "leads/imported.yaml", "--ids-from", "ids.txt", "--fields", fields,
                    environ=rest_env(emulator))
    assert result.exit_code == 0, result.stderr
    assert "Imported 1000 lead(s)" in result.stdout
    assert "read 4/4" in result.stderr  # progress: 1000 IDs are four Get Leads calls of at most 300

    plan = invoke("plan", "--detailed-exitcode", environ=rest_env(emulator))
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    assert "0 to create, 0 to update, 0 orphaned, 1000 unchanged" in plan.stdout

    state = load_state(work / "reconcile.state.json")
    database = {lead["id"]: lead for lead in emulator.leads()}
    for lead_id in ids:
        recorded = state.leads[f"id:{lead_id}"]
        assert recorded.email == database[lead_id]["email"]
        for name in TRICKY:
            assert recorded.attributes[name] == database[lead_id]["attributes"].get(name), (lead_id, name)
    tricky = state.leads[f"id:{ids[7]}"].attributes
    assert {name: tricky[name] for name in TRICKY} == TRICKY
    assert state.leads[f"id:{ids[0]}"].attributes["Title"] is None  # asked for and empty: managed as empty

    # any YAML reader, not only reconcile's, reads the file's values as the same text
    text = (work / "leads" / "imported.yaml").read_text()
    document = yaml.safe_load(text)
    by_id = {lead["leadId"]: lead for lead in document["leads"]}
    assert {name: by_id[ids[7]]["attributes"][name] for name in TRICKY} == TRICKY
    assert text.startswith("# yaml-language-server: $schema=../schemas/leads.schema.json\n")


def test_the_imported_file_passes_validate(work: Path, emulator) -> None:
    ids = seed(emulator, 3, attributes=lambda n: TRICKY)
    result = invoke("import", "--out", "leads/imported.yaml", *[f"--id={i}" for i in ids], "--fields",
                    ",".join(TRICKY), environ=rest_env(emulator))
    assert result.exit_code == 0, result.stderr
    validated = invoke("validate")
    assert validated.exit_code == 0, validated.stderr
    assert "3 leads in 1 file are valid" in validated.stdout


def test_default_fields_leave_empty_ones_out_and_read_through_rest_names(work: Path, emulator) -> None:
    [lead_id] = seed(emulator, 1, attributes=lambda n: {"FirstName": "Ada", "NumberOfEmployees": "0042"})
    result = invoke("import", "--out", "leads/ada.yml", "--email", "LEAD00000@example.com", environ=rest_env(emulator))
    assert result.exit_code == 0, result.stderr
    document = yaml.safe_load((work / "leads" / "ada.yml").read_text())
    assert document["leads"] == [{"leadId": lead_id, "email": "lead00000@example.com",
                                  "attributes": {"FirstName": "Ada"}}]
    assert reads(emulator)[-1].records == 1  # Get Leads by email (after one Describe)
    explicit = invoke("import", "--out", "leads/ada.yml", "--force", "--id", str(lead_id), "--fields",
                      "numberOfEmployees", environ=rest_env(emulator))
    assert explicit.exit_code == 0, explicit.stderr
    # Marketo keeps a number, and answers it as a JSON number: the file holds it as a person writes it
    assert yaml.safe_load((work / "leads" / "ada.yml").read_text())["leads"][0]["attributes"] == \
        {"NumberOfEmployees": "42"}
    assert invoke("plan", "--detailed-exitcode", environ=rest_env(emulator)).exit_code == 0


def test_an_existing_file_is_not_replaced_without_force(work: Path, emulator) -> None:
    ids = seed(emulator, 2)
    target = work / "leads" / "imported.yaml"
    target.write_text("leads: []\n")
    refused = invoke("import", "--out", str(target), "--id", str(ids[0]), environ=rest_env(emulator))
    assert refused.exit_code == 64
    assert "already exists" in refused.stderr and "--force" in refused.stderr
    assert target.read_text() == "leads: []\n"
    assert not (work / "reconcile.state.json").exists()
    assert reads(emulator) == []
    forced = invoke("import", "--out", str(target), "--id", str(ids[0]), "--force", environ=rest_env(emulator))
    assert forced.exit_code == 0, forced.stderr
    assert f"leadId: {ids[0]}" in target.read_text()


@pytest.mark.parametrize("declaration, how", [
    ("  - leadId: {id}\n", "by id"),
    ("  - email: LEAD00001@example.com\n    attributes: {{Title: CTO}}\n", "by email"),
])
def test_a_lead_declared_in_another_file_is_refused_naming_the_place(work: Path, emulator, declaration: str,
                                                                    how: str) -> None:
    ids = seed(emulator, 2)
    (work / "leads" / "mine.yaml").write_text("leads:\n  - email: other@example.com\n" + declaration.format(id=ids[1]))
    result = invoke("import", "--out", "leads/imported.yaml", "--id", str(ids[0]), "--id", str(ids[1]),
                    environ=rest_env(emulator))
    assert result.exit_code == 3, (how, result.stderr)
    assert f"leads/mine.yaml:3: Marketo lead {ids[1]} is already declared" in result.stderr
    assert not (work / "leads" / "imported.yaml").exists()
    assert not (work / "reconcile.state.json").exists()


def test_a_lead_the_state_knows_under_another_key_is_refused(work: Path, emulator) -> None:
    ids = seed(emulator, 1)
    (work / "leads" / "mine.yaml").write_text("leads:\n  - email: lead00000@example.com\n")
    applied = invoke("apply", "--auto-approve", "--api", "rest", environ=rest_env(emulator))
    assert applied.exit_code == 0, applied.stderr
    before = len(reads(emulator))
    # asked by ID: only the state says that the email declaration is this lead
    result = invoke("import", "--out", "leads/imported.yaml", "--id", str(ids[0]), environ=rest_env(emulator))
    assert result.exit_code == 3, result.stderr
    assert f"leads/mine.yaml:2: Marketo lead {ids[0]} is already declared here as email:lead00000@example.com " \
           f"(the state records email:lead00000@example.com as lead {ids[0]})" in result.stderr
    assert len(reads(emulator)) == before  # refused before any read


def test_unknown_ids_and_emails_are_reported_and_the_rest_imported(work: Path, emulator) -> None:
    ids = seed(emulator, 1)
    result = invoke("import", "--out", "leads/imported.yaml", "--id", str(ids[0]), "--id", "999", "--email",
                    "nobody@example.com", environ=rest_env(emulator))
    assert result.exit_code == 0, result.stderr
    assert "warning: 1 lead ID(s) not found in Marketo: 999" in result.stderr
    assert "warning: 1 email(s) not found in Marketo: nobody@example.com" in result.stderr
    assert "Imported 1 lead(s)" in result.stdout
    nothing = invoke("import", "--out", "leads/none.yaml", "--id", "999", environ=rest_env(emulator))
    assert nothing.exit_code == 3
    assert "not found in Marketo: 999" in nothing.stderr
    assert not (work / "leads" / "none.yaml").exists()


def test_ids_from_reports_bad_lines_with_their_line_numbers(work: Path, emulator) -> None:
    (work / "ids.txt").write_text("1000001\n\n12x\n# fine\n0\n")
    result = invoke("import", "--out", "leads/imported.yaml", "--ids-from", "ids.txt", environ=rest_env(emulator))
    assert result.exit_code == 3
    assert "error: ids.txt:3: '12x' is not a Marketo lead ID" in result.stderr
    assert "error: ids.txt:5: 0 is not a Marketo lead ID" in result.stderr
    assert reads(emulator) == []


def test_the_instance_is_recorded_and_another_one_refused(work: Path, emulator, emulator_factory) -> None:
    ids = seed(emulator, 1)
    assert invoke("import", "--out", "leads/a.yaml", "--id", str(ids[0]), environ=rest_env(emulator)).exit_code == 0
    top = json.loads((work / "reconcile.state.json").read_text())
    assert top["instance"] == "emulator"
    elsewhere = {"MARKETO_REST_ENDPOINT": "https://123-ABC-456.mktorest.com", "MARKETO_CLIENT_ID": "id",
                 "MARKETO_CLIENT_SECRET": "secret-never-sent"}
    result = invoke("import", "--out", "leads/b.yaml", "--id", str(ids[0]), environ=elsewhere)
    assert result.exit_code == 3
    assert "'emulator'" in result.stderr and "'123-ABC-456'" in result.stderr


def test_soap_is_a_usage_error_that_says_rest_is_needed(work: Path) -> None:
    result = invoke("import", "--out", "leads/a.yaml", "--id", "5", "--api", "soap")
    assert result.exit_code == 64
    assert "REST API" in result.stderr and "--api rest" in result.stderr


def test_reads_that_fail_are_retried_and_the_import_completes(work: Path, emulator_factory) -> None:
    from reconcile.emulator import Faults

    emulator = emulator_factory(faults=Faults(fail_every=3))  # every third call: REST 611 System error
    ids = seed(emulator, 700)
    result = invoke("import", "--out", "leads/imported.yaml", *[f"--id={i}" for i in ids], "--concurrency", "1",
                    environ=rest_env(emulator))
    assert result.exit_code == 0, result.stderr
    assert "retrying in" in result.stderr and "611" in result.stderr
    assert "Imported 700 lead(s)" in result.stdout
    assert invoke("plan", "--detailed-exitcode", environ=rest_env(emulator)).exit_code == 0


def test_an_orphaned_state_record_of_the_lead_is_replaced_not_kept_twice(work: Path, emulator) -> None:
    ids = seed(emulator, 1)
    declared = work / "leads" / "mine.yaml"
    declared.write_text("leads:\n  - email: lead00000@example.com\n")
    assert invoke("apply", "--auto-approve", "--api", "rest", environ=rest_env(emulator)).exit_code == 0
    declared.unlink()  # the state still records email:lead00000@example.com as this lead: an orphan
    result = invoke("import", "--out", "leads/imported.yaml", "--id", str(ids[0]), environ=rest_env(emulator))
    assert result.exit_code == 0, result.stderr
    assert sorted(load_state(work / "reconcile.state.json").leads) == [f"id:{ids[0]}"]
    plan = invoke("plan", "--detailed-exitcode", environ=rest_env(emulator))
    assert plan.exit_code == 0 and "0 orphaned, 1 unchanged" in plan.stdout, plan.stdout


def test_a_quota_used_up_mid_import_writes_nothing(work: Path, emulator_factory) -> None:
    emulator = emulator_factory(daily_quota=2)  # the Describe and one read; the second read is refused
    ids = seed(emulator, 700)
    result = invoke("import", "--out", "leads/imported.yaml", *[f"--id={i}" for i in ids], "--concurrency", "1",
                    environ=rest_env(emulator))
    assert result.exit_code == 4, result.stderr
    assert "quota" in result.stderr.lower()
    assert not (work / "leads" / "imported.yaml").exists()
    assert not (work / "reconcile.state.json").exists()


def test_emulator_imports_from_the_built_in_demo_database(work: Path) -> None:
    result = invoke("import", "--emulator", "--out", "leads/legacy.yaml", "--id", "1090238")
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load((work / "leads" / "legacy.yaml").read_text())["leads"][0]["leadId"] == 1090238
    assert invoke("plan", "--detailed-exitcode").exit_code == 0
