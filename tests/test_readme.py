"""The README quotes its figures from the reports that measured them, word for word."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from quote_reports import quotes, sync  # noqa: E402


def test_every_quoted_table_equals_its_report() -> None:
    found = quotes(ROOT / "README.md")
    assert {q.report for q in found} >= {"docs/quality.md", "docs/speed.md", "docs/bot_latency.md"}
    stale = [f"{q.report} {q.name}" for q in found if q.source != q.quoted]
    assert not stale, f"README disagrees with its reports (run: python bench/quote_reports.py): {stale}"


def test_sync_copies_a_changed_report_into_the_readme(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    report = tmp_path / "docs" / "r.md"
    report.write_text("# r\n<!-- begin t -->\n| a | 1 |\n<!-- end t -->\n")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- quote docs/r.md t -->\n| a | 0.9 |\n<!-- end quote -->\nrest\n")
    assert [q.source == q.quoted for q in quotes(readme)] == [False]
    assert sync(readme) == 1
    assert readme.read_text() == "intro\n<!-- quote docs/r.md t -->\n| a | 1 |\n<!-- end quote -->\nrest\n"
    assert sync(readme) == 0
