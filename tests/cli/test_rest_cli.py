"""Choosing the API, the REST plan's call count, and describe-based checks of lead files (CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clirunner import invoke
from reconcile.inputs.cache import workspace_dir
from reconcile.inputs import fields as fields_module
from reconcile.inputs.fields import save_catalog
from rest_fake import describe_entries

REST_ENV = {"MARKETO_REST_ENDPOINT": "https://123-ABC-456.mktorest.com/rest", "MARKETO_CLIENT_ID": "id",
            "MARKETO_CLIENT_SECRET": "never-used-secret"}
SOAP_ENV = {"MARKETO_SOAP_ENDPOINT": "https://123-ABC-456.mktoapi.com/soap/mktows/2_1",
            "MARKETO_USER_ID": "user", "MARKETO_ENCRYPTION_KEY": "key"}
# Nothing listens here: a test that reaches the network fails with exit 4, not a pass.
UNREACHABLE = {**REST_ENV, "MARKETO_REST_ENDPOINT": "http://127.0.0.1:9"}


@pytest.fixture
def workspace(make_workspace) -> Path:
    return make_workspace({
        "people.yaml": "leads:\n"
        "  - email: ada@example.com\n"
        "    attributes:\n"
        "      FirstName: Ada\n"
        "      PostalCode: 01234\n"
        "  - email: alan@example.com\n"
        "    attributes: {LastName: Turing}\n"
        "  - leadId: 7\n"
        "    attributes: {Title: CTO}\n",
    })


def add_foreign_id_lead(workspace: Path) -> None:
    with open(workspace / "leads" / "people.yaml", "a") as handle:
        handle.write("  - foreignSysPersonId: \"0042\"\n    email: grace@example.com\n")


@pytest.mark.parametrize("command", [["plan"], ["apply", "--auto-approve"]])
def test_both_credential_sets_ask_to_choose(workspace: Path, command: list[str]) -> None:
    result = invoke(*command, environ={**REST_ENV, **SOAP_ENV})
    assert result.exit_code == 64, result.stderr
    assert "--api rest|soap" in result.stderr and "RECONCILE_API" in result.stderr
    assert not (workspace / "reconcile.state.json").exists()


def test_explicit_api_settles_both_credential_sets(workspace: Path) -> None:
    assert "syncMultipleLeads call" in invoke("plan", "--api", "soap", environ={**REST_ENV, **SOAP_ENV}).stdout
    assert "Sync Leads call" in invoke("plan", environ={**REST_ENV, **SOAP_ENV, "RECONCILE_API": "rest"}).stdout
    bad = invoke("plan", "--api", "graphql", environ=REST_ENV)
    assert bad.exit_code == 64 and "'soap' or 'rest'" in bad.stderr


def test_plan_counts_one_rest_call_per_lookup_key(workspace: Path) -> None:
    add_foreign_id_lead(workspace)
    rest = invoke("plan", environ=REST_ENV)
    assert rest.exit_code == 0, rest.stderr
    # email leads, the leadId lead and the foreign-ID lead travel in three separate calls
    assert rest.stdout.rstrip().endswith("Plan: 3 to create, 1 to adopt, 0 to update, 0 orphaned, 0 unchanged; "
                                         "3 Sync Leads calls.")
    soap = invoke("plan", environ=SOAP_ENV)
    assert soap.stdout.rstrip().endswith("; 1 syncMultipleLeads call.")
    markdown = invoke("plan", "--format", "markdown", environ=REST_ENV)
    assert "| Sync Leads calls |" in markdown.stdout and "| 3 |" in markdown.stdout


def test_foreign_id_leads_without_a_field_exit_64_before_any_call(workspace: Path) -> None:
    add_foreign_id_lead(workspace)
    # a live instance's endpoint (not loopback, where the emulator's crmId field is the default)
    result = invoke("apply", "--auto-approve", "--api", "rest", environ=REST_ENV)
    assert result.exit_code == 64, result.stderr
    assert "--foreign-id-field" in result.stderr and "REST API does not have" in result.stderr
    assert "1 lead(s) are keyed by foreignSysPersonId (leads/people.yaml:" in result.stderr  # where it is


def test_rest_apply_names_missing_rest_variables(workspace: Path) -> None:
    result = invoke("apply", "--auto-approve", "--api", "rest", environ=SOAP_ENV)
    assert result.exit_code == 64
    assert "MARKETO_CLIENT_ID" in result.stderr and "MARKETO_REST_ENDPOINT" in result.stderr


def test_apply_help_lists_both_apis_credentials() -> None:
    import subprocess
    import sys

    text = subprocess.run([sys.executable, "-m", "reconcile", "apply", "--help"], capture_output=True, text=True,
                          env={"COLUMNS": "200", "PATH": ""}).stdout
    for name in ("MARKETO_CLIENT_ID", "MARKETO_CLIENT_SECRET", "MARKETO_REST_ENDPOINT", "MARKETO_SOAP_ENDPOINT",
                 "MARKETO_USER_ID", "MARKETO_ENCRYPTION_KEY"):
        assert name in text, name


def write_cache(workspace: Path) -> None:
    save_catalog(workspace_dir(workspace / "reconcile.state.json", {}), "123-abc-456.mktorest.com", describe_entries())


def test_unknown_field_name_is_caught_at_plan_time_with_a_suggestion(workspace: Path) -> None:
    (workspace / "leads" / "people.yaml").write_text(
        "leads:\n"
        "  - email: ada@example.com\n"
        "    attributes:\n"
        "      Company: ACME\n"
        "      firstName: Ada\n")
    assert invoke("plan", environ=REST_ENV).exit_code == 0  # no describe cache: nothing to check against
    write_cache(workspace)
    for command in (["plan"], ["validate"]):
        result = invoke(*command, environ=REST_ENV)
        assert result.exit_code == 3, result.stderr
        assert result.stderr.startswith("error: leads/people.yaml:5: leads[0].attributes.firstName: "
                                        "'firstName' is not a lead field"), result.stderr
        assert "did you mean 'FirstName'?" in result.stderr


def test_read_only_fields_and_mistyped_values_are_refused(workspace: Path) -> None:
    (workspace / "leads" / "people.yaml").write_text(
        "leads:\n"
        "  - email: ada@example.com\n"
        "    attributes: {CreatedAt: '2024-01-01', NumberOfEmployees: many, Unsubscribed: no}\n"
        "  - email: bob@example.com\n"
        "    attributes: {NumberOfEmployees: '120', Unsubscribed: 'false', ExternalId__c: null,\n"
        "                 Title: ~}\n"
        "  - email: eve@example.com\n"
        f"    attributes: {{ExternalId__c: {'x' * 65}}}\n")
    write_cache(workspace)
    result = invoke("plan", environ=REST_ENV)
    assert result.exit_code == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: leads/")]
    assert len(errors) == 4, result.stderr
    assert "'CreatedAt' is read-only in Marketo" in errors[0]
    assert "'many' is not a valid integer for NumberOfEmployees" in result.stderr
    assert "'no' is not a valid boolean for Unsubscribed" in result.stderr
    assert "65 characters long; the field holds at most 64" in errors[3] and errors[3].startswith(
        "error: leads/people.yaml:8:")


def test_a_changed_describe_or_lead_file_is_checked_again(workspace: Path) -> None:
    write_cache(workspace)
    assert invoke("plan", environ=REST_ENV).exit_code == 0
    entries = describe_entries()
    for entry in entries:
        if entry["soap"]["name"] == "Title":
            entry["soap"]["readOnly"] = entry["rest"]["readOnly"] = True
    save_catalog(workspace_dir(workspace / "reconcile.state.json", {}), "123-abc-456.mktorest.com", entries)
    result = invoke("plan", environ=REST_ENV)
    assert result.exit_code == 3 and "'Title' is read-only" in result.stderr
    write_cache(workspace)
    assert invoke("plan", environ=REST_ENV).exit_code == 0
    with open(workspace / "leads" / "people.yaml", "a") as handle:
        handle.write("  - email: x@example.com\n    attributes: {Tilte: typo}\n")
    result = invoke("plan", environ=REST_ENV)
    assert result.exit_code == 3 and "did you mean 'Title'?" in result.stderr


def test_a_value_check_added_by_a_code_change_applies_to_files_that_passed_before(workspace: Path,
                                                                                   monkeypatch) -> None:
    write_cache(workspace)
    for command in ("validate", "plan"):
        assert invoke(command, environ=REST_ENV).exit_code == 0
    # the next version of reconcile checks string values too, and refuses this title
    monkeypatch.setitem(fields_module._VALUE_CHECKS, "string", lambda value: value != "CTO")
    for command in ("validate", "plan"):
        result = invoke(command, environ=REST_ENV)
        assert result.exit_code == 3 and "'CTO' is not a valid string for Title" in result.stderr, \
            (command, result.stderr)


def test_one_foreign_id_under_two_types_is_refused_for_rest(workspace: Path) -> None:
    (workspace / "leads" / "people.yaml").write_text(
        "leads:\n"
        "  - foreignSysPersonId: \"42\"\n    foreignSysType: SFDC\n"
        "  - foreignSysPersonId: \"42\"\n    foreignSysType: NETSUITE\n")
    assert invoke("plan", environ=SOAP_ENV).exit_code == 0  # two leads for SOAP
    result = invoke("apply", "--auto-approve", "--api", "rest", "--foreign-id-field", "ExternalId__c",
                    environ=UNREACHABLE)
    assert result.exit_code == 3, result.stderr
    assert "error: leads/people.yaml:4:" in result.stderr and "also declared as SFDC at leads/people.yaml:2" \
        in result.stderr
