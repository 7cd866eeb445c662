"""The fast paths behind a cold plan agree with the reference paths that word every error: the fast YAML
path parses the corpus (bad inputs, golden cases, the examples) and generated documents exactly as
the reference parser does, with or without libyaml, and refuses what libyaml alone would accept; the
fast schema check is on for the shipped schema, clears ordinary lead files, and is never more
permissive than jsonschema.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.inputs import leadfiles
from reconcile.inputs import validate
from reconcile.errors import InputError

CASES = Path(__file__).parents[1] / "cases"
BAD_INPUTS = Path(__file__).parents[1] / "bad_inputs"
EXAMPLES = Path(__file__).parents[2] / "leads"


# --- the fast paths agree with the reference paths --------------------------------------------------

def test_the_fast_schema_check_is_on_for_the_shipped_schema() -> None:
    """It is pinned to the schema's hash: after editing the schema, review SchemaCheck and re-pin."""
    assert validate.fast_check_enabled()
    assert (Path(__file__).parents[2] / "schemas" / "leads.schema.json").read_bytes() == validate.schema_bytes()


def _corpus() -> list[Path]:
    files = sorted(BAD_INPUTS.glob("*.yaml")) + sorted(CASES.glob("*/leads/**/*.yaml"))
    return files + sorted(EXAMPLES.glob("**/*.yaml"))


def _outcome(parse, text: str):
    try:
        result = parse(text, "f.yaml")
    except InputError as exc:
        return ("error", str(exc.location), exc.message)
    return ("ok", result)


def _utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:  # rejected before parsing: nothing for the two paths to disagree on
        return False
    return True


@pytest.mark.parametrize("path", [p for p in _corpus() if _utf8(p)], ids=lambda p: p.name)
def test_fast_yaml_path_matches_the_reference_on_the_corpus(path: Path) -> None:
    text = path.read_bytes().decode("utf-8-sig")
    assert _outcome(leadfiles.parse_lead_file, text) == _outcome(leadfiles.parse_lead_file_reference, text)


@pytest.mark.parametrize("path", [p for p in _corpus() if _utf8(p)], ids=lambda p: p.name)
def test_the_corpus_reads_the_same_without_libyaml(path: Path) -> None:
    text = path.read_bytes().decode("utf-8-sig")
    assert _without_libyaml(leadfiles.parse_lead_file, text) == _outcome(leadfiles.parse_lead_file, text)


SCALARS = ["Jane", "01234", "0x1F", "1e3", "1_000", "12:30", "2024-01-01", "no", "yes", "on", "off", "y",
           "true", "True", "FALSE", "null", "Null", "~", "", "NULL", ".inf", "-.5", "+1", "007", "1090240",
           "-5", "a@b.co", "a b", "a: b", "a #b", "a#b", "- x", "? x", "[x]", "{x: 1}", "&a x", "*a", "!x y",
           "!!str 5", "!!int 5", "! x", "!!python/object:os.system x", '"quoted"', "'single'",
           '"tab\\there"', '"bell\\a"', '"nul\\0"', '"\\uFFFE"', "'it''s'", "|\n  block\n", ">-\n  folded\n  text\n",
           "é", "日本", "a\u2028b", "%x", "@x", "`x", "x,y", "x\t", " lead", "<<", "=", "'<<'",
           # libyaml and PyYAML read these differently (in flow collections, after block indicators)
           "https://x.com/?a=1", "Why?", "a?b", "?", ">-#c", ">-#c\n  text\n", "|#c\n  text\n", "|2-#c\n  text\n",
           "'?'", "a:b", "a:", "[a?]"]
KEYS = ["email", "leadId", "foreignSysPersonId", "foreignSysType", "attributes", "colour", "Company", "<<",
        "'leadId'", "Email", "Zip", "? complex", "[a]", '"quoted key"', "a b", ""]


@st.composite
def yaml_documents(draw) -> str:
    lines = [draw(st.sampled_from(["leads:", "leads:", "'leads':", "leads: []", "- leads:", "other: 1\nleads:",
                                   "---\nleads:", "leads: &L", "leads: !!seq"]))]
    for _ in range(draw(st.integers(0, 4))):
        indent = draw(st.sampled_from(["  ", "", "    "]))
        fields = draw(st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(SCALARS)), min_size=0, max_size=4))
        if not fields:
            lines.append(f"{indent}- {draw(st.sampled_from(SCALARS))}")
            continue
        for index, (key, value) in enumerate(fields):
            prefix = f"{indent}- " if index == 0 else f"{indent}  "
            if key == "attributes" and draw(st.booleans()):
                attrs = draw(st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(SCALARS)), max_size=3))
                if draw(st.booleans()):
                    lines.append(prefix + "attributes: {" + ", ".join(f"{k}: {v}" for k, v in attrs) + "}")
                else:
                    lines.append(prefix + "attributes:")
                    lines.extend(f"{indent}    {k}: {v}" for k, v in attrs)
            else:
                lines.append(f"{prefix}{key}: {value}")
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["# comment", "  # indented comment", "", "...", "---", "\t"])))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=yaml_documents())
def test_fast_yaml_path_matches_the_reference(text: str) -> None:
    assert _outcome(leadfiles.parse_lead_file, text) == _outcome(leadfiles.parse_lead_file_reference, text)


