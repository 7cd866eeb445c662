"""An apply after `reconcile plan` of the same inputs shows the plan from plan's cached text, and
shows exactly what it shows when it renders the plan itself; any change of input makes it render."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from clirunner import invoke
from conftest import EMULATOR_TEST_ENCRYPTION_KEY, EMULATOR_TEST_USER_ID
from reconcile.cli import Environment
from reconcile.core import render
from reconcile.inputs import cache


def lead_file(first: int, count: int, title: str = "CTO") -> str:
    return "leads:\n" + "".join(f"  - email: lead{i}@example.com\n    attributes: {{Title: {title}, Company: C{i}}}\n"
                                for i in range(first, first + count))


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(cache, "MIN_FILE_BYTES", 0)  # small files: cached as large ones are
    (tmp_path / "w" / "leads").mkdir(parents=True)
    (tmp_path / "w" / "leads" / "a.yaml").write_text(lead_file(0, 3))
    (tmp_path / "w" / "leads" / "b.yaml").write_text(lead_file(3, 2, title="CEO"))
    return tmp_path / "w"


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    made: list[int] = []
    real = render.render_text
    monkeypatch.setattr(render, "render_text", lambda *a, **k: made.append(1) or real(*a, **k))
    return made


def apply_in(directory: Path, emulator, monkeypatch: pytest.MonkeyPatch, *, plan_first: bool,
             renders: list[int]) -> tuple[str, int]:
    """The plan an apply printed (up to its summary line), and how often the apply rendered a plan."""
    monkeypatch.chdir(directory)
    env = {"MARKETO_SOAP_ENDPOINT": emulator.endpoint, "MARKETO_USER_ID": EMULATOR_TEST_USER_ID,
           "MARKETO_ENCRYPTION_KEY": EMULATOR_TEST_ENCRYPTION_KEY}
    if plan_first:
        assert invoke("plan", environ=env).exit_code == 0
    before = len(renders)
    applied = invoke("apply", "--auto-approve", environ=env)
    assert applied.exit_code == 0, applied.stderr
    shown = applied.stdout[:applied.stdout.index("\n", applied.stdout.index("Plan: ")) + 1]
    return shown, len(renders) - before


def test_an_apply_after_a_plan_shows_its_text_without_rendering_and_exactly_as_rendered(
        workspace, tmp_path, emulator_factory, monkeypatch, renders):
    fresh = tmp_path / "fresh"
    shutil.copytree(workspace, fresh)
    from_plan, rendered = apply_in(workspace, emulator_factory(), monkeypatch, plan_first=True, renders=renders)
    assert rendered == 0, "plan's text was reused"
    from_scratch, rendered = apply_in(fresh, emulator_factory(), monkeypatch, plan_first=False, renders=renders)
    assert rendered == 1
    assert from_plan == from_scratch
    assert "Compared against the state" not in from_plan and "5 to create" in from_plan


def test_a_lead_file_edited_after_the_plan_is_rendered_again(workspace, emulator, monkeypatch, renders):
    monkeypatch.chdir(workspace)
    env = {"MARKETO_SOAP_ENDPOINT": emulator.endpoint, "MARKETO_USER_ID": EMULATOR_TEST_USER_ID,
           "MARKETO_ENCRYPTION_KEY": EMULATOR_TEST_ENCRYPTION_KEY}
    assert invoke("plan", environ=env).exit_code == 0
    (workspace / "leads" / "b.yaml").write_text(lead_file(3, 2, title="CFO"))
    applied = invoke("apply", "--auto-approve", environ=env)
    assert applied.exit_code == 0, applied.stderr
    assert 'Title   = "CFO"' in applied.stdout and '"CEO"' not in applied.stdout
    assert len(renders) == 2, "the plan before the edit, and the apply after it"


@pytest.mark.parametrize("color", [False, True])
def test_the_apply_text_made_from_plans_text_is_the_apply_text_rendered(color):
    from reconcile.core.model import Lead, State
    from reconcile.core.planner import plan as make_plan
    from reconcile.errors import Location

    declared = [Lead(location=Location("leads/x.yaml", n + 1), email=f"l{n}@example.com",
                     attributes={"Title": "T"}) for n in range(3)]
    plan = make_plan(declared, State(lineage="l", serial=0, leads={}))
    planned = render.render_text(plan, color=color, calls=render.Calls("Sync Leads", 7), against_state=True)
    applied = render.render_text(plan, color=color, calls=render.Calls("Sync Leads", 1))
    assert render.text_for_apply(planned.encode(), plan, color, render.Calls("Sync Leads", 1)) == applied.encode()
    assert render.text_for_apply(applied.encode(), plan, color) is None, "not plan's text: no note to take out"


def written(data: bytes, color: bool = False) -> bytes:
    """What `out_encoded` puts on a real stdout (a text layer over bytes)."""
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="utf-8", newline="")
    Environment(stdout=stdout, stdout_isatty=color, environ={}).out_encoded(data)
    stdout.flush()
    return raw.getvalue()


def test_plans_cached_text_is_printed_as_it_was_stored_when_it_is_plain():
    plain = b"reconcile will perform the following actions:\n\n  + email:a@example.com\n\tx\n"
    assert written(plain) == plain
    coloured = b"\x1b[1mPlan: 1 to create\x1b[0m\n"
    assert written(coloured, color=True) == coloured
    assert written(b"no newline") == b"no newline\n"


@pytest.mark.parametrize("hostile, shown", [
    (b"  + a\n  ::set-env name=X::1\n", b"  + a\n  \\x3a:set-env name=X::1\n"),
    (b"  + a ##[error]x\n", b"  + a ##\\x5berror]x\n"),
    (b"  + a\x1b]8;;https://evil\x07\n", b"  + a\\x1b]8;;https://evil\\x07\n"),
    (b"  + a\rPlan: 0\n", b"  + a\\rPlan: 0\n"),
    ("  + \u202eab\n".encode(), b"  + \\u202eab\n"),
    (b"  + \xff\n", b"  + \\xff\n"),
])
def test_a_cached_text_that_is_not_plain_is_made_safe_as_any_output_is(hostile, shown):
    """The cache lies beside the state, where a pull request can put files: what it holds is checked
    before it is printed, exactly as rendered text is."""
    assert written(hostile) == shown


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_a_cached_text_goes_through_the_text_layer_of_a_stdout_with_another_encoding(encoding):
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding=encoding, newline="")
    Environment(stdout=stdout, stdout_isatty=False, environ={}).out_encoded(b"  + a\n")
    stdout.flush()
    assert raw.getvalue() == "  + a\n".encode(encoding)


def test_a_cached_text_goes_through_the_text_layer_where_there_is_no_byte_layer():
    stdout = io.StringIO()
    Environment(stdout=stdout, stdout_isatty=False, environ={}).out_encoded("  + café\n".encode())
    assert stdout.getvalue() == "  + café\n"


def test_a_rest_apply_after_a_plan_checks_its_fields_and_still_shows_plans_text(workspace, emulator, monkeypatch,
                                                                                renders):
    """Checking the lead files against the describe cache leaves a marker beside it: that is not a
    change of the describe cache, and must not make the apply (or the next plan) render again."""
    monkeypatch.chdir(workspace)
    env = {"MARKETO_REST_ENDPOINT": emulator.rest_endpoint, "MARKETO_CLIENT_ID": emulator.config.client_id,
           "MARKETO_CLIENT_SECRET": emulator.config.client_secret}
    from reconcile.inputs import fields

    assert invoke("fields", environ=env).exit_code == 0
    planned = invoke("plan", environ=env)
    checks = []
    real_check = fields.check_leads
    monkeypatch.setattr(fields, "check_leads", lambda *a: checks.append(1) or real_check(*a))
    applied = invoke("apply", "--auto-approve", environ=env)
    assert applied.exit_code == 0, applied.stderr
    assert "Sync Leads call" in planned.stdout and "Apply complete: 5 created" in applied.stdout
    assert len(renders) == 1, "the plan rendered; the apply showed its text"
    assert checks == [], "plan checked these files against this describe cache: the apply need not again"
