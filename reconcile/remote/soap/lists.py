"""Static list membership through mktows `listOperation` (../shared/marketo-rest-facts.md, "Static
lists and membership": ADDTOLIST / REMOVEFROMLIST / ISMEMBEROFLIST, the list by MKTOLISTNAME, leads as
IDNUM keys, at most 1,000 a call, optional strict).

`build_list_request` makes the signed envelope, validated against the bundled XSD like every
syncMultipleLeads envelope; `parse_list_response` reads `successListOperation` (a fault raises
`SoapFault`). `SoapLists` sends through a `SoapTransport`: its limits, retries, re-signing and
fault handling. SOAP has no call that deletes a lead.

The answer has one `leadStatus` per lead key: true when the lead is on the list after ADDTOLIST (false:
no such lead), taken off by REMOVEFROMLIST (false: not on it, or no such lead), a member for
ISMEMBEROFLIST. A set of more than 1,000 leads is sent as several calls, one after the other; if one
fails, the error says (`outcome_unknown`) that earlier calls of the set were applied.
"""

from __future__ import annotations

import threading
from typing import Callable, Sequence

from reconcile.errors import ResponseError
from reconcile.remote.base import RetryInfo, mark_outcome
from reconcile.remote.membership import LeadOutcome, Outcome, chunked, distinct
from reconcile.remote.soap.envelope import (EnvelopeInvalid, checked_text, container, leaf, signed_envelope,
                                            success_element, validate_outgoing)
from reconcile.remote.soap.transport import SoapTransport
from reconcile.remote.soap.wire import TAG_AUTH, TAG_BODY, TAG_HEADER, TAG_LIST_PARAMS, TAG_LIST_SUCCESS

LIST_SOAP_ACTION = "http://www.marketo.com/mktows/listOperation"
MAX_LIST_LEADS = 1000
ADD_TO_LIST = "ADDTOLIST"
REMOVE_FROM_LIST = "REMOVEFROMLIST"
IS_MEMBER_OF_LIST = "ISMEMBEROFLIST"
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

# What a leadStatus of each operation means (true, false).
_MEANING = {ADD_TO_LIST: (Outcome.ADDED, Outcome.LEAD_NOT_FOUND),
            REMOVE_FROM_LIST: (Outcome.REMOVED, Outcome.NOT_ON_LIST),
            IS_MEMBER_OF_LIST: (Outcome.MEMBER, Outcome.NOT_MEMBER)}


def build_list_request(operation: str, list_name: str, lead_ids: Sequence[int], *, user_id: str,
                       encryption_key: str, timestamp: str, strict: bool | None = None) -> bytes:
    """The signed paramsListOperation envelope; EnvelopeInvalid (never sent) if it breaks the XSD."""
    from lxml import etree

    if len(lead_ids) > MAX_LIST_LEADS:
        raise EnvelopeInvalid(f"invalid mktows envelope (not sent): {len(lead_ids)} leads; listOperation "
                              f"takes at most {MAX_LIST_LEADS}")
    envelope = signed_envelope(etree, user_id=user_id, encryption_key=encryption_key, timestamp=timestamp)
    params = container(etree, container(etree, envelope, TAG_BODY), TAG_LIST_PARAMS)
    leaf(etree, params, "listOperation", checked_text(operation, "listOperation", optional=False))
    list_key = container(etree, params, "listKey")
    leaf(etree, list_key, "keyType", "MKTOLISTNAME")
    leaf(etree, list_key, "keyValue", checked_text(list_name, "listKey keyValue", optional=False))
    members = container(etree, params, "listMemberList")
    for position, lead_id in enumerate(lead_ids):
        if isinstance(lead_id, bool) or not isinstance(lead_id, int) or lead_id < 1:
            raise EnvelopeInvalid(f"invalid mktows envelope (not sent): leadKey[{position + 1}] must be a "
                                  f"lead ID, not {lead_id!r}")
        lead_key = container(etree, members, "leadKey")
        leaf(etree, lead_key, "keyType", "IDNUM")
        leaf(etree, lead_key, "keyValue", str(lead_id))
    if strict is not None:
        leaf(etree, params, "strict", "true" if strict else "false")
    data = _XML_DECLARATION + etree.tostring(envelope, encoding="UTF-8") + b"\n"
    validate_outgoing(data, (TAG_HEADER + "/" + TAG_AUTH, TAG_BODY + "/" + TAG_LIST_PARAMS))
    return data


def parse_list_response(body: bytes, http_status: int, operation: str, lead_ids: Sequence[int]) -> list[LeadOutcome]:
    """One outcome per lead ID sent, in order, from a successListOperation answer."""
    result = success_element(body, http_status, TAG_LIST_SUCCESS).find("result")
    statuses: dict[int, bool] = {}
    status_list = result.find("statusList")
    for item in status_list.iterchildren("leadStatus") if status_list is not None else ():
        key = item.find("leadKey")
        value = (key.findtext("keyValue") or "").strip()
        if key.findtext("keyType") != "IDNUM" or not (value.isascii() and value.isdigit()):
            raise ResponseError("a leadStatus of Marketo's listOperation answer has no IDNUM key")
        statuses[int(value)] = item.findtext("status").strip() in ("true", "1")
    missing = [lead_id for lead_id in lead_ids if lead_id not in statuses]
    if missing:
        raise ResponseError(f"Marketo's listOperation answer has no status for {len(missing)} of "
                            f"{len(lead_ids)} lead(s); the answers cannot be matched to the leads")
    yes, no = _MEANING[operation]
    return [LeadOutcome(lead_id, yes if statuses[lead_id] else no) for lead_id in lead_ids]


class SoapLists:
    """listOperation calls through `transport` (thread-safe as it is)."""

    def __init__(self, transport: SoapTransport):
        self.transport = transport

    def add(self, list_name: str, lead_ids: Sequence[int], *, stop: threading.Event | None = None,
            on_retry: Callable[[RetryInfo], None] | None = None) -> list[LeadOutcome]:
        return self._each_call(ADD_TO_LIST, list_name, lead_ids, stop, on_retry)

    def remove(self, list_name: str, lead_ids: Sequence[int], *, stop: threading.Event | None = None,
               on_retry: Callable[[RetryInfo], None] | None = None) -> list[LeadOutcome]:
        return self._each_call(REMOVE_FROM_LIST, list_name, lead_ids, stop, on_retry)

    def is_member(self, list_name: str, lead_ids: Sequence[int], *,
                  stop: threading.Event | None = None) -> list[LeadOutcome]:
        return self._each_call(IS_MEMBER_OF_LIST, list_name, lead_ids, stop, None)

    def _each_call(self, operation: str, list_name: str, lead_ids: Sequence[int], stop: threading.Event | None,
                   on_retry: Callable[[RetryInfo], None] | None) -> list[LeadOutcome]:
        results: list[LeadOutcome] = []
        for number, ids in enumerate(chunked(distinct(lead_ids), MAX_LIST_LEADS)):
            def build(user_id: str, key: str, timestamp: str, ids: list[int] = ids) -> bytes:
                return build_list_request(operation, list_name, ids, user_id=user_id, encryption_key=key,
                                          timestamp=timestamp)

            def parse(content: bytes, status: int, ids: list[int] = ids) -> list[LeadOutcome]:
                return parse_list_response(content, status, operation, ids)

            try:
                results.extend(self.transport.call(build, LIST_SOAP_ACTION, parse, stop=stop, on_retry=on_retry))
            except BaseException as exc:
                raise mark_outcome(exc, True) if number else exc  # the calls before it were applied
        return results
