"""Marketo's mktows (SOAP) error codes: the one table of what each means and what a client does.

Source: ../shared/marketo-soap-facts.md, "Error codes". The emulator's SOAP face answers with these
same entries, so client and emulator cannot disagree on a code.
"""

from __future__ import annotations

from reconcile.remote.codes import Code, Handling, handling_in, table

INTERNAL_ERROR_SEVERE = "10001"
INTERNAL_ERROR = "20011"
REQUEST_NOT_UNDERSTOOD = "20012"
ACCESS_DENIED = "20013"
AUTH_FAILED = "20014"
QUOTA_EXCEEDED = "20015"
REQUEST_EXPIRED = "20016"
INVALID_REQUEST = "20017"
UNSUPPORTED_OPERATION = "20019"
RATE_LIMIT = "20023"
CONCURRENCY_LIMIT = "20024"
LEAD_KEY_REQUIRED = "20101"
LEAD_KEY_BAD = "20102"
LEAD_NOT_FOUND = "20103"
LEAD_DETAIL_REQUIRED = "20104"
LEAD_ATTRIBUTE_BAD = "20105"
LEAD_SYNC_FAILED = "20106"
PARAMETER_REQUIRED = "20109"
BAD_PARAMETER = "20110"
LIST_NOT_FOUND = "20111"  # listOperation: the listKey names no list (Marketo's SOAP error codes)

CODES = table(
    Code(INTERNAL_ERROR_SEVERE, "Internal Error", Handling.UNKNOWN),
    Code(INTERNAL_ERROR, "Internal Error", Handling.UNKNOWN),
    Code(REQUEST_NOT_UNDERSTOOD, "Request Not Understood", Handling.STOP),
    Code(ACCESS_DENIED, "Access Denied", Handling.STOP),
    Code(AUTH_FAILED, "Authentication failed", Handling.STOP),
    Code(QUOTA_EXCEEDED, "Request Limit Exceeded", Handling.QUOTA),
    Code(REQUEST_EXPIRED, "Request Expired", Handling.RESIGN),
    Code(INVALID_REQUEST, "Invalid Request", Handling.STOP),
    Code(UNSUPPORTED_OPERATION, "Unsupported Operation", Handling.STOP),
    Code(RATE_LIMIT, "Rate Limit Exceeded", Handling.THROTTLED),
    Code(CONCURRENCY_LIMIT, "Concurrency Limit Exceeded", Handling.THROTTLED),
    Code(LEAD_KEY_REQUIRED, "Lead Key Required", Handling.RECORD),
    Code(LEAD_KEY_BAD, "Lead Key Bad", Handling.RECORD),
    Code(LEAD_NOT_FOUND, "Lead Not Found", Handling.RECORD),
    Code(LEAD_DETAIL_REQUIRED, "Lead Detail Required", Handling.RECORD),
    Code(LEAD_ATTRIBUTE_BAD, "Lead Attribute Bad", Handling.RECORD),
    Code(LEAD_SYNC_FAILED, "Lead Sync Failed", Handling.RECORD),
    Code(PARAMETER_REQUIRED, "Parameter Required", Handling.STOP),
    Code(BAD_PARAMETER, "Bad Parameter", Handling.STOP),
    Code(LIST_NOT_FOUND, "List Not Found", Handling.STOP),
)


def handling(code: str | None) -> Handling:
    return handling_in(CODES, code)


def message(code: str) -> str:
    entry = CODES.get(code)
    return entry.message if entry else "Unknown Error"
