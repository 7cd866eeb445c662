"""Lead files written by `reconcile import` read back as exactly the text Marketo holds, by any YAML reader."""

from __future__ import annotations

import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconcile.adopt.yamlout import LeadEntry, render, scalar
from reconcile.inputs.leadfiles import parse_lead_file, parse_lead_file_reference, yaml_parsers

MISTYPED = ["0042", "no", "1e3", "2024-01-05", "~", "null", "true", "True", "off", "y", "0x1F", "1_000", "1:20",
            ".inf", "=", "<<", "", " ", "- item", "key: value", "a #comment", "#", "@x", "`x", "!tag", "&a", "*a",
            "[1]", "{a: 1}", "|", ">", "%YAML", "'", '"', "?", "\u2028", "\x85", "\ufeff", "tab\there", "\x7f"]


def read_back(text: str) -> list:
    """The attribute value as reconcile's fast path, its reference path, and PyYAML's safe loader read it."""
    document = render([LeadEntry(lead_id=1, email=None, attributes={"Field": text})], schema_ref="s.json")
    fast = parse_lead_file(document, "f.yaml").document["leads"][0]["attributes"]["Field"]
    pure = parse_lead_file_reference(document, "f.yaml", yaml_parsers(libyaml=False))
    safe = yaml.safe_load(document)["leads"][0]["attributes"]["Field"]
    return [fast, pure.document["leads"][0]["attributes"]["Field"], safe]


def test_values_yaml_would_mistype_are_quoted_and_read_back_exactly() -> None:
    for text in MISTYPED:
        assert scalar(text) != text, text
        assert read_back(text) == [text, text, text], text


def test_ordinary_text_stays_plain() -> None:
    for text in ["Ada", "Jane Doe", "O'Brien", "Zoë", "ACME, Inc.", "a@b.com", "VP Sales/Marketing"]:
        assert scalar(text) == text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40))
@example("Suite 5: floor #3")
@example("  padded  ")
def test_any_text_reads_back_exactly(text: str) -> None:
    assert read_back(text) == [text, text, text]


def test_leads_marketo_answers_without_being_asked_are_left_out() -> None:
    from reconcile.adopt.leads import FieldChoice, adopt, entries_of
    from reconcile.adopt.request import ImportRequest

    choice = FieldChoice({"FirstName": "firstName"}, explicit=False)
    rows = [{"id": 5, "email": "a@example.com", "firstName": "Ada"},
            {"id": 6, "email": "B@example.com", "firstName": None},
            {"id": 7, "email": "c@example.com", "firstName": "Eve"}]
    adopted = adopt([entries_of(rows, choice)], ImportRequest(ids=(5, 8), emails=("b@example.com",)))
    assert [entry.lead_id for entry in adopted.entries] == [5, 6]
    assert adopted.entries[1].attributes == {}  # empty and not asked for by name: not managed
    assert adopted.missing_ids == (8,) and adopted.missing_emails == ()
    assert adopted.problems == ("Marketo answered 1 lead(s) that were not asked for; they are left out",)
