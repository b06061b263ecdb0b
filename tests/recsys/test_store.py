"""Model directories under hostile conditions: a save never replaces what it did not write, two writers never mix,
killed runs leave nothing behind that blocks the next, and a damaged snapshot is a SnapshotError, never a crash
later in a query."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import recsys
from recsys import store
from recsys.files import sha256_file
from recsys.store import ARRAYS_FILE, MARKER_FILE, META_FILE, ModelDir, SnapshotBusyError


def _music_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "song.mp3").write_bytes(b"ID3 not a model")
    (path / "notes").mkdir()
    (path / "notes" / "todo.txt").write_text("keep me")
    return path


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# ----- 1. only our own directories are replaced -----


def test_saving_over_a_folder_that_is_not_a_model_is_refused_and_touches_nothing(
    tmp_path: Path, demo_snapshot: recsys.Snapshot
) -> None:
    music = _music_folder(tmp_path / "music")
    before = _files(music)
    for _ in range(2):  # the old code moved it to music.prev on the first save and deleted it on the second
        with pytest.raises(recsys.SnapshotError, match="not a musicrec snapshot") as err:
            demo_snapshot.save(music)
        assert "\n" not in str(err.value)
    assert _files(music) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["music"]


def test_a_foreign_folder_at_the_prev_name_is_not_deleted(tmp_path: Path, demo_snapshot: recsys.Snapshot) -> None:
    demo_snapshot.save(tmp_path / "m")
    keep = _music_folder(tmp_path / "m.prev")
    before = _files(keep)
    with pytest.raises(recsys.SnapshotError, match=r"m\.prev"):
        demo_snapshot.save(tmp_path / "m")
    assert _files(keep) == before


def test_the_folder_holding_the_data_is_refused_as_model_dir(tmp_path: Path, demo_csv: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "songs.csv").write_bytes(demo_csv.read_bytes())
    with pytest.raises(recsys.SnapshotError, match="not a musicrec snapshot"):
        ModelDir(data_dir).check_writable()
    with pytest.raises(recsys.SnapshotError):
        ModelDir(data_dir / "songs.csv").check_writable()


def test_an_empty_or_new_folder_and_our_own_snapshots_may_be_replaced(
    tmp_path: Path, demo_snapshot: recsys.Snapshot
) -> None:
    (tmp_path / "empty").mkdir()
    demo_snapshot.save(tmp_path / "empty")
    demo_snapshot.save(tmp_path / "new" / "model")
    demo_snapshot.save(tmp_path / "new" / "model")  # its own snapshot: replaced, the old one kept as .prev
    assert (tmp_path / "new" / "model" / MARKER_FILE).is_file()
    assert recsys.load(tmp_path / "new" / "model.prev").info == demo_snapshot.info


def test_a_format_1_snapshot_loads_and_counts_as_ours(tmp_path: Path, demo_snapshot: recsys.Snapshot) -> None:
    old = tmp_path / "old"
    old.mkdir()
    arrays = {k: (v.astype(str) if v.dtype == object else v) for k, v in demo_snapshot._arrays.items()}
    with open(old / ARRAYS_FILE, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    meta = {**json.loads(json.dumps(demo_snapshot.info.__dict__)), "format_version": 1}
    meta["arrays_sha256"] = sha256_file(old / ARRAYS_FILE)
    (old / META_FILE).write_text(json.dumps(meta))
    tid = str(demo_snapshot.track_ids[5])
    assert recsys.load(old).similar_tracks(tid) == demo_snapshot.similar_tracks(tid)
    demo_snapshot.save(old)  # replaced, not refused
    assert recsys.load(old).info.format_version == 2 and (old / MARKER_FILE).is_file()
    assert recsys.load(tmp_path / "old.prev").info.format_version == 1


# ----- 3. one writer at a time; staging; killed runs -----


def test_a_second_writer_gets_a_clear_busy_error(tmp_path: Path, demo_snapshot: recsys.Snapshot) -> None:
    target = tmp_path / "m"
    demo_snapshot.save(target)
    before = _files(target)
    with ModelDir(target).lock("bot retrain"):
        with pytest.raises(SnapshotBusyError, match="another training is saving here") as err:
            demo_snapshot.save(target)
        assert "bot retrain" in str(err.value)
        assert _files(target) == before
    demo_snapshot.save(target)  # free again once released


def test_a_killed_holder_does_not_block_and_its_staging_folders_are_cleaned(
    tmp_path: Path, demo_snapshot: recsys.Snapshot
) -> None:
    target = tmp_path / "m"
    demo_snapshot.save(target)
    # A training killed with -9 while holding the lock and halfway through writing its staged snapshot.
    script = textwrap.dedent(
        f"""
        import sys, time
        from recsys.store import ModelDir
        model = ModelDir({str(target)!r})
        with model.lock("doomed run"):
            staged = model.stage({{}}, {{}})
            (staged / "arrays.npz").write_bytes(b"half")
            print("locked", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    foreign = tmp_path / ".m.tmp-mine"  # a user's folder that only looks like a staging folder
    _music_folder(foreign)
    assert len(list(tmp_path.glob(".m.tmp-*"))) == 2
    demo_snapshot.save(target)
    assert [p.name for p in tmp_path.glob(".m.tmp-*")] == [".m.tmp-mine"]
    assert (foreign / "song.mp3").is_file()


def test_staged_snapshots_load_and_promote_with_one_rename(tmp_path: Path, demo_snapshot: recsys.Snapshot) -> None:
    target = tmp_path / "m"
    model = ModelDir(target)
    with model.lock():
        staged = demo_snapshot.stage(target)
        assert not target.exists()  # nothing serves from a staged copy until it is promoted
        assert recsys.load(staged).info == demo_snapshot.info
        model.promote(staged)
    assert not staged.exists() and recsys.load(target).info == demo_snapshot.info


def _other(snapshot: recsys.Snapshot) -> recsys.Snapshot:
    """A second snapshot of the same catalogue: other embeddings, another version."""
    info = dataclasses.replace(snapshot.info, version=snapshot.info.version + "-next")
    return recsys.Snapshot({**snapshot._arrays, "track_z": snapshot.track_z[::-1].copy()}, info)


@pytest.mark.parametrize("when", ["after meta.json", "after the checksum"])
def test_a_swap_during_a_load_gives_one_whole_snapshot(
    tmp_path: Path, demo_snapshot: recsys.Snapshot, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A reader (musicrec recommend, a second bot) loading while a retrain promotes its snapshot gets the old one or
    the new one, never a checksum error, never one snapshot's meta.json with the other's arrays."""
    target, new = tmp_path / "m", _other(demo_snapshot)
    demo_snapshot.save(target)
    model, swapped = ModelDir(target), []

    def swap() -> None:
        if not swapped:
            swapped.append(True)
            with model.lock():
                model.promote(new.stage(target))

    if when == "after meta.json":
        read_meta = store._read_meta
        monkeypatch.setattr(store, "_read_meta", lambda *a, **kw: (read_meta(*a, **kw), swap())[0])
    else:
        load = np.load
        monkeypatch.setattr(np, "load", lambda *a, **kw: (swap(), load(*a, **kw))[1])
    got = recsys.load(target)
    assert swapped
    assert got.info == demo_snapshot.info
    np.testing.assert_array_equal(got.track_z, demo_snapshot.track_z)
    assert recsys.load(target).info == new.info  # the next load reads the new one


def test_a_load_that_finds_the_directory_gone_between_a_swaps_renames_reads_prev(
    tmp_path: Path, demo_snapshot: recsys.Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A promote renames <dir> to <dir>.prev, then the new snapshot to <dir>: a load whose check that <dir> exists
    falls just before the first rename reads <dir>.prev (the snapshot being replaced), not an error."""
    target = tmp_path / "m"
    demo_snapshot.save(target)
    exists = Path.exists

    def first_rename_right_after(path: Path) -> bool:
        found = exists(path)
        if path == target and found:
            monkeypatch.setattr(Path, "exists", exists)
            os.replace(target, tmp_path / "m.prev")  # the promote's first rename; its second has not happened yet
        return found

    monkeypatch.setattr(Path, "exists", first_rename_right_after)
    assert recsys.load(target).info == demo_snapshot.info


# ----- 6. text is stored by its size -----


def test_one_very_long_name_does_not_blow_up_the_snapshot(tmp_path: Path, demo_snapshot: recsys.Snapshot) -> None:
    arrays = dict(demo_snapshot._arrays)
    names = arrays["track_names"].copy()
    names[0] = "la " * 3334  # 10,002 characters, as a hostile CSV could hold before the loader's cut
    arrays["track_names"] = names
    long = recsys.Snapshot(arrays, demo_snapshot.info).save(tmp_path / "long") / ARRAYS_FILE
    short = demo_snapshot.save(tmp_path / "short") / ARRAYS_FILE
    # Fixed-width text made every name 10,002 characters x 4 bytes (~40 MB here, 1.17 GB on the real catalogue).
    assert long.stat().st_size - short.stat().st_size < 20_000
    assert recsys.load(tmp_path / "long").track_names[0] == names[0]


# ----- 7. damaged snapshots are SnapshotErrors at load -----


Change = Callable[[recsys.Snapshot], dict[str, np.ndarray]]


def _damaged(tmp_path: Path, snapshot: recsys.Snapshot, **changes: np.ndarray) -> Path:
    """A saved snapshot whose arrays were changed (with a valid checksum: only the content is wrong)."""
    arrays = {**snapshot._arrays, **changes}
    model = ModelDir(tmp_path / "bad")
    with model.lock():
        return model.promote(model.stage(arrays, json.loads(json.dumps(snapshot.info.__dict__))))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: {"track_z": s.track_z[:, 0].copy()}, "track_z"),
        (lambda s: {"years": np.array([str(y) for y in s.years.tolist()], dtype=object)}, "years"),
        (lambda s: {"edges": np.where(np.arange(s.edges.size).reshape(s.edges.shape) == 3, -1, s.edges)}, "edges"),
        (lambda s: {"edges": s.edges + len(s.track_ids)}, "edges"),
        (lambda s: {"playlist_z": s.playlist_z[:-1].copy()}, "playlist_z"),
        (lambda s: {"track_ids": np.full(len(s.track_ids), "same", dtype=object)}, "not unique"),
        (lambda s: {"audio": np.full_like(s.audio, np.nan)}, "audio"),
        (lambda s: {"track_names": s.track_names[:-1].copy()}, "track_names"),
    ],
    ids=[
        "1d-track_z",
        "string-years",
        "negative-edge",
        "edge-out-of-range",
        "short-playlist_z",
        "duplicate-ids",
        "nan-audio",
        "short-names",
    ],
)
def test_every_array_is_checked_at_load(
    tmp_path: Path,
    demo_snapshot: recsys.Snapshot,
    change: Callable[[recsys.Snapshot], dict[str, np.ndarray]],
    message: str,
) -> None:
    path = _damaged(tmp_path, demo_snapshot, **change(demo_snapshot))
    with pytest.raises(recsys.SnapshotError, match=message):
        recsys.load(path)


