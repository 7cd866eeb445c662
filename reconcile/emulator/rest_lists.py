"""The REST face's static list calls and Delete Leads (../shared/marketo-rest-facts.md, "Static lists
and membership" and "Delete Leads").

Routes (each checked as every REST call is, see `rest_api`: size, token, request, limits, faults)
  GET    /rest/asset/v1/staticList/byName.json?name=     one list by its exact name
  GET    /rest/asset/v1/staticList/<id>.json             one list by ID
  POST   /rest/asset/v1/staticLists.json                 create (form: name, folder={"id":N,"type":"Folder"})
  GET    /rest/v1/lists.json?id=&name=                   lists by IDs and/or names (comma-separated)
  GET    /rest/v1/lists/<id>.json                        one list
  POST   /rest/v1/lists/<id>/leads.json                  Add to List
  DELETE /rest/v1/lists/<id>/leads.json                  Remove from List (also POST ...?_method=DELETE)
  GET    /rest/v1/lists/<id>/leads.json                  the members, paged (also /rest/v1/list/<id>/...,
                                                         and POST with _method=GET and a form body)
  GET    /rest/v1/lists/<id>/leads/ismember.json         membership (also POST with _method=GET)
  POST   /rest/v1/leads/delete.json                      Delete Leads (also DELETE /rest/v1/leads.json)

Lead IDs come as `?id=1&id=2` (or `id=1,2`) or as a JSON body `{"input": [{"id": 1}, ...]}`; at most
300 a call. A request with no IDs, more than 300, or IDs that are not integers is 1003 at call level,
as Sync Leads' oversized input is (see `rest_api`). A list ID the instance does not have is 610
("resource not found"), the facts' code for a URL that names nothing. Per ID, in input order: `added`,
`removed`, `memberof` / `notmemberof`, `deleted`, or `skipped` with 1004 when no lead has the ID, and
for a removal of a lead that is not on the list, 1015 (Marketo's record-level "Lead not in list").
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
from typing import Any, Callable

from reconcile.emulator import calls as calllog
from reconcile.emulator.lists import MAX_NAME_LENGTH, ListStoreError
from reconcile.emulator.reasons import Reason
from reconcile.emulator.rest_api import JSON_TYPE, REASON_CODES, CallError, _fields, _form, _lead_view
from reconcile.emulator.store import StoreError
from reconcile.remote.rest import codes

MAX_IDS = 300
MAX_PAGE = 300
BY_NAME_PATH = "/rest/asset/v1/staticList/byName.json"
CREATE_PATH = "/rest/asset/v1/staticLists.json"
LISTS_PATH = "/rest/v1/lists.json"
DELETE_PATH = "/rest/v1/leads/delete.json"
LEADS_PATH = "/rest/v1/leads.json"
_ASSET_PATH = re.compile(r"^/rest/asset/v1/staticList/(\d{1,12})\.json$")
_LIST_PATH = re.compile(r"^/rest/v1/lists/(\d{1,12})\.json$")
_MEMBERS_PATH = re.compile(r"^/rest/v1/lists?/(\d{1,12})/leads\.json$")
_ISMEMBER_PATH = re.compile(r"^/rest/v1/lists/(\d{1,12})/leads/ismember\.json$")
NO_ASSETS = "No assets found for the given search criteria."

Work = Callable[[Any, Any], "dict | None"]


class RestLists:
    """The list and delete routes of one emulator's REST face (see the module docstring)."""

    def __init__(self, emulator: Any, face: Any):
        self._emulator = emulator
        self._face = face

    def route(self, handler: Any) -> tuple[str, Work] | None:
        """(operation, work) for `RestFace._serve`, or None when the request is not a list call."""
        path, method = handler.url.path, handler.command
        override = handler.query_value("_method") if method == "POST" else None
        method = (override or method).upper()
        members, ismember = _MEMBERS_PATH.match(path), _ISMEMBER_PATH.match(path)
        one = _ASSET_PATH.match(path) or _LIST_PATH.match(path)
        if path == BY_NAME_PATH and method == "GET":
            return calllog.READ, self._by_name
        if path == CREATE_PATH and method == "POST":
            return calllog.WRITE, self._create
        if path == LISTS_PATH and method == "GET":
            return calllog.READ, self._lists
        if one and method == "GET":
            return calllog.READ, lambda h, c: self._one(h, c, int(one.group(1)))
        if members and method == "GET":
            return calllog.READ, lambda h, c: self._members(h, c, int(members.group(1)))
        if members and method in ("POST", "DELETE") and path.startswith("/rest/v1/lists/"):
            add = method == "POST"
            return calllog.WRITE, lambda h, c: self._membership(h, c, int(members.group(1)), add)
        if ismember and method == "GET":
            return calllog.READ, lambda h, c: self._is_member(h, c, int(ismember.group(1)))
        if (path == DELETE_PATH and method == "POST") or (path == LEADS_PATH and method == "DELETE"):
            return calllog.WRITE, self._delete_leads
        return None

    # -- finding and creating lists -----------------------------------------------------------------

    def _by_name(self, handler: Any, call: Any) -> dict | None:
        name = handler.query_value("name")
        if not name:
            raise CallError(codes.INVALID_DATA, "Invalid data: name is required")
        found = self._emulator.lists.named(name)
        if not self._go(handler, call)[0]:
            return None
        if not found:  # the asset API's "nothing matched": a warning and no result
            return {"success": True, "warnings": [NO_ASSETS]}
        return {"success": True, "warnings": [], "result": [_asset(entry) for entry in found]}

    def _one(self, handler: Any, call: Any, list_id: int) -> dict | None:
        entry = self._existing(list_id)
        if not self._go(handler, call)[0]:
            return None
        view = _asset(entry) if handler.url.path.startswith("/rest/asset/") else _list(entry)
        return {"success": True, "result": [view]}

    def _lists(self, handler: Any, call: Any) -> dict | None:
        query = _params(handler)
        ids, names = _split(query, "id"), _split(query, "name")
        if not all(i.isascii() and i.isdigit() for i in ids):
            raise CallError(codes.INVALID_DATA, "Invalid data: id must be list IDs")
        if not self._go(handler, call)[0]:
            return None
        wanted = {int(i) for i in ids}
        found = [entry for entry in self._emulator.lists.lists()
                 if (not ids and not names) or entry["id"] in wanted or entry["name"] in names]
        return {"success": True, "result": [_list(entry) for entry in found]}

    def _create(self, handler: Any, call: Any) -> dict | None:
        form = _form(handler)
        name, folder = form.get("name", ""), _folder(form.get("folder"))
        if not name.strip() or len(name) > MAX_NAME_LENGTH:
            raise CallError(codes.INVALID_DATA, f"Invalid data: name must be 1 to {MAX_NAME_LENGTH} characters")
        go, created = self._go(handler, call, lambda: self._emulator.lists.create(name, folder,
                                                                                   form.get("description")))
        return {"success": True, "warnings": [], "result": [_asset(created)]} if go else None

    # -- membership ---------------------------------------------------------------------------------

    def _membership(self, handler: Any, call: Any, list_id: int, add: bool) -> dict | None:
        ids = _lead_ids(handler)
        self._existing(list_id)
        call.records = len(ids)
        go, results = self._go(handler, call, lambda: self._change_members(list_id, ids, add))
        return {"success": True, "result": results} if go else None

    def _change_members(self, list_id: int, ids: list[int], add: bool) -> list[dict]:
        lists = self._emulator.lists
        with self._emulator.store.transaction() as tx:  # a lead deleted meanwhile is not put on a list
            present = {i for i in set(ids) if tx.lead(i) is not None}
            on_list = {i for i in present if lists.is_member(list_id, i)}
            results = []
            for lead_id in ids:
                if lead_id not in present:
                    results.append(_skipped(lead_id, codes.LEAD_NOT_FOUND))
                elif add:
                    results.append({"id": lead_id, "status": "added"})
                elif lead_id in on_list:
                    on_list.discard(lead_id)
                    results.append({"id": lead_id, "status": "removed"})
                else:
                    results.append(_skipped(lead_id, codes.NOT_IN_LIST))
            (lists.add if add else lists.remove)(list_id, present)
        return results

    def _members(self, handler: Any, call: Any, list_id: int) -> dict | None:
        query = _params(handler)
        fields = _fields(self._emulator.fields, query.get("fields"))
        batch_size = _batch_size(query.get("batchSize"))
        after = _after(query.get("nextPageToken"), list_id)
        self._existing(list_id)
        if not self._go(handler, call)[0]:
            return None
        members = self._emulator.lists.members(list_id)
        start = bisect.bisect_right(members, after)
        page, more = members[start:start + batch_size], start + batch_size < len(members)
        leads = self._emulator.store.select("id", page)
        call.records = len(leads)
        answer: dict = {"success": True, "result": [_lead_view(lead, fields) for lead in leads], "moreResult": more}
        if more:
            answer["nextPageToken"] = _page_token(list_id, page[-1])
        return answer

    def _is_member(self, handler: Any, call: Any, list_id: int) -> dict | None:
        ids = _lead_ids(handler)
        self._existing(list_id)
        call.records = len(ids)
        if not self._go(handler, call)[0]:
            return None
        present = {lead["id"] for lead in self._emulator.store.select("id", ids)}
        lists = self._emulator.lists
        return {"success": True, "result": [
            _skipped(i, codes.LEAD_NOT_FOUND) if i not in present
            else {"id": i, "status": "memberof" if lists.is_member(list_id, i) else "notmemberof"} for i in ids]}

    # -- Delete Leads -------------------------------------------------------------------------------

    def _delete_leads(self, handler: Any, call: Any) -> dict | None:
        ids = _lead_ids(handler)
        call.records = len(ids)
        go, results = self._go(handler, call, lambda: self._delete(ids))
        return {"success": True, "result": results} if go else None

    def _delete(self, ids: list[int]) -> list[dict]:
        results, deleted = [], []
        with self._emulator.store.transaction() as tx:
            for lead_id in ids:
                if tx.lead(lead_id) is None:
                    results.append(_skipped(lead_id, codes.LEAD_NOT_FOUND))
                else:
                    tx.delete(lead_id)
                    deleted.append(lead_id)
                    results.append({"id": lead_id, "status": "deleted"})
        self._emulator.lists.forget_leads(deleted)
        return results

    # -- the call's steps ---------------------------------------------------------------------------

    def _existing(self, list_id: int) -> dict:
        entry = self._emulator.lists.get(list_id)
        if entry is None:
            raise CallError(codes.NOT_FOUND, f"Requested resource not found: no static list with id {list_id}")
        return entry

    def _go(self, handler: Any, call: Any, apply: Callable[[], Any] | None = None) -> tuple[bool, Any]:
        """Admit the call, draw its fault and run `apply`: (True, what it returned), or (False, None)
        when the call has been answered here (refused, failed, or dropped after `apply`)."""
        decision = self._face._admit_and_inflict(handler, call)
        if decision is None:
            return False, None
        applied = None
        if apply is not None:
            try:
                applied = apply()
            except (StoreError, ListStoreError):
                calllog.log.exception("emulator: the database could not be written; call rolled back")
                raise CallError(REASON_CODES[Reason.INTERNAL_ERROR]) from None
        if decision.drop:
            call.outcome = calllog.DROPPED
            handler.drop()
            return False, None
        return True, applied


