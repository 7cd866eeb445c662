"""A million leads repeat a few thousand attribute names and values: held once each, they take half
the memory (the README's 1M-lead peak RSS). Both the leads read from lead files and a state parsed
(not from the cache) hold each distinct name and value as one string object, across files."""

from __future__ import annotations

import json
from pathlib import Path

from reconcile.inputs import cache, validate
from conftest import v1_state


def lead_file(first: int) -> str:
    return "leads:\n" + "".join(f"  - email: lead{i}@example.com\n    attributes:\n      Title: Chief Executive\n"
                                for i in range(first, first + 2))


def test_leads_of_different_files_share_their_names_and_values(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(lead_file(0))
    (tmp_path / "b.yaml").write_text(lead_file(2))
    leads = validate.load_desired(tmp_path, cache_dir=tmp_path / "cache").leads
    assert len(leads) == 4
    names = {id(name) for lead in leads for name in lead.attributes}
    values = {id(value) for lead in leads for value in lead.attributes.values()}
    assert (len(names), len(values)) == (1, 1)


def test_a_parsed_state_shares_its_names_and_values(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(cache, "MIN_INPUT_BYTES", 0)
    leads = {f"email:lead{i}@example.com": {"leadId": 100 + i, "email": f"lead{i}@example.com", "foreignSysPersonId": None,
                                            "foreignSysType": None, "syncedAt": None,
                                            "attributes": {"Title": "Chief Executive"}} for i in range(3)}
    path = tmp_path / "reconcile.state.json"
    path.write_text(json.dumps(v1_state(leads, serial=1)))
    state = cache.load_state(path, tmp_path / "cache")
    assert len(state.leads) == 3
    assert len({id(value) for lead in state.leads.values() for value in lead.attributes.values()}) == 1
    assert len({id(name) for lead in state.leads.values() for name in lead.attributes}) == 1
