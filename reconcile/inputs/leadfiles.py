"""Lead files: YAML -> plain values with source lines, with YAML's implicit typing switched off.

Values are taken as written: `01234` stays "01234", `no` stays "no", dates stay text. Only plain
(unquoted) `null`/`~`/empty become None (clear the field), plain `true`/`false` are normalised to
"true"/"false", and a plain integer under `leadId` becomes an int. Duplicate keys are errors.

Two ways to the same result:
- the fast path builds plain values straight from libyaml's event stream (no node tree, no resolver).
  It handles the plain YAML lead files are made of; the moment it meets anything else (an anchor, an
  alias, a tag, a merge key, a duplicate key, a non-text key, a YAML error, a second document) it
  gives up and
- the reference path composes the node tree and converts it, checking everything and raising the
  error messages users see. YAML syntax errors are reported by PyYAML's pure-Python parser, whose
  messages are the documented ones (libyaml words them differently).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from reconcile.errors import InputError, Location
from reconcile.inputs.yamlerrors import where_and_what

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": "true", "True": "true", "TRUE": "true", "false": "false", "False": "false", "FALSE": "false"}
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
# Explicit scalar tags still give plain text; anything else (e.g. !!python/object) is refused.
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "timestamp"))
# A lead file needs 5 levels (document, leads, lead, attributes, value). Far deeper nesting is refused
# before anything recursive (the composer, the converter) sees it.
MAX_DEPTH = 64
# The longest leadId read as a number: 2^31 - 1 has 10 digits; longer ones only need to be refused.
_MAX_LEAD_ID_DIGITS = 20
# A double-quoted scalar's \u escape can give half of a surrogate pair on its own: not a character, so
# no UTF-8 file, state or request can hold it. Only that style has escapes.
_SURROGATE = re.compile("[\ud800-\udfff]")
_DOUBLE_QUOTED = '"'


@dataclass(frozen=True)
class LeadFile:
    """One parsed lead file: its document as plain values and the source line of each lead entry."""

    path: str
    document: Any
    lead_lines: tuple[int, ...]


# --- parsers ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class YamlParsers:
    """The YAML machinery one parse uses: the event parser (libyaml's when PyYAML has it and `libyaml`
    is asked for) and node loaders. Passed in, so a test can parse as if libyaml were missing."""

    yaml: Any
    events: Any
    pure_events: Any
    c_nodes: Any
    pure_nodes: Any


@lru_cache(maxsize=2)
def yaml_parsers(libyaml: bool = True) -> YamlParsers:
    """The parsers, built on first use; `libyaml=False` gives the pure-Python ones only."""
    import yaml
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.resolver import BaseResolver
    from yaml.scanner import Scanner

    class PurePythonParser(Reader, Scanner, Parser, Composer):
        def __init__(self, stream):
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)
            self.depth = 0

        def compose_node(self, parent, index):
            # The composer recurses once per level: refuse deep nesting before Python's stack runs out.
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise _TooDeep(self.peek_event().start_mark.line + 1)
                return Composer.compose_node(self, parent, index)
            finally:
                self.depth -= 1

    class PureNodeLoader(PurePythonParser, BaseResolver):
        """Composes nodes without resolving any implicit type: every scalar keeps its text."""

        def __init__(self, stream):
            PurePythonParser.__init__(self, stream)
            BaseResolver.__init__(self)

    CParser = None
    if libyaml:
        try:  # PyYAML does not export its libyaml binding at the top level (yaml.CParser does not exist)
            from yaml._yaml import CParser
        except ImportError:  # PyYAML built without libyaml: same results, slower
            CParser = None

    if CParser is not None:
        class CNodeLoader(CParser, BaseResolver):
            def __init__(self, stream):
                CParser.__init__(self, stream)
                BaseResolver.__init__(self)
    else:
        CNodeLoader = None

    return YamlParsers(yaml=yaml, events=CParser or PurePythonParser, pure_events=PurePythonParser,
                       c_nodes=CNodeLoader, pure_nodes=PureNodeLoader)


class _TooDeep(Exception):
    def __init__(self, line: int | None):
        super().__init__(line)
        self.line = line


def _too_deep(path: str, line: int | None) -> InputError:
    return InputError(f"invalid YAML: nested more than {MAX_DEPTH} levels deep (a lead file needs 5)",
                      Location(path, line))


# Where libyaml reads differently from PyYAML's pure-Python parser (which has the final word):
# '?' inside a flow collection ({Notes: Why?}: libyaml takes it as text, PyYAML refuses it), and a
# comment right after a block scalar's indicators (`>-#c`: libyaml allows it, PyYAML refuses it).
_FLOW_START = re.compile(r"(?:^|[\s,\[{])[\[{]", re.MULTILINE)
_BLOCK_INDICATOR_COMMENT = re.compile(r"[|>][0-9+-]*#")


def _libyaml_agrees(text: str) -> bool:
    """Whether libyaml is known to read `text` exactly as PyYAML's pure-Python parser does.

    They differ on tabs (libyaml accepts a tab after a value, PyYAML refuses it), on a byte order
    mark past the start, on '?' in flow collections and on comments glued to block scalar indicators.
    Such files are read by the pure-Python parser, so the result never depends on how PyYAML was built.
    """
    if "\t" in text or "\ufeff" in text:
        return False
    if "?" in text and _FLOW_START.search(text):
        return False
    if "#" in text and ("|" in text or ">" in text):  # a regex scan of a big file costs more than these
        return _BLOCK_INDICATOR_COMMENT.search(text) is None
    return True


def _max_depth_within(parser, events) -> int | None:
    """Scan `parser`'s events (libyaml's parser does not recurse); the line where nesting passes
    MAX_DEPTH, or None."""
    depth = 0
    starts = (events.MappingStartEvent, events.SequenceStartEvent)
    ends = (events.MappingEndEvent, events.SequenceEndEvent)
    while True:
        event = parser.get_event()
        if event is None or isinstance(event, events.StreamEndEvent):
            return None
        if isinstance(event, starts):
            depth += 1
            if depth > MAX_DEPTH:
                return event.start_mark.line + 1
        elif isinstance(event, ends):
            depth -= 1


def compose(text: str, path: str, parsers: YamlParsers | None = None):
    """The YAML node tree of `text` (a single document), or an InputError with the line."""
    parsers = parsers or yaml_parsers()
    yaml = parsers.yaml
    if parsers.c_nodes is not None and _libyaml_agrees(text):
        node = _compose_with_libyaml(text, path, parsers)
        if node is not _FAILED:
            return node
    try:
        loader = parsers.pure_nodes(text)  # its reader refuses unprintable characters right here
    except yaml.reader.ReaderError as exc:
        line = text[:exc.position].count("\n") + 1 if isinstance(exc.position, int) else None
        raise InputError(f"invalid YAML: unacceptable character #x{exc.character:04x}: {exc.reason}",
                         Location(path, line)) from exc
    try:
        node = loader.get_single_node()
    except _TooDeep as exc:
        raise _too_deep(path, exc.line) from None
    except yaml.MarkedYAMLError as exc:
        line, problem = where_and_what(exc, text)
        raise InputError(f"invalid YAML: {problem}", Location(path, line)) from exc
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", Location(path)) from exc
    finally:
        loader.dispose()
    return node


_FAILED = object()


def _compose_with_libyaml(text: str, path: str, parsers: YamlParsers):
    """The node tree by libyaml, or _FAILED to leave the error to the pure-Python parser (whose
    messages are the documented ones). libyaml's composer recurses in C: nesting is checked first."""
    yaml = parsers.yaml
    scanner = parsers.events(text)
    try:
        too_deep_at = _max_depth_within(scanner, yaml.events)
    except yaml.YAMLError:
        return _FAILED
    finally:
        scanner.dispose()
    if too_deep_at is not None:
        raise _too_deep(path, too_deep_at)
    loader = parsers.c_nodes(text)
    try:
        return loader.get_single_node()
    except yaml.YAMLError:
        return _FAILED
    finally:
        loader.dispose()


