"""The fast rendering of creates prints exactly what the plain recipe prints, for any text.

reconcile.core.render draws 100k creates from a few %-format layouts and places text that needs no
escaping as it is. Here each block is compared with a straightforward rendering of the same create
(each name and value shown and quoted on its own), on leads whose keys, names and values hold
quotes, backslashes, percent signs, braces, control characters, the runner's `##[` and nulls.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconcile.core.model import Lead, State
from reconcile.core.planner import plan
from reconcile.core.render import _GREEN, _DIM, _RESET, _create_blocks, _quote, render_text
from reconcile.core.safetext import visible
from reconcile.errors import Location

TRICKY = ["", "x", "Ada", 'say "hi"', "back\\slash", "100%", "%s", "{0}", "{", "tab\there", "line\nbreak",
          "##[error]", "##", "[x", "\u202eevil", "日本", "\x1b[31m", "a = b"]
texts = st.one_of(st.sampled_from(TRICKY), st.text(max_size=6))
names = st.one_of(st.sampled_from(["Title", "Company", "%d", "{x}", "a%", "Name With Space", "n\x07"]),
                  st.text(min_size=1, max_size=5))


@st.composite
def creates(draw) -> Lead:
    email = draw(st.one_of(st.none(), texts.map(lambda t: f"{t}@example.com")))
    foreign_id = draw(st.one_of(st.none(), texts.filter(bool)))
    lead_id = draw(st.one_of(st.none(), st.integers(1, 2 ** 31 - 1)))
    if email is None and foreign_id is None and lead_id is None:
        email = "someone@example.com"
    return Lead(location=Location(draw(st.sampled_from(["leads/a.yaml", "leads/%s {0}.yaml", "leads/\x1b.yaml"])),
                                  draw(st.one_of(st.none(), st.integers(1, 9999)))),
                lead_id=lead_id, email=email, foreign_sys_person_id=foreign_id,
                foreign_sys_type=draw(st.sampled_from([None, "SFDC"])) if foreign_id is not None else None,
                attributes=draw(st.dictionaries(names, st.one_of(st.none(), texts), max_size=4)))


def plainly(action, paint, indent: str) -> str:
    """A create as the renderer's own docstring describes it, one line at a time."""
    lead = action.lead
    rows = []
    if lead.lead_id is not None:
        rows.append(("leadId", lead.lead_id))
    if lead.foreign_sys_person_id is not None:
        rows += [("foreignSysPersonId", lead.foreign_sys_person_id),
                 ("foreignSysType", lead.effective_foreign_sys_type)]
    if lead.email is not None:
        rows.append(("email", lead.email))
    rows += [(change.name, change.new) for change in action.attribute_changes]
    width = max((len(visible(name)) for name, _ in rows), default=0)
    verb = ("will be adopted (an existing Marketo lead, updated by its ID)" if lead.lead_id is not None
            else "will be created")
    lines = [paint(_DIM, f"# {visible(action.identity)} {verb} ({visible(lead.location)})"),
             paint(_GREEN, f"+ lead {_quote(action.identity)} {{")]
    lines += [paint(_GREEN, f"    + {visible(name).ljust(width)} = {_quote(value)}") for name, value in rows]
    lines.append("  }")
    return f"\n{indent}".join(lines)


def _paint(color: bool):
    return (lambda code, text: f"{code}{text}{_RESET}") if color else (lambda code, text: text)


def email_lead(email: str, **attributes: str | None) -> Lead:
    return Lead(location=Location("leads/a.yaml", 3), email=email, attributes=attributes)


@settings(max_examples=300, deadline=None)
@given(leads=st.lists(creates(), max_size=6), color=st.booleans())
@example(leads=[email_lead("##[error]@example.com", Title="CTO")], color=False)
@example(leads=[email_lead("a@example.com", Title="##[error]")], color=False)
@example(leads=[email_lead("a@example.com", Title="##", Phone="[x")], color=False)
@example(leads=[email_lead('"quoted"@example.com', Title="CTO")], color=True)
@example(leads=[email_lead("a@example.com", Title="back\\slash")], color=False)
@example(leads=[email_lead("a@example.com", Title="tab\there", Phone=None)], color=False)
def test_each_create_is_rendered_as_the_plain_recipe_renders_it(leads: list[Lead], color: bool) -> None:
    unique = list({lead.identity: lead for lead in leads}.values())
    actions = plan(unique, State(lineage="l", serial=1, leads={})).actions
    paint = _paint(color)
    assert _create_blocks(actions, paint, {}, "  ", "\n  ") == ["\n  " + plainly(a, paint, "  ") for a in actions]


def test_a_plan_of_creates_reads_as_before() -> None:
    leads = [Lead(location=Location("leads/a.yaml", 2 + 3 * i), email=f"lead{i}@example.com",
                  attributes={"Title": "CTO", "Phone": None}) for i in range(2)]
    text = render_text(plan(leads, State(lineage="l", serial=1, leads={})))
    assert text == (
        "reconcile will perform the following actions:\n\n"
        "  # email:lead0@example.com will be created (leads/a.yaml:2)\n"
        '  + lead "email:lead0@example.com" {\n'
        '      + email = "lead0@example.com"\n'
        "      + Phone = null\n"
        '      + Title = "CTO"\n'
        "    }\n\n"
        "  # email:lead1@example.com will be created (leads/a.yaml:5)\n"
        '  + lead "email:lead1@example.com" {\n'
        '      + email = "lead1@example.com"\n'
        "      + Phone = null\n"
        '      + Title = "CTO"\n'
        "    }\n\n"
        "Plan: 2 to create, 0 to update, 0 orphaned, 0 unchanged; 1 syncMultipleLeads call.\n")
