"""Admin endpoints: what happens in Marketo behind an API client's back, for drift and merge tests.

Routes (JSON in and out; not Marketo API calls, so no token, no limits, no injected faults):
  GET    /_emulator/leads          the lead database, sorted by id
  POST   /_emulator/leads/<id>     edit a lead as a person in Marketo's UI would: a JSON object of
                                   field -> value (SOAP or REST field names; null or "" clears;
                                   `Email`/`email` changes the email). Read-only fields -> 400.
  DELETE /_emulator/leads/<id>     delete a lead (and take it off every static list)
  POST   /_emulator/merge          {"winner": ID, "loser": ID}: merge two leads as Marketo does.
                                   The winner keeps its id and every value it has; a field it lacks
                                   (and its email or foreign ID, if it has none) takes the loser's
                                   value. The loser disappears: reads by its id find nothing.
                                   The winner joins every static list the loser was on.
  /_emulator/lists...              static lists and their members (see `lists_admin`)
Each is logged in the call log with api "admin" (operation "write", or "read" for the listing).
"""

from __future__ import annotations

import json
import re
from typing import Any

from reconcile.emulator import calls as calllog
from reconcile.emulator.fields import EMAIL
from reconcile.emulator.store import StoreError

ADMIN_PREFIX = "/_emulator/"
LEADS_PATH = "/_emulator/leads"
MERGE_PATH = "/_emulator/merge"
_LEAD_PATH = re.compile(r"^/_emulator/leads/(\d{1,12})$")
_MAX_BODY = 1024 * 1024


class AdminError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class AdminFace:
    api = calllog.ADMIN

    def __init__(self, emulator: Any):
        self._emulator = emulator

    def handles(self, path: str) -> bool:
        return path.startswith(ADMIN_PREFIX)

    def serve(self, handler: Any) -> bool:
        """Serve the request; False when no admin route matches (the caller answers 404)."""
        path, method = handler.url.path, handler.command
        lead_path = _LEAD_PATH.match(path)
        if path == LEADS_PATH and method in ("GET", "HEAD"):
            route, operation = (lambda h: self._emulator.leads()), calllog.READ
        elif lead_path and method == "POST":
            route, operation = (lambda h: self._edit(int(lead_path.group(1)), _json_body(h))), calllog.WRITE
        elif lead_path and method == "DELETE":
            route, operation = (lambda h: self._delete(int(lead_path.group(1)))), calllog.WRITE
        elif path == MERGE_PATH and method == "POST":
            route, operation = (lambda h: self._merge(_json_body(h))), calllog.WRITE
        elif (list_route := self._emulator.lists_admin.route(handler)) is not None:
            route, operation = list_route
        else:
            return False
        emulator = self._emulator
        call = emulator.new_call(handler, self.api, operation)
        emulator.run_call(handler, call, lambda: self._answer(handler, call, route),
                          lambda: _send(handler, 500, {"error": "internal error"}))
        return True

    def _answer(self, handler: Any, call: Any, route: Any) -> None:
        try:
            document = route(handler)
        except AdminError as error:
            call.code = str(error.status)
            _send(handler, error.status, {"error": error.message})
            return
        _send(handler, 200, document, indent=2)

    # -- the edits ----------------------------------------------------------------------------------

    def _edit(self, lead_id: int, changes: Any) -> dict:
        if not isinstance(changes, dict) or not changes:
            raise AdminError(400, "expected a JSON object of field -> value")
        edits = []
        for name, value in changes.items():
            field = self._emulator.fields.by_any(name)
            if field is None:
                raise AdminError(400, f"unknown field {name!r}")
            if field.read_only:
                raise AdminError(400, f"field {name!r} is read-only")
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise AdminError(400, f"the value of {name!r} must be a scalar")
            text = value if isinstance(value, str) or value is None else json.dumps(value)
            edits.append((field, text or None))
        with self._transaction() as tx:
            lead = _existing(tx, lead_id)
            tx.change(lead)
            for field, text in edits:
                if field.rest_name == EMAIL:
                    tx.set_email(lead, text)
                else:
                    tx.set_attribute(lead, field.soap_name, text)
            return _copy(lead)

    def _delete(self, lead_id: int) -> dict:
        with self._transaction() as tx:
            _existing(tx, lead_id)
            tx.delete(lead_id)
        self._emulator.lists.forget_leads([lead_id])
        return {"deleted": lead_id}

    def _merge(self, request: Any) -> dict:
        ids = [request.get(k) for k in ("winner", "loser")] if isinstance(request, dict) else []
        if len(ids) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise AdminError(400, 'expected {"winner": LEAD_ID, "loser": LEAD_ID}')
        winner_id, loser_id = ids
        if winner_id == loser_id:
            raise AdminError(400, "a lead cannot be merged into itself")
        with self._transaction() as tx:
            winner, loser = _existing(tx, winner_id), _existing(tx, loser_id)
            loser_email, loser_fsp = loser["email"], (loser["foreignSysPersonId"], loser["foreignSysType"])
            loser_attributes = dict(loser["attributes"])
            tx.change(winner)
            tx.delete(loser_id)
            if winner["email"] is None and loser_email is not None:
                tx.set_email(winner, loser_email)
            if winner["foreignSysPersonId"] is None and loser_fsp[0] is not None:
                tx.set_fsp(winner, *loser_fsp)
            for name, value in loser_attributes.items():
                if value is not None and winner["attributes"].get(name) is None:
                    tx.set_attribute(winner, name, value)
            merged = {"winner": _copy(winner), "merged": loser_id}
        self._emulator.lists.transfer(loser_id, winner_id)  # Marketo's merged lead keeps both leads' lists
        return merged

    def _transaction(self) -> Any:
        return _Transaction(self._emulator.store)


class _Transaction:
    """The store's transaction, with a database write failure reported as HTTP 500."""

    def __init__(self, store: Any):
        self._context = store.transaction()

    def __enter__(self) -> Any:
        return self._context.__enter__()

    def __exit__(self, *exc_info: Any) -> bool:
        try:
            return bool(self._context.__exit__(*exc_info))
        except StoreError as error:
            raise AdminError(500, f"the lead database could not be written: {error}") from None


def _existing(tx: Any, lead_id: int) -> dict:
    lead = tx.lead(lead_id)
    if lead is None:
        raise AdminError(404, f"no lead with id {lead_id}")
    return lead


def _copy(lead: dict) -> dict:
    return {**lead, "attributes": dict(lead["attributes"])}


def _json_body(handler: Any) -> Any:
    body, problem = handler.read_body(_MAX_BODY)
    if problem is not None:
        raise AdminError(413 if problem == "size" else 400, "a JSON body of at most 1 MB, with a Content-Length")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise AdminError(400, "the body is not JSON") from None


def _send(handler: Any, status: int, document: Any, indent: int | None = None) -> None:
    text = json.dumps(document, indent=indent, ensure_ascii=False) + "\n"
    handler.send(status, text.encode("utf-8"), "application/json")
