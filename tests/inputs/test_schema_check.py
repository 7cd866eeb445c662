"""The precompiled schema check (validate.SchemaCheck) agrees with jsonschema at every boundary the
schema draws: each maxLength, minLength, minimum, maximum and pattern, found by walking the schema
itself, so a new rule there fails this test until it is covered here."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from reconcile.inputs import validate

SCHEMA = json.loads(validate.schema_bytes())
BOUNDED = ("maxLength", "minLength", "minimum", "maximum", "pattern")


def _constraints(node: Any, pointer: str = "") -> dict[str, dict[str, Any]]:
    """{JSON pointer of a subschema: {keyword: value}} for every bounded keyword in the schema."""
    found: dict[str, dict[str, Any]] = {}
    if isinstance(node, dict):
        own = {key: node[key] for key in BOUNDED if key in node}
        if own:
            found[pointer] = own
        for key, value in node.items():
            found.update(_constraints(value, f"{pointer}/{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.update(_constraints(value, f"{pointer}/{index}"))
    return found


CONSTRAINTS = _constraints(SCHEMA)


def lead(**fields: Any) -> dict:
    return {"leads": [fields]}


# Where each bounded subschema's value goes in a document, and a valid sample of it.
Place = Callable[[Any], dict]
PLACES: dict[str, list[tuple[Place, Any]]] = {
    "/$defs/xmlText": [(lambda v: lead(email="a@b.co", attributes={"Notes": v}), "Fine text")],
    "/$defs/keyText": [(lambda v: lead(email=v), "jane@example.com"),
                       (lambda v: lead(email="a@b.co", lists=[v]), "VIP Customers"),
                       (lambda v: lead(foreignSysPersonId=v), "0042"),
                       (lambda v: lead(email="a@b.co", attributes={v: "x"}), "Company")],
    "/$defs/lead/properties/leadId": [(lambda v: lead(leadId=v), 1090240)],
    "/$defs/lead/properties/email": [(lambda v: lead(email=v), "jane@example.com")],
    "/$defs/lead/properties/foreignSysPersonId": [(lambda v: lead(foreignSysPersonId=v), "0042")],
    "/$defs/lead/properties/attributes/propertyNames": [
        (lambda v: lead(email="a@b.co", attributes={v: "x"}), "Company")],
    "/$defs/lead/properties/lists/items": [(lambda v: lead(email="a@b.co", lists=[v]), "VIP Customers"),
                                           (lambda v: lead(email="a@b.co", lists=["Webinar", v]), "id:1021")],
}

# Characters that must not slip through a pattern: every kind of control character, line and
# paragraph separators, the XML non-characters, and plain spaces (for the no-surrounding-space rule).
SPECIALS = ["\n", "\r", "\t", "\x00", "\x01", "\x0b", "\x1f", "\x7f", "\x85", "\x9f", "\u2028", "\ufffe", "\uffff",
            " ", "\xa0", "@", "."]


def stretch(sample: str, length: int) -> str:
    """`sample` cut or padded (at the front, keeping an email an email) to `length` characters."""
    if length <= len(sample):
        return sample[:length]
    return sample[0] * (length - len(sample)) + sample


def boundary_values(sample: Any, keywords: dict[str, Any]) -> list[Any]:
    values = [sample]
    for keyword, bound in keywords.items():
        if keyword in ("maxLength", "minLength"):
            values += [stretch(sample, n) for n in (bound - 1, bound, bound + 1) if n >= 0]
        elif keyword in ("minimum", "maximum"):
            values += [bound - 1, bound, bound + 1]
        elif keyword == "pattern":
            values += [sample + c for c in SPECIALS] + [c + sample for c in SPECIALS]
            values += [sample[:1] + c + sample[1:] for c in SPECIALS] + ["", "\n"]
    return values


def cases() -> list[tuple[str, Any]]:
    result = []
    for pointer, keywords in sorted(CONSTRAINTS.items()):
        for place, sample in PLACES[pointer]:
            result += [(pointer, place(value)) for value in boundary_values(sample, keywords)]
    return result


def jsonschema_accepts(document: Any) -> bool:
    return not list(validate._validator().iter_errors(document))


def test_every_bounded_rule_in_the_schema_is_covered() -> None:
    assert set(CONSTRAINTS) == set(PLACES), "cover the schema's new rule in PLACES"
    assert {"maxLength", "pattern"} <= {keyword for keywords in CONSTRAINTS.values() for keyword in keywords}


@pytest.mark.parametrize("pointer, document", cases())
def test_the_fast_check_agrees_with_jsonschema_at_the_boundary(pointer: str, document: dict) -> None:
    assert validate.SchemaCheck().clean(document) == jsonschema_accepts(document), (pointer, document)


@pytest.mark.parametrize("length, valid", [(254, True), (255, True), (256, False)])
def test_an_email_of_254_255_256_characters(length: int, valid: bool) -> None:
    document = lead(email=stretch("jane@example.com", length))
    assert len(document["leads"][0]["email"]) == length
    assert jsonschema_accepts(document) is valid
    assert validate.SchemaCheck().clean(document) is valid


@pytest.mark.parametrize("value, valid", [("", False), ("0", True), ("x" * 255, True), ("x" * 256, False),
                                          ("9\n", False), ("\n9", False), ("9 9", True)])
def test_foreign_ids_at_the_edges(value: str, valid: bool) -> None:
    document = lead(foreignSysPersonId=value)
    assert jsonschema_accepts(document) is valid
    assert validate.SchemaCheck().clean(document) is valid


# --- a property test whose generator provably reaches the boundaries -------------------------------

def _strings_near(sample: str, bound: int) -> st.SearchStrategy[str]:
    return st.integers(max(0, bound - 2), bound + 2).map(lambda n: stretch(sample, n))


def _with_special(sample: str) -> st.SearchStrategy[str]:
    return st.tuples(st.integers(0, len(sample)), st.sampled_from(SPECIALS)).map(
        lambda pair: sample[:pair[0]] + pair[1] + sample[pair[0]:])


def _texts(sample: str, bounds: tuple[int, ...]) -> st.SearchStrategy[str]:
    return st.one_of(st.just(sample), _with_special(sample), *(_strings_near(sample, b) for b in bounds),
                     st.text(max_size=4))


EMAIL_MAX = CONSTRAINTS["/$defs/lead/properties/email"]["maxLength"]
FOREIGN = CONSTRAINTS["/$defs/lead/properties/foreignSysPersonId"]
LEAD_ID = CONSTRAINTS["/$defs/lead/properties/leadId"]
emails = _texts("jane@example.com", (EMAIL_MAX,))
foreign_ids = _texts("0042", (FOREIGN["minLength"], FOREIGN["maxLength"]))
names = _texts("Company", (1,))
values = st.one_of(st.none(), _texts("Fine text", ()))
lead_ids = st.one_of(st.integers(LEAD_ID["minimum"] - 2, LEAD_ID["minimum"] + 2),
                     st.integers(LEAD_ID["maximum"] - 2, LEAD_ID["maximum"] + 2))


@st.composite
def boundary_documents(draw) -> dict:
    entry: dict[str, Any] = {}
    for field, strategy in (("leadId", lead_ids), ("email", emails), ("foreignSysPersonId", foreign_ids)):
        if draw(st.booleans()):
            entry[field] = draw(strategy)
    if draw(st.booleans()):
        entry["attributes"] = draw(st.dictionaries(names, values, max_size=3))
    return {"leads": [entry]}


@settings(max_examples=600, deadline=None)
@given(document=boundary_documents())
def test_the_fast_check_is_never_more_permissive_than_jsonschema_near_the_boundaries(document: dict) -> None:
    if validate.SchemaCheck().clean(document):
        assert jsonschema_accepts(document), document


@pytest.mark.parametrize("strategy, wanted", [
    (emails, lambda v: len(v) == EMAIL_MAX and "@" in v),
    (emails, lambda v: len(v) == EMAIL_MAX + 1 and "@" in v),
    (emails, lambda v: v.endswith("\n") and "@" in v),
    (foreign_ids, lambda v: v == ""),
    (foreign_ids, lambda v: len(v) == FOREIGN["maxLength"] + 1),
    (names, lambda v: v.endswith("\n") and len(v) > 1),
    (names, lambda v: v.startswith(" ")),
    (values, lambda v: v is not None and "\x01" in v),
    (lead_ids, lambda v: v == LEAD_ID["maximum"] + 1),
    (lead_ids, lambda v: v == LEAD_ID["minimum"] - 1),
], ids=["email-max", "email-max+1", "email-newline", "foreign-empty", "foreign-max+1", "name-newline",
        "name-space", "value-control", "leadId-max+1", "leadId-min-1"])
def test_the_generator_reaches_each_boundary(strategy, wanted) -> None:
    find(strategy, wanted, settings=settings(max_examples=2000, database=None))