# --- the fast path: events -> plain values ---------------------------------------------------------

def plain_scalar(text: str, key: str | None) -> Any:
    """An unquoted scalar as reconcile reads it: only null and true/false are special, and a plain
    integer under `leadId`; everything else stays the text as written."""
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if key == "leadId" and text.isascii() and text.isdigit():
        if len(text) > _MAX_LEAD_ID_DIGITS:
            raise LeadIdTooLong(len(text))
        return int(text)
    return text


class LeadIdTooLong(ValueError):
    """A plain leadId with more digits than any lead ID has: refused before Python converts it."""

    def __init__(self, digits: int):
        super().__init__(f"leadId has {digits} digits; a Marketo lead ID is a positive integer below 2^31")


class _GiveUp(Exception):
    """The fast path met something only the reference path handles (or reports)."""


def _fast_document(text: str, parsers: YamlParsers) -> tuple[Any, tuple[int, ...]] | None:
    """(document, lead lines) exactly as the reference path would give them, or None to use it."""
    yaml = parsers.yaml
    events = yaml.events
    try:
        parser = (parsers.events if _libyaml_agrees(text) else parsers.pure_events)(text)
    except yaml.YAMLError:  # the pure-Python reader checks every character up front
        return None
    counter = [0]
    try:
        next_event = parser.get_event
        if type(next_event()) is not events.StreamStartEvent:
            raise _GiveUp
        if type(next_event()) is not events.DocumentStartEvent:
            raise _GiveUp  # an empty file: the reference path reports it
        first = next_event()
        lines: list[int] = []
        document = _fast_node(first, None, next_event, events, counter, lines)
        if type(next_event()) is not events.DocumentEndEvent or type(next_event()) is not events.StreamEndEvent:
            raise _GiveUp
        # Without aliases a file cannot exceed the reference path's bound on values; count anyway.
        if counter[0] + 1 > 2 * len(text) + 1000:
            raise _GiveUp
        return document, tuple(lines)
    except (_GiveUp, yaml.YAMLError, RecursionError, ValueError):
        return None
    finally:
        parser.dispose()


