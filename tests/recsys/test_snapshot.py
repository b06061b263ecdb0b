"""The snapshot API: exclusions, errors on unknown ids, fuzzy search, and save/load round trips.

Hostile directories and files are tests/recsys/test_store.py's; names and the song rule test_names.py's."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

import recsys
from recsys import ranking
from recsys.data import Catalog
from recsys.names import MAX_QUERY_CHARS
from recsys.store import ARRAYS_FILE, META_FILE


def _reissue(catalog: Catalog) -> tuple[str, str]:
    """The demo's song released twice (same title and artist, two track ids)."""
    keys: dict[tuple[str, str], str] = {}
    for tid, name, artist in zip(catalog.track_ids, catalog.track_names, catalog.track_artists, strict=True):
        key = (str(name), str(artist))
        if key in keys:
            return keys[key], str(tid)
        keys[key] = str(tid)
    raise AssertionError("the demo catalogue plants one reissued song")


def test_similar_tracks_excludes_query_and_its_other_versions(
    demo_catalog: Catalog, demo_snapshot: recsys.Snapshot
) -> None:
    original, reissue = _reissue(demo_catalog)
    # By the embeddings' cosine the song itself is the closest track of all: neither it nor its reissue (same title
    # and artist, another track id) may appear.
    row = demo_snapshot._track_pos[original]
    cosine = ranking.similar_scores(demo_snapshot, row, ranking.SimilarConfig(playlist_weight=0.0))
    assert demo_snapshot.track_ids[np.argmax(cosine)] == original
    recs = demo_snapshot.similar_tracks(original, k=10)
    ids = [r.track_id for r in recs]
    assert len(recs) == 10 and len(set(ids)) == 10
    assert original not in ids and reissue not in ids
    assert len({(r.name, r.artist) for r in recs}) == 10
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
    assert all(r.url == f"https://open.spotify.com/track/{r.track_id}" for r in recs)


def test_recommend_for_playlist_excludes_its_tracks(demo_catalog: Catalog, demo_snapshot: recsys.Snapshot) -> None:
    pid = str(demo_catalog.playlist_ids[3])
    own = set(demo_snapshot.playlist_tracks(pid))
    assert len(own) >= 15
    recs = demo_snapshot.recommend_for_playlist(pid, k=25)
    assert len(recs) == 25
    assert not own & {r.track_id for r in recs}


def test_recommend_for_tracks_excludes_seeds(demo_catalog: Catalog, demo_snapshot: recsys.Snapshot) -> None:
    seeds = [str(t) for t in demo_catalog.track_ids[:5]]
    recs = demo_snapshot.recommend_for_tracks(seeds, k=10)
    assert len(recs) == 10
    assert not set(seeds) & {r.track_id for r in recs}


def test_unknown_ids_raise_specific_errors(demo_snapshot: recsys.Snapshot) -> None:
    with pytest.raises(recsys.UnknownTrackError) as err:
        demo_snapshot.similar_tracks("no-such-track")
    assert isinstance(err.value, recsys.RecsysError) and "'no-such-track'" in str(err.value)
    with pytest.raises(recsys.UnknownPlaylistError):
        demo_snapshot.recommend_for_playlist("no-such-playlist")
    with pytest.raises(recsys.UnknownTrackError):
        demo_snapshot.recommend_for_tracks(["no-such-track"])
    with pytest.raises(recsys.InvalidQueryError):
        demo_snapshot.recommend_for_tracks([])


def test_search_is_fuzzy_and_one_hit_per_song(demo_catalog: Catalog, demo_snapshot: recsys.Snapshot) -> None:
    hits = demo_snapshot.search("hme", limit=5)
    assert [h.track.name for h in hits[:3]] == ["Home"] * 3
    assert len({h.track.artist for h in hits[:3]}) == 3
    original, reissue = _reissue(demo_catalog)
    name = demo_snapshot.track(original).name
    artist = demo_snapshot.track(original).artist
    found = demo_snapshot.search(f"{name.lower()} {artist.lower()}", limit=5)
    assert found[0].track.track_id in {original, reissue}
    assert found[0].match >= 95
    assert sum(h.track.track_id in {original, reissue} for h in found) == 1
    assert demo_snapshot.search("", limit=5) == []
    assert demo_snapshot.search("!!! ???", limit=5) == []  # nothing left to match once punctuation is folded away


def test_an_over_long_query_is_cut_at_the_documented_limit(demo_snapshot: recsys.Snapshot) -> None:
    name = demo_snapshot.track_names[0]
    pasted = f"{name} " + "lorem ipsum " * 500
    hits = demo_snapshot.search(pasted, limit=3)
    assert [h.track.track_id for h in hits] == [
        h.track.track_id for h in demo_snapshot.search(pasted[:MAX_QUERY_CHARS], limit=3)
    ]
    assert 0 < len(hits) <= 3


def test_save_load_gives_identical_answers(
    tmp_path: Path, demo_catalog: Catalog, demo_snapshot: recsys.Snapshot
) -> None:
    demo_snapshot.save(tmp_path / "m")
    loaded = recsys.load(tmp_path / "m")
    tid, pid = str(demo_catalog.track_ids[10]), str(demo_catalog.playlist_ids[2])
    assert loaded.similar_tracks(tid) == demo_snapshot.similar_tracks(tid)
    assert loaded.recommend_for_playlist(pid) == demo_snapshot.recommend_for_playlist(pid)
    assert loaded.search("home") == demo_snapshot.search("home")
    assert loaded.info == demo_snapshot.info


