"""`make bench`: runs bench/bench_bot.py (about 2 minutes) and checks the latency targets it reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.bench
def test_reply_latency_targets(tmp_path: Path) -> None:
    out = tmp_path / "bench_bot.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_bot.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = out.read_text()
    print(report)
    assert "p99 <= 150 ms idle (met)" in report
    assert "<= 300 ms during a retrain (met)" in report
    assert "Token in the bot's log: no" in report
