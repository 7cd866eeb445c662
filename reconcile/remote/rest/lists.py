"""Static lists and Delete Leads through Marketo's REST API (../shared/marketo-rest-facts.md, "Static
lists and membership" and "Delete Leads").

Every call goes through `RestClient.call`: the same access token, rate limiter, concurrency slots,
retries and daily quota handling as Sync Leads. Each call is safe to send again: adding a member
twice leaves it on the list once, removing or deleting again answers "not on the list" or "lead not
found" (1015 / 1004), which the outcomes say plainly.

  - `find(name)`: the lists with exactly that name (the asset API's `staticList/byName`)
  - `all_lists()`: every static list (`/rest/v1/lists.json`, paged)
  - `add` / `remove`: Add to List / Remove from List, at most 300 lead IDs a call
  - `members`: a list's lead IDs, 300 a page
  - `delete_leads`: Delete Leads, at most 300 IDs a call

A set of IDs bigger than one call is sent as several calls, one after the other; if one fails, the
error says (`outcome_unknown`) that earlier calls of the set were applied.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Sequence
from urllib.parse import quote, urlencode

from reconcile.errors import ResponseError
from reconcile.remote.base import RetryInfo, mark_outcome
from reconcile.remote.membership import LeadOutcome, Outcome, StaticList, chunked, distinct
from reconcile.remote.rest import answers, codes
from reconcile.remote.rest.client import JSON, RestClient

MAX_IDS = 300
PAGE_SIZE = 300
BY_NAME_PATH = "/rest/asset/v1/staticList/byName.json"
LISTS_PATH = "/rest/v1/lists.json"
DELETE_PATH = "/rest/v1/leads/delete.json"

# What an API-only user's role needs (Marketo Admin → Users & Roles → Roles).
LIST_PERMISSION = "Read-Write Lead"
ASSET_PERMISSION = "Read-Only Assets"
DELETE_PERMISSION = "Read-Write Lead"

_DONE = {"added": Outcome.ADDED, "removed": Outcome.REMOVED, "deleted": Outcome.DELETED,
         "memberof": Outcome.MEMBER, "notmemberof": Outcome.NOT_MEMBER}
_SKIPPED = {codes.LEAD_NOT_FOUND: Outcome.LEAD_NOT_FOUND, codes.NOT_IN_LIST: Outcome.NOT_ON_LIST}

Stop = threading.Event | None
OnRetry = Callable[[RetryInfo], None] | None


class RestLists:
    """The list and delete calls of one instance, through `client`. Thread-safe as the client is."""

    def __init__(self, client: RestClient):
        self.client = client

    # -- finding lists ------------------------------------------------------------------------------

    def find(self, name: str, stop: Stop = None) -> list[StaticList]:
        """The static lists named exactly `name` (case-sensitive): none, one, or several."""
        answer = self.client.call("GET", f"{BY_NAME_PATH}?{urlencode({'name': name})}",
                                  permission=ASSET_PERMISSION, resend_safe=True, stop=stop)
        # the lead files name lists case-sensitively, whatever matching the instance does
        return [found for found in map(_static_list, answer.result) if found.name == name]

    def all_lists(self, stop: Stop = None) -> list[StaticList]:
        found: list[StaticList] = []
        params = {"batchSize": str(PAGE_SIZE)}
        while True:
            answer = self.client.call("GET", f"{LISTS_PATH}?{urlencode(params)}", permission=LIST_PERMISSION,
                                      resend_safe=True, stop=stop)
            found.extend(map(_static_list, answer.result))
            if answer.next_page_token is None or not answer.result:
                return found
            params["nextPageToken"] = answer.next_page_token

    # -- membership ---------------------------------------------------------------------------------

    def add(self, list_id: int, lead_ids: Sequence[int], *, stop: Stop = None,
            on_retry: OnRetry = None) -> list[LeadOutcome]:
        """Add to List: one outcome per distinct ID, in order (ADDED, LEAD_NOT_FOUND or FAILED)."""
        return self._each_call(lead_ids, lambda ids: self._membership("POST", list_id, ids, stop, on_retry))

    def remove(self, list_id: int, lead_ids: Sequence[int], *, stop: Stop = None,
               on_retry: OnRetry = None) -> list[LeadOutcome]:
        """Remove from List: REMOVED, NOT_ON_LIST, LEAD_NOT_FOUND or FAILED per distinct ID."""
        return self._each_call(lead_ids, lambda ids: self._membership("DELETE", list_id, ids, stop, on_retry))

    def members(self, list_id: int, stop: Stop = None) -> list[int]:
        """Every lead ID on the list, read 300 a page."""
        ids: list[int] = []
        params = {"fields": "id", "batchSize": str(PAGE_SIZE)}
        while True:
            answer = self.client.call("GET", f"{_members_path(list_id)}?{urlencode(params)}",
                                      permission=LIST_PERMISSION, resend_safe=True, stop=stop)
            ids.extend(_lead_id(row, "member") for row in answers.lead_rows(answer))
            if answer.next_page_token is None or not answer.result:
                return ids
            params["nextPageToken"] = answer.next_page_token

    # -- Delete Leads -------------------------------------------------------------------------------

    def delete_leads(self, lead_ids: Sequence[int], *, stop: Stop = None,
                     on_retry: OnRetry = None) -> list[LeadOutcome]:
        """Delete Leads: DELETED, LEAD_NOT_FOUND or FAILED per distinct ID. Cannot be undone."""
        def call(ids: list[int]) -> list[LeadOutcome]:
            answer = self.client.call("POST", DELETE_PATH, body=_input(ids), content_type=JSON,
                                      permission=DELETE_PERMISSION, resend_safe=True, stop=stop, on_retry=on_retry)
            return outcomes(answer, ids)
        return self._each_call(lead_ids, call)

    # -- the calls ----------------------------------------------------------------------------------

    def _membership(self, method: str, list_id: int, ids: list[int], stop: Stop, on_retry: OnRetry) -> list[LeadOutcome]:
        # a removal goes as POST with _method=DELETE: a DELETE with a body is the call's other form,
        # and not every proxy between here and Marketo passes a DELETE's body on
        path = _members_path(list_id) + ("?_method=DELETE" if method == "DELETE" else "")
        answer = self.client.call("POST", path, body=_input(ids), content_type=JSON, permission=LIST_PERMISSION,
                                  resend_safe=True, stop=stop, on_retry=on_retry)
        return outcomes(answer, ids)

    @staticmethod
    def _each_call(lead_ids: Sequence[int], call: Callable[[list[int]], list[LeadOutcome]]) -> list[LeadOutcome]:
        results: list[LeadOutcome] = []
        for number, ids in enumerate(chunked(distinct(lead_ids), MAX_IDS)):
            try:
                results.extend(call(ids))
            except BaseException as exc:
                raise mark_outcome(exc, True) if number else exc  # the calls before it were applied
        return results


def outcomes(answer: answers.Answer, ids: list[int]) -> list[LeadOutcome]:
    """One outcome per ID sent, in the order sent, from an answer's per-ID results."""
    by_id: dict[int, LeadOutcome] = {}
    for position, item in enumerate(answer.result):
        if not isinstance(item, dict):
            raise ResponseError(f"result {position + 1} of Marketo's answer is not an object")
        lead_id = _lead_id(item, f"result {position + 1}")
        status = item.get("status")
        if status in _DONE:
            by_id[lead_id] = LeadOutcome(lead_id, _DONE[status])
        elif status == "skipped":
            reasons = item.get("reasons")
            first = reasons[0].get("code") if isinstance(reasons, list) and reasons and isinstance(
                reasons[0], dict) else None
            by_id[lead_id] = LeadOutcome(lead_id, _SKIPPED.get(str(first), Outcome.FAILED),
                                         answers.reasons_text(reasons))
        else:
            raise ResponseError(f"result {position + 1} of Marketo's answer has an unknown status "
                                f"{answers.clean(status, 40)!r}")
    missing = [i for i in ids if i not in by_id]
    if missing or len(by_id) != len(ids):
        raise ResponseError(f"Marketo answered {len(answer.result)} result(s) for {len(ids)} lead ID(s); "
                            "the answers cannot be matched to the leads")
    return [by_id[i] for i in ids]


def _input(ids: list[int]) -> bytes:
    return json.dumps({"input": [{"id": i} for i in ids]}, separators=(",", ":")).encode("ascii")


def _members_path(list_id: int) -> str:
    return f"/rest/v1/lists/{quote(str(int(list_id)))}/leads.json"


def _lead_id(item: dict, what: str) -> int:
    lead_id = item.get("id") if isinstance(item, dict) else None
    if not isinstance(lead_id, int) or isinstance(lead_id, bool):
        raise ResponseError(f"{what} of Marketo's answer has no lead ID")
    return lead_id


def _static_list(item: Any) -> StaticList:
    if not isinstance(item, dict) or not isinstance(item.get("id"), int) or not isinstance(item.get("name"), str):
        raise ResponseError("a static list in Marketo's answer has no ID or name")
    folder = item.get("folder")
    folder_id = folder.get("id") if isinstance(folder, dict) and isinstance(folder.get("id"), int) else None
    return StaticList(id=item["id"], name=item["name"], folder_id=folder_id)
