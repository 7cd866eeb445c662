"""Plan renderers: text (terraform style), JSON and Markdown. Pure functions of a Plan."""

from __future__ import annotations

import json
import re
from itertools import compress, takewhile
from operator import attrgetter
from dataclasses import dataclass
from typing import Any

from reconcile.core.drift import Drift, LeadDrift
from reconcile.core import bigplan
from reconcile.core.model import ABSENT, CREATE, ORPHANED, UNCHANGED, UPDATE, Action, Plan
from reconcile.core.planner import ADOPT, is_adoption, summary_counts
from reconcile.core import membership_drift, render_deletes, render_lists
from reconcile.core.safetext import OLD_COMMAND as _OLD_COMMAND, json_text, visible

PLAN_FORMAT_VERSION = 1

_GREEN, _YELLOW, _RED, _BOLD, _DIM, _RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[2m", "\x1b[0m"


def _quote(value: str | int | None) -> str:
    if type(value) is str:
        if value.isprintable() and '"' not in value and "\\" not in value and _OLD_COMMAND not in value:
            return f'"{value}"'  # what the line below gives for nearly every value, without JSON
        # JSON escapes the C0 controls; visible() the rest (DEL, C1, line separators, bidi overrides)
        return visible(json.dumps(value, ensure_ascii=False))
    if value is None:
        return "null"
    return str(value)


SOAP_CALL = "syncMultipleLeads"
CHANGED_IN_MARKETO = "(changed in Marketo)"
NOT_REFRESHED_NOTE = "Compared against the state, not Marketo: `plan --refresh` reads Marketo first."
NO_CHANGES = "No changes. Marketo matches the lead files."
NO_CHANGES_AGAINST_STATE = "No changes. The lead files match the state; Marketo was not read: --refresh reads it."


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
    lists = render_lists.counts_phrase(plan)
    lists = f"{lists}; " if lists else ""
    deletes = render_deletes.summary_phrase(plan)
    return (f"Plan: {s[CREATE]} to create, {adopt}{s[UPDATE]} to update, {deletes}{s[ORPHANED]} orphaned, "
            f"{s[UNCHANGED]} unchanged; {lists}{count} {calls.name} call{'' if count == 1 else 's'}.")


def _is_new_email_lead(action: Action) -> bool:
    return action.kind == CREATE and action.identity.startswith("email:")


def _email_change_hint(plan: Plan) -> bool:
    """Whether an email-keyed orphan may be a lead whose email was edited: a create keyed by email
    alongside it. Keyed by email, that is a new Marketo lead, and the old one stays."""
    return any(_is_new_email_lead(a) for a in plan.actions)


def _action_lines(action: Action, paint, email_hint: bool = False,
                  drifted: frozenset[tuple[str, str]] | set[tuple[str, str]] = frozenset(),
                  memo: dict | None = None) -> list[str]:
    """The body of one action in terraform's diff notation, without colour codes when paint is a no-op.
    `drifted`: (state key, name) of the values Marketo changed since the last apply. `memo`, shared by
    the calls of one rendering, keeps the layouts of creates with one set of attribute names."""
    lines: list[str] = []
    source = f" ({visible(action.lead.location)})" if action.lead is not None else ""
    identity = visible(action.identity)
    if action.kind == CREATE:
        lines.append(_create_block(action, paint, {} if memo is None else memo, ""))
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
        key = action.state_key or action.identity
        for name, old, new, was_set in rows:
            before = _quote(old) if was_set else "(unset)"
            if (key, name) in drifted:
                before = f"{before} {CHANGED_IN_MARKETO}"
            lines.append(paint(_YELLOW, f"    ~ {name.ljust(width)} = {before} → {_quote(new)}"))
        for name in unmanaged:
            lines.append(paint(_DIM, f"    - {name.ljust(width)}   (no longer managed: left as is in Marketo)"))
        lines += [paint(_GREEN if change.add else _RED, line)
                  for change, line in zip(action.list_changes, render_lists.list_lines(action, _quote))]
        if not action.sends_record and not action.list_changes:
            lines.append(paint(_DIM, "      (recorded in the state only: nothing to send to Marketo)"))
        lines.append("  }")
    elif action.kind == ORPHANED:
        lead_id = f" (leadId {action.known_lead_id})" if action.known_lead_id is not None else ""
        lines.append(paint(_RED, f"# {identity}{lead_id} is no longer declared: Marketo keeps it; "
                                 "apply --forget-orphans drops it from the state"))
        if email_hint and action.identity.startswith("email:") and action.known_lead_id is not None:
            lines.append(paint(_DIM, f"#   if its email changed, the new email creates a new lead: to keep the "
                                     f"same Marketo lead, add its leadId: {action.known_lead_id}"))
    else:
        lines += render_deletes.lines(action, paint, _RED, _DIM)
    return lines


def drift_lines(drift: Drift) -> list[str]:
    """What Marketo changed outside reconcile, one lead per paragraph (values escaped)."""
    lines: list[str] = []
    for lead in drift.leads:
        lines.extend(_lead_drift_lines(lead))
    lines.extend(membership_drift.drift_line(change, _quote) for change in drift.memberships)
    return lines


def _lead_drift_lines(lead: LeadDrift) -> list[str]:
    key = visible(lead.state_key)
    by_id = lead.state_key.startswith("id:")  # its lead file names the lead ID Marketo no longer has
    if lead.deleted:
        return [f"! {key}: lead {lead.lead_id} no longer exists in Marketo (deleted, or merged away) and no "
                "lead has its email: the state forgets it; "
                + ("its lead file still declares that leadId: remove it to create the lead again" if by_id
                   else "if it is declared, it is created again")]
    lines = []
    if lead.merged_into is not None:
        lines.append(f"! {key}: lead {lead.lead_id} no longer exists in Marketo (merged away); lead "
                     f"{lead.merged_into}, which has its email, now holds it"
                     + (f": declare leadId {lead.merged_into} in its lead file" if by_id else ""))
    if lead.changes:
        lines.append(f"~ {key} (leadId {lead.current_lead_id})")
        width = max(len(visible(change.name)) for change in lead.changes)
        lines.extend(f"    ~ {visible(change.name).ljust(width)} = {_quote(change.recorded)} → "
                     f"{_quote(change.current)}" for change in lead.changes)
    return lines


def _drift_heading(drift: Drift) -> str:
    leads = f"{drift.read} lead{'' if drift.read == 1 else 's'}"
    if not drift.has_drift:
        return f"Refreshed {leads} from Marketo: Marketo matches the state."
    lists = f" and {len(drift.memberships)} list membership(s)" if drift.memberships else ""
    return (f"Refreshed {leads} from Marketo: {len(drift.leads)}{lists} changed outside reconcile since the last "
            "apply (state → Marketo):")


def render_drift(drift: Drift, color: bool = False) -> str:
    """The drift report alone (`apply --refresh-only`): what the state will learn from Marketo."""
    lines = [_drift_heading(drift)]
    lines.extend("  " + (f"{_YELLOW}{line}{_RESET}" if color else line) for line in drift_lines(drift))
    return "\n".join(lines) + "\n"


def _create_block(action: Action, paint, memo: dict, indent: str) -> str:
    """A create's lines, joined by a newline and `indent`: `# ... will be created`, `+ lead ... {`,
    `+ name = value` for each key and attribute (names padded to one width), `}`."""
    return _create_blocks((action,), paint, memo, indent, "")[0]


def _create_blocks(actions, paint, memo: dict, indent: str, prefix: str) -> list[str]:
    """`prefix` + the block of each create (see _create_block).

    100k creates make a million lines. The layout is made once per set of key and attribute names
    (nearly every lead of a repository has the same) as a format string; each attribute value is
    quoted once (values repeat), and the text unique to each lead (identity, email, foreign ID,
    file name) is taken as it is when it needs no escaping, which a test at C speed tells."""
    templates = memo.setdefault((_TEMPLATES, indent, prefix), {})
    quoted = memo.get(_QUOTED)
    if quoted is None:
        quoted = memo[_QUOTED] = _Quoted()
    files: dict[str, str] = memo.setdefault(_FILES, {})
    quote_value = quoted.__getitem__
    blocks = []
    append = blocks.append
    for action in actions:
        lead = action.lead
        changes = action.attribute_changes
        lead_id, foreign_id, email = lead.lead_id, lead.foreign_sys_person_id, lead.email
        names = tuple(map(_name_of, changes))
        layout = (lead_id is None, foreign_id is None, email is None, names)
        templates_of_layout = templates.get(layout)
        if templates_of_layout is None:
            template = prefix + _create_template(_key_names(*layout[:3]) + names, lead_id is not None, paint, indent)
            templates_of_layout = templates[layout] = (template, _plain_template(template, layout))
        location = lead.location
        file = files.get(location.file)
        if file is None:
            file = files[location.file] = visible(location.file)
        where = file if location.line is None else f"{file}:{location.line}"
        identity = action.identity
        values = tuple(map(_new_of, changes))
        if templates_of_layout[1] is not None:  # keyed by email alone
            # The common case: a lead keyed by email whose text needs no escaping (as _quote would
            # find, tested at once on all of it) and whose values are all text: placed as they are.
            try:
                text = identity + email + "".join(values)
            except TypeError:  # a null value
                text = None
            if text is not None and text.isprintable() and '"' not in text and "\\" not in text \
                    and _OLD_COMMAND not in text:
                append(templates_of_layout[1] % (identity, where, identity, email, *values))
                continue
        keys = []
        if lead_id is not None:
            keys.append(str(lead_id))
        if foreign_id is not None:
            keys.append(quote_value(foreign_id))
            keys.append(quote_value(lead.effective_foreign_sys_type))
        if email is not None:
            keys.append(_quote(email))
        append(templates_of_layout[0] % (visible(identity), where, _quote(identity), *keys,
                                         *map(quote_value, values)))
    for index in [i for i, action in enumerate(actions) if action.list_changes]:
        blocks[index] = render_lists.with_list_lines(blocks[index], actions[index], _quote, paint, _GREEN, _RED)
    return blocks


def _plain_template(template: str, layout: tuple) -> str | None:
    """For a lead keyed by email alone: the template with the quotes of its quoted identity, email and
    values written in, for text that needs no escaping."""
    no_lead_id, no_foreign_id, no_email, names = layout
    if not (no_lead_id and no_foreign_id) or no_email:
        return None
    head, _, rest = template.partition("+ lead %s {")
    return head + '+ lead "%s" {' + rest.replace(" = %s", ' = "%s"')


def _key_names(no_lead_id: bool, no_foreign_id: bool, no_email: bool) -> tuple[str, ...]:
    return (() if no_lead_id else ("leadId",)) + (() if no_foreign_id else ("foreignSysPersonId", "foreignSysType")) \
        + (() if no_email else ("email",))


def _create_template(names: tuple[str, ...], adopted: bool, paint, indent: str) -> str:
    """The lines of a create as a %-format: identity, location, quoted
    identity, then a value for each name."""
    verb = "will be adopted (an existing Marketo lead, updated by its ID)" if adopted else "will be created"
    shown = [visible(name) for name in names]
    width = max(map(len, shown), default=0)
    lines = [paint(_DIM, f"# %s {verb} (%s)"), paint(_GREEN, "+ lead %s {")]
    lines += [paint(_GREEN, "    + " + name.ljust(width).replace("%", "%%") + " = %s") for name in shown]
    lines.append("  }")
    return f"\n{indent}".join(lines)


class _Quoted(dict):
    """value -> _quote(value), made on first use."""

    def __missing__(self, value: str | int | None) -> str:
        quoted = self[value] = _quote(value)
        return quoted


_QUOTED = object()  # the memo's key for its _Quoted
_TEMPLATES = object()  # ... for the create layouts, by indent, prefix, key and attribute names
_FILES = object()  # ... for the file names, made visible
_name_of = attrgetter("name")
_kind_of = attrgetter("kind")
_new_of = attrgetter("new")


def render_text(plan: Plan, color: bool = False, calls: Calls = Calls(), drift: Drift | None = None,
                against_state: bool = False, full: bool = False) -> str:
    """`drift`: what a refresh found (the plan was made against Marketo's values); `against_state`: the
    plan was made against the state alone, and says so. A large plan (see core/bigplan) starts with its
    summary and shows a sample, unless `full`."""
    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    kinds = list(map(_kind_of, plan.actions))
    changes = list(compress(plan.actions, map(UNCHANGED.__ne__, kinds)))  # at C speed: 100k actions
    out: list[str] = []
    total, large = len(changes), not full and bigplan.is_large(changes)
    if large:
        out += [paint(_BOLD, summary_line(plan, calls)), *bigplan.overview_lines(changes), ""]
    changes = bigplan.sample(changes) if large else bigplan.display_order(changes)
    if drift is not None:
        out.append(_drift_heading(drift))
        out.extend("  " + paint(_YELLOW, line) for line in drift_lines(drift))
        out.append("")
    drifted = drift.changed_in_marketo() if drift is not None else frozenset()
    if not changes:
        out.append(NO_CHANGES_AGAINST_STATE if against_state else NO_CHANGES)
    else:
        out.append("reconcile will perform the following actions:")
        email_hint = _email_change_hint(plan)
        memo: dict = {}
        leading = len(list(takewhile(CREATE.__eq__, map(_kind_of, changes))))  # a plan starts with them
        out += _create_blocks(changes[:leading], paint, memo, "  ", "\n  ")
        for action in changes[leading:]:
            out.append("\n  " + "\n  ".join(_action_lines(action, paint, email_hint, drifted, memo)))
        if large:
            out += ["", bigplan.hidden_line(total, len(changes))]
    out.append("")
    if against_state and changes:  # with none, the line above already says so
        out.append(paint(_DIM, NOT_REFRESHED_NOTE))
    if plan.targets:
        out.append(paint(_YELLOW, targets_note(plan)))
    out.append(paint(_BOLD, summary_line(plan, calls)))
    return "\n".join(out) + "\n"


def render_compact(plan: Plan, calls: Calls = Calls(), drift: Drift | None = None,
                   against_state: bool = False) -> str:
    """One line per action, for people and logs: `+` create, `~` update, `-` orphaned, then the summary
    (after what a refresh found, one line per drifted lead or value).

        + email:a@b.co (leads/a.yaml:3) 7 attributes
        ~ id:123 Title: "VP" → "CTO", Phone: (unset) → "650-555-0100"
        - email:gone@b.co (leadId 5) orphaned: Marketo keeps it
    """
    out = [_drift_heading(drift), *drift_lines(drift)] if drift is not None else []
    changes = [_compact_line(action) for action in plan.actions if action.kind != UNCHANGED]
    out += changes or [NO_CHANGES_AGAINST_STATE if against_state else NO_CHANGES]
    if against_state and changes:
        out.append(NOT_REFRESHED_NOTE)
    if plan.targets:
        out.append(targets_note(plan))
    out.append(summary_line(plan, calls))
    return "\n".join(out) + "\n"


def targets_note(plan: Plan) -> str:
    """What a targeted plan says (as Terraform does): the other leads were not looked at."""
    return (f"Targeted: only {', '.join(visible(target) for target in plan.targets)}; changes to other leads are "
            "not planned and not applied.")


def _compact_line(action: Action) -> str:
    identity = visible(action.identity)
    if action.kind == CREATE:
        count = len(action.attribute_changes)
        adopt = f"adopt leadId {action.lead.lead_id}, " if action.lead.lead_id is not None else ""
        lists = ", ".join(render_lists.compact_parts(action, _quote))
        return (f"+ {identity} ({visible(action.lead.location)}) {adopt}{count} "
                f"attribute{'' if count == 1 else 's'}{', ' + lists if lists else ''}")
    if action.kind == UPDATE:
        parts = [f"{k.name}: {_quote(k.old)} → {_quote(k.new)}" for k in action.key_changes]
        parts += [f"{visible(c.name)}: {_quote(c.old) if c.was_set else '(unset)'} → {_quote(c.new)}"
                  for c in action.attribute_changes]
        parts += [f"{visible(name)}: no longer managed" for name in action.unmanaged]
        parts += render_lists.compact_parts(action, _quote)
        if action.state_key not in (None, action.identity):
            parts.append(f"state key {visible(action.state_key)} → {identity}")
        if not action.sends_record and not action.list_changes:
            parts.append("state only")
        return f"~ {identity} " + ", ".join(parts)
    if action.kind != ORPHANED:
        return render_deletes.compact_line(action)
    lead_id = f" (leadId {action.known_lead_id})" if action.known_lead_id is not None else ""
    return f"- {identity}{lead_id} orphaned: Marketo keeps it"


def action_to_json(action: Action, drifted: set[tuple[str, str]] | None = None) -> dict[str, Any]:
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
    if drifted is not None:
        key = action.state_key or action.identity
        for change in data["attribute_changes"]:
            change["changed_in_marketo"] = (key, change["name"]) in drifted
    data["key_changes"] = [{"name": k.name, "old": k.old, "new": k.new} for k in action.key_changes]
    data["unmanaged"] = list(action.unmanaged)
    if action.list_changes:
        data["list_changes"] = [render_lists.change_to_json(change) for change in action.list_changes]
    return data


def plan_to_json(plan: Plan, calls: Calls = Calls(), drift: Drift | None = None) -> dict[str, Any]:
    """The versioned JSON form. Unchanged leads are counted in `summary` but not listed. With `drift`
    (a refreshed plan), a `drift` object, and `changed_in_marketo` on each attribute change."""
    drifted = drift.changed_in_marketo() if drift is not None else None
    data = {"format_version": PLAN_FORMAT_VERSION,
            "summary": {**summary_counts(plan), **render_lists.summary_counts(plan)}, "calls": calls.of(plan),
            "records_to_send": plan.records_to_send, "batch_size": plan.batch_size,
            "actions": [action_to_json(a, drifted) for a in plan.actions if a.kind != UNCHANGED]}
    if plan.targets:
        data["targets"] = list(plan.targets)
    if drift is not None:
        data["drift"] = drift_to_json(drift)
    return data


def drift_to_json(drift: Drift) -> dict[str, Any]:
    data = {"read": drift.read, "leads": [
        {"state_key": lead.state_key, "lead_id": lead.lead_id, "current_lead_id": lead.current_lead_id,
         "merged_into": lead.merged_into, "deleted": lead.deleted,
         "changes": [{"name": c.name, "state": c.recorded, "marketo": c.current} for c in lead.changes]}
        for lead in drift.leads]}
    if drift.memberships:
        data["memberships"] = [{"state_key": m.state_key, "lead_id": m.lead_id, "list": m.ref,
                                "list_id": m.list_id, "member": m.member} for m in drift.memberships]
    return data


def render_json(plan: Plan, calls: Calls = Calls(), drift: Drift | None = None) -> str:
    return json_text(json.dumps(plan_to_json(plan, calls, drift), indent=2, ensure_ascii=False,
                                sort_keys=False)) + "\n"


def fence_for(body: str) -> str:
    """A Markdown code fence longer than any run of backticks in `body`."""
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    return "`" * max(3, longest + 1)


def _no_paint(_code: str, text: str) -> str:
    return text


def _section_of(action: Action) -> str:
    return ADOPT if is_adoption(action) else action.kind


def render_markdown(plan: Plan, calls: Calls = Calls(), drift: Drift | None = None,
                    against_state: bool = False) -> str:
    s = summary_counts(plan)
    adopt_head, adopt_rule, adopt_cell = ("Adopt | ", "---:|", f"{s[ADOPT]} | ") if s[ADOPT] else ("", "", "")
    lists_head, lists_rule, lists_cell = render_lists.markdown_cells(plan)
    out = ["### reconcile plan", "", *render_deletes.markdown_block(plan, fence_for),
           f"| Create | {adopt_head}Update | Orphaned | Unchanged | {lists_head}{calls.name} calls |",
           f"|---:|{adopt_rule}---:|---:|---:|{lists_rule}---:|",
           f"| {s[CREATE]} | {adopt_cell}{s[UPDATE]} | {s[ORPHANED]} | {s[UNCHANGED]} | {lists_cell}{calls.of(plan)} |",
           ""]
    if drift is not None:
        out += drift_markdown(drift)
    if not plan.has_changes and not s[ORPHANED]:
        out.append(NO_CHANGES_AGAINST_STATE if against_state else NO_CHANGES)
    sections = ((CREATE, "to create"), (ADOPT, "to adopt"), (UPDATE, "to update"),
                (ORPHANED, "orphaned (kept in Marketo)"), (ABSENT, "already absent (tombstones with nothing to do)"))
    email_hint = _email_change_hint(plan)
    drifted = drift.changed_in_marketo() if drift is not None else frozenset()
    for kind, title in sections:
        actions = [a for a in plan.actions if _section_of(a) == kind]
        if not actions:
            continue
        memo: dict = {}
        body = "\n\n".join("\n".join(_action_lines(a, _no_paint, email_hint, drifted, memo)) for a in actions)
        fence = fence_for(body)
        out += [f"<details><summary>{len(actions)} {title}</summary>", "", f"{fence}diff", body, fence, "",
                "</details>", ""]
    if against_state:
        out += [f"_{NOT_REFRESHED_NOTE}_", ""]
    if plan.targets:
        body = targets_note(plan)
        fence = fence_for(body)
        out += [f"{fence}text", body, fence, ""]
    out.append(f"_{summary_line(plan, calls)}_")
    return "\n".join(out) + "\n"


def drift_markdown(drift: Drift) -> list[str]:
    """The drift report as Markdown lines: every value inside a code fence, so none is markup."""
    out = [_drift_heading(drift).replace(" (state → Marketo):", " (state → Marketo)."), ""]
    if drift.has_drift:
        body = "\n".join(drift_lines(drift))
        fence = fence_for(body)
        out += [f"{fence}diff", body, fence, ""]
    return out
