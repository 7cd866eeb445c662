"""The `${{ }}` expression language of GitHub Actions, enough of it for the local workflow runner.

Contexts, literals, the operators (`!`, `<`, `==`, `&&`, `||`, `.`, `[]` with GitHub's loose
comparisons and case-insensitive strings), the status functions and `contains`, `startsWith`,
`endsWith`, `format`, `toJSON`, `fromJSON`; `interpolate` fills `${{ }}` in strings (a whole-string
expression keeps its type) and `condition_holds` reads an `if:` as GitHub does: without a status
function it means `success() && (...)`. Any other function raises ExpressionError.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^']|'')*')
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\],.*])
  | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
""", re.VERBOSE)

_STATUS_FUNCTIONS = ("success", "failure", "always", "cancelled")


class ExpressionError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExpressionError(f"cannot parse {text!r} at {pos}")
        pos = match.end()
        if match.lastgroup != "ws":
            out.append((match.lastgroup, match.group()))
    return out


def _to_number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0.0
        try:
            return float(int(text, 0)) if re.fullmatch(r"0x[0-9a-fA-F]+", text) else float(text)
        except ValueError:
            return math.nan
    return math.nan


def truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, 0.0, "")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    if type(a) is type(b) or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                              and not isinstance(a, bool) and not isinstance(b, bool)):
        return a == b
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return a is b
    return _to_number(a) == _to_number(b)


def to_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2)
    return str(value)


def _lookup(obj: Any, key: Any) -> Any:
    if isinstance(obj, Mapping):
        if key in obj:
            return obj[key]
        lowered = str(key).casefold()
        for k, v in obj.items():
            if str(k).casefold() == lowered:
                return v
        return None
    if isinstance(obj, list) and isinstance(key, (int, float)) and not isinstance(key, bool):
        index = int(key)
        return obj[index] if 0 <= index < len(obj) else None
    return None


class _Parser:
    def __init__(self, text: str, context: Mapping[str, Any], status: Mapping[str, bool]):
        self.tokens = _tokens(text)
        self.pos = 0
        self.context = context
        self.status = status

    def peek(self, value: str | None = None) -> bool:
        return self.pos < len(self.tokens) and (value is None or self.tokens[self.pos][1] == value)

    def take(self, value: str | None = None) -> tuple[str, str]:
        if not self.peek(value):
            raise ExpressionError(f"expected {value!r} at token {self.pos} of {self.tokens}")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> Any:
        value = self.or_()
        if self.pos != len(self.tokens):
            raise ExpressionError(f"unexpected {self.tokens[self.pos]!r}")
        return value

    def or_(self) -> Any:
        value = self.and_()
        while self.peek("||"):
            self.take()
            right = self.and_()
            value = value if truthy(value) else right
        return value

    def and_(self) -> Any:
        value = self.equality()
        while self.peek("&&"):
            self.take()
            right = self.equality()
            value = right if truthy(value) else value
        return value

    def equality(self) -> Any:
        value = self.comparison()
        while self.peek("==") or self.peek("!="):
            op = self.take()[1]
            right = self.comparison()
            value = _equal(value, right) if op == "==" else not _equal(value, right)
        return value

    def comparison(self) -> Any:
        value = self.unary()
        while any(self.peek(op) for op in ("<", ">", "<=", ">=")):
            op = self.take()[1]
            right = self.unary()
            a, b = ((value.casefold(), right.casefold()) if isinstance(value, str) and isinstance(right, str)
                    else (_to_number(value), _to_number(right)))
            value = {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
        return value

    def unary(self) -> Any:
        if self.peek("!"):
            self.take()
            return not truthy(self.unary())
        return self.postfix()

    def postfix(self) -> Any:
        value = self.primary()
        while True:
            if self.peek("."):
                self.take()
                kind, name = self.take()
                if kind != "name":
                    raise ExpressionError(f"bad property {name!r}")
                value = _lookup(value, name)
            elif self.peek("["):
                self.take()
                key = self.or_()
                self.take("]")
                value = _lookup(value, key)
            else:
                return value

    def primary(self) -> Any:
        kind, text = self.take()
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if text == "(":
            value = self.or_()
            self.take(")")
            return value
        if kind != "name":
            raise ExpressionError(f"unexpected {text!r}")
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if self.peek("("):
            self.take()
            args = []
            while not self.peek(")"):
                args.append(self.or_())
                if not self.peek(")"):
                    self.take(",")
            self.take(")")
            return self.call(text, args)
        return _lookup(self.context, text)

    def call(self, name: str, args: list[Any]) -> Any:
        lowered = name.lower()
        if lowered in _STATUS_FUNCTIONS:
            return self.status[lowered]
        if lowered == "contains":
            haystack, needle = args
            if isinstance(haystack, list):
                return any(_equal(item, needle) for item in haystack)
            return to_string(needle).casefold() in to_string(haystack).casefold()
        if lowered == "startswith":
            return to_string(args[0]).casefold().startswith(to_string(args[1]).casefold())
        if lowered == "endswith":
            return to_string(args[0]).casefold().endswith(to_string(args[1]).casefold())
        if lowered == "format":
            return re.sub(r"\{(\d+)\}", lambda m: to_string(args[int(m[1]) + 1]), to_string(args[0]))
        if lowered == "tojson":
            return json.dumps(args[0], indent=2)
        if lowered == "fromjson":
            return json.loads(to_string(args[0]))
        raise ExpressionError(f"function {name}() is not simulated")


def evaluate(text: str, context: Mapping[str, Any], status: Mapping[str, bool] | None = None) -> Any:
    status = status or {"success": True, "failure": False, "always": True, "cancelled": False}
    return _Parser(text, context, status).parse()


_INTERPOLATION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def interpolate(value: Any, context: Mapping[str, Any]) -> Any:
    """Replace every `${{ expr }}` in a string (a whole-string expression keeps its type)."""
    if not isinstance(value, str):
        return value
    whole = _INTERPOLATION.fullmatch(value.strip())
    if whole is not None:
        return evaluate(whole[1], context)
    return _INTERPOLATION.sub(lambda m: to_string(evaluate(m[1], context)), value)


def condition_holds(condition: Any, context: Mapping[str, Any], failed: bool) -> bool:
    """GitHub's `if:`: no `${{ }}` needed; without a status function it means `success() && (...)`."""
    status = {"success": not failed, "failure": failed, "always": True, "cancelled": False}
    if condition is None:
        return not failed
    if isinstance(condition, bool):
        return condition and not failed
    text = str(condition).strip()
    whole = _INTERPOLATION.fullmatch(text)
    if whole is not None:
        text = whole[1].strip()
    if not re.search(r"\b(" + "|".join(_STATUS_FUNCTIONS) + r")\s*\(", text, re.IGNORECASE):
        text = f"success() && ({text})"
    return truthy(evaluate(text, context, status))
