"""The loader's limits: absurd audio values are repaired, names are cut and cleaned, over-long ids are skipped, and
the catalogue's memory follows its total text, not its longest string."""

from __future__ import annotations

import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recsys
from recsys.config import DataConfig
from recsys.data import AUDIO_FEATURES, Catalog, load_catalog
from tests.recsys.test_data import HEADER, row, write

TEXT_ARRAYS = (
    "track_ids",
    "track_names",
    "track_artists",
    "album_ids",
    "album_names",
    "genres",
    "subgenres",
    "playlist_ids",
    "playlist_names",
)
NAMED_HEADER = [*HEADER, "track_album_name", "playlist_name"]


def named_row(
    track: str, playlist: str, name: str = "Song", album_name: str = "Album", playlist_name: str = "Mix"
) -> list[str]:
    return [*row(track, playlist, name=name), album_name, playlist_name]


def _text_bytes(catalog: Catalog) -> int:
    """Memory of the catalogue's text arrays: the arrays themselves plus, for object arrays, the strings they hold."""
    total = 0
    for name in TEXT_ARRAYS:
        array = getattr(catalog, name)
        total += array.nbytes
        if array.dtype == object:
            total += sum(sys.getsizeof(s) for s in array.tolist())
    return total


def _column(catalog: Catalog, feature: str) -> np.ndarray:
    return catalog.features[:, AUDIO_FEATURES.index(feature)]


# B. Non-finite and physically absurd audio values.


def test_non_finite_and_out_of_range_values_become_the_median_and_are_counted(tmp_path: Path) -> None:
    rows = [
        row("t1", "p1", loudness="inf", energy="-inf", tempo="1e308", duration_ms="5", key="12"),
        row("t2", "p1", loudness="-10", energy="0.2", tempo="100", duration_ms="200000", key="3"),
        row("t3", "p1", loudness="-6", energy="0.4", tempo="120", duration_ms="240000", key="5"),
        row("t4", "p1", loudness="-61", mode="1.5", valence="-0.1"),
    ]
    catalog = load_catalog(write(tmp_path / "x.csv", rows))
    assert catalog.report.coerced_feature_values == {
        "loudness": 2,
        "energy": 1,
        "tempo": 1,
        "duration_ms": 1,
        "key": 1,
        "mode": 1,
        "valence": 1,
    }
    assert np.isfinite(catalog.features).all()
    assert _column(catalog, "loudness")[0] == pytest.approx(-8.0)  # median of -10 and -6
    assert _column(catalog, "tempo")[0] == pytest.approx(120.0)  # median of 100, 120 and the default 120
    assert _column(catalog, "energy")[0] == pytest.approx(0.4)  # median of 0.2, 0.4, 0.5
    assert _column(catalog, "key")[1] == 3.0  # valid values are untouched
    warnings = "\n".join(catalog.report.warnings())
    assert "column 'loudness': 2 non-numeric, non-finite or out-of-range values" in warnings


def test_the_range_table_covers_every_audio_feature() -> None:
    from recsys.data import FEATURE_RANGES

    assert set(FEATURE_RANGES) == set(AUDIO_FEATURES)
    assert all(lo < hi for lo, hi in FEATURE_RANGES.values())


def test_a_column_with_no_value_in_range_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", [row("t1", "p1", tempo="inf"), row("t2", "p1", tempo="1e9")])
    with pytest.raises(recsys.DataError, match=r"'tempo'.*\[0, 300\]"):
        load_catalog(path)


