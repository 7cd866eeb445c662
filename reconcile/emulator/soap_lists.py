"""The SOAP face's `listOperation`: static list membership through mktows (../shared/marketo-soap-facts.md
and the "Static lists and membership" section of ../shared/marketo-rest-facts.md).

A request is `ns1:paramsListOperation`: `listOperation` (ADDTOLIST, REMOVEFROMLIST, ISMEMBEROFLIST),
`listKey` (`keyType` MKTOLISTNAME, `keyValue` the list's exact name), `listMemberList` (lead keys; this
emulator knows leads by IDNUM), and optional `strict`. It is checked like syncMultipleLeads (see
`soap_api`: parse and XSD, signature, freshness, then these rules, then limits and faults):

  - more than 1,000 lead keys, a list key other than MKTOLISTNAME          -> 20110 Bad Parameter
  - a lead key other than IDNUM, or one whose value is not a lead ID        -> 20102 Lead Key Bad
  - (after admission) no list has that name                                 -> 20111 List Not Found
    several lists have it (Marketo would have to guess which one)          -> 20110 Bad Parameter
  - strict, and a lead does not exist (or, to remove, is not on the list)   -> 20103 Lead Not Found /
                                                                               20110, nothing applied

The answer, `ns1:successListOperation`, has one `leadStatus` per lead key sent, in order: for ADDTOLIST
whether the lead is now on the list (false: no such lead), for REMOVEFROMLIST whether it was taken
off (false: no such lead, or not on the list), for ISMEMBEROFLIST whether it is a member. `success`
is true when every lead's status is, and always for ISMEMBEROFLIST.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from reconcile.emulator import calls as calllog
from reconcile.emulator.lists import ListStoreError
from reconcile.emulator.reasons import Reason
from reconcile.emulator.soap_api import REASON_CODES, AuthHeader, RequestRejected, _reject_invalid
from reconcile.emulator.store import StoreError
from reconcile.remote.soap import codes
from reconcile.remote.soap.envelope import CONTENT_TYPE
from reconcile.remote.soap.wire import NS_MKTOWS, NS_SOAP, NS_XSI, TAG_BODY, TAG_ENVELOPE, TAG_LIST_PARAMS
from reconcile.remote.soap.wire import TAG_LIST_SUCCESS, one_line

MAX_LIST_LEADS = 1000
OPERATIONS = ("ADDTOLIST", "REMOVEFROMLIST", "ISMEMBEROFLIST")
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


@dataclass(frozen=True)
class ListRequest:
    header: AuthHeader | None
    operation: str
    list_key_type: str
    list_name: str
    lead_keys: tuple[tuple[str, str], ...]  # (keyType, keyValue), in the order sent
    strict: bool

    @property
    def records(self) -> tuple[tuple[str, str], ...]:
        return self.lead_keys


def parse_list_params(params: Any, header: AuthHeader | None) -> ListRequest:
    """A `paramsListOperation` element (schema-checked here: 20017 when it breaks the XSD)."""
    _reject_invalid(params)
    list_key = params.find("listKey")
    keys = tuple((key.findtext("keyType"), key.findtext("keyValue") or "")
                 for key in params.find("listMemberList").iterchildren("leadKey"))
    strict = (params.findtext("strict") or "").strip() in ("true", "1")
    return ListRequest(header=header, operation=params.findtext("listOperation"),
                       list_key_type=list_key.findtext("keyType"), list_name=list_key.findtext("keyValue") or "",
                       lead_keys=keys, strict=strict)


class SoapLists:
    """listOperation for one emulator's SOAP face: `parsers` for `soap_api.parse_request`, then
    `refusal` before admission and `serve` after it."""

    def __init__(self, emulator: Any):
        self._emulator = emulator
        self.parsers = {TAG_LIST_PARAMS: parse_list_params}

    def refusal(self, request: ListRequest) -> RequestRejected | None:
        if len(request.lead_keys) > MAX_LIST_LEADS:
            return _rejected(codes.BAD_PARAMETER, f"listMemberList has {len(request.lead_keys)} lead keys; "
                                                  f"at most {MAX_LIST_LEADS} are allowed")
        if request.list_key_type != "MKTOLISTNAME":
            return _rejected(codes.BAD_PARAMETER, "listKey keyType must be MKTOLISTNAME")
        for key_type, value in request.lead_keys:
            if key_type != "IDNUM" or not (value.isascii() and value.strip().isdigit()):
                return _rejected(codes.LEAD_KEY_BAD, one_line(f"leads are known by IDNUM keys, not {key_type} "
                                                              f"{value!r}", 200))
        return None

    def serve(self, handler: Any, call: Any, request: ListRequest, fault: Callable[..., None]) -> None:
        """Draw the admitted call's fault, apply the operation, answer (or drop)."""
        if request.operation == "ISMEMBEROFLIST":
            call.operation = calllog.READ  # the call log tells reads from writes
        decision = self._emulator.inflict(handler, call, lambda failure: fault(
            handler, call, failure.fail_code if failure.fail_code in codes.CODES
            else REASON_CODES[failure.fail_reason]))
        if decision is None:
            return
        try:
            statuses = self._apply(request)
        except RequestRejected as rejected:
            fault(handler, call, rejected.code, rejected.message)
            return
        except (StoreError, ListStoreError):
            calllog.log.exception("emulator: the database could not be written; call rolled back")
            fault(handler, call, REASON_CODES[Reason.INTERNAL_ERROR])
            return
        if decision.drop:
            call.outcome = calllog.DROPPED
            handler.drop()
            return
        success = request.operation == "ISMEMBEROFLIST" or all(statuses)
        handler.send(200, build_list_response(success, request.lead_keys, statuses), CONTENT_TYPE)

    def _apply(self, request: ListRequest) -> list[bool]:
        lists = self._emulator.lists
        named = lists.named(request.list_name)
        if not named:
            raise _rejected(codes.LIST_NOT_FOUND, one_line(f"no static list is named {request.list_name!r}", 300))
        if len(named) > 1:
            raise _rejected(codes.BAD_PARAMETER, one_line(
                f"{len(named)} static lists are named {request.list_name!r}", 300))
        list_id = named[0]["id"]
        ids = [int(value) for _, value in request.lead_keys]
        with self._emulator.store.transaction() as tx:  # no lead is deleted meanwhile
            present = {i for i in set(ids) if tx.lead(i) is not None}
            members = {i for i in present if lists.is_member(list_id, i)}
            if request.strict:
                _check_strict(request.operation, ids, present, members)
            if request.operation == "ADDTOLIST":
                lists.add(list_id, present)
                return [i in present for i in ids]
            if request.operation == "REMOVEFROMLIST":
                lists.remove(list_id, members)
                return _removed(ids, members)
            return [i in members for i in ids]


