"""A fake GitHub CLI for the workflow tests: `gh api` with its flags read as gh reads them, every call
logged to $FAKE_GH_LOG, its data kept in $FAKE_GH_DB. Each test file adds the endpoints it simulates
(`fake_gh(handlers)`); anything else is gh's 404."""

from __future__ import annotations

import sys

_PROLOGUE = r'''#!@PYTHON@
"""A fake GitHub CLI: `gh api`, its data kept in $FAKE_GH_DB; every call logged to $FAKE_GH_LOG."""
import json, os, re, sys

db_path, log_path = os.environ["FAKE_GH_DB"], os.environ["FAKE_GH_LOG"]
db = json.load(open(db_path)) if os.path.exists(db_path) else @EMPTY_DB@
args = sys.argv[1:]
entry = {"argv": args, "gh_token_set": bool(os.environ.get("GH_TOKEN"))}

def finish(code, out="", err=""):
    entry["exit"] = code
    with open(log_path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")
    json.dump(db, open(db_path, "w"), indent=1)
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(code)

if not os.environ.get("GH_TOKEN"):
    finish(4, err="gh: To use GitHub CLI in a GitHub Actions workflow, set the GH_TOKEN environment variable.\n")
if not args or args[0] != "api":
    finish(2, err="fake gh: only `gh api` is simulated\n")
method, payload, paginate, path, rest = "GET", None, False, None, args[1:]
while rest:
    arg = rest.pop(0)
    if arg in ("--method", "-X"):
        method = rest.pop(0).upper()
    elif arg == "--input":
        payload = json.load(open(rest.pop(0)))
    elif arg == "--paginate":
        paginate = True
    elif arg.startswith("-"):
        finish(2, err=f"fake gh: flag {arg} is not simulated\n")
    else:
        path = arg
entry.update(method=method, path=path, paginate=paginate, payload=payload, body=(payload or {}).get("body"))
if path == "user" and method == "GET":
    # GITHUB_TOKEN (an installation token) may not ask who it is; a personal token may
    login = os.environ.get("FAKE_GH_USER")
    if not login:
        finish(1, err="gh: Resource not accessible by integration (HTTP 403)\n")
    finish(0, json.dumps({"login": login, "type": "User"}))
'''

_EPILOGUE = r'''finish(1, err="gh: Not Found (HTTP 404)\n")
'''


def fake_gh_script(handlers: str, empty_db: str = "{}") -> str:
    """The script's text, ready to write as an executable `gh`: `handlers` (Python, at the script's top
    level, using `method`, `path`, `payload`, `paginate`, `db` and `finish`) between the shared part
    and the 404. `empty_db`: the data it starts from when $FAKE_GH_DB does not exist yet."""
    return (_PROLOGUE.replace("@EMPTY_DB@", empty_db) + handlers + _EPILOGUE).replace("@PYTHON@", sys.executable)