def _params(handler: Any) -> dict[str, str]:
    """The query, and for a POST with `_method=GET`, its form body: the same parameters."""
    params = {k: v for k, v in handler.query if k != "_method"}
    if handler.command == "POST":
        params.update(_form(handler))
    return params


def _split(query: dict[str, str], name: str) -> list[str]:
    return [part.strip() for part in query.get(name, "").split(",") if part.strip()]


def _lead_ids(handler: Any) -> list[int]:
    """The lead IDs of a list or delete call: `?id=` (repeated or comma-separated) or a JSON `input`."""
    texts = [part.strip() for key, value in handler.query if key == "id" for part in value.split(",")]
    content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if handler.body and content_type == JSON_TYPE:
        try:
            document = json.loads(handler.body)
        except (ValueError, UnicodeDecodeError):
            raise CallError(codes.INVALID_JSON) from None
        entries = document.get("input") if isinstance(document, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, dict) and set(e) == {"id"} for e in entries):
            raise CallError(codes.INVALID_DATA, 'Invalid data: expected {"input": [{"id": LEAD_ID}, ...]}')
        ids = [entry["id"] for entry in entries]
    elif all(text.isascii() and text.isdigit() for text in texts):
        ids = [int(text) for text in texts]
    else:
        raise CallError(codes.INVALID_DATA, "Invalid data: id must be lead IDs")
    if not ids or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids):
        raise CallError(codes.INVALID_DATA, "Invalid data: lead IDs (positive integers) are required")
    if len(ids) > MAX_IDS:
        raise CallError(codes.INVALID_DATA, f"Invalid data: {len(ids)} lead IDs; at most {MAX_IDS} are allowed")
    return ids


