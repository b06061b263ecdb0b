"""Where snapshots live on disk: one directory per model, written only by its lock holder, replaced by renames.

A model directory `<dir>` has beside it `<dir>.prev` (the snapshot it replaced), `.<dir>.lock` (held by whoever is
training for it) and `.<dir>.tmp-*` (staged snapshots being written). A save only ever replaces or deletes a
directory that carries this project's marker file: pointing --out at a music folder gets a one-line error, never
a deletion. Arrays are saved as a pickle-free npz; text columns as one UTF-8 blob each, so their size follows the
text, not the longest string.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from recsys.errors import SnapshotError
from recsys.files import fsync_dir, sha256_file, sha256_stream

FORMAT_VERSION = 2
# Format 1 (before this module) kept text as fixed-width arrays and had no marker file; it still loads.
READABLE_FORMATS = (1, 2)
ARRAYS_FILE = "arrays.npz"
META_FILE = "meta.json"
MARKER_FILE = "MUSICREC_SNAPSHOT"
MARKER_TEXT = "A musicrec model snapshot. musicrec replaces or deletes only directories holding this file.\n"
OWN_FILES = frozenset({ARRAYS_FILE, META_FILE, MARKER_FILE})
TEXT_SUFFIX = ".utf8"  # an npz entry "<key>.utf8" is the text column <key>, NUL-terminated UTF-8 strings


class SnapshotBusyError(SnapshotError):
    """Another process holds the model directory's lock: it is training a model that it will save there."""


# ----- what lies in a directory -----


class _Gone(SnapshotError):
    """No directory at the path (load_path then reads <dir>.prev)."""


class _Directory:
    """A snapshot directory's files, all read from the one directory at its path when this was made: a snapshot
    promoted to the path meanwhile (a retrain's swap: renames) does not mix in. By path where a directory cannot be
    opened (not POSIX). _Gone when there is no directory at the path."""

    def __init__(self, path: Path) -> None:
        self.path, self._fd = path, None
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError as exc:
            raise _Gone(f"no snapshot at {str(path)!r}") from exc
        except (OSError, AttributeError):
            pass

    def __enter__(self) -> _Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)

    def open(self, name: str) -> BinaryIO:
        """One of its files, for reading (the caller closes it)."""
        if self._fd is None:
            return open(self.path / name, "rb")
        fd = self._fd
        return open(name, "rb", opener=lambda path, flags: os.open(path, flags, dir_fd=fd))

    def is_file(self, name: str) -> bool:
        if self._fd is None:
            return (self.path / name).is_file()
        try:
            return stat.S_ISREG(os.stat(name, dir_fd=self._fd).st_mode)
        except OSError:
            return False


def _read_meta(files: _Directory) -> dict[str, Any]:
    """meta.json of a directory."""
    meta_path = files.path / META_FILE
    try:
        with files.open(META_FILE) as fh:
            meta = json.loads(fh.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{str(meta_path)!r} is unreadable or not JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise SnapshotError(
            f"{str(meta_path)!r} holds {type(meta).__name__}, not a JSON object: the snapshot is corrupt"
        )
    return meta


def is_snapshot_dir(path: Path) -> bool:
    """Whether `path` is a snapshot directory this project wrote (by its marker; format 1 by its exact files)."""
    if not path.is_dir():
        return False
    if (path / MARKER_FILE).is_file():
        return True
    try:
        if {p.name for p in path.iterdir()} != {ARRAYS_FILE, META_FILE}:
            return False
        with _Directory(path) as files:
            return _read_meta(files).get("format_version") == 1
    except (OSError, SnapshotError):
        return False


def _is_empty_dir(path: Path) -> bool:
    try:
        return path.is_dir() and not any(path.iterdir())
    except OSError:
        return False


# ----- text columns -----


def encode_text(values: np.ndarray) -> np.ndarray:
    """A text column as one uint8 array of NUL-terminated UTF-8 strings."""
    items = [str(v) for v in values.tolist()]
    joined = "\x00".join(items) + ("\x00" if items else "")
    if joined.count("\x00") != len(items):
        raise SnapshotError("a text value contains a NUL character and cannot be saved; clean the data")
    return np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)


