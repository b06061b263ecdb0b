"""The CSV loader: every bad input gets a clear DataError, repairs are counted, pairs are deduplicated."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from recsys.data import AUDIO_FEATURES, REQUIRED_COLUMNS, load_catalog
from recsys.errors import DataError

HEADER = ["track_id", "track_name", "track_artist", "track_album_id", "playlist_id", "playlist_genre", *AUDIO_FEATURES]


# Plausible audio values: 0.5 for the 0-1 scores, and a real song's key, loudness, tempo and duration.
DEFAULT_FEATURES = {f: "0.5" for f in AUDIO_FEATURES} | {
    "key": "5",
    "mode": "1",
    "loudness": "-6.5",
    "tempo": "120",
    "duration_ms": "210000",
}


def row(
    track: str, playlist: str, name: str = "Song", artist: str = "Artist", album: str = "A1", **feat: str
) -> list[str]:
    values = DEFAULT_FEATURES | feat
    return [track, name, artist, album, playlist, "pop", *[values[f] for f in AUDIO_FEATURES]]


def write(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_missing_file_names_the_path_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist.*--data"):
        load_catalog(tmp_path / "nope.csv")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        load_catalog(tmp_path / "e.csv")


def test_binary_file(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_bytes(b"PK\x03\x04\x00\x00binary zip")
    with pytest.raises(DataError, match="binary"):
        load_catalog(tmp_path / "b.csv")


def test_non_utf8_file(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_bytes(",".join(HEADER).encode() + b"\n\xff\xfe\xfa,x\n")
    with pytest.raises(DataError, match="UTF-8"):
        load_catalog(tmp_path / "l.csv")


def test_missing_required_columns_are_listed(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", [row("t1", "p1")[:3]], header=HEADER[:3])
    with pytest.raises(DataError, match="playlist_id") as err:
        load_catalog(path)
    assert "danceability" in str(err.value)
    assert set(REQUIRED_COLUMNS) - set(HEADER[:3]) <= set(str(err.value).replace(",", " ").split())


def test_malformed_quoting(tmp_path: Path) -> None:
    path = write(tmp_path / "q.csv", [row("t1", "p1")])
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('t2,"unterminated,Artist,A1,p1,pop,' + ",".join(["0.5"] * 12) + "\nt3,a,b\n")
    with pytest.raises(DataError, match="well-formed CSV"):
        load_catalog(path)


def test_non_numeric_features_are_imputed_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path / "n.csv", [row("t1", "p1", energy="loud"), row("t2", "p1", energy="0.2"), row("t3", "p1")])
    cat = load_catalog(path)
    assert cat.report.coerced_feature_values == {"energy": 1}
    energy = cat.features[:, AUDIO_FEATURES.index("energy")]
    assert energy[0] == pytest.approx(np.median([0.2, 0.5]))
    assert any("energy" in w for w in cat.report.warnings())


def test_all_non_numeric_column_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "n.csv", [row("t1", "p1", tempo="fast"), row("t2", "p1", tempo="slow")])
    with pytest.raises(DataError, match="tempo"):
        load_catalog(path)


def test_missing_name_and_artist_get_placeholders(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", [row("t1", "p1", name="", artist="NA"), row("t2", "p1")])
    cat = load_catalog(path)
    assert cat.report.missing_name_rows == 1
    assert cat.track_names[0] == "(untitled)"
    assert cat.track_artists[0] == "(unknown artist)"


def test_conflicting_duplicate_track_rows_first_wins(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", [row("t1", "p1", name="First"), row("t1", "p2", name="Second"), row("t2", "p1")])
    cat = load_catalog(path)
    assert cat.num_tracks == 2
    assert cat.track_names[cat.track_index()["t1"]] == "First"
    assert cat.report.conflicting_track_rows == 1
    assert cat.num_pairs == 3  # t1 is still in both playlists


def test_repeated_pairs_are_deduplicated(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", [row("t1", "p1"), row("t1", "p1"), row("t2", "p1")])
    cat = load_catalog(path)
    assert cat.num_pairs == 2
    assert cat.report.duplicate_pairs == 1
    assert len({tuple(p) for p in cat.edges.T.tolist()}) == cat.num_pairs


def test_catalogue_only_rows_become_tracks_without_edges(tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", [row("t1", "p1"), row("t2", "p1"), row("new", "")])
    cat = load_catalog(path)
    assert cat.num_tracks == 3 and cat.num_playlists == 1
    assert cat.track_degrees()[cat.track_index()["new"]] == 0
    assert cat.report.catalogue_only_tracks == 1


def test_no_playlist_rows_at_all(tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", [row("t1", ""), row("t2", "")])
    with pytest.raises(DataError, match="no playlist rows"):
        load_catalog(path)


def test_arrays_are_read_only(demo_catalog: object) -> None:
    from recsys.data import Catalog

    assert isinstance(demo_catalog, Catalog)
    with pytest.raises(ValueError):
        demo_catalog.edges[0, 0] = 5


def test_demo_catalogue_shape(demo_catalog: object) -> None:
    from recsys.data import Catalog

    assert isinstance(demo_catalog, Catalog)
    assert demo_catalog.num_playlists == 144
    assert demo_catalog.report.catalogue_only_tracks > 0
    assert set(np.unique(demo_catalog.genres)) >= {"pop", "rap", "rock", "latin", "r&b", "edm"}


def test_data_path_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from recsys.data import resolve_data_path

    monkeypatch.setenv("MUSICREC_DATA", str(tmp_path / "x.csv"))
    assert resolve_data_path() == tmp_path / "x.csv"
    assert resolve_data_path("y.csv") == Path("y.csv")


CATALOG_ARRAYS = ("track_ids", "track_names", "track_artists", "album_ids", "genres", "subgenres", "features", "edges")


def test_small_chunks_give_the_same_catalogue(demo_csv: Path) -> None:
    whole = load_catalog(demo_csv)
    chunked = load_catalog(demo_csv, chunk_rows=97)  # a track's rows and a playlist's rows span chunk borders
    for name in (*CATALOG_ARRAYS, "playlist_ids", "playlist_names", "years", "popularity"):
        a, b = getattr(whole, name), getattr(chunked, name)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name
    assert whole.report == chunked.report


def test_repairs_are_counted_across_chunks(tmp_path: Path) -> None:
    rows = [row("t1", "p1", name="First"), row("t2", "p1"), row("t1", "p2", name="Second"), row("t1", "p1")]
    rows += [row("t3", "p2", energy="x"), row("t4", "p2", energy="0.9"), row("t5", "p3", name="")]
    cat = load_catalog(write(tmp_path / "c.csv", rows), chunk_rows=2)
    assert cat.report.conflicting_track_rows == 2  # the later t1 rows are named "Second" and "Song", not "First"
    assert cat.report.duplicate_pairs == 1
    assert cat.report.coerced_feature_values == {"energy": 1}
    assert cat.report.missing_name_rows == 1
    assert cat.track_names[cat.track_index()["t1"]] == "First"
    assert cat.num_pairs == 6


def test_majority_genre_ties_go_to_the_first_seen(tmp_path: Path) -> None:
    header = [*HEADER, "playlist_subgenre"]
    base = row("t1", "p1")
    rows = [
        [*base[:5], "rock", *base[6:], "x"],
        [*row("t1", "p2")[:5], "pop", *base[6:], "x"],
        [*row("t1", "p3")[:5], "pop", *base[6:], "x"],
        [*row("t2", "p1")[:5], "jazz", *base[6:], ""],
        [*row("t2", "p2")[:5], "edm", *base[6:], ""],
    ]
    cat = load_catalog(write(tmp_path / "g.csv", rows, header), chunk_rows=2)
    index = cat.track_index()
    assert cat.genres[index["t1"]] == "pop"  # 2 rows against 1
    assert cat.genres[index["t2"]] == "jazz"  # 1 against 1: first seen
    assert cat.subgenres[index["t2"]] == ""


def test_parquet_file_gives_the_same_catalogue_as_its_csv(demo_csv: Path, tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.read_csv(demo_csv, dtype=str, keep_default_na=False)
    for col in AUDIO_FEATURES:  # Parquet keeps numbers as numbers
        frame[col] = pd.to_numeric(frame[col])
    parquet = tmp_path / "demo.parquet"
    frame.to_parquet(parquet, index=False)
    from_csv, from_parquet = load_catalog(demo_csv), load_catalog(parquet, chunk_rows=500)
    for name in CATALOG_ARRAYS:
        assert np.array_equal(getattr(from_csv, name), getattr(from_parquet, name)), name


def test_corrupt_parquet_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1" + b"\x01" * 100)
    with pytest.raises(DataError, match="Parquet"):
        load_catalog(path)
