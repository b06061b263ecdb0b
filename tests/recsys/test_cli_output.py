"""What `musicrec similar` and `musicrec playlist` print: which song or playlist they answer for, whole reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

import recsys
from recsys.cli import _cut, main


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, demo_snapshot: recsys.Snapshot) -> Path:
    return demo_snapshot.save(tmp_path_factory.mktemp("cli-output") / "m")


def test_similar_names_the_song_and_prints_reasons_whole(
    model: Path, demo_snapshot: recsys.Snapshot, capsys: pytest.CaptureFixture[str]
) -> None:
    track = demo_snapshot.track(str(demo_snapshot.track_ids[3]))
    assert main(["similar", "--track-id", track.track_id, "--model", str(model), "-k", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"songs like {track.name} — {track.artist}")
    reasons = [t.reason for t in demo_snapshot.similar_tracks(track.track_id, k=5) if t.reason]
    assert reasons and all(f"          {r}\n" in out for r in reasons)


def test_playlist_names_the_playlist(
    model: Path, demo_snapshot: recsys.Snapshot, capsys: pytest.CaptureFixture[str]
) -> None:
    playlist_id = str(demo_snapshot.playlist_ids[0])
    assert main(["playlist", "--playlist-id", playlist_id, "--model", str(model)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"songs to continue the playlist {str(demo_snapshot.playlist_names[0])!r}")


def test_long_names_are_cut_at_a_word() -> None:
    assert _cut("Bohemian Rhapsody - Remastered 2011", 20) == "Bohemian Rhapsody…"
    assert _cut("short", 20) == "short"
    assert _cut("Supercalifragilistic", 8) == "Superca…"
