"""The golden-file helper itself: a regeneration run rewrites files but can never pass by doing so."""

from __future__ import annotations

import pytest

from golden import assert_golden


def test_a_difference_fails_with_a_readable_diff(tmp_path, monkeypatch):
    monkeypatch.delenv("REGENERATE_GOLDEN", raising=False)
    expected = tmp_path / "plan.txt"
    expected.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(AssertionError, match=r"(?s)-b.*\+c"):
        assert_golden("a\nc\n", expected)
    assert expected.read_text(encoding="utf-8") == "a\nb\n"


def test_regeneration_rewrites_the_file_and_still_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("REGENERATE_GOLDEN", "1")
    expected = tmp_path / "plan.txt"
    expected.write_text("old\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="rewrote"):
        assert_golden("new\n", expected)
    assert expected.read_text(encoding="utf-8") == "new\n"
    assert_golden("new\n", expected)  # nothing left to rewrite: passes


def test_a_missing_golden_file_is_created_by_regeneration_and_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("REGENERATE_GOLDEN", "1")
    expected = tmp_path / "new-case.json"
    with pytest.raises(AssertionError, match="rewrote"):
        assert_golden("{}\n", expected)
    assert expected.read_text(encoding="utf-8") == "{}\n"
