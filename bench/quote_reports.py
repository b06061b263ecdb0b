"""Copy the tables the README quotes from the reports that measured them, so the README never disagrees with them.

In a report (written by a benchmark or `musicrec evaluate`):   <!-- begin NAME --> ... <!-- end NAME -->
In the README:                                                 <!-- quote docs/report.md NAME --> ... <!-- end quote -->

python bench/quote_reports.py [README.md]     # rewrite the quoted blocks; tests/test_readme.py checks them
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

_QUOTE = re.compile(r"<!-- quote (\S+) (\S+) -->\n(.*?)<!-- end quote -->", re.DOTALL)


@dataclass(frozen=True)
class Quote:
    """One quoted block: where it comes from, what the README holds, and what the report holds (None: missing)."""

    report: str
    name: str
    quoted: str
    source: str | None


def block(report_text: str, name: str) -> str | None:
    """The text between <!-- begin NAME --> and <!-- end NAME --> lines of a report, or None."""
    found = re.search(rf"<!-- begin {re.escape(name)} -->\n(.*?)<!-- end {re.escape(name)} -->", report_text, re.DOTALL)
    return found.group(1) if found else None


def quotes(readme: Path) -> list[Quote]:
    """Every quoted block of the README with its source's current text."""
    out = []
    for match in _QUOTE.finditer(readme.read_text(encoding="utf-8")):
        report = readme.parent / match.group(1)
        source = block(report.read_text(encoding="utf-8"), match.group(2)) if report.is_file() else None
        out.append(Quote(match.group(1), match.group(2), match.group(3), source))
    return out


def sync(readme: Path) -> int:
    """Rewrite every quoted block from its report; returns how many changed."""
    text = readme.read_text(encoding="utf-8")
    changed = 0
    for q in quotes(readme):
        if q.source is None:
            raise SystemExit(f"{q.report} has no block {q.name!r}")
        if q.source != q.quoted:
            head = f"<!-- quote {q.report} {q.name} -->\n"
            text = text.replace(head + q.quoted, head + q.source, 1)
            changed += 1
    readme.write_text(text, encoding="utf-8")
    return changed


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    print(f"{sync(path)} quoted block(s) of {path} updated")
