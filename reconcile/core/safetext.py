"""Text from lead files, file names and Marketo's answers, made safe to print.

Everything reconcile prints may land in a CI log, where a line starting with `::` (after blanks) is a
command to the GitHub Actions runner, and `\\r` starts a new line as much as `\\n` does. So a value is
never printed raw: its control characters (and the invisible ones that reorder text) are shown as
escapes, and a printed line never begins with `::` unless reconcile itself writes a workflow command.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, Unicode line/paragraph separators, and the bidirectional overrides and
# isolates that make text read differently from what it is.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r"}
# The runner's older command syntax, recognised anywhere in a line.
OLD_COMMAND = _OLD_COMMAND = "##["
_OLD_COMMAND_ESCAPED = "##\\x5b"
_COMMAND_START = re.compile(r"^(\s*):")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(value: object) -> str:
    """`value` as one line of plain text: `\\n`, `\\r`, and `\\xNN`/`\\uNNNN` for other invisible characters."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and _OLD_COMMAND not in text:
        return text  # the common case, at C speed
    return _UNSAFE.sub(_escape_char, text).replace(_OLD_COMMAND, _OLD_COMMAND_ESCAPED)


def json_text(text: str) -> str:
    """JSON from `json.dumps(..., ensure_ascii=False)` with the invisible characters JSON leaves raw
    (DEL, C1 controls, line separators, bidi overrides) written as `\\uNNNN` escapes: the same data."""
    if text.isprintable() or not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: m.group() if m.group() in "\n\t" else f"\\u{ord(m.group()):04x}", text)


def not_a_command(line: str) -> str:
    """`line`, changed only if the runner would take it for a workflow command."""
    if line.lstrip().startswith("::"):
        return _COMMAND_START.sub(r"\1\\x3a", line, count=1)
    return line


# What safe_block leaves alone, checked over the whole text at C speed (a plan of 100k leads has a
# million lines): printable ASCII and its layout (tab, newline; and ESC with colours).
_LAYOUT = bytes(range(0x20, 0x7F)) + b"\t\n"
_COLOURED_LAYOUT = _LAYOUT + b"\x1b"
_UNSAFE_BUT_LAYOUT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_COLOURED_LAYOUT = re.compile(
    "[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _nothing_to_change(text: str, keep_ansi: bool) -> bool:
    if "::" in text or _OLD_COMMAND in text:  # perhaps a command: look line by line
        return False
    if text.isascii():
        return not text.encode("ascii").translate(None, _COLOURED_LAYOUT if keep_ansi else _LAYOUT)
    return not (_UNSAFE_BUT_COLOURED_LAYOUT if keep_ansi else _UNSAFE_BUT_LAYOUT).search(text)


def safe_block(text: str, *, keep_ansi: bool = False) -> str:
    """Multi-line output assembled by reconcile: every line kept a line, nothing in it a command.

    Newlines and tabs are reconcile's own layout and stay; every other control character is escaped,
    except the escape character when `keep_ansi` (the renderer's colours; values are escaped before).
    """
    return text if _nothing_to_change(text, keep_ansi) else _safe_lines(text, keep_ansi)


def _safe_lines(text: str, keep_ansi: bool) -> str:
    lines = text.split("\n")
    out = []
    for line in lines:
        if not line.isprintable():
            line = _UNSAFE.sub(lambda m: m.group() if m.group() == "\t" or (keep_ansi and m.group() == "\x1b")
                               else _escape_char(m), line)
        out.append(not_a_command(line.replace(_OLD_COMMAND, _OLD_COMMAND_ESCAPED)))
    return "\n".join(out)
