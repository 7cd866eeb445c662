"""Plan renderers: text (terraform style), JSON and Markdown. Pure functions of a Plan."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from reconcile.core.model import CREATE, ORPHANED, UNCHANGED, UPDATE, Action, Plan
from reconcile.core.planner import ADOPT, is_adoption, summary_counts
from reconcile.core.safetext import json_text, visible

PLAN_FORMAT_VERSION = 1

_GREEN, _YELLOW, _RED, _BOLD, _DIM, _RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[2m", "\x1b[0m"


def _quote(value: str | int | None) -> str:
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    # JSON escapes the C0 controls; visible() the rest (DEL, C1, line separators, bidi overrides)
    return visible(json.dumps(value, ensure_ascii=False))


SOAP_CALL = "syncMultipleLeads"


@dataclass(frozen=True)
class Calls:
    """The API's call and how many of them apply needs: `Calls("Sync Leads", 3)` for REST, whose
    calls each carry one action and lookup field, so it may need more than records / batch size."""

    name: str = SOAP_CALL
    count: int | None = None  # None: the plan's own count, records / batch size

    def of(self, plan: Plan) -> int:
        return plan.calls if self.count is None else self.count


def summary_line(plan: Plan, calls: Calls = Calls()) -> str:
    s = summary_counts(plan)
    count = calls.of(plan)
    adopt = f"{s[ADOPT]} to adopt, " if s[ADOPT] else ""  # adoptions update a lead that exists already
    return (f"Plan: {s[CREATE]} to create, {adopt}{s[UPDATE]} to update, {s[ORPHANED]} orphaned, "
            f"{s[UNCHANGED]} unchanged; {count} {calls.name} call{'' if count == 1 else 's'}.")


def _lead_keys(action: Action) -> list[tuple[str, str | int | None]]:
    lead = action.lead
    assert lead is not None
    keys: list[tuple[str, str | int | None]] = []
    if lead.lead_id is not None:
        keys.append(("leadId", lead.lead_id))
    if lead.foreign_sys_person_id is not None:
        keys.append(("foreignSysPersonId", lead.foreign_sys_person_id))
        keys.append(("foreignSysType", lead.effective_foreign_sys_type))
    if lead.email is not None:
        keys.append(("email", lead.email))
    return keys


def _is_new_email_lead(action: Action) -> bool:
    return action.kind == CREATE and action.identity.startswith("email:")


def _email_change_hint(plan: Plan) -> bool:
    """Whether an email-keyed orphan may be a lead whose email was edited: a create keyed by email
    alongside it. Keyed by email, that is a new Marketo lead, and the old one stays."""
    return any(_is_new_email_lead(a) for a in plan.actions)


def _action_lines(action: Action, paint, email_hint: bool = False) -> list[str]:
    """The body of one action in terraform's diff notation, without colour codes when paint is a no-op."""
    lines: list[str] = []
    source = f" ({visible(action.lead.location)})" if action.lead is not None else ""
    identity = visible(action.identity)
    if action.kind == CREATE:
        verb = ("will be adopted (an existing Marketo lead, updated by its ID)" if action.lead.lead_id is not None
                else "will be created")
        lines.append(paint(_DIM, f"# {identity} {verb}{source}"))
        lines.append(paint(_GREEN, f"+ lead {_quote(action.identity)} {{"))
        rows = _lead_keys(action) + [(visible(c.name), c.new) for c in action.attribute_changes]
        width = max((len(name) for name, _ in rows), default=0)
        for name, value in rows:
            lines.append(paint(_GREEN, f"    + {name.ljust(width)} = {_quote(value)}"))
        lines.append("  }")
    elif action.kind == UPDATE:
        moved = (f", state key {visible(action.state_key)} → {identity}"
                 if action.state_key not in (None, action.identity) else "")
        lines.append(paint(_DIM, f"# {identity} will be updated in-place{source}{moved}"))
        lines.append(paint(_YELLOW, f"~ lead {_quote(action.identity)} {{"))
        if action.known_lead_id is not None:
            lines.append(f"      leadId = {action.known_lead_id}")
        rows = [(k.name, k.old, k.new, True) for k in action.key_changes]
        rows += [(visible(c.name), c.old, c.new, c.was_set) for c in action.attribute_changes]
        unmanaged = [visible(name) for name in action.unmanaged]
        width = max([len(r[0]) for r in rows] + [len(n) for n in unmanaged], default=0)
        for name, old, new, was_set in rows:
            before = _quote(old) if was_set else "(unset)"
            lines.append(paint(_YELLOW, f"    ~ {name.ljust(width)} = {before} → {_quote(new)}"))
        for name in unmanaged:
            lines.append(paint(_DIM, f"    - {name.ljust(width)}   (no longer managed: left as is in Marketo)"))
        if not action.sends_record:
            lines.append(paint(_DIM, "      (recorded in the state only: nothing to send to Marketo)"))
        lines.append("  }")
    elif action.kind == ORPHANED:
        lead_id = f" (leadId {action.known_lead_id})" if action.known_lead_id is not None else ""
        lines.append(paint(_RED, f"# {identity}{lead_id} is no longer declared: Marketo keeps it; "
                                 "apply --forget-orphans drops it from the state"))
        if email_hint and action.identity.startswith("email:") and action.known_lead_id is not None:
            lines.append(paint(_DIM, f"#   if its email changed, the new email creates a new lead: to keep the "
                                     f"same Marketo lead, add its leadId: {action.known_lead_id}"))
    return lines


