"""Approximate serving at scale: recall against exact search on planted clusters, the token pre-filter of search,
persistence of the index, and exact fallback when faiss (the 'ann' extra) is missing."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from recsys import ann, ranking
from recsys.ann import AnnConfig, AnnIndex
from recsys.errors import RecsysError
from recsys.name_index import NameIndexConfig
from recsys.ranking import top_k
from recsys.snapshot import Snapshot, SnapshotInfo
from recsys.store import read

DIM = 16
# Lowered thresholds so that a 4k-track catalogue takes the large-catalogue paths.
SMALL_ANN = AnnConfig(min_items=0, nlist=32, nprobe=8)
NO_ANN = AnnConfig(min_items=1 << 62)
WORDS = ["neon", "velvet", "silver", "golden", "broken", "electric", "midnight", "crimson", "hollow", "wild"]


def planted_arrays(num_tracks: int = 4000, seed: int = 0) -> dict[str, np.ndarray]:
    """Tracks in 40 tight clusters (the planted answer: a track's neighbours are its cluster-mates)."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 40, num_tracks)
    z = rng.standard_normal((40, DIM))[cluster] * 3 + rng.standard_normal((num_tracks, DIM))
    z = (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)  # [T, DIM]
    names = [f"{WORDS[i % 10]} {WORDS[(i // 10) % 10]} {i}" for i in range(num_tracks)]
    edges = np.stack([np.repeat(np.arange(50), 10), rng.integers(0, num_tracks, 500)])  # [2, 500]
    pz = z[edges[1]].reshape(50, 10, DIM).mean(1)
    return {
        "track_ids": np.array([f"t{i}" for i in range(num_tracks)]),
        "track_names": np.array(names),
        "track_artists": np.array([f"artist {i // 8}" for i in range(num_tracks)]),
        "album_names": np.full(num_tracks, "album"),
        "years": np.full(num_tracks, np.nan, dtype=np.float32),
        "popularity": rng.integers(0, 100, num_tracks).astype(np.float32),
        "audio": rng.standard_normal((num_tracks, 5)).astype(np.float32),
        "playlist_ids": np.array([f"p{i}" for i in range(50)]),
        "playlist_names": np.array([f"playlist {i}" for i in range(50)]),
        "edges": edges,
        "track_z": z,
        "playlist_z": (pz / np.linalg.norm(pz, axis=1, keepdims=True)).astype(np.float32),
    }


def _info(arrays: dict[str, np.ndarray]) -> SnapshotInfo:
    return SnapshotInfo("test", "", "", len(arrays["track_ids"]), len(arrays["playlist_ids"]), {}, 0.0, "test", {})


def _snapshot(config: AnnConfig, arrays: dict[str, np.ndarray] | None = None, **kw: NameIndexConfig) -> Snapshot:
    arrays = arrays if arrays is not None else planted_arrays()
    return Snapshot(dict(arrays), _info(arrays), ann_config=config, **kw)


@pytest.fixture(scope="module")
def exact() -> Snapshot:
    return _snapshot(NO_ANN)


@pytest.fixture(scope="module")
def approx() -> Snapshot:
    pytest.importorskip("faiss")
    return _snapshot(SMALL_ANN)


def test_a_catalogue_the_size_of_the_real_one_ranks_exactly() -> None:
    # The real dataset has 28,356 tracks: it must get exact top-k and full-scan search, not an approximation.
    arrays = planted_arrays(num_tracks=28_356)
    snap = Snapshot(dict(arrays), _info(arrays))
    assert snap.ann is None and snap.names.index is None
    for q in (0, 777, 28_000):
        # The exact order of the whole catalogue's scores (cosine plus the playlist bonus), one song per artist.
        scores = snap.track_scores(f"t{q}")
        exact = top_k(scores, 10, np.array([q]), snap.songs, snap.artist_groups, snap.lists.similar_max_per_artist)
        assert [t.track_id for t in snap.similar_tracks(f"t{q}")] == [f"t{i}" for i in exact]


def test_ann_recall_against_exact(exact: Snapshot, approx: Snapshot) -> None:
    assert approx.ann is not None
    recalls = []
    for tid in exact.track_ids[::40].tolist():
        truth = exact.similar_tracks(tid, k=10)
        got = approx.similar_tracks(tid, k=10)
        assert tid not in {t.track_id for t in got}
        assert [t.score for t in got] == sorted((t.score for t in got), reverse=True)
        assert len({t.track_id for t in got}) == 10
        recalls.append(len({t.track_id for t in truth} & {t.track_id for t in got}) / 10)
    assert np.mean(recalls) >= 0.95
    for pid in exact.playlist_ids[:10].tolist():
        own = set(exact.playlist_tracks(pid))
        got_ids = {t.track_id for t in approx.recommend_for_playlist(pid, k=10)}
        assert not own & got_ids
        assert len(got_ids & {t.track_id for t in exact.recommend_for_playlist(pid, k=10)}) >= 8


def test_index_alone_finds_planted_neighbours() -> None:
    pytest.importorskip("faiss")
    z = planted_arrays()["track_z"]
    index = AnnIndex.build(z, SMALL_ANN)
    hits = index.search(z[7], 10)
    truth = np.argsort(-(z @ z[7]))[:10]
    assert len(set(hits.tolist()) & set(truth.tolist())) >= 9


def test_the_index_holds_a_byte_per_dimension_and_proposes_what_the_float_index_proposes() -> None:
    pytest.importorskip("faiss")
    z = planted_arrays()["track_z"]
    small = AnnIndex.build(z, SMALL_ANN)
    flat = AnnIndex.build(z, AnnConfig(min_items=0, nlist=32, nprobe=8, storage="flat"))
    assert len(small.to_array()) < 0.5 * len(flat.to_array())  # codes: DIM bytes a track, not 4 * DIM
    overlap = [len(set(small.search(z[i], 10).tolist()) & set(flat.search(z[i], 10).tolist())) / 10 for i in range(200)]
    assert np.mean(overlap) >= 0.9


def test_a_left_out_artist_set_marks_exactly_its_rows_and_is_built_once() -> None:
    pytest.importorskip("faiss")
    snap = _snapshot(SMALL_ANN)
    groups = np.unique(snap.artist_groups[[5, 900]])
    left = snap.left_out(groups)
    marked = np.flatnonzero(np.unpackbits(left.bits, bitorder="little")[: len(snap.track_ids)])
    assert marked.tolist() == np.flatnonzero(np.isin(snap.artist_groups, groups)).tolist()
    assert left.per_list.sum() == len(marked)
    assert snap.left_out(groups.copy()) is left  # the next query of these artists reuses it


@pytest.mark.parametrize("count", [0, 1, 9, 50, 2000, 9000])
def test_a_bitmap_marks_exactly_its_rows_whether_few_or_many(count: int) -> None:
    n = 10_001  # few rows (under n / 256) are set bit by bit, more through a mask
    rows = np.sort(np.random.default_rng(count).choice(n, count, replace=False))
    bits = ann._bitmap(rows, n)
    assert len(bits) == 1251 and np.flatnonzero(np.unpackbits(bits, bitorder="little")).tolist() == rows.tolist()


def test_a_query_scanned_by_all_threads_gets_what_one_thread_gets() -> None:
    pytest.importorskip("faiss")
    z = planted_arrays()["track_z"]
    together = AnnIndex.build(z, AnnConfig(min_items=0, nlist=32, nprobe=8, parallel_lists=True))
    alone = AnnIndex.from_array(together.to_array(), SMALL_ANN)
    assert together._index.parallel_mode == 1 and alone._index.parallel_mode == 0
    skip = together.left_out(np.arange(0, 4000, 3))
    for i in range(0, 4000, 40):
        assert together.search(z[i], 50, 2.0).tolist() == alone.search(z[i], 50, 2.0).tolist()
        assert together.search(z[i], 20, 1.0, skip).tolist() == alone.search(z[i], 20, 1.0, skip).tolist()


def test_skipped_rows_are_never_proposed_and_their_share_of_the_scanned_lists_is_counted() -> None:
    pytest.importorskip("faiss")
    arrays = planted_arrays()
    z, cluster = arrays["track_z"], np.random.default_rng(0).integers(0, 40, 4000)  # planted_arrays' first draw
    index = AnnIndex.build(z, SMALL_ANN)
    query = z[0]
    mates = np.flatnonzero(cluster == cluster[0])  # the query's cluster: its nearest tracks
    got = index.search(query, 50, skip=index.left_out(mates))
    assert len(got) == 50 and not np.isin(got, mates).any()
    assert set(index.search(query, 50).tolist()) & set(mates.tolist())  # without the skip they come first
    # A search given the query's probe (of its breadth or wider) reads those lists and finds the same.
    wide, skip = index.probe(query, 4), index.left_out(mates)
    for breadth in (1, 2, 4):
        for left_out in (None, skip):
            plain = index.search(query, 50, breadth, left_out)
            assert index.search(query, 50, breadth, left_out, wide).tolist() == plain.tolist()
    lists = index.probe(query, 1).lists
    assert index.skipped_share(lists, index.left_out(np.zeros(0, dtype=np.int64))) == 0.0
    assert index.skipped_share(lists, index.left_out(np.arange(4000))) == 1.0
    # Every list scanned at full breadth: the share is the skipped rows' share of the catalogue.
    assert index.skipped_share(index.probe(query, 4).lists, index.left_out(mates)) == pytest.approx(len(mates) / 4000)


def test_rows_in_lists_are_those_a_search_of_them_meets_nearest_lists_first() -> None:
    pytest.importorskip("faiss")
    z = planted_arrays()["track_z"]
    index = AnnIndex.build(z, SMALL_ANN)
    lists = index.probe(z[0], 2).lists
    assert (
        len(lists) == index.probes(2) == 16 and lists[: index.probes(1)].tolist() == index.probe(z[0], 1).lists.tolist()
    )
    rows = np.arange(0, 4000, 2)
    by_list = rows[np.argsort(index.list_of[rows], kind="stable")]  # sorted by their list, as the snapshot keeps them
    held = ann.rows_in(by_list, index.list_of[by_list], lists, limit=4000)
    assert held.tolist() == [r for r in rows.tolist() if index.list_of[r] in set(lists.tolist())]
    assert set(index.search(z[0], 4000, 2).tolist()) & set(rows.tolist()) == set(held.tolist())  # what it meets
    rank = {int(lst): i for i, lst in enumerate(lists)}
    for limit in (1, 50, len(held) - 1, len(held), len(held) + 1):
        few = ann.rows_in(by_list, index.list_of[by_list], lists, limit=limit)
        kept = [rank[index.list_of[r]] for r in few.tolist()]
        dropped = [rank[index.list_of[r]] for r in set(held.tolist()) - set(few.tolist())]
        assert len(few) == min(limit, len(held)) and np.all(np.diff(few) > 0)
        assert max(kept) <= min(dropped, default=len(lists))  # the nearest lists' rows first
    # No rows, or none in the lists: nothing.
    assert ann.rows_in(by_list[:0], index.list_of[by_list[:0]], lists, 50).tolist() == []
    elsewhere = by_list[~np.isin(index.list_of[by_list], lists)]
    assert ann.rows_in(elsewhere, index.list_of[elsewhere], lists, 50).tolist() == []


def test_an_artists_tracks_in_lists_are_those_of_its_rows_the_lists_hold() -> None:
    pytest.importorskip("faiss")
    arrays = planted_arrays()
    arrays["track_artists"] = np.array([f"artist {i % 7}" for i in range(4000)])  # ~570 tracks each
    snap = _snapshot(SMALL_ANN, arrays)
    assert snap.ann is not None
    lists = snap.ann.probe(snap.track_z[0], 2).lists
    for group in range(7):
        mine = np.flatnonzero(snap.artist_groups == group)
        held = mine[np.isin(snap.ann.list_of[mine], lists)]
        assert snap.artist_in_lists(group, lists, 4000).tolist() == held.tolist()
        few = snap.artist_in_lists(group, lists, 20)
        assert len(few) == 20 and set(few.tolist()) <= set(held.tolist())
    with pytest.raises(RecsysError, match="no approximate index"):
        _snapshot(NO_ANN, arrays).artist_in_lists(0, lists, 20)


def test_index_is_saved_with_the_snapshot_and_reused(
    approx: Snapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    approx.save(tmp_path / "m")
    arrays, _ = read(tmp_path / "m")
    assert arrays[ann.INDEX_KEY].dtype == np.uint8
    assert arrays[ann.PLAYLIST_INDEX_KEY].dtype == np.uint8  # the playlists' index too (similar songs use it)

    def no_build(*args: object, **kwargs: object) -> AnnIndex:
        raise AssertionError("the saved index should be loaded, not rebuilt")

    monkeypatch.setattr(AnnIndex, "build", no_build)
    loaded = _snapshot(SMALL_ANN, arrays)
    tid = str(approx.track_ids[3])
    assert [t.track_id for t in loaded.similar_tracks(tid)] == [t.track_id for t in approx.similar_tracks(tid)]


def test_missing_faiss_falls_back_to_exact_with_a_warning(
    exact: Snapshot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    with caplog.at_level(logging.WARNING, logger="recsys.ann"):
        snap = _snapshot(SMALL_ANN)
    assert snap.ann is None
    assert "musicrec[ann]" in caplog.text
    tid = str(exact.track_ids[5])
    assert snap.similar_tracks(tid) == exact.similar_tracks(tid)


def test_prefiltered_search_finds_what_the_full_scan_finds(exact: Snapshot) -> None:
    arrays = planted_arrays()
    filtered = _snapshot(NO_ANN, arrays, name_index_config=NameIndexConfig(min_items=0, max_candidates=300))
    assert filtered.names.index is not None
    for query in ["velvet silver 1234", "midnite crimson 77", "artist 42", "golden neon", "hollow wild 999"]:
        full, fast = exact.search(query), filtered.search(query)
        assert fast, query
        # The same best hit (tracks tied on match and popularity may swap places); the rest no worse by much (the
        # pre-filter can even find a better runner-up than the full scan's rough stage).
        assert (fast[0].match, fast[0].track.popularity) == (full[0].match, full[0].track.popularity), query
        assert all(f.match >= g.match - 5 for f, g in zip(fast, full, strict=False)), query
    assert filtered.search("") == [] and filtered.search("neon", limit=0) == []
    # No word in common with any name: falls back to the full scan rather than returning nothing.
    assert [h.track.track_id for h in filtered.search("zzqx")] == [h.track.track_id for h in exact.search("zzqx")]


def test_a_catalogue_leaves_the_garbage_collector_nothing_large_to_walk() -> None:
    import gc

    # Every full collection walks every tracked container: lists of a name per track made each one take ~260 ms
    # at 2.26M tracks, a pause any query (and the bot's event loop) could hit.
    arrays = planted_arrays()
    gc.collect()
    before = {id(o) for o in gc.get_objects()}
    snap = _snapshot(NO_ANN, arrays, name_index_config=NameIndexConfig(min_items=0))
    assert snap.names.index is not None and snap.search("velvet silver")
    gc.collect()
    new = [o for o in gc.get_objects() if id(o) not in before and o is not before]
    large = [o for o in new if isinstance(o, list | tuple | dict | set)]
    assert [(type(o).__name__, len(o)) for o in large if len(o) >= 1000] == []


def test_a_rows_words_count_once_per_query_word_at_their_best_match() -> None:
    from rapidfuzz import fuzz

    from recsys.name_index import NameIndex

    titles = ["neon velvet", "neom neon", "neom", "velvet neom velvets", "silver", "neons velvet silver"]
    artists = ["a", "b", "c", "d", "e", "f"]
    index = NameIndex.build(titles, artists, NameIndexConfig(min_items=0, max_candidates=100))
    cutoff = index.config.word_cutoff
    for query in ["neon velvet", "neom", "velvets silver", "neon neon"]:
        q_words = list(dict.fromkeys(query.split()))
        # Per row: the sum over query words of the best ratio of one of its words (a row with "neom" and "neon"
        # counts "neon" once, at 100).
        want = [
            sum(
                max([r for w in f"{t} {a}".split() if (r := round(fuzz.ratio(q, w))) >= cutoff] or [0]) for q in q_words
            )
            for t, a in zip(titles, artists, strict=True)
        ]
        assert index.candidates(query, np.zeros(6)).tolist() == [i for i, h in enumerate(want) if h], query
        assert index._hits(index_matches(index, q_words)).tolist() == want, query


def index_matches(index: object, q_words: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """What NameIndex.candidates hands _hits: per query word, the vocabulary words it matches and their ratios."""
    from rapidfuzz import fuzz

    vocab = index._vocab  # type: ignore[attr-defined]
    out = []
    for q in q_words:
        ratios = np.array([round(fuzz.ratio(q, w)) for w in vocab])
        matched = np.flatnonzero(ratios >= index.config.word_cutoff)  # type: ignore[attr-defined]
        out.append((matched, ratios[matched]))
    return out


def test_too_many_candidates_keep_the_most_matching_rows_then_the_most_popular() -> None:
    from recsys.name_index import _best_rows

    cand = np.array([10, 11, 12, 13, 14, 15])
    hits = np.array([300, 300, 200, 200, 200, 100], dtype=np.uint16)
    popularity = np.zeros(16, dtype=np.float32)
    popularity[[12, 13, 14]] = [5.0, np.nan, 70.0]
    assert _best_rows(cand, hits, popularity, 3).tolist() == [10, 11, 14]
    assert _best_rows(cand, hits, popularity, 4).tolist() == [10, 11, 12, 14]
    assert _best_rows(cand, hits, popularity, 2).tolist() == [10, 11]
    assert _best_rows(cand, hits, popularity, 6).tolist() == cand.tolist()


def test_a_query_word_that_lost_its_space_is_read_as_the_two_index_words(exact: Snapshot) -> None:
    from recsys.name_index import NameIndex

    arrays = planted_arrays()
    config = NameIndexConfig(min_items=0, max_candidates=300)
    index = NameIndex.build([str(n) for n in arrays["track_names"]], [str(a) for a in arrays["track_artists"]], config)
    both = {i for i, n in enumerate(arrays["track_names"]) if str(n).startswith("velvet silver ")}
    assert len(both) == 40
    rows = set(index.candidates("velvetsilver", arrays["popularity"]).tolist())
    assert both <= rows  # the rows holding both words first, not an empty answer that scans every name
    assert not index.candidates("zzqxzzqx", arrays["popularity"]).size  # no split into index words: still nothing
    filtered = _snapshot(NO_ANN, arrays, name_index_config=config)
    best = filtered.search("velvetsilver 1221")[0]
    assert best.track.name == "velvet silver 1221"


def test_name_index_is_saved_with_the_snapshot_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recsys.name_index import NameIndex

    config = NameIndexConfig(min_items=0, max_candidates=300)
    built = _snapshot(NO_ANN, planted_arrays(), name_index_config=config)
    built.save(tmp_path / "m")
    arrays, _ = read(tmp_path / "m")
    assert set(NameIndex.KEYS) <= set(arrays)

    def no_build(*args: object, **kwargs: object) -> NameIndex:
        raise AssertionError("the saved name index should be loaded, not rebuilt")

    monkeypatch.setattr(NameIndex, "build", no_build)
    loaded = _snapshot(NO_ANN, arrays, name_index_config=config)
    for query in ["velvet silver 1234", "midnite crimson 77", "artist 42"]:
        assert [(h.track.track_id, h.match) for h in loaded.search(query)] == [
            (h.track.track_id, h.match) for h in built.search(query)
        ], query
    # An index that does not fit the catalogue (here: saved for more names than there are) is rebuilt.
    monkeypatch.undo()
    arrays["name_index_rows"] = arrays["name_index_rows"] + len(arrays["track_ids"])
    assert NameIndex.from_arrays(arrays, len(arrays["track_ids"])) is None
    rebuilt = _snapshot(NO_ANN, arrays, name_index_config=config)
    ids = [[h.track.track_id for h in snap.search("artist 42")] for snap in (rebuilt, built)]
    assert ids[0] == ids[1]


def test_a_one_artist_deep_neighbourhood_widens_the_index_search_in_few_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("faiss")
    arrays = planted_arrays()
    # Every track of a cluster by one artist: with one song per artist, the nearest 100 tracks give one artist.
    cluster = np.random.default_rng(0).integers(0, 40, 4000)  # planted_arrays' first draw: the clusters
    arrays["track_artists"] = np.array([f"artist {c}" for c in cluster])
    deep = _snapshot(SMALL_ANN, arrays)
    plain = _snapshot(NO_ANN, arrays)
    assert deep.ann is not None
    calls = []
    search = deep.ann.search
    monkeypatch.setattr(
        deep.ann,
        "search",
        lambda q, n, breadth=1, skip=None, probe=None: calls.append(n) or search(q, n, breadth, skip, probe),
    )
    queries = arrays["track_ids"][::200].tolist()
    for tid in queries:
        got = deep.similar_tracks(tid, k=10)
        assert len({t.artist for t in got}) == len(got) == 10
        want = {t.track_id for t in plain.similar_tracks(tid, k=10)}
        assert len(want & {t.track_id for t in got}) >= 8
    # Widening by how far short the candidates fell: about two index searches a query, not one per fourfold step.
    assert len(calls) <= 2 * len(queries)


def _giant_arrays() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """planted_arrays where one artist holds every track of clusters 0-34 (~3500 of 4000): with one song per artist, a
    query there has thousands of that artist's tracks nearer than any other artist's. The other tracks each have
    their own artist. (arrays, each track's cluster)"""
    arrays = planted_arrays()
    cluster = np.random.default_rng(0).integers(0, 40, 4000)  # planted_arrays' first draw: the clusters
    arrays["track_artists"] = np.array([("giant" if c < 35 else f"solo {i}") for i, c in enumerate(cluster)])
    return arrays, cluster


def _searches(snap: Snapshot, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The snapshot's index searches from now on, as they happen: whether each left rows out."""
    assert snap.ann is not None
    searches: list[bool] = []
    search = snap.ann.search

    def counted(
        q: np.ndarray, n: int, breadth: float = 1, skip: ann.LeftOut | None = None, probe: ann.Probe | None = None
    ) -> np.ndarray:
        searches.append(skip is not None)
        return search(q, n, breadth, skip, probe)

    monkeypatch.setattr(snap.ann, "search", counted)
    return searches


def test_an_artist_holding_most_of_the_catalogue_is_left_out_of_the_index_search_not_scanned_past(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("faiss")
    arrays, cluster = _giant_arrays()
    giant = _snapshot(SMALL_ANN, arrays)
    plain = _snapshot(NO_ANN, arrays)
    assert giant.ann is not None
    searches = _searches(giant, monkeypatch)
    scans = []
    exact_pick = ranking.pick
    monkeypatch.setattr(ranking, "pick", lambda *a, **kw: scans.append(1) or exact_pick(*a, **kw))
    queries = [tid for tid, c in zip(arrays["track_ids"].tolist(), cluster, strict=True) if c < 35][::350]
    recalls = []
    for tid in queries:
        got = giant.similar_tracks(tid, k=10)
        assert len({t.artist for t in got}) == len(got) == 10
        monkeypatch.setattr(ranking, "pick", exact_pick)
        want = {t.track_id for t in plain.similar_tracks(tid, k=10)}
        monkeypatch.setattr(ranking, "pick", lambda *a, **kw: scans.append(1) or exact_pick(*a, **kw))
        recalls.append(len(want & {t.track_id for t in got}) / 10)
    assert not scans  # no query fell back to scoring the whole catalogue
    # The query's own artist is left out from the first index search (its best song scored exactly): one search each.
    assert searches == [True] * len(queries)
    assert np.mean(recalls) >= 0.95


@pytest.mark.parametrize("members", [50, 100])
def test_an_artist_filling_the_nearest_tracks_takes_one_index_search_without_leaving_it_out(
    monkeypatch: pytest.MonkeyPatch, members: int
) -> None:
    pytest.importorskip("faiss")
    # One artist's `members` tracks make up one cluster, the nearest tracks to a query of it; the other tracks each
    # have their own artist. With one song per artist, a first round of the usual ~50 proposals would be
    # mostly that artist's and take a second one: it asks for as many more as the artist holds there instead.
    arrays = planted_arrays()
    cluster = np.random.default_rng(0).integers(0, 40, 4000)  # planted_arrays' first draw: the clusters
    band, rest = np.flatnonzero(cluster == 0)[:members], np.flatnonzero(cluster == 0)[members:]
    assert len(band) == members and ranking.LEAD_PROBE_MIN < 100 <= ranking.LEAD_ASK  # both ways of asking
    arrays["track_z"][rest] = arrays["track_z"][np.flatnonzero(cluster == 1)[: len(rest)]]  # the cluster: the band
    arrays["track_artists"] = np.array([f"solo {i}" for i in range(4000)])
    arrays["track_artists"][band] = "band"
    snap, plain = _snapshot(SMALL_ANN, arrays), _snapshot(NO_ANN, arrays)
    assert snap.ann is not None
    searches = _searches(snap, monkeypatch)
    for row in band[::10].tolist():
        got = snap.similar_tracks(f"t{row}", k=10)
        assert [t.track_id for t in got] == [t.track_id for t in plain.similar_tracks(f"t{row}", k=10)]
        assert sum(t.artist == "band" for t in got) <= 1
    assert searches == [False] * len(band[::10])


def test_a_left_out_artists_best_songs_are_found_past_many_versions_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("faiss")
    # The giant artist's 40 tracks nearest the query are versions of one song: with two songs per artist, its second
    # song lies past them, beyond the few best rows the left-out artist's pick looks at first.
    arrays, cluster = _giant_arrays()
    query = int(np.flatnonzero(cluster < 35)[0])
    echoes = np.flatnonzero(cluster < 35)[1:41]
    noise = np.random.default_rng(1).standard_normal((40, DIM)).astype(np.float32) * 0.01
    near = arrays["track_z"][query] + noise
    arrays["track_z"][echoes] = near / np.linalg.norm(near, axis=1, keepdims=True)
    arrays["track_names"][echoes] = "echo"
    arrays["edges"] = np.zeros((2, 0), dtype=np.int64)  # empty playlists: no bonus, the cosine alone ranks
    giant = _snapshot(SMALL_ANN, arrays).with_lists(similar_max_per_artist=2)
    plain = _snapshot(NO_ANN, arrays).with_lists(similar_max_per_artist=2)
    searches = _searches(giant, monkeypatch)
    got = giant.similar_tracks(f"t{query}", k=10)
    assert searches == [True]  # the giant artist was left out from the first round
    mine = [t.name for t in got if t.artist == "giant"]
    assert len(mine) == 2 and mine[0] == "echo" and mine[1] != "echo"
    assert [t.track_id for t in got] == [t.track_id for t in plain.similar_tracks(f"t{query}", k=10)]


def test_a_large_artist_with_no_song_in_the_lists_scanned_leaves_the_list_to_other_artists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("faiss")
    # The query's artist (one of 35 clusters' 3,500 tracks) is left out from the first round; when none of its
    # other songs lies in the lists scanned, it has a song in the list only through the playlists' bonus.
    arrays, cluster = _giant_arrays()
    giant = _snapshot(SMALL_ANN, arrays)
    assert giant.ann is not None
    monkeypatch.setattr(ann, "rows_in", lambda rows, row_lists, lists, limit: rows[:0])
    query = next(f"t{i}" for i, c in enumerate(cluster) if c < 35)
    got = giant.similar_tracks(query, k=10)
    assert len({t.artist for t in got}) == len(got) == 10
    bonus_rows = set(ranking.playlist_bonus(giant, giant.track_z[giant._idx(query)])[0].tolist())
    assert all(giant._idx(t.track_id) in bonus_rows for t in got if t.artist == "giant")


def test_a_narrow_index_still_finds_the_nearest_playlists_and_tracks() -> None:
    pytest.importorskip("faiss")
    # One-artist-deep clusters and a narrow index (1 list a search; the 50 playlists' index has one per list): the
    # playlist search must widen until it has the nearest playlists the bonus needs (it found 2 of 20: recall
    # 0.86), and the members of those playlists, always candidates, must not end the track search while
    # better-scoring tracks may lie outside the lists scanned.
    arrays = planted_arrays()
    cluster = np.random.default_rng(0).integers(0, 40, 4000)  # planted_arrays' first draw: the clusters
    arrays["track_artists"] = np.array([f"artist {c}" for c in cluster])
    narrow = _snapshot(AnnConfig(min_items=0, nlist=64, nprobe=1), arrays)
    plain = _snapshot(NO_ANN, arrays)
    recalls = []
    for tid in arrays["track_ids"][::50].tolist():
        want = {t.track_id for t in plain.similar_tracks(tid, k=10)}
        recalls.append(len(want & {t.track_id for t in narrow.similar_tracks(tid, k=10)}) / 10)
    assert np.mean(recalls) >= 0.95 and min(recalls) >= 0.7