@pytest.mark.parametrize("content", ["[]", "null", "3", '"text"', "fields missing", "wrong types"])
def test_meta_json_of_the_wrong_shape_is_a_snapshot_error(
    tmp_path: Path, demo_snapshot: recsys.Snapshot, content: str
) -> None:
    target = demo_snapshot.save(tmp_path / "m")
    meta = json.loads((target / META_FILE).read_text())
    if content == "fields missing":
        content = json.dumps({k: meta[k] for k in ("format_version", "arrays_sha256")})
    elif content == "wrong types":
        content = json.dumps({**meta, "num_tracks": "many", "metrics": ["x"]})
    (target / META_FILE).write_text(content)
    with pytest.raises(recsys.SnapshotError):
        recsys.load(target)


def test_unreadable_arrays_are_a_snapshot_error(
    tmp_path: Path, demo_snapshot: recsys.Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = demo_snapshot.save(tmp_path / "m")

    def denied(fh: object) -> str:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target / ARRAYS_FILE))

    monkeypatch.setattr("recsys.store.sha256_stream", denied)
    with pytest.raises(recsys.SnapshotError, match="Permission denied"):
        recsys.load(target)


# ----- 8. permissions and a full disk are one line -----


def test_permission_denied_on_the_model_folder_is_one_line(
    tmp_path: Path, demo_snapshot: recsys.Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(*args: object, **kwargs: object) -> str:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr("recsys.store.tempfile.mkdtemp", denied)
    with pytest.raises(recsys.SnapshotError, match="Permission denied") as err:
        demo_snapshot.save(tmp_path / "m")
    assert "\n" not in str(err.value)
