"""Reading Marketo's REST answers: the common envelope, Sync Leads results, Get Leads pages.

Facts relied on (../shared/marketo-rest-facts.md): every answer is `{"requestId", "success", ...}`,
HTTP 200 even when the call failed; a failed call has `success: false` and `errors: [{code, message}]`
and was not executed; Sync Leads answers one result per input record, in input order, with status
`created`, `updated` or `skipped` (then `reasons: [{code, message}]`).

Answers are hostile input: their text reaches messages only shortened and stripped of control
characters, never as markup.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Sequence

from reconcile.core.records import CREATED, FAILED, UPDATED, SyncStatus
from reconcile.errors import ResponseError

_STATUSES = {"created": CREATED, "updated": UPDATED}
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
MAX_TEXT = 200


def clean(text: Any, limit: int = MAX_TEXT) -> str:
    """Server text made safe for one line of output: no control characters, bounded length."""
    value = _UNPRINTABLE.sub(" ", str(text)).strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"


@dataclass(frozen=True)
class CallError:
    """A call-level error: the whole call was refused and not executed."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}".strip()


@dataclass(frozen=True)
class Answer:
    request_id: str
    success: bool
    result: list[Any]
    errors: tuple[CallError, ...]
    next_page_token: str | None = None


def parse_answer(content: bytes) -> Answer:
    """The REST envelope of an answer; ResponseError if it is not one."""
    try:
        document = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResponseError(f"Marketo's answer is not JSON ({clean(exc)})") from None
    if not isinstance(document, dict) or not isinstance(document.get("success"), bool):
        raise ResponseError("Marketo's answer has no 'success' flag: not a REST API answer")
    errors = []
    for entry in document.get("errors") or []:
        if isinstance(entry, dict):
            errors.append(CallError(clean(entry.get("code", ""), 20), clean(entry.get("message", ""))))
    if not document["success"] and not errors:
        errors.append(CallError("", "the call failed and Marketo gave no reason"))
    result = document.get("result")
    if result is None:
        result = []
    if not isinstance(result, list):
        raise ResponseError("Marketo's answer has a 'result' that is not a list")
    token = document.get("nextPageToken")
    return Answer(request_id=clean(document.get("requestId", ""), 64), success=document["success"],
                  result=result, errors=tuple(errors),
                  next_page_token=token if isinstance(token, str) and token else None)


def reasons_text(reasons: Any) -> str:
    """`1004 Lead not found; 1006 Field 'x' not found`: each skipped reason as code and message."""
    parts = []
    for reason in reasons if isinstance(reasons, list) else []:
        if isinstance(reason, dict):
            parts.append(f"{clean(reason.get('code', ''), 20)} {clean(reason.get('message', ''))}".strip())
    return "; ".join(parts) or "skipped (Marketo gave no reason)"


def sync_statuses(answer: Answer, expected: int) -> list[SyncStatus]:
    """One SyncStatus per input record, in input order, from a successful Sync Leads answer."""
    if len(answer.result) != expected:
        raise ResponseError(f"Marketo answered {len(answer.result)} result(s) for {expected} record(s); "
                            "the answers cannot be matched to the leads")
    statuses = []
    for position, item in enumerate(answer.result):
        if not isinstance(item, dict):
            raise ResponseError(f"result {position + 1} of Marketo's answer is not an object")
        status = item.get("status")
        lead_id = item.get("id")
        if not isinstance(lead_id, int) or isinstance(lead_id, bool):
            lead_id = 0
        if status in _STATUSES:
            statuses.append(SyncStatus(lead_id=lead_id, status=_STATUSES[status]))
        elif status == "skipped":
            statuses.append(SyncStatus(lead_id=lead_id, status=FAILED, error=reasons_text(item.get("reasons"))))
        else:
            raise ResponseError(f"result {position + 1} of Marketo's answer has an unknown status "
                                f"{clean(status, 40)!r}")
    return statuses


def lead_rows(answer: Answer) -> list[dict[str, Any]]:
    """Get Leads records: each an object of REST field names to values."""
    rows = []
    for position, item in enumerate(answer.result):
        if not isinstance(item, dict):
            raise ResponseError(f"record {position + 1} of Marketo's Get Leads answer is not an object")
        rows.append(item)
    return rows


def describe_entries(answer: Answer) -> list[dict[str, Any]]:
    """Describe's field entries, as Marketo gave them (objects only)."""
    return [item for item in answer.result if isinstance(item, dict)]


def first_error(errors: Sequence[CallError]) -> CallError:
    return errors[0] if errors else CallError("", "the call failed and Marketo gave no reason")