def _fast_node(event, key, next_event, events, counter, lines):
    cls = type(event)
    if event.anchor is not None or cls is events.AliasEvent:
        raise _GiveUp
    if cls is events.ScalarEvent:
        if event.tag is not None:
            raise _GiveUp
        text = event.value
        if not event.style:  # plain: None (pure-Python parser) or "" (libyaml)
            return plain_scalar(text, key)
        if event.style == _DOUBLE_QUOTED and _SURROGATE.search(text):
            raise _GiveUp  # the reference path says where
        return text
    if event.tag is not None:
        raise _GiveUp
    if cls is events.MappingStartEvent:
        return _fast_mapping(next_event, events, counter, lines)
    if cls is events.SequenceStartEvent:
        return _fast_sequence(next_event, events, counter, None)
    raise _GiveUp


def _fast_mapping(next_event, events, counter, lines=None) -> dict:
    """A block or flow mapping; `lines` (root only) receives the line of each item under `leads:`."""
    ScalarEvent, MappingEndEvent = events.ScalarEvent, events.MappingEndEvent
    result: dict[str, Any] = {}
    while True:
        event = next_event()
        if type(event) is not ScalarEvent:
            if type(event) is MappingEndEvent:
                counter[0] += len(result)
                return result
            raise _GiveUp
        key = event.value
        if event.tag is not None or event.anchor is not None or key in result or (key == "<<" and not event.style) \
                or (event.style == _DOUBLE_QUOTED and _SURROGATE.search(key)):
            raise _GiveUp
        event = next_event()
        if type(event) is ScalarEvent and event.tag is None and event.anchor is None:
            value = event.value
            if event.style == _DOUBLE_QUOTED and _SURROGATE.search(value):
                raise _GiveUp
            if not event.style:
                if value in _NULLS:
                    value = None
                elif value in _BOOLS:
                    value = _BOOLS[value]
                elif key == "leadId" and value.isascii() and value.isdigit():
                    if len(value) > _MAX_LEAD_ID_DIGITS:
                        raise _GiveUp  # the reference path says why
                    value = int(value)
            result[key] = value
        elif lines is not None and key == "leads" and type(event) is events.SequenceStartEvent:
            if event.tag is not None or event.anchor is not None:
                raise _GiveUp
            result[key] = _fast_sequence(next_event, events, counter, lines)
        else:
            result[key] = _fast_node(event, key, next_event, events, counter, None)