def test_a_failed_save_keeps_the_previous_snapshot_and_says_why_in_one_line(
    tmp_path: Path, demo_snapshot: recsys.Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "m"
    demo_snapshot.save(target)
    version = recsys.load(target).info.version

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(recsys.SnapshotError, match="No space left on device") as err:
        demo_snapshot.save(target)
    assert "\n" not in str(err.value)
    monkeypatch.undo()
    assert recsys.load(target).info.version == version
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_crash_between_renames_falls_back_to_previous(
    tmp_path: Path, demo_snapshot: recsys.Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "m"
    demo_snapshot.save(target)
    real_replace = os.replace
    calls = []

    def replace_then_die(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == 2:  # the old one moved aside, the new one not yet in place
            raise OSError("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(recsys.SnapshotError, match="power cut"):
        demo_snapshot.save(target)
    monkeypatch.undo()
    assert not target.exists()
    assert recsys.load(target).info.version == demo_snapshot.info.version


def test_corrupt_snapshot_is_a_clear_error(tmp_path: Path, demo_snapshot: recsys.Snapshot) -> None:
    target = demo_snapshot.save(tmp_path / "m")
    with open(target / ARRAYS_FILE, "r+b") as fh:
        fh.seek(100)
        fh.write(b"garbage")
    with pytest.raises(recsys.SnapshotError, match="checksum"):
        recsys.load(target)
    (target / META_FILE).write_text("{not json")
    with pytest.raises(recsys.SnapshotError, match="not JSON"):
        recsys.load(target)
    with pytest.raises(recsys.SnapshotError, match="no snapshot"):
        recsys.load(tmp_path / "missing")


def test_saved_arrays_need_no_pickle(tmp_path: Path, demo_snapshot: recsys.Snapshot) -> None:
    target = demo_snapshot.save(tmp_path / "m")
    with np.load(target / ARRAYS_FILE, allow_pickle=False) as data:
        names = data["track_names.utf8"]
        assert names.dtype == np.uint8  # one blob of text, not a fixed-width array as wide as the longest name
        assert names.tobytes().decode().split("\x00")[:-1] == demo_snapshot.track_names.tolist()
        assert data["track_z"].dtype == np.float32


def test_search_folds_accents_and_word_order(demo_snapshot: recsys.Snapshot, demo_catalog: Catalog) -> None:
    from recsys.names import fold

    assert fold("Señorita!") == "senorita"
    track = demo_snapshot.track(str(demo_catalog.track_ids[40]))
    for query in (f"{track.artist} {track.name}", f"{track.name} {track.artist.split()[1]}"):
        assert demo_snapshot.search(query, limit=1)[0].track.artist == track.artist, query


def test_song_and_artist_groups_are_saved_and_not_recomputed_at_load(
    tmp_path: Path, demo_snapshot: recsys.Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recsys import snapshot as snapshot_module
    from recsys.snapshot import ARTISTS_KEY, SONGS_KEY, Snapshot
    from recsys.store import read

    demo_snapshot.save(tmp_path / "m")
    arrays, _ = read(tmp_path / "m")
    assert np.array_equal(arrays[SONGS_KEY], demo_snapshot.songs)
    assert np.array_equal(arrays[ARTISTS_KEY], demo_snapshot.artist_groups)
    calls: list[str] = []
    real_songs, real_artists = snapshot_module.song_groups, snapshot_module.artist_groups
    monkeypatch.setattr(snapshot_module, "song_groups", lambda *a: calls.append("songs") or real_songs(*a))
    monkeypatch.setattr(snapshot_module, "artist_groups", lambda *a: calls.append("artists") or real_artists(*a))
    loaded = recsys.load(tmp_path / "m")
    assert calls == []  # read back, not recomputed
    assert np.array_equal(loaded.songs, demo_snapshot.songs)
    assert np.array_equal(loaded.artist_groups, demo_snapshot.artist_groups)
    # Groups saved under another version of the rule, or malformed ones, are recomputed, never trusted.
    stale = {k: v for k, v in arrays.items() if k not in (SONGS_KEY, ARTISTS_KEY)}
    stale["song_groups_v0"] = np.zeros(len(demo_snapshot.track_ids), dtype=np.int64)
    stale[ARTISTS_KEY] = arrays[ARTISTS_KEY][:-1]
    again = Snapshot(stale, loaded.info)
    assert calls == ["songs", "artists"]
    assert np.array_equal(again.songs, demo_snapshot.songs)
    assert np.array_equal(again.artist_groups, demo_snapshot.artist_groups)


def test_result_records_read_each_row_and_say_none_for_an_unknown_year_or_popularity(
    demo_snapshot: recsys.Snapshot,
) -> None:
    arrays = dict(demo_snapshot._arrays)
    years, popularity = arrays["years"].copy(), arrays["popularity"].copy()
    years[0], popularity[1] = np.nan, np.nan
    snap = recsys.Snapshot(arrays | {"years": years, "popularity": popularity}, demo_snapshot.info)
    first, second = snap.results([0, 1], [0.5, 0.25], ["why", None])
    assert (first.track_id, first.name, first.artist) == (
        str(snap.track_ids[0]),
        str(snap.track_names[0]),
        str(snap.track_artists[0]),
    )
    assert first.year is None and first.popularity == float(popularity[0]) and first.reason == "why"
    assert second.popularity is None and second.year == int(years[1]) and isinstance(second.year, int)
    assert (first.score, second.score, second.album) == (0.5, 0.25, str(snap.album_names[1]))
    # A list's records are the rows' one by one.
    recs = snap.similar_tracks(str(snap.track_ids[2]), k=5)
    assert recs == [snap.result(snap._idx(r.track_id), r.score, r.reason) for r in recs]
