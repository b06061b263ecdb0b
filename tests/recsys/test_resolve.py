"""Name resolution: one clear song, a choice between a few, or nothing; the rule the bot and the CLI share."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import recsys
from recsys.names import NameSearch
from recsys.resolve import MatchConfig, classify, resolve

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_resolve


def _hit(track_id: str, name: str, artist: str, match: float, popularity: float | None = None) -> recsys.SearchHit:
    return recsys.SearchHit(recsys.Track(track_id, name, artist, "", None, popularity, 0.0), match)


def _ids(hits: tuple[recsys.SearchHit, ...]) -> list[str]:
    return [h.track.track_id for h in hits]


def test_clear_match() -> None:
    hits = [_hit("a", "Yellow", "Coldplay", 100), _hit("b", "Yellow Flicker", "X", 86)]
    assert classify("yellow", hits).kind == "match"


def test_same_title_by_several_artists_is_ambiguous() -> None:
    hits = [_hit(str(i), "Hello", f"Artist {i}", 100) for i in range(7)]
    resolution = classify("hello", hits)
    assert resolution.kind == "ambiguous" and len(resolution.hits) == 5


def test_a_popular_version_is_answered_at_once_and_the_obscure_ones_are_one_tap_away() -> None:
    # The issue's "shape of you": 86 against 2 (and "blinding lights": 98 against 65).
    hits = [_hit("eza", "Shape of You", "EZA", 100, 2), _hit("ed", "Shape of You", "Ed Sheeran", 100, 86)]
    resolution = classify("shape of you", hits)
    assert resolution.kind == "match" and _ids(resolution.hits) == ["ed"]
    assert _ids(resolution.others) == ["eza"]
    lights = [
        _hit("w", "Blinding Lights", "The Weeknd", 100, 98),
        _hit("l", "Blinding Lights", "Lucas Estrada", 100, 65),
    ]
    assert _ids(classify("blinding lights", lights).hits) == ["w"]
    # Without popularity the same two are a question: the popularity is what answered.
    assert classify(
        "shape of you", [_hit("eza", "Shape of You", "EZA", 100), _hit("ed", "Shape of You", "Ed", 100)]
    ).kind == ("ambiguous")


def test_comparably_likely_namesakes_still_ask() -> None:
    # "home" by several artists, none far ahead (the real catalogue: 57, 52, 47, ...).
    hits = [_hit(a, "Home", a, 100, p) for a, p in (("caribou", 57), ("marshmello", 52), ("misch", 47))]
    resolution = classify("home", hits)
    assert resolution.kind == "ambiguous" and _ids(resolution.hits) == ["caribou", "marshmello", "misch"]
    assert resolution.others == ()
    # Playlists count as well, but less: 8 playlists against 1 does not make 88 vs 81 a clear answer (the demo's
    # planted "Home"), while it does turn 81 vs 65 into one.
    close = [_hit("a", "Home", "A", 100, 88), _hit("b", "Home", "B", 100, 81)]
    assert classify("home", close, playlists={"a": 8, "b": 1}).kind == "ambiguous"
    apart = [_hit("a", "Home", "A", 100, 76), _hit("b", "Home", "B", 100, 65)]
    assert classify("home", apart).kind == "ambiguous"
    assert classify("home", apart, playlists={"a": 8, "b": 1}).kind == "match"


def test_a_likelier_song_never_displaces_the_title_that_was_typed() -> None:
    # "Bad" by a famous artist trails "bad guy" by 14.5 points: another song, however popular.
    hits = [_hit("g", "Bad Guy", "Critic City", 100, 5), _hit("b", "Bad", "Michael Jackson", 85.5, 95)]
    resolution = classify("bad guy", hits)
    assert resolution.kind == "match" and _ids(resolution.hits) == ["g"] and resolution.others == ()


def test_title_and_artist_in_the_query_pick_one_namesake() -> None:
    hits = [_hit("a", "Hello", "Adele", 95), _hit("b", "Hello", "Lionel Richie", 95), _hit("c", "Hell", "Adelaide", 88)]
    resolution = classify("Hello - Adele", hits)
    assert resolution.kind == "match" and _ids(resolution.hits) == ["a"]
    # A partial artist word is not the artist.
    assert classify("Hello - Ade", hits).kind == "ambiguous"


def test_artist_words_pick_the_artist_even_against_popularity() -> None:
    billie, critic = _hit("b", "bad guy", "Billie Eilish", 90.0, 95), _hit("c", "Bad Guy", "Critic City", 87.0, 25)
    resolution = classify("bad guy billie", [billie, critic])
    assert resolution.kind == "match" and _ids(resolution.hits) == ["b"]
    # The issue's other reading: a word of the obscure artist names the obscure song.
    billie, critic = _hit("b", "bad guy", "Billie Eilish", 87.0, 95), _hit("c", "Bad Guy", "Critic City", 90.0, 25)
    resolution = classify("bad guy critic", [billie, critic])
    assert resolution.kind == "match" and _ids(resolution.hits) == ["c"] and _ids(resolution.others) == ["b"]
    accented = [_hit("s", "Señorita", "Shawn Mendes", 90.0), _hit("z", "Senorita", "Zita", 86.0)]
    assert classify("senorita shawn", accented).kind == "match"
    assert _ids(classify("senorita shawn", accented).hits) == ["s"]
    # A word of the artist that is also in the title does not single a namesake out.
    same = [_hit("x", "Love Song", "Love Band", 95.0), _hit("y", "Love Song", "Other", 95.0)]
    assert classify("love song", same).kind == "ambiguous"


def test_gibberish_is_not_found_with_no_suggestions() -> None:
    weak = [_hit(str(i), f"Song {i}", "A", 70 - i) for i in range(5)]
    for text in ("qwxzv", "asdfgh", "zzzzzzzzz"):
        assert classify(text, weak) == recsys.Resolution("none", ())
    assert classify("zzz", []) == recsys.Resolution("none", ())
    # A 4-letter text within an edit of a short name ("mlap" ~ "The Map" 77) gets no list either.
    assert classify("mlap", [_hit("m", "The Map", "Seyon", 77.1)]) == recsys.Resolution("none", ())


def test_a_near_miss_keeps_its_suggestions() -> None:
    # Two typos in "The Middle": below the answer floor, above anything keyboard mashing reaches.
    hits = [
        _hit("m", "The Middle", "Zedd", 76.0, 84),
        _hit("r", "The Riddle", "Gigi", 75.0, 48),
        _hit("x", "Z", "Y", 50),
    ]
    resolution = classify("the niddke", hits)
    assert resolution.kind == "none" and _ids(resolution.hits) == ["m", "r"]
    config = MatchConfig()
    many = [_hit(str(i), f"The Middle {i}", "A", 79.0 - i) for i in range(6)]
    assert len(classify("the niddke", many).hits) == config.max_suggestions


def test_duplicate_hits_count_once() -> None:
    hits = [_hit("a", "Yellow", "Coldplay", 100), _hit("a", "Yellow", "Coldplay", 100)]
    assert classify("yellow", hits).kind == "match"


def test_versions_of_one_song_are_one_choice() -> None:
    # Search scores a title without its version suffix, so every version of "Bohemian Rhapsody" matches fully.
    hits = [
        _hit("a", "Bohemian Rhapsody - 2011 Remaster", "Queen", 100),
        _hit("b", "Bohemian Rhapsody - Live Aid", "Queen", 100),
        _hit("c", "Bohemian Rhapsody (Remastered)", "Queen", 100),
        _hit("d", "Bohemian Like You", "The Dandy Warhols", 81),
    ]
    resolution = classify("Bohemian Rhapsody", hits)
    assert resolution.kind == "match" and _ids(resolution.hits) == ["a"]
    # The same title by two artists is still a question.
    hits.append(_hit("e", "Bohemian Rhapsody", "Panic! At The Disco", 100))
    resolution = classify("Bohemian Rhapsody", hits)
    assert resolution.kind == "ambiguous" and set(_ids(resolution.hits)) == {"a", "e"}


def test_search_scores_a_title_without_its_version_suffix_and_no_short_name_inside_gibberish() -> None:
    titles = ["Ironic - 2015 Remaster", "Iron Man", "X", "Roni", "Bad Guy", "Bad"]
    artists = ["Alanis Morissette", "Black Sabbath", "Xzibit", "FG", "Billie Eilish", "Michael Jackson"]
    popularity = np.array([70, 66, 61, 53, 95, 90], dtype=np.float32)
    search = NameSearch(titles, artists, popularity, np.arange(len(titles)))
    # The suffixed name scored 90, tied with "Roni" (in the real catalogue it fell out of the candidates).
    assert search.search("ironic", 3)[0] == (0, 100.0)
    assert search.search("Ironic — Alanis Morissette", 1)[0] == (0, 100.0)  # the bot's own "Title — Artist" label
    # "x" lies inside "qwxzv" and "fg" inside "asdfgh" (81 and 73 before): a short name aligns inside a longer query
    # only when it holds one of the query's words.
    assert all(match < 50 for _, match in search.search("qwxzv", 5) + search.search("asdfgh", 5))
    assert search.search("bad guy billie", 1)[0][0] == 4


def test_resolve_searches_the_snapshot_and_classifies(demo_snapshot: recsys.Snapshot) -> None:
    home = resolve(demo_snapshot, "home")
    assert home.kind == "ambiguous" and {h.track.name for h in home.hits} == {"Home"} and len(home.hits) == 3
    track = demo_snapshot.track(str(demo_snapshot.track_ids[0]))
    clear = resolve(demo_snapshot, f"{track.name} {track.artist}")
    assert clear.kind == "match" and clear.hits[0].track.track_id == track.track_id
    assert resolve(demo_snapshot, "qwxzv vbnm", MatchConfig(min_score=99)).kind == "none"
    assert resolve(demo_snapshot, "qwxzv") == recsys.Resolution("none", ())


def test_a_reissued_song_is_answered_with_its_other_version_one_tap_away(
    demo_snapshot: recsys.Snapshot, demo_catalog: recsys.Catalog
) -> None:
    # The demo catalogue releases one song twice (single and album): one answer, the other version in `others`.
    rows_of: dict[tuple[str, str], list[str]] = {}
    for tid, name, artist in zip(
        demo_catalog.track_ids.tolist(),
        demo_catalog.track_names.tolist(),
        demo_catalog.track_artists.tolist(),
        strict=True,
    ):
        rows_of.setdefault((name, artist), []).append(tid)
    (name, artist), ids = next((key, ids) for key, ids in rows_of.items() if len(ids) == 2)
    resolution = resolve(demo_snapshot, f"{name} {artist}")
    assert resolution.kind == "match"
    assert {resolution.hits[0].track.track_id, *_ids(resolution.others)} >= set(ids)
    assert _ids(resolution.others).count(next(i for i in ids if i != resolution.hits[0].track.track_id)) == 1


# ----- the query set on the real catalogue (MUSICREC_REAL_DATA) -----


def test_the_query_set_fixture_is_derived_data_of_every_kind() -> None:
    queries = bench_resolve.load_queries()
    assert len(queries) >= 300
    assert {q.kind for q in queries} >= {"famous", "typo", "title_artist", "artist_title", "partial", "gibberish"}
    assert {q.split for q in queries} == {"tune", "report"}
    assert all(bool(q.track_id) == (q.kind not in bench_resolve.NO_SONG) for q in queries)
    assert all(q.query == q.query.lower() for q in queries)
    assert {"qwxzv", "asdfgh"} <= {q.query for q in queries if q.kind == "gibberish"}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_query_set_meets_the_issues_goals_on_the_real_catalogue(real_csv: Path) -> None:
    """Every goal docs/resolve.md reports as met, on the same (report) half of tests/fixtures/queries.csv."""
    snap = recsys.train(real_csv, bench_resolve.SNAPSHOT_CONFIG)  # one epoch: resolution reads names, not embeddings
    judged, _ = bench_resolve.run(snap, bench_resolve.load_queries(split="report"))
    met = bench_resolve.goals_met(bench_resolve.rows(judged))
    assert all(ok for _, _, ok in met.values()), met
    # The issue's examples.
    for text, artist in (
        ("shape of you", "Ed Sheeran"),
        ("bad guy", "Billie Eilish"),
        ("blinding lights", "The Weeknd"),
    ):
        resolution = resolve(snap, text)
        assert resolution.kind == "match" and resolution.hits[0].track.artist == artist, (text, resolution)
        assert resolution.others, text
    billie = resolve(snap, "bad guy billie")
    assert billie.kind == "match" and billie.hits[0].track.artist == "Billie Eilish"
    assert resolve(snap, "qwxzv") == recsys.Resolution("none", ())
    assert resolve(snap, "home").kind == "ambiguous"