def _fast_sequence(next_event, events, counter, lines) -> list:
    MappingStartEvent, SequenceEndEvent = events.MappingStartEvent, events.SequenceEndEvent
    result: list[Any] = []
    append = result.append
    while True:
        event = next_event()
        if type(event) is MappingStartEvent and event.tag is None and event.anchor is None:
            if lines is not None:
                lines.append(event.start_mark.line + 1)
            append(_fast_mapping(next_event, events, counter))
        elif type(event) is SequenceEndEvent:
            counter[0] += len(result)
            return result
        else:
            if lines is not None:
                lines.append(event.start_mark.line + 1)
            append(_fast_node(event, None, next_event, events, counter, None))


# --- the reference path: node tree -> plain values, with every check and message ---------------------

class _Converter:
    """Turns a node tree into plain values, checking what PyYAML's constructor would let through."""

    def __init__(self, path: str, max_nodes: int, yaml):
        self.path = path
        self.nodes = 0
        # Without aliases a file cannot hold more values than characters; the bound stops alias bombs.
        self.max_nodes = max_nodes
        self.yaml = yaml

    def error(self, node, message: str) -> InputError:
        return InputError(message, Location(self.path, node.start_mark.line + 1))

    def value(self, node, key: str | None = None) -> Any:
        yaml = self.yaml
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
        if node.style:  # quoted or block scalars are always text (plain is None, or "" from libyaml)
            self.check_characters(node)
            return text
        try:
            return plain_scalar(text, key)
        except LeadIdTooLong as exc:
            raise self.error(node, str(exc)) from None

    def check_characters(self, node) -> None:
        """Refuse a lone surrogate that a double-quoted scalar's escape made."""
        found = _SURROGATE.search(node.value) if node.style == _DOUBLE_QUOTED else None
        if found is not None:
            raise self.error(node, f"a \\u escape gives U+{ord(found.group()):04X}, half of a surrogate pair on its "
                                   "own, which is not a character; write the character itself (or one \\U escape "
                                   "of 8 hex digits for a character beyond U+FFFF)")

    def mapping(self, node) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, self.yaml.ScalarNode):
                raise self.error(key_node, "mapping keys must be plain text")
            if key_node.tag not in _SCALAR_TAGS:  # a tag on a key is refused as on a value
                raise self.error(key_node, f"unsupported YAML tag {key_node.tag}")
            key = key_node.value
            self.check_characters(key_node)
            if key == "<<" and not key_node.style:
                raise self.error(key_node, "YAML merge keys (<<) are not supported; write the fields out")
            if key in result:
                raise self.error(key_node, f"duplicate key {key!r} in one mapping")
            result[key] = self.value(value_node, key)
        return result


def parse_lead_file(text: str, path: str, parsers: YamlParsers | None = None) -> LeadFile:
    """Parse one lead file's text. The line of each entry under `leads:` is kept for messages."""
    parsers = parsers or yaml_parsers()
    fast = _fast_document(text, parsers)
    if fast is not None:
        return LeadFile(path=path, document=fast[0], lead_lines=fast[1])
    return parse_lead_file_reference(text, path, parsers)


def parse_lead_file_reference(text: str, path: str, parsers: YamlParsers | None = None) -> LeadFile:
    """The reference path (see the module docstring): slower, and the one that explains errors."""
    parsers = parsers or yaml_parsers()
    yaml = parsers.yaml
    node = compose(text, path, parsers)
    if node is None:
        raise InputError("file is empty; expected a mapping with a 'leads' list", Location(path, 1))
    converter = _Converter(path, max_nodes=2 * len(text) + 1000, yaml=yaml)
    document = converter.value(node)
    lead_lines: list[int] = []
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == "leads" and isinstance(value_node, yaml.SequenceNode):
                lead_lines = [item.start_mark.line + 1 for item in value_node.value]
    return LeadFile(path=path, document=document, lead_lines=tuple(lead_lines))
