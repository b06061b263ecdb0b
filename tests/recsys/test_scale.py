"""The synthetic catalogue at scale: deterministic, the real schema, realistic shape, written in bounded chunks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recsys
from recsys.demo import COLUMNS
from recsys.errors import RecsysError
from recsys.scale import ScaleConfig, iter_chunks, write_scale

SMALL = ScaleConfig(pairs=20_000, block_playlists=100)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = write_scale(tmp_path / "a.csv", SMALL).read_bytes()
    b = write_scale(tmp_path / "b.csv", SMALL).read_bytes()
    c = write_scale(tmp_path / "c.csv", ScaleConfig(pairs=20_000, block_playlists=100, seed=1)).read_bytes()
    assert a == b
    assert a != c


def test_loads_through_the_real_loader_with_the_asked_number_of_pairs(tmp_path: Path) -> None:
    path = write_scale(tmp_path / "s.csv", SMALL)
    assert list(pd.read_csv(path, nrows=1).columns) == list(COLUMNS)
    catalog = recsys.load_catalog(path)
    assert catalog.num_pairs == SMALL.pairs
    assert catalog.report.duplicate_pairs == 0 and catalog.report.conflicting_track_rows == 0
    assert not catalog.report.coerced_feature_values
    sizes = np.bincount(catalog.edges[0])
    assert sizes.max() <= 250 and np.median(sizes) >= 10
    # Power-law popularity: the top 1% of tracks hold far more than 1% of the pairs.
    degree = np.sort(catalog.track_degrees())[::-1]
    assert degree[: len(degree) // 100].sum() > 0.035 * degree.sum()
    # Artists and albums with many tracks.
    per_artist = pd.Series(catalog.track_artists).value_counts()
    assert per_artist.max() >= 30
    assert pd.Series(catalog.album_ids).value_counts().max() >= 5
    # Playlists mostly stay within their genre mixture: one genre holds most of a playlist's tracks.
    genre_share = pd.DataFrame({"p": catalog.edges[0], "g": catalog.genres[catalog.edges[1]]})
    top_share = genre_share.groupby("p")["g"].agg(lambda g: g.value_counts(normalize=True).iloc[0])
    assert top_share.median() >= 0.5


def test_chunks_are_bounded_by_the_block_size() -> None:
    config = ScaleConfig(pairs=30_000, block_playlists=50)
    rows = [len(chunk) for chunk in iter_chunks(config)]
    assert len(rows) > 5
    assert max(rows) <= max(50 * 250, 100_000)  # playlist blocks, then catalogue-only rows in blocks of 100k
    assert max(rows[:-1]) <= 50 * 250


def test_parquet_holds_the_same_rows_as_csv(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    csv = pd.read_csv(write_scale(tmp_path / "s.csv", SMALL), dtype=str, keep_default_na=False)
    parquet = pd.read_parquet(write_scale(tmp_path / "s.parquet", SMALL))
    assert list(parquet.columns) == list(COLUMNS)
    assert len(parquet) == len(csv)
    for col in ("track_id", "playlist_id", "track_name", "track_artist"):
        assert (parquet[col].astype(str).to_numpy() == csv[col].to_numpy()).all()
    assert np.allclose(parquet["tempo"].to_numpy(), csv["tempo"].astype(float).to_numpy())


def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(RecsysError, match=r"musicrec\[scale\]"):
        write_scale(tmp_path / "s.parquet", SMALL)
    assert not (tmp_path / "s.parquet").exists()


def test_rejects_an_empty_size() -> None:
    with pytest.raises(RecsysError, match="at least 1 pair"):
        ScaleConfig(pairs=0)


def test_cli_writes_a_catalogue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from recsys.cli import main

    out = tmp_path / "s.csv"
    assert main(["data", "scale", "--pairs", "3000", "--out", str(out), "--format", "csv"]) == 0
    assert recsys.load_catalog(out).num_pairs == 3000
    assert "3000 playlist-track pairs" in capsys.readouterr().out