def _folder(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        folder = json.loads(text)
    except ValueError:
        folder = None
    if (not isinstance(folder, dict) or not isinstance(folder.get("id"), int) or isinstance(folder["id"], bool)
            or folder.get("type", "Folder") not in ("Folder", "Program")):
        raise CallError(codes.INVALID_DATA, 'Invalid data: folder must be {"id": N, "type": "Folder"}')
    return {"id": folder["id"], "type": folder.get("type", "Folder")}


def _batch_size(text: str | None) -> int:
    if text is None:
        return MAX_PAGE
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE:
        raise CallError(codes.INVALID_DATA, f"Invalid data: batchSize must be between 1 and {MAX_PAGE}")
    return int(text)


def _page_token(list_id: int, last_id: int) -> str:
    """Pages go by lead ID, so a member added or removed between pages moves no other member."""
    return base64.b32encode(f"list:{list_id}:after:{last_id}".encode()).decode().rstrip("=")


def _after(token: str | None, list_id: int) -> int:
    if not token:
        return 0
    try:
        parts = base64.b32decode(token + "=" * (-len(token) % 8)).decode().split(":")
        if len(parts) == 4 and parts[0] == "list" and parts[1] == str(list_id) and parts[3].isdigit():
            return int(parts[3])
    except (binascii.Error, ValueError):
        pass
    raise CallError(codes.INVALID_DATA, "Invalid data: invalid nextPageToken")


def _skipped(lead_id: int, code: str) -> dict:
    return {"id": lead_id, "status": "skipped", "reasons": [{"code": code, "message": codes.CODES[code].message}]}


def _asset(entry: dict) -> dict:
    """A list as the asset API shows it."""
    return {"id": entry["id"], "name": entry["name"], "description": entry["description"],
            "createdAt": entry["createdAt"], "updatedAt": entry["updatedAt"], "folder": dict(entry["folder"]),
            "workspace": "Default"}


def _list(entry: dict) -> dict:
    """A list as /rest/v1/lists.json shows it."""
    return {"id": entry["id"], "name": entry["name"], "description": entry["description"],
            "programName": None, "workspaceName": "Default", "createdAt": entry["createdAt"],
            "updatedAt": entry["updatedAt"]}
