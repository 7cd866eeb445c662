"""Text from a server or a setting, made safe to print: one line, control characters visible."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(text: str, limit: int | None = None) -> str:
    """`text` with every control character shown escaped (a visible ``\\r``, never a raw one): a raw
    line break in printed text could start a line of its own, such as a CI runner command."""
    text = _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), str(text))
    if limit is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"
