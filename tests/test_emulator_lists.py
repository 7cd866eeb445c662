"""The emulator's static lists: the list database, its admin endpoints, and what deleting a lead does."""

from __future__ import annotations

import json

import requests

from reconcile.emulator import DEMO_LISTS, Emulator, EmulatorConfig, create_database
from reconcile.emulator.lists import ListStore, lists_path


def admin(emu, method: str, path: str, body=None) -> requests.Response:
    return requests.request(method, f"{emu.base_url}/_emulator{path}", json=body, timeout=10)


def make_leads(emu, *emails: str) -> list[int]:
    with emu.store.transaction() as tx:
        ids = []
        for email in emails:
            lead = tx.create()
            tx.set_email(lead, email)
            ids.append(lead["id"])
    return ids


def test_a_list_is_created_listed_and_its_members_changed_as_in_the_ui(emulator):
    ada, bob = make_leads(emulator, "ada@example.com", "bob@example.com")
    created = admin(emulator, "POST", "/lists", {"name": "VIP Customers", "folder": 34})
    assert created.status_code == 200, created.text
    vip = created.json()
    assert vip["name"] == "VIP Customers" and vip["folder"] == {"id": 34, "type": "Folder"}

    changed = admin(emulator, "POST", f"/lists/{vip['id']}/leads", {"add": [ada, bob]})
    assert changed.status_code == 200 and changed.json()["members"] == [ada, bob]
    changed = admin(emulator, "POST", f"/lists/{vip['id']}/leads", {"remove": [ada]})
    assert changed.json()["members"] == [bob]

    listing = admin(emulator, "GET", "/lists").json()
    assert [(entry["name"], entry["memberCount"]) for entry in listing] == [("VIP Customers", 1)]
    assert admin(emulator, "GET", f"/lists/{vip['id']}").json()["members"] == [bob]


def test_the_ui_cannot_put_a_missing_lead_on_a_list_nor_use_a_missing_list(emulator):
    (ada,) = make_leads(emulator, "ada@example.com")
    vip = admin(emulator, "POST", "/lists", {"name": "VIP"}).json()
    refused = admin(emulator, "POST", f"/lists/{vip['id']}/leads", {"add": [ada, 424242]})
    assert refused.status_code == 404 and "424242" in refused.json()["error"]
    assert emulator.lists.members(vip["id"]) == []  # nothing changed, not even the lead that exists
    assert admin(emulator, "POST", "/lists/999/leads", {"add": [ada]}).status_code == 404
    assert admin(emulator, "GET", "/lists/999").status_code == 404
    assert admin(emulator, "POST", "/lists", {"name": ""}).status_code == 400
    assert admin(emulator, "POST", f"/lists/{vip['id']}/leads", {"add": ["x"]}).status_code == 400


def test_list_admin_requests_are_logged_like_the_other_admin_endpoints(emulator):
    admin(emulator, "POST", "/lists", {"name": "VIP"})
    admin(emulator, "GET", "/lists")
    assert [(c.api, c.operation, c.http_status) for c in emulator.calls] == [
        ("admin", "write", 200), ("admin", "read", 200)]


def test_deleting_a_lead_takes_it_off_every_list(emulator):
    ada, bob = make_leads(emulator, "ada@example.com", "bob@example.com")
    first, second = (admin(emulator, "POST", "/lists", {"name": n}).json()["id"] for n in ("A", "B"))
    for list_id in (first, second):
        admin(emulator, "POST", f"/lists/{list_id}/leads", {"add": [ada, bob]})
    assert admin(emulator, "DELETE", f"/leads/{ada}").status_code == 200
    assert emulator.lists.members(first) == [bob] and emulator.lists.members(second) == [bob]


def test_a_merged_lead_keeps_the_lists_of_both(emulator):
    winner, loser = make_leads(emulator, "ada@example.com", "ada.old@example.com")
    first, second = (admin(emulator, "POST", "/lists", {"name": n}).json()["id"] for n in ("A", "B"))
    admin(emulator, "POST", f"/lists/{first}/leads", {"add": [winner]})
    admin(emulator, "POST", f"/lists/{second}/leads", {"add": [loser]})
    assert admin(emulator, "POST", "/merge", {"winner": winner, "loser": loser}).status_code == 200
    assert emulator.lists.members(first) == [winner] and emulator.lists.members(second) == [winner]


def test_lists_and_members_survive_a_restart(tmp_path, emulator_factory):
    emu = emulator_factory(db_path=tmp_path / "db.json")
    (ada,) = make_leads(emu, "ada@example.com")
    vip = admin(emu, "POST", "/lists", {"name": "VIP"}).json()["id"]
    admin(emu, "POST", f"/lists/{vip}/leads", {"add": [ada]})
    emu.stop()
    again = emulator_factory(db_path=tmp_path / "db.json")
    assert [entry["name"] for entry in again.lists.lists()] == ["VIP"]
    assert again.lists.members(vip) == [ada]
    assert lists_path(tmp_path / "db.json").exists()  # stopping folded the log into the snapshot


def test_the_list_log_replays_over_the_snapshot_and_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "db.lists.json"
    store = ListStore(path)
    vip = store.create("VIP")["id"]
    store.add(vip, [5, 6])
    store.remove(vip, [5])  # not closed: the changes are only in the log
    with open(path.with_name(path.name + ".log"), "ab") as log:
        log.write(b'{"op": "add", "list": ')  # a crash in the middle of a line
    again = ListStore(path)
    assert [entry["name"] for entry in again.lists()] == ["VIP"] and again.members(vip) == [6]
    assert again.create("Other")["id"] == vip + 1


def test_a_long_log_is_folded_into_the_snapshot(tmp_path, monkeypatch):
    from reconcile.emulator import lists

    monkeypatch.setattr(lists, "_MIN_LOG_BYTES", 200)
    path = tmp_path / "db.lists.json"
    store = ListStore(path)
    vip = store.create("VIP")["id"]
    for start in range(0, 100, 10):
        store.add(vip, range(start, start + 10))
    assert path.exists() and path.with_name(path.name + ".log").stat().st_size < 400
    assert ListStore(path).members(vip) == list(range(100))


def test_the_demo_instance_comes_with_its_lists(tmp_path):
    db = tmp_path / "emulator-db.json"
    assert create_database(db)
    document = json.loads(lists_path(db).read_text())
    assert [entry["name"] for entry in document["lists"]] == list(DEMO_LISTS)
    with Emulator(EmulatorConfig(db_path=db)) as emu:
        assert [entry["name"] for entry in emu.lists.lists()] == ["VIP Customers", "Webinar 2026-12"]


def test_a_demo_database_made_before_lists_existed_gets_them(tmp_path):
    from reconcile.emulator import store

    db = tmp_path / "emulator-db.json"
    store.create_database(db)
    assert not create_database(db)
    assert [entry["name"] for entry in ListStore(lists_path(db)).lists()] == list(DEMO_LISTS)
