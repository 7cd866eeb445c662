"""Marketo REST error codes: the one table of what each means and what a client does.

Source: ../shared/marketo-rest-facts.md, "Error codes". Call-level codes come with `success: false`
(the whole call was not executed, so a retry is always safe); record-level codes come in a skipped record's `reasons`. The
emulator's REST face answers with these same entries.
"""

from __future__ import annotations

from reconcile.remote.codes import Code, Handling, handling_in, table

TOKEN_INVALID = "601"
TOKEN_EXPIRED = "602"
ACCESS_DENIED = "603"
REQUEST_TIMED_OUT = "604"
RATE_LIMIT = "606"
QUOTA_EXCEEDED = "607"
TEMPORARILY_UNAVAILABLE = "608"
INVALID_JSON = "609"
NOT_FOUND = "610"
SYSTEM_ERROR = "611"
INVALID_CONTENT_TYPE = "612"
CONCURRENCY_LIMIT = "615"
TRANSIENT = "713"

INVALID_VALUE = "1001"
MISSING_VALUE = "1002"
INVALID_DATA = "1003"
LEAD_NOT_FOUND = "1004"
LEAD_EXISTS = "1005"
FIELD_NOT_FOUND = "1006"
MULTIPLE_MATCHES = "1007"
NO_PARTITION_ACCESS = "1008"
NOT_IN_LIST = "1015"  # Remove from List: the lead is not on the list (Marketo's record-level codes)
DUPLICATE_IN_INPUT = "1036"

CODES = table(
    Code(TOKEN_INVALID, "Access token invalid", Handling.RESIGN),
    Code(TOKEN_EXPIRED, "Access token expired", Handling.RESIGN),
    Code(ACCESS_DENIED, "Access denied", Handling.STOP),
    Code(REQUEST_TIMED_OUT, "Request time-out", Handling.RETRY),
    Code(RATE_LIMIT, "Max rate limit exceeded", Handling.THROTTLED),
    Code(QUOTA_EXCEEDED, "Daily quota reached", Handling.QUOTA),
    Code(TEMPORARILY_UNAVAILABLE, "API temporarily unavailable", Handling.RETRY),
    Code(INVALID_JSON, "Invalid JSON", Handling.STOP),
    Code(NOT_FOUND, "Requested resource not found", Handling.STOP),
    Code(SYSTEM_ERROR, "System error", Handling.RETRY),
    Code(INVALID_CONTENT_TYPE, "Invalid Content Type", Handling.STOP),
    Code(CONCURRENCY_LIMIT, "Concurrent access limit reached", Handling.THROTTLED),
    Code(TRANSIENT, "Transient error", Handling.RETRY),
    Code(INVALID_VALUE, "Invalid value", Handling.RECORD),
    Code(MISSING_VALUE, "Missing value for required parameter", Handling.RECORD),
    Code(INVALID_DATA, "Invalid data", Handling.RECORD),
    Code(LEAD_NOT_FOUND, "Lead not found", Handling.RECORD),
    Code(LEAD_EXISTS, "Lead already exists", Handling.RECORD),
    Code(FIELD_NOT_FOUND, "Field not found", Handling.RECORD),
    Code(MULTIPLE_MATCHES, "Multiple lead match lookup criteria", Handling.RECORD),
    Code(NO_PARTITION_ACCESS, "Access denied to partition", Handling.RECORD),
    Code(NOT_IN_LIST, "Lead not in list", Handling.RECORD),
    Code(DUPLICATE_IN_INPUT, "Duplicate object found in input", Handling.RECORD),
)


def handling(code: str | None) -> Handling:
    return handling_in(CODES, code)
