"""The package's shape, checked: imports flow one way, no module imports one that imports it back,
each Marketo error code is written down once, and no class or function grows past what a reader holds.
"""

from __future__ import annotations

import ast
from pathlib import Path

import reconcile
from reconcile.remote.rest import codes as rest_codes
from reconcile.remote.soap import codes as soap_codes

PACKAGE = Path(reconcile.__file__).parent

# What each layer may never import (prefixes of module names).
FORBIDDEN = {
    "reconcile.core": ("reconcile.inputs", "reconcile.store", "reconcile.apply", "reconcile.remote",
                       "reconcile.emulator", "reconcile.ci", "reconcile.app", "reconcile.cli"),
    "reconcile.inputs": ("reconcile.apply", "reconcile.remote", "reconcile.emulator",
                         "reconcile.ci", "reconcile.app", "reconcile.cli"),
    "reconcile.store": ("reconcile.inputs", "reconcile.apply", "reconcile.remote", "reconcile.emulator",
                        "reconcile.ci", "reconcile.app", "reconcile.cli"),
    "reconcile.apply": ("reconcile.inputs", "reconcile.remote.soap", "reconcile.remote.rest",
                        "reconcile.remote.http", "reconcile.emulator", "reconcile.ci", "reconcile.app",
                        "reconcile.cli"),
    "reconcile.remote": ("reconcile.inputs", "reconcile.store", "reconcile.apply", "reconcile.emulator",
                         "reconcile.ci", "reconcile.app", "reconcile.cli"),
    "reconcile.emulator": ("reconcile.inputs", "reconcile.apply", "reconcile.ci", "reconcile.app", "reconcile.cli"),
    "reconcile.ci": ("reconcile.apply", "reconcile.remote", "reconcile.emulator", "reconcile.app", "reconcile.cli"),
    "reconcile.adopt": ("reconcile.app", "reconcile.cli"),
    # The application layer runs plan, apply, refresh and import for the CLI, which it never calls:
    # what it shows and asks goes through the session the CLI hands it.
    "reconcile.app": ("reconcile.cli", "reconcile.ci"),
}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _import_graph() -> dict[str, set[str]]:
    """Every reconcile module and the reconcile modules it imports, at the top or inside a function."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in modules else node.module)
        graph[name] = {t for t in targets if t in modules and t != name and not name.startswith(t + ".")}
    return graph


def test_the_import_graph_sees_lazy_imports():
    graph = _import_graph()
    assert "reconcile.apply" in graph["reconcile.app.apply"]  # imported inside run_apply only


def test_each_layer_imports_only_downward():
    broken = []
    for name, targets in _import_graph().items():
        for layer, forbidden in FORBIDDEN.items():
            if name == layer or name.startswith(layer + "."):
                broken += [f"{name} imports {t}" for t in sorted(targets)
                           if any(t == f or t.startswith(f + ".") for f in forbidden)]
    assert broken == []


def test_no_module_imports_one_that_imports_it_back():
    graph = _import_graph()
    cycles = []
    for start in sorted(graph):
        seen, stack = set(), [(start, (start,))]
        while stack:
            name, trail = stack.pop()
            for target in sorted(graph[name]):
                if target == start:
                    cycles.append(" -> ".join(trail + (target,)))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, trail + (target,)))
    assert cycles == []


def _string_constants(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_each_marketo_error_code_is_written_down_once():
    tables = {Path(soap_codes.__file__): set(soap_codes.CODES), Path(rest_codes.__file__): set(rest_codes.CODES)}
    # REST's three-digit call codes are too short to tell from other numbers in text; the four- and
    # five-digit codes are not.
    distinctive = {code for codes in tables.values() for code in codes if len(code) >= 4}
    assert {"20014", "20015", "1004", "1036"} <= distinctive
    written_again = []
    for name, path in _modules().items():
        if path in tables:
            continue
        written_again += [f"{name}: {code}" for code in sorted(_string_constants(path) & distinctive)]
    assert written_again == []


def test_no_class_or_function_grows_past_what_a_reader_holds():
    too_long = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            length = (node.end_lineno or node.lineno) - node.lineno + 1 if hasattr(node, "lineno") else 0
            if isinstance(node, ast.ClassDef) and length > 250:
                too_long.append(f"class {name}.{node.name}: {length} lines")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and length > 80:
                too_long.append(f"function {name}.{node.name}: {length} lines")
    assert too_long == []
