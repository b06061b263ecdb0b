"""Reading the data file: OS errors are one-line DataErrors, and the fingerprint is the hash of the bytes parsed."""

from __future__ import annotations

import builtins
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from recsys.data import AUDIO_FEATURES, load_catalog
from recsys.errors import DataError
from recsys.files import sha256_file
from tests.recsys.test_data import row, write


def _refuse(monkeypatch: pytest.MonkeyPatch, path: Path, error: OSError) -> None:
    """Make builtins.open raise `error` for `path` only (tests run as root, so chmod would not deny)."""
    real_open = builtins.open

    def guarded(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | os.PathLike) and Path(file) == path:
            raise error
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)


def _parquet_copy(csv_path: Path, out: Path) -> Path:
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    for col in AUDIO_FEATURES:
        frame[col] = pd.to_numeric(frame[col])
    frame.to_parquet(out, index=False)
    return out


# D. Operating-system errors.


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_permission_denied_is_a_one_line_data_error(
    demo_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    path = shutil.copy(demo_csv, tmp_path / "x.csv") if kind == "csv" else _parquet_copy(demo_csv, tmp_path / "x.pq")
    path = Path(path)
    _refuse(monkeypatch, path, PermissionError(13, "Permission denied"))
    with pytest.raises(DataError) as err:
        load_catalog(path)
    message = str(err.value)
    assert "\n" not in message
    assert f"cannot read data file {str(path)!r}: Permission denied" in message
    assert "check the file's permissions" in message


def test_a_read_error_in_the_middle_of_the_file_is_a_data_error(
    demo_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(shutil.copy(demo_csv, tmp_path / "x.csv"))
    real_open = builtins.open

    class FailsAfterFirstRead:
        """A binary file whose second read fails, like a disk error half-way through."""

        def __init__(self, fh: Any) -> None:
            self.fh, self.reads, self.mode = fh, 0, "rb"

        def __getattr__(self, name: str) -> Any:
            return getattr(self.fh, name)

        def __enter__(self) -> FailsAfterFirstRead:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def read(self, size: int = -1) -> bytes:
            self.reads += 1
            if self.reads > 2:
                raise OSError(5, "Input/output error")
            return self.fh.read(size)

    def flaky(file: Any, *args: Any, **kwargs: Any) -> Any:
        fh = real_open(file, *args, **kwargs)
        return FailsAfterFirstRead(fh) if isinstance(file, str | os.PathLike) and Path(file) == path else fh

    monkeypatch.setattr(builtins, "open", flaky)
    with pytest.raises(DataError) as err:
        load_catalog(path, chunk_rows=500)
    assert str(err.value).startswith(f"cannot read data file {str(path)!r}: Input/output error")
    assert "\n" not in str(err.value)


# E. The fingerprint is the hash of the bytes that were parsed.


def test_fingerprint_is_the_sha256_of_the_file(demo_csv: Path, tmp_path: Path) -> None:
    expected = sha256_file(demo_csv)
    assert load_catalog(demo_csv).fingerprint == expected
    assert load_catalog(demo_csv, chunk_rows=97).fingerprint == expected
    parquet = _parquet_copy(demo_csv, tmp_path / "demo.parquet")
    assert load_catalog(parquet, chunk_rows=500).fingerprint == sha256_file(parquet)


def _replace_after_first(monkeypatch: pytest.MonkeyPatch, cls: type, method: str, replace: Callable[[], None]) -> None:
    """Patch cls.method (an iterator step) so that right after it first returns, `replace` runs."""
    real = getattr(cls, method)
    done: list[bool] = []

    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = real(self, *args, **kwargs)
        if not done:
            done.append(True)
            replace()
        return out

    monkeypatch.setattr(cls, method, patched)


def test_a_csv_replaced_during_the_load_is_fingerprinted_as_the_bytes_read(
    demo_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(shutil.copy(demo_csv, tmp_path / "songs.csv"))
    original_hash = sha256_file(path)
    expected = load_catalog(demo_csv)
    newer = write(tmp_path / "newer.csv", [row(f"new{i}", "p1") for i in range(30)])
    newer_hash = sha256_file(newer)
    # The demo file is ~1 MB and pandas reads 256 kB at a time: after the first 500-row chunk most is still unread.
    assert path.stat().st_size > 4 * 262_144
    _replace_after_first(monkeypatch, pd.io.parsers.TextFileReader, "__next__", lambda: os.replace(newer, path))
    catalog = load_catalog(path, chunk_rows=500)
    assert sha256_file(path) == newer_hash  # the path now holds the other file
    assert catalog.fingerprint == original_hash
    assert np.array_equal(catalog.track_ids, expected.track_ids)
    assert np.array_equal(catalog.edges, expected.edges)


def test_a_parquet_file_replaced_during_the_load_is_fingerprinted_as_the_bytes_read(
    demo_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    path = _parquet_copy(demo_csv, tmp_path / "songs.parquet")
    original_hash = sha256_file(path)
    expected = load_catalog(path)
    newer = _parquet_copy(write(tmp_path / "newer.csv", [row(f"new{i}", "p1") for i in range(30)]), tmp_path / "n.pq")
    real_batches = pq.ParquetFile.iter_batches

    def batches_then_replace(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for n, batch in enumerate(real_batches(self, *args, **kwargs)):
            yield batch
            if n == 0:
                os.replace(newer, path)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", batches_then_replace)
    catalog = load_catalog(path, chunk_rows=500)
    assert catalog.fingerprint == original_hash
    assert np.array_equal(catalog.track_ids, expected.track_ids)
