"""Lead files written by reconcile: YAML whose every value reads back as exactly the text it was.

reconcile's own loader has no implicit typing, but editors, `yq` and other YAML tools do: `0042`,
`no`, `1e3`, `2024-01-05`, `~` and `null` are numbers, booleans, dates and nulls to them. So a value
is written plain only when it is ordinary text to every YAML reader (a conservative character set,
and no implicit type under YAML 1.1 or 1.2); anything else is double-quoted, with escapes for every
character that a YAML stream cannot carry or would read as a line break.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

SCHEMA_NAME = "leads.schema.json"

# Plain scalars: word characters, inner spaces and harmless punctuation; no indicator can start
# one (`-`, `?`, `:`, `#`, `&`, `*`, `!`, `|`, `>`, quotes, `%`, `@`, backquote) and `: `/` #` cannot occur.
_PLAIN = re.compile(r"[^\W_][\w.,@+/()'&-]*(?: [\w.,@+/()'&-]+)*")
# What YAML 1.1 and 1.2 resolve implicitly among the plain scalars above: numbers in every notation
# (anything starting with a digit or a sign, hex/octal/binary, .inf/.nan), booleans (yes/no/on/off/y/n
# too), nulls and dates.
_IMPLICIT = re.compile(
    r"[-+]?[0-9][0-9_,:.eE+-]*|0[xob][0-9a-fA-F_]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
    r"|(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)"
    r"|(?:null|Null|NULL|~)|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x85": "\\N",
            "\u2028": "\\L", "\u2029": "\\P"}
# Characters a YAML stream may carry as they are, minus the line breaks and byte order mark.
_PRINTABLE = re.compile("[\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]*")


def scalar(text: str) -> str:
    """`text` as a YAML scalar that every YAML reader (and reconcile's loader) reads back as `text`."""
    if _PLAIN.fullmatch(text) and not _IMPLICIT.fullmatch(text):
        return text
    return '"' + "".join(_escaped(char) for char in text) + '"'


def _escaped(char: str) -> str:
    named = _ESCAPES.get(char)
    if named is not None:
        return named
    if _PRINTABLE.fullmatch(char):
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


@dataclass(frozen=True)
class LeadEntry:
    """One lead as an imported lead file declares it: keyed by its Marketo ID."""

    lead_id: int
    email: str | None
    attributes: Mapping[str, str | None]
    lists: Sequence[str] = ()  # the static lists it is on (import --lists), as a lead file names them


def render(leads: Sequence[LeadEntry], *, schema_ref: str, header: Sequence[str] = ()) -> str:
    """The lead file: the schema comment, `header` as comments, then the leads in the order given."""
    return document([lead_block(lead) for lead in leads], schema_ref=schema_ref, header=header)


def document(blocks: Sequence[str], *, schema_ref: str, header: Sequence[str] = ()) -> str:
    """The lead file around leads already rendered by `lead_block`."""
    lines = [f"# yaml-language-server: $schema={schema_ref}", *(f"# {line}" for line in header)]
    lines.append("leads:" if blocks else "leads: []")
    return "\n".join(lines) + "\n" + "".join(blocks)


def lead_block(lead: LeadEntry) -> str:
    """One lead's lines (an import renders them while other reads are still waiting for Marketo)."""
    lines = [f"  - leadId: {int(lead.lead_id)}"]
    if lead.email is not None:
        lines.append(f"    email: {scalar(lead.email)}")
    if lead.attributes:
        lines.append("    attributes:")
        for name, value in lead.attributes.items():
            lines.append(f"      {scalar(name)}: {'null' if value is None else scalar(value)}")
    if lead.lists:
        lines.append("    lists:")
        lines.extend(f"      - {scalar(name)}" for name in lead.lists)
    return "\n".join(lines) + "\n"


def schema_reference(out: Path, start: Path | None = None) -> str:
    """The `$schema` path for a lead file at `out`: relative to it, to the nearest `schemas/`
    holding the lead-file schema in or above its folder; else to `schemas/` in `start` (the
    working directory), where a repository keeps it."""
    folder = out.resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / "schemas" / SCHEMA_NAME).is_file():
            return _relative(candidate / "schemas" / SCHEMA_NAME, folder)
    return _relative((start or Path.cwd()).resolve() / "schemas" / SCHEMA_NAME, folder)


def _relative(target: Path, folder: Path) -> str:
    return Path(os.path.relpath(target, folder)).as_posix()
