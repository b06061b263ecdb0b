"""`musicrec evaluate` writes the markdown report and the Recall@k plot."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.cli import main
from recsys.demo import DEMO_PATH


def test_evaluate_command_writes_report_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    report = tmp_path / "docs" / "quality.md"
    code = main(
        [
            "evaluate",
            "--data",
            str(DEMO_PATH),
            "--report",
            str(report),
            "--seeds",
            "0",
            "1",
            "--quiet",
            "--models",
            "random",
            "audio_cosine",
            "artist_album",
        ]
    )
    assert code == 0
    text = report.read_text(encoding="utf-8")
    tasks = ("## Playlist continuation", "## Similar songs", "## New playlists", "## Text queries")
    for heading in ("## Summary", *tasks, "## Lists people enjoy", "## Wall time"):
        assert heading in text
    rows = [line for line in text.splitlines() if line.startswith("| artist_album |")]
    assert len(rows) == 7  # the summary, four task tables (text: n/a), the lists table and the timing table
    # The summary the README quotes: one block, the best model of each column in bold (here the heuristic).
    summary = text.split("<!-- begin summary -->\n")[1].split("<!-- end summary -->")[0]
    assert summary.count("| artist_album | **") == 1 and "| random | **" not in summary
    assert "musicrec evaluate --report" in text and "--seeds 0 1" in text
    plot = report.with_name("quality_recall.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out


def test_evaluate_rejects_unknown_models() -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--data", str(DEMO_PATH), "--models", "nope"])
