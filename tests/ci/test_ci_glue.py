"""The CI glue the workflows run through the CLI (reconcile.ci): `reconcile ci annotate` turns JSON
diagnostics into escaped workflow commands and never passes a command through, the plan comment is
cut short with its Markdown balanced, and committing the state back rebases over a concurrent push,
never commits a journal, keeps the token out of the clone and refuses a conflicting change.
"""

from __future__ import annotations

import json
import os

import pytest

from clirunner import invoke
from reconcile.ci import annotations, comment as comment_helpers, commit as commit_helpers
from workflow_repos import LEADS, MARKER, Origin, git

# --------------------------------------------------------------------------------------------------
# reconcile.ci.github helpers


def _diagnostic(message, file=None, line=None, path=None, severity="error"):
    return json.dumps({"severity": severity, "file": file, "line": line, "path": path, "message": message,
                       "exit_code": 3})


def test_annotate_turns_json_diagnostics_into_escaped_commands_and_passes_the_rest():
    lines = ["6 leads in 4 files are valid.",
             _diagnostic("'50%, sure' is not an email\r", "leads/a.yaml", 12, "leads[3].email"),
             _diagnostic("a\nb", "/ws/leads/b,c.yaml", 2),
             _diagnostic("not valid JSON", "reconcile.state.json"),
             _diagnostic("MARKETO_USER_ID is not set"),
             _diagnostic("lock is stale", severity="warning"),
             "error: leads/x.yaml:3: human text is not an API",
             '{"not": "a diagnostic"}']
    result = invoke("ci", "annotate", "--workspace", "/ws", stdin="\n".join(lines) + "\n",
                    environ={"GITHUB_WORKSPACE": "/elsewhere"})
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "6 leads in 4 files are valid.",
        "::error file=leads/a.yaml,line=12::leads[3].email: '50%25, sure' is not an email%0D",
        "::error file=leads/b%2Cc.yaml,line=2::a%0Ab",
        "::error file=reconcile.state.json::not valid JSON",
        "::error::MARKETO_USER_ID is not set",
        "::warning::lock is stale",
        "error: leads/x.yaml:3: human text is not an API",
        '{"not": "a diagnostic"}']
    assert annotations.escape_property("a:b,c%\r\n") == "a%3Ab%2Cc%25%0D%0A"
    assert annotations.escape_data("a:b,c%\r\n\x1b") == "a:b,c%25%0D%0A\\x1b"


def test_annotate_never_passes_a_command_through():
    hostile = ["::add-mask::X", "  ::stop-commands::pwn", "text ##[set-output name=x]y"]
    result = invoke("ci", "annotate", stdin="\n".join(hostile) + "\n")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["\\x3a:add-mask::X", "  \\x3a:stop-commands::pwn",
                                          "text ##\\x5bset-output name=x]y"]


def test_comment_body_truncation_keeps_markdown_balanced():
    body = "### reconcile plan\n\n" + "".join(
        f"<details><summary>part {i}</summary>\n\n```diff\n" + ("+ line\n" * 400) + "```\n\n</details>\n"
        for i in range(40))
    where = comment_helpers.CommentContext(artifact_url="https://a/1", run_url="https://r", sha="f" * 40)
    out = comment_helpers.comment_body(plan_markdown=body, exitcode=2, context=where)
    assert len(out) <= comment_helpers.COMMENT_LIMIT
    assert out.startswith(MARKER + "\n### reconcile plan")
    head = out.split("> [!WARNING]")[0]
    assert head.count("```") % 2 == 0 and head.count("<details>") == head.count("</details>")
    assert "[`reconcile-plan`](https://a/1)" in out and "[workflow run](https://r)" in out
    small = comment_helpers.comment_body(plan_markdown="### reconcile plan\n", exitcode=0)
    assert "[!WARNING]" not in small and "changes nothing" in small


def test_commit_state_rebases_over_a_concurrent_push(tmp_path):
    origin = Origin(tmp_path, {"leads/a.yaml": LEADS, "reconcile.state.json": '{"serial": 1}\n'})
    runner_clone = tmp_path / "runner"
    git("clone", "--quiet", str(origin.bare), str(runner_clone), cwd=tmp_path)
    (runner_clone / "reconcile.state.json").write_text('{"serial": 2}\n')
    (runner_clone / "reconcile.state.json.journal").write_text("{}\n")  # never committed
    origin.commit({"leads/b.yaml": "leads: []\n"}, "Someone merged meanwhile")
    environ = {**os.environ, "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1", "GITHUB_TOKEN": "ghs_secret"}
    messages: list[str] = []
    sha = commit_helpers.commit_state("reconcile.state.json", branch="main", attempts=3, environ=environ,
                                  message="reconcile: record apply results [skip ci]\n", cwd=str(runner_clone),
                                  sleep=lambda s: None, log=messages.append)
    assert sha == git("rev-parse", "main", cwd=origin.bare).strip()
    assert "rebasing onto the new tip" in messages[0]
    log = origin.log()
    assert log[0].startswith("github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>")
    assert "[skip ci]" in log[0] and "Someone merged meanwhile" in log[1]
    assert origin.show("main", "reconcile.state.json") == '{"serial": 2}\n'
    assert "journal" not in git("ls-tree", "-r", "--name-only", "main", cwd=origin.bare)
    assert "ghs_secret" not in (runner_clone / ".git" / "config").read_text()
    # nothing to do when the state did not change
    assert commit_helpers.commit_state("reconcile.state.json", branch="main", message="x", environ=environ,
                                   cwd=str(runner_clone), log=messages.append) is None
    # a conflicting change to the state on main is an error, not a merge
    (runner_clone / "reconcile.state.json").write_text('{"serial": 3}\n')
    origin.commit({"reconcile.state.json": '{"serial": 99}\n'}, "Hand edit")
    with pytest.raises(commit_helpers.CommitError, match="cannot be merged"):
        commit_helpers.commit_state("reconcile.state.json", branch="main", message="m [skip ci]", environ=environ,
                                cwd=str(runner_clone), sleep=lambda s: None, log=messages.append)
