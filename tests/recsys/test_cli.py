"""The musicrec CLI through a real subprocess: exit codes and messages a shell user expects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import recsys


def musicrec(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recsys", *args], capture_output=True, text=True, timeout=300, cwd=cwd, check=False
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, demo_csv: Path) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    done = musicrec("train", "--data", str(demo_csv), "--out", str(out), "--epochs", "12", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "saved to" in done.stdout
    return out


def test_train_then_recommend_a_clear_match(model_dir: Path, demo_catalog: recsys.Catalog) -> None:
    snap = recsys.load(model_dir)
    track = snap.track(str(demo_catalog.track_ids[0]))
    done = musicrec("recommend", f"{track.name} {track.artist}", "--model", str(model_dir))
    assert done.returncode == 0, done.stderr
    assert f"songs like {track.name}" in done.stdout
    lines = [ln for ln in done.stdout.splitlines() if "open.spotify.com/track/" in ln]
    assert len(lines) == 10


def test_ambiguous_name_lists_candidates_with_exit_2(model_dir: Path) -> None:
    done = musicrec("recommend", "home", "--model", str(model_dir))
    assert done.returncode == 2
    assert done.stdout.count("Home —") == 3
    picked = musicrec("recommend", "home", "--pick", "2", "--model", str(model_dir))
    assert picked.returncode == 0 and "songs like Home" in picked.stdout


def test_a_clear_answer_lists_the_other_version_and_pick_2_takes_it(
    model_dir: Path, demo_catalog: recsys.Catalog
) -> None:
    # The demo catalogue releases one song twice (single and album): one answer, the other version one pick away.
    seen: dict[tuple[str, str], str] = {}
    for tid, name, artist in zip(
        demo_catalog.track_ids.tolist(),
        demo_catalog.track_names.tolist(),
        demo_catalog.track_artists.tolist(),
        strict=True,
    ):
        if (name, artist) in seen:
            first, reissue, query = seen[(name, artist)], tid, f"{name} {artist}"
            break
        seen[(name, artist)] = tid
    done = musicrec("recommend", query, "--model", str(model_dir), "-k", "3")
    assert done.returncode == 0, done.stderr
    others = done.stdout.split("other versions (--pick N):\n")[1]
    assert (first in others) != (reissue in others)  # the answer is not among its own other versions
    assert others.startswith(f"  2. {name} — {artist} ")  # the same song, more popular than any namesake
    picked = musicrec("recommend", query, "--pick", "2", "--model", str(model_dir), "-k", "3")
    assert picked.returncode == 0 and f"songs like {name} — {artist}" in picked.stdout
    assert "other versions" not in picked.stdout


def test_similar_and_playlist(model_dir: Path, demo_catalog: recsys.Catalog) -> None:
    done = musicrec("similar", "--track-id", str(demo_catalog.track_ids[1]), "-k", "3", "--model", str(model_dir))
    assert done.returncode == 0 and done.stdout.count("open.spotify.com") == 3
    done = musicrec("playlist", "--playlist-id", str(demo_catalog.playlist_ids[0]), "--model", str(model_dir))
    assert done.returncode == 0 and done.stdout.count("open.spotify.com") == 10


def test_per_artist_sets_the_artist_cap_of_the_list(model_dir: Path, demo_catalog: recsys.Catalog) -> None:
    snap = recsys.load(model_dir)
    counts = np.bincount(snap.artist_groups)
    prolific = str(snap.track_ids[np.flatnonzero(snap.artist_groups == int(np.argmax(counts)))[0]])
    common = ("similar", "--track-id", prolific, "-k", "10", "--model", str(model_dir))

    def artists(done: subprocess.CompletedProcess[str]) -> list[str]:
        assert done.returncode == 0, done.stderr
        # The table's columns: "#" (2), score (6) and title (40) with their gaps, then the artist (25).
        return [line[53:78].strip() for line in done.stdout.splitlines() if "open.spotify.com" in line]

    uncapped, one = artists(musicrec(*common, "--per-artist", "0")), artists(musicrec(*common, "--per-artist", "1"))
    assert len(one) == len(uncapped) == 10
    assert len(set(one)) == 10 and len(set(uncapped)) < 10  # the prolific artist's own songs fill an uncapped list
    done = musicrec(*common, "--per-artist", "-1")
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1 and "max_per_artist" in done.stderr


def test_errors_are_one_line_without_traceback(model_dir: Path, tmp_path: Path) -> None:
    done = musicrec("similar", "--track-id", "nope", "--model", str(model_dir))
    assert done.returncode == 1
    assert "unknown track_id 'nope'" in done.stderr and "Traceback" not in done.stderr
    # A shell user is told which command to type, not a library function to call.
    assert "musicrec recommend" in done.stderr and "()" not in done.stderr
    done = musicrec("playlist", "--playlist-id", "nope", "--model", str(model_dir))
    assert done.returncode == 1 and "()" not in done.stderr and "musicrec playlist" in done.stderr
    done = musicrec("train", "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "m"))
    assert done.returncode == 1 and "does not exist" in done.stderr and "Traceback" not in done.stderr
    done = musicrec("recommend", "x", "--model", str(tmp_path / "none"))
    assert done.returncode == 1 and "no snapshot" in done.stderr
    assert musicrec("bogus").returncode == 2


def test_demo_command_writes_the_catalogue(tmp_path: Path) -> None:
    done = musicrec("data", "demo", "--out", str(tmp_path / "d.csv"))
    assert done.returncode == 0
    assert recsys.load_catalog(tmp_path / "d.csv").num_playlists == 144


def test_download_offline_says_so(tmp_path: Path) -> None:
    from recsys.download import download

    with pytest.raises(recsys.DataDownloadError, match=r"could not download"):
        download(tmp_path / "s.csv", url="http://127.0.0.1:9/unreachable.csv", timeout=2)
    assert not (tmp_path / "s.csv").exists()


def test_download_rejects_a_file_that_fails_verification(tmp_path: Path) -> None:
    from recsys.download import download

    src = tmp_path / "src.csv"
    src.write_text("track_id\n")
    with pytest.raises(recsys.DataDownloadError, match="bytes, expected"):
        download(tmp_path / "s.csv", url=src.as_uri(), size=999)
    assert not (tmp_path / "s.csv").exists()
    ok = download(
        tmp_path / "s.csv",
        url=src.as_uri(),
        size=src.stat().st_size,
        sha256=__import__("hashlib").sha256(src.read_bytes()).hexdigest(),
    )
    assert ok.read_text() == "track_id\n"


def test_train_help_states_the_real_defaults() -> None:
    defaults = recsys.TrainConfig()
    text = " ".join(musicrec("train", "--help").stdout.split())
    assert f"most optimisation steps per epoch (default {defaults.max_steps_per_epoch})" in text
    assert f"(default {defaults.batch_size})" in text and f"(default {defaults.max_seconds:g};" in text


def test_out_dot_is_refused_in_one_line_before_training(tmp_path: Path, demo_csv: Path) -> None:
    (tmp_path / "my notes.txt").write_text("keep")
    done = musicrec("train", "--data", str(demo_csv), "--out", ".", "--quiet", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "not a musicrec snapshot" in done.stderr
    assert "trained" not in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my notes.txt"]
    assert sorted(p.name for p in tmp_path.parent.iterdir() if p.name.startswith(f".{tmp_path.name}")) == []


def test_a_tiny_csv_does_not_replace_a_good_model(model_dir: Path, tmp_path: Path, demo_csv: Path) -> None:
    good = recsys.load(model_dir).info.version
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("\n".join(demo_csv.read_text().splitlines()[:3]) + "\n")  # the header and two rows
    done = musicrec("train", "--data", str(tiny), "--out", str(model_dir), "--quiet")
    assert done.returncode == 1 and "Traceback" not in done.stderr and "playlist" in done.stderr
    assert recsys.load(model_dir).info.version == good


def test_permission_denied_on_out_is_one_line(
    tmp_path: Path, demo_csv: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from recsys.cli import main

    def denied(*args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("recsys.store.os.open", denied)
    assert main(["train", "--data", str(demo_csv), "--out", str(tmp_path / "m"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Permission denied" in err