def _without_libyaml(parse, text: str):
    """`parse(text)` as if PyYAML had been built without libyaml."""
    pure = leadfiles.yaml_parsers(libyaml=False)
    assert pure.c_nodes is None and pure.events is pure.pure_events
    return _outcome(lambda text, path: parse(text, path, pure), text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=yaml_documents())
def test_results_do_not_depend_on_libyaml(text: str) -> None:
    """Without libyaml the fast path runs on the pure-Python parser's events; with or without it,
    every file gives the same leads or the same error."""
    with_libyaml = _outcome(leadfiles.parse_lead_file, text)
    assert _without_libyaml(leadfiles.parse_lead_file, text) == with_libyaml
    assert _without_libyaml(leadfiles.parse_lead_file_reference, text) == with_libyaml


@pytest.mark.parametrize("text, expected", [
    # libyaml accepts a tab after a value and a byte order mark past the start; PyYAML does not
    ("leads:\n  - email: a@b.co\t\n", ("f.yaml:2", "invalid YAML: found character '\\t' that cannot start any "
                                                   "token; use spaces for indentation, not tabs")),
    ("leads: []\n\ufeff\n", ("f.yaml:3", "invalid YAML: could not find expected ':'")),
    ("leads:\n  - email: a@b.co\n    attributes: {Company: Ac\x07me}\n",
     ("f.yaml:3", "invalid YAML: unacceptable character #x0007: special characters are not allowed")),
    # libyaml reads '?' in a flow collection as text, and allows a comment glued to >- ; PyYAML does not
    ("leads:\n  - email: a@b.co\n    attributes: {Website: https://x.com/?a=1}\n",
     ("f.yaml:3", "invalid YAML: expected ',' or '}', but got '?'; quote text that holds '?' inside { } or [ ]")),
    ("leads:\n  - email: a@b.co\n    attributes: {Notes: Why?}\n",
     ("f.yaml:3", "invalid YAML: expected ',' or '}', but got '?'; quote text that holds '?' inside { } or [ ]")),
    ("leads:\n  - email: a@b.co\n    attributes:\n      Notes: >-#c\n        text\n",
     ("f.yaml:4", "invalid YAML: expected chomping or indentation indicators, but found '#'; put a space before "
                  "the comment")),
])
def test_what_libyaml_alone_would_accept_is_refused(text: str, expected: tuple) -> None:
    assert _outcome(leadfiles.parse_lead_file, text) == ("error", *expected)
    assert _without_libyaml(leadfiles.parse_lead_file, text) == ("error", *expected)


TEXTS = ["Jane", "", " ", "a b", " lead", "lead ", "x\n", "\n", "a\x07b", "\x1f", "\ufffe", "\t", "a\tb", "\x85",
         "a@b.co", "a@b.co\n", "a b@c.de", "a@b@c.de", "a@b.c.", "@b.co", "a@.co", "a@b", "é@é.é", "x" * 256,
         "a@" + "b" * 250 + ".co", "SFDC", "CUSTOM", "NETSUITE", "sfdc", "01234", "Email", "Id", "\u2028"]
VALUES = st.one_of(st.sampled_from(TEXTS), st.none(), st.sampled_from([0, 1, -1, 2147483647, 2147483648, True]),
                   st.just([]), st.just({}), st.just(["x"]), st.just({"a": "b"}), st.floats(allow_nan=False))


@st.composite
def documents(draw):
    """Mostly-valid lead documents with one or two things off (or none)."""
    def lead():
        entry = {}
        for field in draw(st.sets(st.sampled_from(["leadId", "email", "foreignSysPersonId", "foreignSysType",
                                                   "attributes", "other"]))):
            if field == "attributes":
                entry[field] = draw(st.one_of(
                    st.dictionaries(st.sampled_from(TEXTS), st.one_of(st.sampled_from(TEXTS), st.none()), max_size=4),
                    VALUES))
            elif field == "leadId":
                entry[field] = draw(st.one_of(st.integers(-2, 2**31 + 1), VALUES))
            else:
                entry[field] = draw(VALUES)
        return entry

    leads = [lead() for _ in range(draw(st.integers(0, 3)))]
    return draw(st.sampled_from([{"leads": leads}, {"leads": leads}, {"leads": leads, "x": 1}, {}, leads, None,
                                 {"leads": {}}, {"leads": None}]))


@settings(max_examples=500, deadline=None)
@given(document=documents())
def test_fast_schema_check_is_never_more_permissive_than_jsonschema(document) -> None:
    if validate.SchemaCheck().clean(document):
        assert list(validate._validator().iter_errors(document)) == []


def test_fast_schema_check_clears_ordinary_lead_files() -> None:
    for path in sorted(CASES.glob("*/leads/**/*.yaml")) + sorted(EXAMPLES.glob("**/*.yaml")):
        document = leadfiles.parse_lead_file(path.read_text(encoding="utf-8"), path.name).document
        assert validate.SchemaCheck().clean(document), path
