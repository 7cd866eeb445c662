"""Markdown for pull-request comments and job summaries: hostile text kept as text, size kept in bounds."""

from __future__ import annotations

import re
from typing import Sequence

from reconcile.core.render import fence_for
from reconcile.core.safetext import visible

# Characters with a meaning in GitHub Markdown inside a table cell; each is shown with a backslash.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]()|~!#])")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def table_cell(value: object) -> str:
    """`value` as the text of one table cell: one line, no pipe ending the cell, no code span, emphasis,
    HTML, image or link."""
    text = _MARKDOWN_PUNCTUATION.sub(r"\\\1", visible(value))
    return "".join(_HTML.get(char, char) for char in text)


def code_block(lines: Sequence[str], info: str = "text") -> list[str]:
    body = "\n".join(visible(line) for line in lines)
    fence = fence_for(body)
    return [f"{fence}{info}", body, fence]


_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


def _close_open_blocks(text: str) -> str:
    """Close a code fence and any <details> left open by cutting `text` short."""
    fence: str | None = None
    details = 0
    for line in text.splitlines():
        match = _FENCE.match(line)
        if fence is not None:
            closes = (match and match[1][0] == fence[0] and len(match[1]) >= len(fence)
                      and not line.strip()[len(match[1]):])
            if closes:
                fence = None
            continue
        if match:
            fence = match[1]
            continue
        details += line.count("<details") - line.count("</details>")
    closing = []
    if fence is not None:
        closing.append(fence)
    closing += ["", "</details>"] * max(details, 0)
    return text.rstrip("\n") + ("\n" + "\n".join(closing) if closing else "")


def truncate(text: str, limit: int, notice: str) -> str:
    """`text` if it fits in `limit` characters; else its head (cut at a line, blocks closed) + `notice`."""
    if len(text) <= limit:
        return text
    budget = limit - len(notice) - 64
    while budget > 0:
        cut = text.rfind("\n", 0, budget)
        head = text[:cut if cut > 0 else budget]
        result = _close_open_blocks(head) + "\n\n" + notice + "\n"
        if len(result) <= limit:
            return result
        budget -= max(len(result) - limit, 64)
    return notice[:limit]
