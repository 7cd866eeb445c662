"""Admin endpoints for static lists: what a person does to lists in Marketo's UI, for tests and demos.

Routes (served by `admin.AdminFace`, with its guarding: JSON in and out, no token, no limits):
  GET  /_emulator/lists              every static list, sorted by id, with `memberCount`
  POST /_emulator/lists              {"name": NAME, "folder": FOLDER_ID, "description": TEXT} creates a
                                     list (folder and description optional); names need not be unique
  GET  /_emulator/lists/<id>         one list with `members`, its lead IDs ascending
  POST /_emulator/lists/<id>/leads   {"add": [LEAD_ID, ...], "remove": [LEAD_ID, ...]} changes the
                                     members as a person in the UI would: a lead that does not exist
                                     is 404 and nothing changes
"""

from __future__ import annotations

import re
from typing import Any, Callable

from reconcile.emulator import calls as calllog
from reconcile.emulator.admin import AdminError, _json_body
from reconcile.emulator.lists import MAX_NAME_LENGTH, ListStoreError

LISTS_PATH = "/_emulator/lists"
_LIST_PATH = re.compile(r"^/_emulator/lists/(\d{1,12})$")
_MEMBERS_PATH = re.compile(r"^/_emulator/lists/(\d{1,12})/leads$")


class ListsAdmin:
    def __init__(self, emulator: Any):
        self._emulator = emulator

    def route(self, handler: Any) -> tuple[Callable[[Any], Any], str] | None:
        """The route and operation (read or write) of a list admin request, or None if it is not one."""
        path, method = handler.url.path, handler.command
        one, members = _LIST_PATH.match(path), _MEMBERS_PATH.match(path)
        if path == LISTS_PATH and method in ("GET", "HEAD"):
            return self._listing, calllog.READ
        if path == LISTS_PATH and method == "POST":
            return (lambda h: self._create(_json_body(h))), calllog.WRITE
        if one and method in ("GET", "HEAD"):
            return (lambda h: self._one(int(one.group(1)))), calllog.READ
        if members and method == "POST":
            return (lambda h: self._change(int(members.group(1)), _json_body(h))), calllog.WRITE
        return None

    def _listing(self, handler: Any) -> list[dict]:
        lists = self._emulator.lists
        return [{**entry, "memberCount": len(self._live_members(entry["id"]))} for entry in lists.lists()]

    def _one(self, list_id: int) -> dict:
        entry = self._emulator.lists.get(list_id)
        if entry is None:
            raise AdminError(404, f"no static list with id {list_id}")
        return {**entry, "members": self._live_members(list_id)}

    def _create(self, request: Any) -> dict:
        if not isinstance(request, dict) or not isinstance(request.get("name"), str):
            raise AdminError(400, 'expected {"name": NAME} and optionally "folder": FOLDER_ID, "description"')
        name, folder, description = request["name"], request.get("folder"), request.get("description")
        if not name.strip() or len(name) > MAX_NAME_LENGTH:
            raise AdminError(400, f"a list name must be 1 to {MAX_NAME_LENGTH} characters")
        if folder is not None and (not isinstance(folder, int) or isinstance(folder, bool) or folder < 1):
            raise AdminError(400, "folder must be a folder ID (a positive integer)")
        if description is not None and not isinstance(description, str):
            raise AdminError(400, "description must be text")
        with _written():
            return self._emulator.lists.create(name, None if folder is None else {"id": folder, "type": "Folder"},
                                               description)

    def _change(self, list_id: int, request: Any) -> dict:
        if self._emulator.lists.get(list_id) is None:
            raise AdminError(404, f"no static list with id {list_id}")
        if not isinstance(request, dict) or not set(request) <= {"add", "remove"} or not request:
            raise AdminError(400, 'expected {"add": [LEAD_ID, ...], "remove": [LEAD_ID, ...]}')
        wanted = {key: _ids(request.get(key, []), key) for key in ("add", "remove")}
        lists = self._emulator.lists
        with self._emulator.store.transaction() as tx, _written():  # no lead is deleted meanwhile
            missing = sorted(i for ids in wanted.values() for i in ids if tx.lead(i) is None)
            if missing:
                raise AdminError(404, f"no lead with id {', '.join(map(str, missing[:20]))}")
            lists.add(list_id, wanted["add"])
            lists.remove(list_id, wanted["remove"])
        return self._one(list_id)

    def _live_members(self, list_id: int) -> list[int]:
        """The members the lead database still holds (see `lists`: a crash may leave deleted ones)."""
        members = self._emulator.lists.members(list_id)
        return [lead["id"] for lead in self._emulator.store.select("id", members)]


def _ids(value: Any, key: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        raise AdminError(400, f"{key} must be a list of lead IDs")
    return value


class _written:
    """A list database write failure, reported as HTTP 500."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> bool:
        if isinstance(error, ListStoreError):
            raise AdminError(500, f"the list database could not be written: {error}") from None
        return False
