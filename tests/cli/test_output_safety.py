"""Hostile text never steers a CI log, a comment or a job summary.

Lead file names, keys, attribute names and Marketo's answers reach reconcile's output. In a GitHub
Actions log a line starting with `::` is a command to the runner (`::add-mask::`, `::stop-commands::`),
and `\\r` ends a line as well as `\\n` does; in Markdown a `|` ends a table cell and `<img>` is an image.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clirunner import invoke
from conftest import EMULATOR_TEST_ENCRYPTION_KEY, EMULATOR_TEST_USER_ID, v1_state
from reconcile.ci import summary
from reconcile.core import render
from reconcile.core.model import Lead, State, StateLead
from reconcile.core.planner import plan as make_plan
from reconcile.core import safetext
from reconcile.core.safetext import not_a_command, safe_block, visible
from reconcile.errors import Location

INJECTED = "\n::stop-commands::pwn\n"


def commands_in(text: str) -> list[str]:
    """Lines the runner would execute: anything starting with `::` after leading blanks, split the way
    the runner splits output (on \\n and on \\r)."""
    return [line for line in re.split(r"\r\n|\r|\n", text) if line.lstrip().startswith("::")]


@pytest.fixture
def workspace(make_workspace) -> Path:
    return make_workspace()


def test_visible_shows_every_invisible_character():
    assert visible("plain text, ünïcode") == "plain text, ünïcode"
    assert visible("a\nb\rc\td\x1b[31me\x7f\x85\u2028\u202e") == "a\\nb\\rc\\x09d\\x1b[31me\\x7f\\x85\\u2028\\u202e"
    assert visible("x ##[add-mask]y") == "x ##\\x5badd-mask]y"
    assert not_a_command("::add-mask::X") == "\\x3a:add-mask::X"
    assert not_a_command("  ::warning::x") == "  \\x3a:warning::x"
    assert not_a_command("a ::b") == "a ::b"
    assert safe_block("one\n::two\r\n\x1b[1mthree\x1b[0m", keep_ansi=True) == "one\n\\x3a:two\\r\n\x1b[1mthree\x1b[0m"
    assert safe_block("\x1b[2J") == "\\x1b[2J"


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.sampled_from(["a", " ", ":", "#", "[", "\n", "\t", "\r", "\x1b", "\x00", "\x85", "\xa0",
                                     "\u2028", "\u202e", "\u3000", "é"]), max_size=40),
       keep_ansi=st.booleans())
def test_a_block_is_made_safe_in_one_pass_exactly_as_line_by_line(text, keep_ansi):
    """safe_block returns a text with nothing to change untouched without walking its lines: the
    shortcut must never let through what the line-by-line pass changes."""
    assert safe_block(text, keep_ansi=keep_ansi) == safetext._safe_lines(text, keep_ansi)


def test_a_hostile_lead_file_name_stays_one_visible_line(workspace: Path):
    name = "a\n::add-mask::X\n.yaml"
    (workspace / "leads" / name).write_text("leads:\n  - email: not-an-email\n")
    result = invoke("validate")
    assert result.exit_code == 3
    assert commands_in(result.stdout + result.stderr) == []
    assert result.stderr == ("error: leads/a\\n::add-mask::X\\n.yaml:2: leads[0].email: "
                             "'not-an-email' is not an email address\n")

    # in CI: one annotation, the name escaped the way GitHub unescapes it
    as_json = invoke("--error-format", "json", "validate")
    annotated = invoke("ci", "annotate", stdin=as_json.stderr)
    assert annotated.stdout.splitlines() == [
        "::error file=leads/a%0A%3A%3Aadd-mask%3A%3AX%0A.yaml,line=2::leads[0].email: "
        "'not-an-email' is not an email address"]

    # a valid file with that name: the plan names it, escaped
    (workspace / "leads" / name).write_text("leads:\n  - email: ok@example.com\n")
    planned = invoke("plan")
    assert planned.exit_code == 0, planned.stderr
    assert commands_in(planned.stdout) == []
    assert "(leads/a\\n::add-mask::X\\n.yaml:2)" in planned.stdout


def test_a_hostile_foreign_id_in_the_duplicate_error_is_escaped(workspace: Path):
    (workspace / "leads" / "a.yaml").write_text(
        "leads:\n"
        f"  - foreignSysPersonId: {json.dumps('x' + INJECTED)}\n"
        f"  - foreignSysPersonId: {json.dumps('x' + INJECTED)}\n")
    result = invoke("validate")
    assert result.exit_code == 3
    assert commands_in(result.stdout + result.stderr) == []
    # Keys cannot hold control characters at all, so the hostile ID is refused before it could be
    # printed back in a duplicate error; what is printed stays one line per error.
    assert "foreignSysPersonId: contains control character U+000A" in result.stderr
    assert all(line.startswith("error: ") for line in result.stderr.splitlines())


def _hostile_plan():
    hostile = Lead(location=Location("leads/a" + INJECTED + ".yaml", 2), foreign_sys_person_id="x" + INJECTED,
                   attributes={"Company" + INJECTED: "Acme" + INJECTED, "Title": "\u202eOEC"})
    renamed = Lead(location=Location("leads/b.yaml", 2), email="new" + INJECTED + "@example.com")
    state = State(lineage="l", serial=1, leads={"email:old\r::add-mask::@example.com": StateLead(
        lead_id=7, email="old\r::add-mask::@example.com", foreign_sys_person_id=None, foreign_sys_type=None,
        attributes={"Company": "Old"}, synced_at=None)})
    return make_plan([hostile, renamed], state)


@pytest.mark.parametrize("fmt", ["text", "color", "markdown"])
def test_a_hostile_plan_header_keys_and_values_are_escaped(fmt: str):
    plan = _hostile_plan()
    text = {"text": lambda: render.render_text(plan), "color": lambda: render.render_text(plan, color=True),
            "markdown": lambda: render.render_markdown(plan)}[fmt]()
    assert commands_in(text) == []
    assert "# fsp:CUSTOM:x\\n::stop-commands::pwn\\n will be created (leads/a\\n::stop-commands::pwn\\n.yaml:2)" in text
    assert '+ Company\\n::stop-commands::pwn\\n = "Acme\\n::stop-commands::pwn\\n"' in text
    assert "\\u202eOEC" in text and "\u202e" not in text
    assert "email:old\\r::add-mask::@example.com (leadId 7) is no longer declared" in text


def test_plan_json_keeps_the_values_exact_and_valid(workspace: Path):
    data = json.loads(render.render_json(_hostile_plan()))
    assert {a["identity"] for a in data["actions"]} >= {"fsp:CUSTOM:x" + INJECTED}
    # through the CLI's output guard too: invisible characters stay JSON escapes, not broken JSON
    value = "Acme\x85\u2028\u202e\x7f"
    (workspace / "leads" / "a.yaml").write_text(f"leads:\n  - email: a@example.com\n    attributes:\n"
                                                f"      Company: {json.dumps(value)}\n")
    result = invoke("plan", "--format", "json")
    assert result.exit_code == 0, result.stderr
    [action] = json.loads(result.stdout)["actions"]
    assert action["attribute_changes"][0]["new"] == value
    assert "\x85" not in result.stdout and "\u202e" not in result.stdout


def test_plan_markdown_keeps_hostile_text_inside_its_code_block():
    # each value tries to close the fence on a line of its own; the newlines are escaped and the fence
    # is longer than any run of backticks, so either defence alone keeps the block shut
    lead = Lead(location=Location("leads/a.yaml", 2), foreign_sys_person_id="x` | y\n```\n# Pwned <img src=x>",
                attributes={"Company": "\n````\n[click](https://evil.example)\n"})
    text = render.render_markdown(make_plan([lead], State(lineage="l", serial=0, leads={})))
    outside, fence = [], None
    for line in text.splitlines():
        opener = re.match(r"(`{3,})", line)
        if fence is None and opener:
            fence = opener[1]
        elif fence is not None and line.strip() == fence:
            fence = None
        elif fence is None:
            outside.append(line)
    assert fence is None
    assert not any("Pwned" in line or "click" in line for line in outside), outside


class _TamperingProxy(http.server.BaseHTTPRequestHandler):
    """Forwards to the emulator and puts hostile text into every <error> of the answer."""

    upstream = ""

    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = urllib.request.Request(self.upstream, data=body, method="POST",
                                         headers={"Content-Type": self.headers["Content-Type"],
                                                  "SOAPAction": self.headers.get("SOAPAction", "")})
        with urllib.request.urlopen(request, timeout=30) as answer:
            data = answer.read()
        data = re.sub(rb"<error>[^<]*</error>",
                      b"<error>bad field&#10;::add-mask::hunter2&#13;::warning::x\n::stop-commands::pwn</error>", data)
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_server_error_text_with_newlines_cannot_become_a_command(workspace: Path, emulator):
    (workspace / "leads" / "a.yaml").write_text(
        "leads:\n  - email: ok@example.com\n  - email: odd@example.com\n    attributes: {Shoe_Size__c: '44'}\n")
    handler = type("Proxy", (_TamperingProxy,), {"upstream": emulator.endpoint})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = emulator.endpoint.split("/", 3)[3]
        environ = {"MARKETO_SOAP_ENDPOINT": f"http://127.0.0.1:{server.server_port}/{path}",
                   "MARKETO_USER_ID": EMULATOR_TEST_USER_ID, "MARKETO_ENCRYPTION_KEY": EMULATOR_TEST_ENCRYPTION_KEY}
        result = invoke("apply", "--auto-approve", "--debug", environ=environ)
        as_json = invoke("--error-format", "json", "apply", "--auto-approve", environ=environ)
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 5, result.stderr
    assert "odd@example.com" in result.stderr and "add-mask" in result.stderr
    assert commands_in(result.stdout + result.stderr) == []
    # the debug log of the exchange keeps its lines, each prefixed
    assert "debug: ::stop-commands::pwn</error>" in result.stderr.splitlines()
    assert as_json.exit_code == 5
    annotated = invoke("ci", "annotate", stdin=as_json.stdout + as_json.stderr)
    print(annotated.stdout)
    commands = [line for line in annotated.stdout.splitlines() if line.lstrip().startswith("::")]
    assert commands and all(line.startswith("::error::") for line in commands), commands
    assert any("add-mask" in line for line in commands)


def test_apply_summary_table_cells_cannot_break_out():
    key = "fsp:CUSTOM:x` | y\n# Pwned\n<img src=https://evil.example/i.png>[click](https://evil.example)"
    after = json.dumps(v1_state({key: {
        "leadId": 5, "email": None, "foreignSysPersonId": "x", "foreignSysType": "CUSTOM", "attributes": {},
        "syncedAt": None}}, serial=1, lineage="l"))
    text = summary.apply_summary(summary.ApplyOutcome(exitcode=0, state_after=after))
    rows = [line for line in text.splitlines() if line.startswith("| recorded")]
    assert len(rows) == 1
    [row] = rows
    # four unescaped pipes: the row has exactly three cells
    assert len(re.findall(r"(?<!\\)\|", row)) == 4
    assert "<img" not in text and "](" not in text and not re.search(r"(?<!\\)`", row)
    assert not any(line.startswith("#") and "Pwned" in line for line in text.splitlines())
    assert "&lt;img src=https://evil.example/i.png&gt;" in row and "\\[click\\]\\(https://evil.example\\)" in row


def test_a_hostile_state_key_is_listed_on_one_line(workspace: Path):
    key = "email:a@example.com\n::add-mask::x"
    (workspace / "reconcile.state.json").write_text(json.dumps(v1_state(
        {key: {"leadId": 7, "email": "a@example.com", "foreignSysPersonId": None, "foreignSysType": None,
               "attributes": {}, "syncedAt": None}}, serial=1, lineage="l")))
    listed = invoke("state", "list")
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout == "email:a@example.com\\n::add-mask::x\t7\n"
    shown = invoke("state", "list", "--json")
    assert list(json.loads(shown.stdout)) == [key] and commands_in(shown.stdout) == []