def decode_text(blob: np.ndarray) -> np.ndarray:
    """The inverse of encode_text: an object array of str."""
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise SnapshotError(f"a text column is stored as {blob.dtype} of {blob.ndim} dimensions, not bytes")
    try:
        text = blob.tobytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SnapshotError(f"a text column is not UTF-8: {exc}") from exc
    out = np.empty(text.count("\x00"), dtype=object)
    out[:] = text.split("\x00")[:-1]
    return out


def _to_npz(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        (k + TEXT_SUFFIX if v.dtype.kind in "OU" else k): (encode_text(v) if v.dtype.kind in "OU" else v)
        for k, v in arrays.items()
    }


def _from_npz(stored: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for key, value in stored.items():
        if key.endswith(TEXT_SUFFIX):
            out[key.removesuffix(TEXT_SUFFIX)] = decode_text(value)
        elif value.dtype.kind == "U":  # format 1
            out[key] = value.astype(object)
        else:
            out[key] = value
    return out


# ----- reading -----


def read(directory: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and metadata of a snapshot directory; SnapshotError for anything missing, unreadable or corrupt.
    Both files come from the one directory at this path when the read began (_Directory): a load during a
    retrain's swap reads the old snapshot or the new one whole."""
    arrays_path = directory / ARRAYS_FILE
    with _Directory(directory) as files:
        if not files.is_file(META_FILE) or not files.is_file(ARRAYS_FILE):
            raise SnapshotError(f"{str(directory)!r} is not a complete snapshot (needs {META_FILE} and {ARRAYS_FILE})")
        meta = _read_meta(files)
        if meta.get("format_version") not in READABLE_FORMATS:
            raise SnapshotError(
                f"snapshot format {meta.get('format_version')!r} in {str(directory)!r}; this musicrec reads formats "
                f"{', '.join(map(str, READABLE_FORMATS))}: retrain with 'musicrec train'"
            )
        try:
            with files.open(ARRAYS_FILE) as fh:  # hashed and parsed from one handle: the bytes checked are those read
                if meta.get("arrays_sha256") != sha256_stream(fh):
                    raise SnapshotError(
                        f"{str(arrays_path)!r} does not match its checksum: the snapshot is corrupt or partial"
                    )
                fh.seek(0)
                with np.load(fh, allow_pickle=False) as data:
                    stored = {k: data[k] for k in data.files}
        except SnapshotError:
            raise
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise SnapshotError(f"cannot read {str(arrays_path)!r}: {exc}") from exc
    return _from_npz(stored), meta


def load_path(directory: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any], Path]:
    """read() of a model directory, or of <dir>.prev when there is no directory at <dir>: a save interrupted, or
    under way, between its two renames (the first moves <dir> to <dir>.prev)."""
    model = ModelDir(directory)
    for path in (model.path, model.previous):
        try:
            return (*read(path), path)
        except _Gone:
            continue
    raise SnapshotError(f"no snapshot at {str(directory)!r}: train one with 'musicrec train --out {directory}'")


# ----- writing -----


class ModelDir:
    """One model directory and the rules for writing it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.abspath(path))  # "." becomes the named directory it is
        self.previous = self.path.with_name(self.path.name + ".prev")
        self._lock_path = self.path.parent / f".{self.path.name}.lock"
        self._tmp_prefix = f".{self.path.name}.tmp-"

    def check_writable(self) -> None:
        """Raise SnapshotError unless a save may replace what is at the directory and at <dir>.prev."""
        for path in (self.path, self.previous):
            if not path.exists() or is_snapshot_dir(path) or _is_empty_dir(path):
                continue
            what = "a directory" if path.is_dir() else "a file"
            raise SnapshotError(
                f"{str(path)!r} is {what} that is not a musicrec snapshot (no {MARKER_FILE} file); musicrec will not "
                "replace it: choose a new or empty directory for the model"
            )

    @contextlib.contextmanager
    def lock(self, holder: str = "musicrec") -> Iterator[None]:
        """Hold the directory for one writer; SnapshotBusyError at once when another process holds it.

        The lock is an flock on `.<dir>.lock`: the system releases it when its holder dies, even by kill -9, so a
        crashed run never blocks the next. Stale staging folders of killed runs are removed once it is held.
        """
        self.check_writable()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SnapshotError(f"cannot write to {str(self.path.parent)!r}: {exc.strerror or exc}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                raise SnapshotBusyError(
                    f"another training is saving here: {str(self.path)!r} is locked by {other}; wait for it to finish"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} ({holder}) since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
            self.check_writable()  # again: it may have changed while we waited for the lock
            self._remove_stale_staging()
            yield
        finally:
            os.close(fd)  # releases the flock

    def _remove_stale_staging(self) -> None:
        for path in self.path.parent.glob(f"{self._tmp_prefix}*"):
            with contextlib.suppress(OSError):
                if path.is_dir() and {p.name for p in path.iterdir()} <= OWN_FILES:
                    shutil.rmtree(path)

    def stage(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
        """Write a complete snapshot into a new staging folder beside the directory (fsynced); return its path.

        The caller holds lock() (or its parent process does, for a training child) and then promote()s or
        discard()s it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            staged = Path(tempfile.mkdtemp(prefix=self._tmp_prefix, dir=self.path.parent))
        except OSError as exc:
            raise SnapshotError(f"cannot save the snapshot to {str(self.path)!r}: {exc.strerror or exc}") from exc
        try:
            _write_file(staged / ARRAYS_FILE, lambda fh: np.savez(fh, **_to_npz(arrays)))  # type: ignore[arg-type]
            meta = {**meta, "format_version": FORMAT_VERSION, "arrays_sha256": sha256_file(staged / ARRAYS_FILE)}
            _write_file(staged / META_FILE, lambda fh: fh.write(json.dumps(meta, indent=1, sort_keys=True).encode()))
            _write_file(staged / MARKER_FILE, lambda fh: fh.write(MARKER_TEXT.encode()))
            fsync_dir(staged)
        except BaseException as exc:
            shutil.rmtree(staged, ignore_errors=True)
            if isinstance(exc, OSError):
                raise SnapshotError(f"cannot save the snapshot to {str(self.path)!r}: {exc.strerror or exc}") from exc
            raise
        return staged

    def promote(self, staged: Path) -> Path:
        """Make a staged snapshot the directory's: the current one becomes <dir>.prev (the old .prev goes).

        On failure the staged copy is removed and what was there stays (or lies at <dir>.prev, where load() finds
        it, when the failure fell between the two renames)."""
        try:
            self.check_writable()
            if self.path.exists():
                if self.previous.exists():
                    shutil.rmtree(self.previous)
                os.replace(self.path, self.previous)
            os.replace(staged, self.path)
            fsync_dir(self.path.parent)
        except BaseException as exc:
            self.discard(staged)
            if isinstance(exc, OSError):
                raise SnapshotError(f"cannot put the snapshot at {str(self.path)!r}: {exc.strerror or exc}") from exc
            raise
        return self.path

    def discard(self, staged: Path) -> None:
        """Remove a staged snapshot that will not be promoted (only a staging folder of this directory)."""
        if staged.parent == self.path.parent and staged.name.startswith(self._tmp_prefix):
            shutil.rmtree(staged, ignore_errors=True)

    def save(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], holder: str = "musicrec") -> Path:
        """Lock, stage and promote in one call."""
        with self.lock(holder):
            return self.promote(self.stage(arrays, meta))


def _write_file(path: Path, write: Any) -> None:
    with open(path, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
