"""A Get Leads answer that pages without end (the same `nextPageToken` again, or more pages than the
filter values can match) stops an import and a refresh with exit 4 and a clear message, after a few
calls, never a stream of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from clirunner import invoke
from looping_marketo import LoopingMarketo


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "leads").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("same_token", "fresh_leads", "asked", "why", "reads"), [
    (True, False, ["--email", "ada@example.com"], "offered the nextPageToken of an earlier page again", 2),
    (False, False, ["--email", "ada@example.com"], "answered only leads of earlier pages", 2),
    (False, True, ["--email", "ada@example.com"], "though Marketo never pages past 1000 matches", 4),
    (False, False, ["--id", "1", "--id", "2"], "more than 2 id value(s) can match", 1),
], ids=["same-token", "same-leads", "pages-past-1000-matches", "more-pages-than-ids"])
def test_import_stops_a_paging_loop_with_exit_4(work: Path, same_token: bool, fresh_leads: bool, asked: list[str],
                                                why: str, reads: int) -> None:
    with LoopingMarketo(same_token, fresh_leads) as marketo:
        result = invoke("import", "--out", "leads/imported.yaml", *asked, environ=marketo.environ)
    assert result.exit_code == 4, result.stdout + result.stderr
    assert "pages without end" in result.stderr and why in result.stderr
    assert marketo.reads == reads
    assert not (work / "leads" / "imported.yaml").exists()


@pytest.mark.parametrize("same_token", [True, False], ids=["same-token", "new-token-each-page"])
def test_plan_refresh_stops_a_paging_loop_with_exit_4(work: Path, emulator, same_token: bool) -> None:
    (work / "leads" / "people.yaml").write_text("leads:\n  - email: ada@example.com\n    attributes: {Title: CTO}\n")
    environ = {"MARKETO_REST_ENDPOINT": emulator.rest_endpoint, "MARKETO_CLIENT_ID": emulator.config.client_id,
               "MARKETO_CLIENT_SECRET": emulator.config.client_secret}
    assert invoke("apply", "--auto-approve", environ=environ).exit_code == 0
    [lead] = emulator.leads()
    with LoopingMarketo(same_token, email_of=lambda lead_id: "ada@example.com") as marketo:
        result = invoke("plan", "--refresh", environ=marketo.environ)
    assert result.exit_code == 4, result.stdout + result.stderr
    assert "pages without end" in result.stderr
    assert marketo.reads == 1  # one lead ID matches one lead: a second page cannot hold anything
