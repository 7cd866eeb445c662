"""Where a value of a lead file is, for error messages: its source line by JSON path."""

from __future__ import annotations

from typing import Any

from reconcile.errors import InputError
from reconcile.inputs.leadfiles import YamlParsers, compose, yaml_parsers


class SourceLines:
    """Source lines of values by their JSON path, for error messages. Composes the file once, lazily.

    Only used when there is an error to report, so the happy path keeps no per-value lines.
    """

    def __init__(self, text: str, path: str, parsers: YamlParsers | None = None):
        self.text = text
        self.path = path
        self.parsers = parsers or yaml_parsers()
        self._root: Any = _UNSET
        self._lines: dict[tuple, int | None] = {}

    def line(self, json_path: tuple) -> int | None:
        if json_path not in self._lines:
            self._lines[json_path] = self._find(json_path)
        return self._lines[json_path]

    def _find(self, json_path: tuple) -> int | None:
        if self._root is _UNSET:
            try:
                self._root = compose(self.text, self.path, self.parsers)
            except InputError:
                self._root = _UNPARSABLE
        node = self._root
        if node is _UNPARSABLE:
            return None
        yaml = self.parsers.yaml
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


_UNSET = object()
_UNPARSABLE = object()


def line_of(text: str, path: str, json_path: tuple, parsers: YamlParsers | None = None) -> int | None:
    """The source line of the value at `json_path` (keys and indexes), for error messages."""
    return SourceLines(text, path, parsers).line(json_path)
