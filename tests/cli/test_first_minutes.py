"""What a new user meets in the first minutes: messages that say what was compared, what is missing
and how to fix it, each as the user would read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from clirunner import invoke
from reconcile.inputs.cache import workspace_dir
from reconcile.inputs.fields import save_catalog
from rest_fake import describe_entries

REST_ENV = {"MARKETO_REST_ENDPOINT": "https://123-ABC-456.mktorest.com/rest", "MARKETO_CLIENT_ID": "id",
            "MARKETO_CLIENT_SECRET": "never-used-secret"}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "leads").mkdir()
    (tmp_path / "leads" / "people.yaml").write_text(
        "leads:\n"
        "  - email: ada@example.com\n"
        "    attributes: {FirstName: Ada}\n"
        "  - foreignSysPersonId: \"0042\"\n"
        "    email: grace@example.com\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_rest_plan_says_apply_needs_a_foreign_id_field_and_where(workspace: Path) -> None:
    result = invoke("plan", environ=REST_ENV)
    assert result.exit_code == 0, result.stderr
    assert ("Apply through REST would refuse 1 lead keyed by foreignSysPersonId (leads/people.yaml:4): "
            "Marketo's REST API has no foreignSysPersonId. Name the custom lead field that carries it with "
            "--foreign-id-field NAME or RECONCILE_FOREIGN_ID_FIELD") in result.stdout
    assert result.stdout.rstrip().endswith("2 Sync Leads calls.")  # the summary stays last


def test_rest_plan_says_when_the_named_field_is_not_the_instances(workspace: Path) -> None:
    save_catalog(workspace_dir(workspace / "reconcile.state.json", {}), "123-abc-456.mktorest.com", describe_entries())
    result = invoke("plan", environ={**REST_ENV, "RECONCILE_FOREIGN_ID_FIELD": "crmIdd"})
    assert result.exit_code == 0, result.stderr
    assert "Apply through REST would refuse 1 lead keyed by foreignSysPersonId (leads/people.yaml:4): " \
           "the foreign-ID field 'crmIdd' is not a lead field of" in result.stdout


def test_rest_plan_against_the_emulator_needs_no_foreign_id_field(workspace: Path) -> None:
    result = invoke("plan", environ={**REST_ENV, "MARKETO_REST_ENDPOINT": "http://127.0.0.1:8080"})
    assert result.exit_code == 0 and "would refuse" not in result.stdout


def test_soap_plan_says_nothing_of_foreign_id_fields(workspace: Path) -> None:
    assert "would refuse" not in invoke("plan", "--api", "soap", environ=REST_ENV).stdout


def test_apply_without_refresh_never_says_marketo_matches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "leads").mkdir()
    (tmp_path / "leads" / "a.yaml").write_text("leads:\n  - email: ada@example.com\n    attributes: {FirstName: Ada}\n")
    monkeypatch.chdir(tmp_path)
    assert invoke("apply", "--emulator", "--auto-approve").exit_code == 0
    again = invoke("apply", "--emulator", "--auto-approve")
    assert again.exit_code == 0, again.stderr
    assert "Marketo matches" not in again.stdout
    assert "No changes. The lead files match the state; Marketo was not read: --refresh reads it." in again.stdout


def test_a_misspelt_rest_variable_gets_rest_advice(workspace: Path) -> None:
    result = invoke("apply", "--auto-approve", environ={"MARKETO_REST_URL": "http://127.0.0.1:9",
                                                        "MARKETO_CLIENT_ID": "id", "MARKETO_CLIENT_SECRET": "s"})
    assert result.exit_code == 64, result.stderr
    assert "MARKETO_REST_ENDPOINT is not set; the REST API needs" in result.stderr
    assert "MARKETO_REST_URL is set: did you mean MARKETO_REST_ENDPOINT?" in result.stderr
    assert "MARKETO_SOAP_ENDPOINT" not in result.stderr and "MARKETO_USER_ID" not in result.stderr


def refused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_loopback_connection_is_tried_once_and_names_the_variable_used(workspace: Path) -> None:
    port = refused_port()
    result = invoke("apply", "--auto-approve", environ={"MARKETO_REST_ENDPOINT": f"http://127.0.0.1:{port}",
                                                        "MARKETO_CLIENT_ID": "id", "MARKETO_CLIENT_SECRET": "s"})
    assert result.exit_code == 4, result.stderr
    assert (f"could not connect to 127.0.0.1:{port} (connection refused); check MARKETO_REST_ENDPOINT "
            "(gave up after 1 attempt)") in result.stderr
    assert "MARKETO_IDENTITY_ENDPOINT" not in result.stderr and "retrying" not in result.stderr


def test_a_refused_identity_endpoint_that_was_set_is_named(workspace: Path) -> None:
    port = refused_port()
    result = invoke("apply", "--auto-approve", environ={
        "MARKETO_REST_ENDPOINT": f"http://127.0.0.1:{port}", "MARKETO_IDENTITY_ENDPOINT": f"http://127.0.0.1:{port}/id",
        "MARKETO_CLIENT_ID": "id", "MARKETO_CLIENT_SECRET": "s"})
    assert result.exit_code == 4 and "check MARKETO_IDENTITY_ENDPOINT" in result.stderr


def write_leads(tmp_path: Path, text: str, name: str = "a.yaml") -> None:
    (tmp_path / "leads").mkdir(exist_ok=True)
    (tmp_path / "leads" / name).write_text(text)


@pytest.mark.parametrize("command", [["validate"], ["plan"], ["plan", "--api", "rest"]])
def test_a_lead_no_call_can_carry_is_invalid_input_at_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               command: list[str]) -> None:
    write_leads(tmp_path, "leads:\n  - email: a@example.com\n"
                          "  - email: notes@example.com\n    attributes:\n      FirstName: N\n"
                          f"      PersonNotes: {'x' * 2_000_000}\n")
    monkeypatch.chdir(tmp_path)
    result = invoke(*command)
    assert result.exit_code == 3, result.stderr
    assert result.stderr.startswith("error: leads/a.yaml:3: leads[1].attributes.PersonNotes: this lead's record "
                                    "is about 2,000,")
    assert "more than one Sync Leads call may carry" in result.stderr


def test_plan_counts_the_calls_apply_makes_when_records_are_large(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # 60 leads of 25,000 characters (a text area holds up to 30,000 bytes): 1.5 MB, two calls by size
    write_leads(tmp_path, "leads:\n" + "".join(f"  - email: u{i}@example.com\n    attributes:\n"
                                               f"      PersonNotes: {'x' * 25_000}\n" for i in range(60)))
    monkeypatch.chdir(tmp_path)
    plan = invoke("plan", "--api", "rest")
    assert plan.stdout.rstrip().endswith("; 2 Sync Leads calls."), plan.stdout[-300:]
    applied = invoke("apply", "--emulator", "--api", "rest", "--auto-approve")
    assert applied.exit_code == 0, applied.stderr
    assert "; 2 Sync Leads call(s)" in applied.stdout


@pytest.mark.parametrize("command", [["validate"], ["plan"], ["apply", "--emulator", "--auto-approve"]])
def test_files_in_the_lead_directory_that_are_not_read_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 command: list[str]) -> None:
    write_leads(tmp_path, "leads:\n  - email: a@example.com\n")
    for name in ("c.YAML", "d.yaml.txt", "e.json", "notes.md"):
        (tmp_path / "leads" / name).write_text("leads: []\n")
    monkeypatch.chdir(tmp_path)
    result = invoke(*command)
    assert result.exit_code == 0, result.stderr
    assert ("warning: not read: leads/c.YAML, leads/d.yaml.txt, leads/e.json (lead files end in .yaml or .yml, "
            "in lower case)") in result.stderr.splitlines()


@pytest.mark.parametrize("quote", ['"', "'"])
def test_an_unclosed_quote_is_reported_where_it_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      quote: str) -> None:
    write_leads(tmp_path, f"leads:\n  - email: a@example.com\n    attributes:\n      Title: {quote}CEO\n"
                          "      Company: Acme\n  - email: c@example.com\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("validate")
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"error: leads/a.yaml:4: invalid YAML: a quoted value starts here with {quote} and is never closed: "
        f"add the closing {quote}"]


def test_a_bad_indent_is_explained_at_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_leads(tmp_path, "leads:\n  - email: a@example.com\n    attributes:\n      Title: CEO\n"
                          "     Company: Acme\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("validate")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: leads/a.yaml:5: invalid YAML: this line's indentation does not fit the "
                                    "lines above it")
    assert "<block" not in result.stderr


def test_a_value_continued_by_a_deeper_line_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_leads(tmp_path, "leads:\n  - email: a@example.com\n    attributes:\n      Title: CEO\n"
                          "        Company: Acme\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("validate")
    assert result.exit_code == 3
    assert "leads/a.yaml:5: invalid YAML: unexpected ':' (a line indented deeper than the key above" in result.stderr


@pytest.mark.parametrize("api,reason", [("rest", "1004 Lead not found"), ("soap", "20103 - Lead Not Found")])
def test_records_marketo_refuses_carry_the_leads_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               api: str, reason: str) -> None:
    write_leads(tmp_path, "leads:\n  - email: a@example.com\n  - leadId: 4242\n    attributes: {Title: CTO}\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("apply", "--emulator", "--api", api, "--auto-approve")
    assert result.exit_code == 5, result.stderr
    assert f"error:   id:4242 (leads/a.yaml:3): {reason}" in result.stderr.splitlines()


@pytest.mark.parametrize("argument,what,directory", [("leads/customers.yaml", "a lead file", "leads"),
                                                     ("leads", "a directory", "leads")])
def test_apply_given_lead_files_says_so_and_suggests_leads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           argument: str, what: str, directory: str) -> None:
    write_leads(tmp_path, "leads:\n  - email: a@example.com\n", "customers.yaml")
    monkeypatch.chdir(tmp_path)
    result = invoke("apply", argument)
    assert result.exit_code == 64, result.stderr
    assert result.stderr.startswith(f"error: {argument} is {what}, not a saved plan: apply reads the lead files "
                                    f"itself; run `reconcile apply --leads {directory}`")
    assert not (tmp_path / "reconcile.state.json").exists()


@pytest.mark.parametrize("suffix", ["/rest/v1", "/rest/v1/", "/rest", ""])
def test_a_rest_endpoint_copied_with_rest_v1_is_accepted(emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         suffix: str) -> None:
    write_leads(tmp_path, "leads:\n  - email: a@example.com\n    attributes: {FirstName: Ada}\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("apply", "--auto-approve", environ={
        "MARKETO_REST_ENDPOINT": emulator.rest_endpoint + suffix, "MARKETO_CLIENT_ID": emulator.config.client_id,
        "MARKETO_CLIENT_SECRET": emulator.config.client_secret})
    assert result.exit_code == 0, result.stderr
    assert "Apply complete: 1 created" in result.stdout


@pytest.mark.parametrize("text,shape", [("- email: a@example.com\n  attributes: {Title: CTO}\n", "a bare list"),
                                        ("leadId: 1090238\nattributes: {Title: CTO}\n", "a lead by itself")])
def test_a_lead_file_without_leads_key_says_to_put_them_under_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  text: str, shape: str) -> None:
    write_leads(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    result = invoke("validate")
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"error: leads/a.yaml:1: (document): a lead file holds its leads under `leads:`, not {shape}: put `leads:` "
        "on the first line and the leads under it as a list, each starting with '- ' (see leads/ for examples)"]


@pytest.mark.parametrize("api,environ", [
    ("rest", REST_ENV),
    ("soap", {"MARKETO_SOAP_ENDPOINT": "https://123-ABC-456.mktoapi.com/soap/mktows/2_1", "MARKETO_USER_ID": "u",
              "MARKETO_ENCRYPTION_KEY": "k"})])
def test_plan_warns_when_the_state_belongs_to_another_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               api: str, environ: dict) -> None:
    write_leads(tmp_path, "leads:\n  - email: a@example.com\n")
    monkeypatch.chdir(tmp_path)
    assert invoke("apply", "--emulator", "--auto-approve").exit_code == 0  # the state is bound to the emulator
    variable = "MARKETO_REST_ENDPOINT" if api == "rest" else "MARKETO_SOAP_ENDPOINT"
    for _ in range(2):  # the second plan comes from the plan cache: it warns all the same
        result = invoke("plan", environ=environ)
        assert result.exit_code == 0, result.stderr
        assert (f"warning: this state belongs to Marketo instance 'emulator', but {variable} is instance "
                "'123-ABC-456': apply there would refuse it (exit 3)") in result.stderr
    assert "warning" not in invoke("plan").stderr  # no endpoint set: nothing to compare
