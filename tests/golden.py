"""Golden-file comparison with a readable diff.

REGENERATE_GOLDEN=1 rewrites every expected file that differs, and the test still fails for each
file it rewrote, so a regeneration run can never pass by itself: review the diff, then run again
without the variable.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path


def assert_golden(actual: str, expected_path: Path) -> None:
    if os.environ.get("REGENERATE_GOLDEN") == "1":
        previous = expected_path.read_text(encoding="utf-8") if expected_path.exists() else None
        if previous == actual:
            return
        expected_path.write_text(actual, encoding="utf-8")
        raise AssertionError(f"rewrote {expected_path}: review the change, then run without REGENERATE_GOLDEN")
    assert expected_path.exists(), f"missing golden file {expected_path} (REGENERATE_GOLDEN=1 creates it)"
    expected = expected_path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                                            fromfile=f"expected {expected_path.name}", tofile="actual"))
        raise AssertionError(f"output differs from {expected_path}:\n{diff}")
