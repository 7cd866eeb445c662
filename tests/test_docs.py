"""The README stays short and REST-first, the docs site covers what the code reads, and the workflows
give a REST apply what it needs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"


def test_readme_is_at_most_300_lines_and_rest_comes_first() -> None:
    assert len(README.splitlines()) <= 300
    assert README.index("MARKETO_REST_ENDPOINT") < README.index("MARKETO_SOAP_ENDPOINT")
    assert "pipx install ." in README and "pip install ." in README


def test_every_environment_variable_the_code_reads_is_in_the_table() -> None:
    code = "".join(path.read_text(encoding="utf-8") for path in (ROOT / "reconcile").rglob("*.py"))
    names = set(re.findall(r'"((?:MARKETO|RECONCILE|GITHUB|GH|RUNNER)_[A-Z_]+)"', code)) | {"NO_COLOR", "TERM"}
    names = {name for name in names if not any(other.startswith(name + "_") for other in names)}  # prefixes
    table = (DOCS / "environment.md").read_text(encoding="utf-8")
    assert len(names) > 15
    assert sorted(name for name in names if f"`{name}`" not in table) == []


def test_the_site_lists_every_page_and_only_pages_that_exist() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    def pages_of(entries) -> list[str]:
        found = []
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            found += pages_of(value) if isinstance(value, list) else [value]
        return found

    pages = pages_of(config["nav"])
    assert len(pages) == len(set(pages)) and "emulator-fidelity.md" in pages
    assert all((DOCS / page).is_file() for page in pages)
    # (a page left out of the nav fails `mkdocs build --strict`: validation.omitted_files is a warning)
    assert config["validation"]["omitted_files"] == "warn" and config["strict"] is True
    for link in re.findall(r"\]\((docs/[\w.-]+\.md)", README):
        assert (ROOT / link).is_file(), link


def test_the_apply_workflow_gives_a_rest_apply_its_foreign_id_field() -> None:
    apply = yaml.safe_load((ROOT / ".github/workflows/reconcile-apply.yml").read_text(encoding="utf-8"))
    step = next(s for s in apply["jobs"]["apply"]["steps"] if s.get("uses") == "./")
    assert step["with"]["foreign-id-field"] == "${{ vars.RECONCILE_FOREIGN_ID_FIELD }}"
    action = (ROOT / "action.yml").read_text(encoding="utf-8")
    plan_step = next(s for s in yaml.safe_load(action)["runs"]["steps"] if s.get("id") == "plan")
    assert plan_step["env"]["RECONCILE_FOREIGN_ID_FIELD"] == "${{ inputs.foreign-id-field }}"


def test_recovery_commits_the_state_directory_with_the_top_file() -> None:
    for text in (README, (DOCS / "recovery.md").read_text(encoding="utf-8")):
        adds = re.findall(r"git add [^\n&]*", text)
        assert adds and all("reconcile.state.d" in add for add in adds if "reconcile.state.json" in add)


def test_help_and_description_name_rest_first() -> None:
    help_text = subprocess.run([sys.executable, "-m", "reconcile", "--help"], capture_output=True, text=True,
                               env={"COLUMNS": "200", "PATH": ""}).stdout
    assert "→ syncMultipleLeads" not in help_text and "REST Sync Leads" in help_text
    description = re.search(r'^description = "(.*)"$', (ROOT / "pyproject.toml").read_text(), re.M)[1]
    assert "REST" in description and "syncMultipleLeads" not in description
