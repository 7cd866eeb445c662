"""PyYAML's errors in plain words, at the line where the problem starts."""

from __future__ import annotations


def _char_at(text: str, line: int, column: int) -> str | None:
    lines = text.split("\n")
    if 0 <= line < len(lines) and 0 <= column < len(lines[line]):
        return lines[line][column]
    return None


def where_and_what(exc, text: str) -> tuple[int | None, str]:
    """The line where the problem starts, and plain words for it. PyYAML notices an unclosed quote
    only at the end of the file, and a bad indent as a token it did not expect: both are said here
    as what the author did, at the line where they did it."""
    problem, context = exc.problem or "", exc.context or ""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    if "quoted scalar" in context and exc.context_mark is not None:
        quote = _char_at(text, exc.context_mark.line, exc.context_mark.column) or '"'
        return (exc.context_mark.line + 1,
                f"a quoted value starts here with {quote} and is never closed: add the closing {quote}")
    if problem.startswith("expected <block end>, but found"):
        return line, ("this line's indentation does not fit the lines above it: a key lines up with the other "
                      "keys of its mapping, and a list item's '- ' with the other items of its list")
    if problem == "mapping values are not allowed here" and "block mapping" not in context:
        return line, ("unexpected ':' (a line indented deeper than the key above it continues that key's "
                      "value): line it up with the key above, or quote a value that holds ': '")
    return line, yaml_problem(exc)


def yaml_problem(exc) -> str:
    problem = exc.problem or exc.context or "invalid YAML"
    if "expected a single document" in str(exc.context or ""):
        return "only one YAML document per file (remove the extra '---')"
    if "'\\t'" in problem:
        return problem + "; use spaces for indentation, not tabs"
    if problem.endswith("but got '?'") and "',' or" in problem:
        return problem + "; quote text that holds '?' inside { } or [ ]"
    if "chomping or indentation indicators, but found '#'" in problem:
        return problem + "; put a space before the comment"
    return problem