def _demo_with_one_cell(demo_csv: Path, out: Path, column: str, value: str) -> Path:
    with open(demo_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    rows[1][rows[0].index(column)] = value
    with open(out, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return out


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize(("column", "value"), [("loudness", "inf"), ("tempo", "-inf"), ("duration_ms", "1e308")])
def test_one_absurd_cell_does_not_stop_training(demo_csv: Path, tmp_path: Path, column: str, value: str) -> None:
    path = _demo_with_one_cell(demo_csv, tmp_path / "one_cell.csv", column, value)
    snapshot = recsys.train(path, recsys.TrainConfig(epochs=6, eval_every=2, progress=False))
    assert math.isfinite(snapshot.info.metrics["val_recall@20"])
    assert np.isfinite(snapshot.track_z).all()


@pytest.mark.slow
def test_the_real_data_lies_inside_the_physical_ranges_and_is_unchanged(real_csv: Path) -> None:
    catalog = load_catalog(real_csv)
    assert catalog.report.coerced_feature_values == {}
    assert catalog.report.long_id_rows == 0
    from recsys.data import FEATURE_RANGES

    raw = pd.read_csv(real_csv, dtype=str, keep_default_na=False).drop_duplicates("track_id")
    for feature in AUDIO_FEATURES:
        expected = pd.to_numeric(raw[feature]).to_numpy(dtype=np.float32)
        assert np.array_equal(_column(catalog, feature), expected), feature
        lo, hi = FEATURE_RANGES[feature]
        assert lo <= expected.min() and expected.max() <= hi, feature
    # No name is cut or cleaned: the longest (151 characters) is under the limit, and none holds a control character.
    for column, array in (("track_name", catalog.track_names), ("track_album_name", catalog.album_names)):
        names = raw[column].str.strip()
        known = ((names != "") & (names != "NA")).to_numpy()
        assert array[known].tolist() == names[known].tolist(), column
    assert max(len(n) for n in catalog.album_names.tolist()) == 151


# C. Long names, control characters and over-long ids.


@pytest.mark.parametrize("length", [10_000, 1_000_000])
def test_a_huge_name_is_cut_and_the_catalogue_stays_small(tmp_path: Path, length: int) -> None:
    huge = "x" * (length - 1) + "!"
    rows = [named_row(f"t{i}", f"p{i % 2}") for i in range(20)]
    rows[3] = named_row("t3", "p_long", name=huge, album_name=huge, playlist_name=huge)
    path = write(tmp_path / "long.csv", rows, NAMED_HEADER)
    start = time.perf_counter()
    catalog = load_catalog(path)
    assert time.perf_counter() - start < 10.0
    for name in TEXT_ARRAYS:
        assert getattr(catalog, name).dtype == object, name
    t3 = catalog.track_index()["t3"]
    assert catalog.track_names[t3] == "x" * 200 and catalog.album_names[t3] == "x" * 200
    assert catalog.playlist_names[catalog.playlist_index()["p_long"]] == "x" * 200
    assert catalog.track_names[0] == "Song"
    # Twenty tracks and three playlists: a few kB of text, whatever the longest cell was.
    assert _text_bytes(catalog) < 32_000


def test_the_name_limit_comes_from_the_config(tmp_path: Path) -> None:
    path = write(tmp_path / "n.csv", [named_row("t1", "p1", name="A long title")], NAMED_HEADER)
    catalog = load_catalog(path, DataConfig(max_name_length=6))
    assert catalog.track_names[0] == "A long"
    assert catalog.album_names[0] == "Album"


def test_control_characters_in_names_become_spaces(tmp_path: Path) -> None:
    rows = [named_row(f"pad{i}", "p0", name="padding " * 4) for i in range(300)]  # > 8 KB before the NUL
    rows.append(named_row("t1", "p1", name="a\x00b\tc", album_name="x\r\ny\x7fz\x85w", playlist_name="\x1bmix\x07"))
    path = write(tmp_path / "c.csv", rows, NAMED_HEADER)
    assert path.stat().st_size > 8192
    catalog = load_catalog(path)
    t1 = catalog.track_index()["t1"]
    assert catalog.track_names[t1] == "a b c"
    assert catalog.album_names[t1] == "x  y z w"
    assert catalog.playlist_names[catalog.playlist_index()["p1"]] == "mix"


def test_over_long_ids_are_skipped_and_counted(tmp_path: Path) -> None:
    ok_id = "i" * 64
    rows = [
        row("t" * 65, "p1"),
        row("t2", "p" * 65),
        row("t3", "p1", album="a" * 100),
        row(ok_id, "p1"),
        row("t5", "p1"),
    ]
    catalog = load_catalog(write(tmp_path / "ids.csv", rows))
    assert sorted(catalog.track_ids.tolist()) == sorted([ok_id, "t5"])
    assert catalog.playlist_ids.tolist() == ["p1"]
    assert catalog.report.long_id_rows == 3
    assert any("3 rows" in w and "longer than 64" in w for w in catalog.report.warnings())