def render_text(plan: Plan, color: bool = False, calls: Calls = Calls()) -> str:
    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    changes = [a for a in plan.actions if a.kind != UNCHANGED]
    out: list[str] = []
    if not changes:
        out.append("No changes. Marketo matches the lead files.")
    else:
        out.append("reconcile will perform the following actions:")
        email_hint = _email_change_hint(plan)
        for action in changes:
            out.append("")
            out.extend("  " + line for line in _action_lines(action, paint, email_hint))
    out.append("")
    out.append(paint(_BOLD, summary_line(plan, calls)))
    return "\n".join(out) + "\n"


def action_to_json(action: Action) -> dict[str, Any]:
    lead = action.lead
    data: dict[str, Any] = {"action": action.kind, "identity": action.identity, "state_key": action.state_key,
                            "lead_id": action.known_lead_id}
    if lead is not None:
        data["source"] = str(lead.location)
        data["keys"] = {"leadId": lead.lead_id, "email": lead.email,
                        "foreignSysPersonId": lead.foreign_sys_person_id,
                        "foreignSysType": lead.effective_foreign_sys_type}
        data["sends_record"] = action.sends_record
    data["attribute_changes"] = [{"name": c.name, "old": c.old, "new": c.new, "was_set": c.was_set}
                                 for c in action.attribute_changes]
    data["key_changes"] = [{"name": k.name, "old": k.old, "new": k.new} for k in action.key_changes]
    data["unmanaged"] = list(action.unmanaged)
    return data


def plan_to_json(plan: Plan, calls: Calls = Calls()) -> dict[str, Any]:
    """The versioned JSON form. Unchanged leads are counted in `summary` but not listed."""
    return {"format_version": PLAN_FORMAT_VERSION, "summary": summary_counts(plan), "calls": calls.of(plan),
            "records_to_send": plan.records_to_send, "batch_size": plan.batch_size,
            "actions": [action_to_json(a) for a in plan.actions if a.kind != UNCHANGED]}


def render_json(plan: Plan, calls: Calls = Calls()) -> str:
    return json_text(json.dumps(plan_to_json(plan, calls), indent=2, ensure_ascii=False, sort_keys=False)) + "\n"


def fence_for(body: str) -> str:
    """A Markdown code fence longer than any run of backticks in `body`."""
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    return "`" * max(3, longest + 1)


def _section_of(action: Action) -> str:
    return ADOPT if is_adoption(action) else action.kind


def render_markdown(plan: Plan, calls: Calls = Calls()) -> str:
    s = summary_counts(plan)
    adopt_head, adopt_rule, adopt_cell = ("Adopt | ", "---:|", f"{s[ADOPT]} | ") if s[ADOPT] else ("", "", "")
    out = ["### reconcile plan", "",
           f"| Create | {adopt_head}Update | Orphaned | Unchanged | {calls.name} calls |",
           f"|---:|{adopt_rule}---:|---:|---:|---:|",
           f"| {s[CREATE]} | {adopt_cell}{s[UPDATE]} | {s[ORPHANED]} | {s[UNCHANGED]} | {calls.of(plan)} |", ""]
    if not plan.has_changes and not s[ORPHANED]:
        out.append("No changes. Marketo matches the lead files.")
    sections = ((CREATE, "to create"), (ADOPT, "to adopt"), (UPDATE, "to update"),
                (ORPHANED, "orphaned (kept in Marketo)"))
    email_hint = _email_change_hint(plan)
    for kind, title in sections:
        actions = [a for a in plan.actions if _section_of(a) == kind]
        if not actions:
            continue
        body = "\n\n".join("\n".join(_action_lines(a, lambda _code, text: text, email_hint)) for a in actions)
        fence = fence_for(body)
        out += [f"<details><summary>{len(actions)} {title}</summary>", "", f"{fence}diff", body, fence, "",
                "</details>", ""]
    out.append(f"_{summary_line(plan, calls)}_")
    return "\n".join(out) + "\n"
