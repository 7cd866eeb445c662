"""Lead files: YAML -> plain values with source lines, with YAML's implicit typing switched off.

Values are taken as written: `01234` stays "01234", `no` stays "no", dates stay text. Only plain
(unquoted) `null`/`~`/empty become None (clear the field), plain `true`/`false` are normalised to
"true"/"false", and a plain integer under `leadId` becomes an int. Duplicate keys are errors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconcile.errors import InputError, Location

LEAD_FILE_SUFFIXES = (".yaml", ".yml")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": "true", "True": "true", "TRUE": "true", "false": "false", "False": "false", "FALSE": "false"}
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
# Explicit scalar tags still give plain text; anything else (e.g. !!python/object) is refused.
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "timestamp"))


@dataclass(frozen=True)
class LeadFile:
    """One parsed lead file: its document as plain values and the source line of each lead entry."""

    path: str
    document: Any
    lead_lines: tuple[int, ...]


def discover(leads_dir: Path) -> list[Path]:
    """Every *.yaml/*.yml under `leads_dir`, recursively, in a deterministic order."""
    if not leads_dir.exists():
        raise InputError(f"lead directory not found: {leads_dir}", Location(str(leads_dir)))
    if leads_dir.is_file():
        return [leads_dir]
    found = []
    for root, dirs, files in os.walk(leads_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / name for name in files
                     if name.endswith(LEAD_FILE_SUFFIXES) and not name.startswith("."))
    return sorted(found, key=lambda p: p.as_posix())


def decode(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise InputError(f"file is not UTF-8 text (invalid byte 0x{raw[exc.start]:02x})",
                         Location(path, line)) from exc


def _loader_class():
    import yaml

    base_parser = getattr(yaml, "CParser", None)
    if base_parser is None:  # PyYAML built without libyaml: same results, slower
        from yaml.composer import Composer
        from yaml.parser import Parser
        from yaml.reader import Reader
        from yaml.scanner import Scanner

        class PurePythonParser(Reader, Scanner, Parser, Composer):
            def __init__(self, stream):
                Reader.__init__(self, stream)
                Scanner.__init__(self)
                Parser.__init__(self)
                Composer.__init__(self)

        base_parser = PurePythonParser

    class NodeLoader(base_parser, yaml.resolver.BaseResolver):
        """Composes nodes without resolving any implicit type: every scalar keeps its text."""

        def __init__(self, stream):
            base_parser.__init__(self, stream)
            yaml.resolver.BaseResolver.__init__(self)

    return NodeLoader


_LOADER = None


def compose(text: str, path: str):
    """The YAML node tree of `text` (a single document), or an InputError with the line."""
    global _LOADER
    import yaml

    if _LOADER is None:
        _LOADER = _loader_class()
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        if "expected a single document" in str(exc.context or ""):
            problem = "only one YAML document per file (remove the extra '---')"
        raise InputError(f"invalid YAML: {problem}", Location(path, line)) from exc
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", Location(path)) from exc
    finally:
        loader.dispose()
    return node


class _Converter:
    """Turns a node tree into plain values, checking what PyYAML's constructor would let through."""

    def __init__(self, path: str, max_nodes: int):
        self.path = path
        self.nodes = 0
        # Without aliases a file cannot hold more values than characters; the bound stops alias bombs.
        self.max_nodes = max_nodes

    def error(self, node, message: str) -> InputError:
        return InputError(message, Location(self.path, node.start_mark.line + 1))

    def value(self, node, key: str | None = None) -> Any:
        import yaml

        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise self.error(node, "file expands to too many values (aliases nested too deeply?)")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, key)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                raise self.error(node, f"unsupported YAML tag {node.tag}")
            return [self.value(item) for item in node.value]
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                raise self.error(node, f"unsupported YAML tag {node.tag}")
            return self.mapping(node)
        raise self.error(node, "unsupported YAML node")

    def scalar(self, node, key: str | None) -> Any:
        text = node.value
        if node.tag not in _SCALAR_TAGS:
            raise self.error(node, f"unsupported YAML tag {node.tag}")
        if node.style is not None:  # quoted or block scalars are always text
            return text
        if text in _NULLS:
            return None
        if text in _BOOLS:
            return _BOOLS[text]
        if key == "leadId" and text.isascii() and text.isdigit():
            return int(text)
        return text

    def mapping(self, node) -> dict[str, Any]:
        import yaml

        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.error(key_node, "mapping keys must be plain text")
            key = key_node.value
            if key == "<<" and key_node.style is None:
                raise self.error(key_node, "YAML merge keys (<<) are not supported; write the fields out")
            if key in result:
                raise self.error(key_node, f"duplicate key {key!r} in one mapping")
            result[key] = self.value(value_node, key)
        return result


def parse_lead_file(text: str, path: str) -> LeadFile:
    """Parse one lead file's text. The line of each entry under `leads:` is kept for messages."""
    import yaml

    node = compose(text, path)
    if node is None:
        raise InputError("file is empty; expected a mapping with a 'leads' list", Location(path, 1))
    converter = _Converter(path, max_nodes=2 * len(text) + 1000)
    document = converter.value(node)
    lead_lines: list[int] = []
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == "leads" and isinstance(value_node, yaml.SequenceNode):
                lead_lines = [item.start_mark.line + 1 for item in value_node.value]
    return LeadFile(path=path, document=document, lead_lines=tuple(lead_lines))


def load_lead_file(file: Path, display: str | None = None) -> LeadFile:
    name = display or file.as_posix()
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", Location(name)) from exc
    return parse_lead_file(decode(raw, name), name)


def line_of(text: str, path: str, json_path: tuple) -> int | None:
    """The source line of the value at `json_path` (keys and indexes), for error messages.

    Only called when there is an error to report, so the happy path keeps no per-value lines.
    """
    import yaml

    try:
        node = compose(text, path)
    except InputError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for step in json_path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == step:
                    node, line = value_node, key_node.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            return line
    return line