def _removed(ids: list[int], members: set[int]) -> list[bool]:
    """True for the first key of each member (a lead named twice is taken off once)."""
    left, statuses = set(members), []
    for lead_id in ids:
        statuses.append(lead_id in left)
        left.discard(lead_id)
    return statuses


def _check_strict(operation: str, ids: list[int], present: set[int], members: set[int]) -> None:
    missing = [i for i in ids if i not in present]
    if missing:
        raise _rejected(codes.LEAD_NOT_FOUND, f"strict: no lead with id {', '.join(map(str, missing[:20]))}")
    outside = [i for i in ids if i not in members]
    if operation == "REMOVEFROMLIST" and outside:
        raise _rejected(codes.BAD_PARAMETER, f"strict: lead {', '.join(map(str, outside[:20]))} is not on the list")


def _rejected(code: str, detail: str) -> RequestRejected:
    return RequestRejected(code, f"{codes.message(code)}: {detail}")


def build_list_response(success: bool, lead_keys: tuple[tuple[str, str], ...], statuses: list[bool]) -> bytes:
    """A successListOperation envelope: one leadStatus per lead key, in the order sent."""
    from lxml import etree

    envelope = etree.Element(TAG_ENVELOPE, nsmap={"SOAP-ENV": NS_SOAP, "xsi": NS_XSI, "ns1": NS_MKTOWS})
    body = etree.SubElement(envelope, TAG_BODY)
    result = etree.SubElement(etree.SubElement(body, TAG_LIST_SUCCESS), "result")
    etree.SubElement(result, "success").text = "true" if success else "false"
    status_list = etree.SubElement(result, "statusList")
    for (key_type, value), status in zip(lead_keys, statuses):
        lead_status = etree.SubElement(status_list, "leadStatus")
        lead_key = etree.SubElement(lead_status, "leadKey")
        etree.SubElement(lead_key, "keyType").text = key_type
        etree.SubElement(lead_key, "keyValue").text = value.strip()
        etree.SubElement(lead_status, "status").text = "true" if status else "false"
    return _XML_DECLARATION + etree.tostring(envelope, encoding="UTF-8") + b"\n"
