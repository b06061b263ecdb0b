"""Text queries (recsys.text, Snapshot.recommend_for_text) on the demo catalogue, whose playlists are drawn from one
subgenre each and named after it: a subgenre's words must bring back that subgenre's tracks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import recsys
from recsys.baselines import NameBM25Scorer
from recsys.data import Catalog
from recsys.store import ModelDir
from recsys.text import TEXT_KEYS
from recsys.words import decade, tokens


def _subgenre_share(catalog: Catalog, tracks: list[recsys.Track], subgenre: str) -> float:
    label = dict(zip(catalog.track_ids.tolist(), catalog.subgenres.tolist(), strict=True))
    return sum(label[t.track_id] == subgenre for t in tracks) / len(tracks)


def test_tokens_fold_decades_and_rnb() -> None:
    assert tokens("90's R&B Hits - The Best Of") == ["90s", "rnb", "hits", "best"]
    assert tokens("R'n'B Vibes") == ["rnb", "vibes"] and tokens("Señorita ¡Fiesta!") == ["senorita", "fiesta"]
    assert decade("90s") == decade("1990s") == decade("nineties") == (1990, 1999)
    assert decade("10s") == (2010, 2019) and decade("00s") == (2000, 2009) and decade("60s") == (1960, 1969)
    assert decade("rock") is None and decade("2019") is None and decade("90") is None


@pytest.mark.parametrize(
    ("phrase", "subgenre"),
    [
        ("Neo Soul Vibes", "neo soul"),  # a planted playlist's name
        ("new jack swing", "new jack swing"),  # a subgenre label
        ("southern hip hop", "southern hip hop"),  # its words also name "hip hop" and "latin hip hop"
        ("progressive electro house", "progressive electro house"),
    ],
)
def test_a_subgenre_phrase_returns_that_subgenre(
    phrase: str, subgenre: str, demo_catalog: Catalog, demo_snapshot: recsys.Snapshot
) -> None:
    recs = demo_snapshot.recommend_for_text(phrase, k=10)
    assert len(recs) == 10 and len({(r.name, r.artist) for r in recs}) == 10  # one version per song
    # 1 in 24 tracks at random; the planted playlists hold ~90% of their subgenre.
    assert _subgenre_share(demo_catalog, recs, subgenre) >= 0.8
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
    assert all(r.reason and r.reason.startswith("because you asked for ") for r in recs)


def test_reasons_name_the_words_that_led_there(demo_snapshot: recsys.Snapshot) -> None:
    recs = demo_snapshot.recommend_for_text("trap 80s", k=10)
    for r in recs:
        assert r.reason is not None
        assert ("80s" in r.reason) == (r.year is not None and 1980 <= r.year <= 1989)
    assert any("trap" in (r.reason or "") for r in recs)


@pytest.mark.parametrize("phrase", ["trap 80s", "hard rock 90s", "rock"])
def test_a_phrase_list_has_one_song_per_artist_and_the_knob_lifts_it(
    phrase: str, demo_snapshot: recsys.Snapshot
) -> None:
    """/mood answers with many artists, not one artist's catalogue (ListConfig.text_max_per_artist); uncapped, the
    same phrase repeats artists on the demo catalogue, so the cap is what spreads them."""
    assert demo_snapshot.lists.text_max_per_artist == 1
    capped = demo_snapshot.recommend_for_text(phrase, k=10)
    uncapped = demo_snapshot.with_lists(text_max_per_artist=0).recommend_for_text(phrase, k=10)
    assert len(capped) == len(uncapped) == 10
    assert len({r.artist for r in capped}) == 10
    assert len({r.artist for r in uncapped}) < 10
    assert capped[0].track_id == uncapped[0].track_id  # the best fit leads either way
    # Other lists keep their own caps: the phrase's knob changes nothing else.
    assert demo_snapshot.with_lists(text_max_per_artist=0).lists.max_per_artist == demo_snapshot.lists.max_per_artist


def test_an_era_word_prefers_its_decade(demo_snapshot: recsys.Snapshot) -> None:
    # The scores' era preference, so no artist cap: the demo's subgenres hold too few artists for 20 of them
    # each to have an 80s song.
    uncapped = demo_snapshot.with_lists(text_max_per_artist=0)

    def eighties(text: str) -> float:
        return float(
            np.mean([r.year is not None and 1980 <= r.year <= 1989 for r in uncapped.recommend_for_text(text, k=20)])
        )

    # Demo years are uniform over 1975-2019: about 2 in 9 tracks are from the 1980s.
    assert eighties("classic rock") < 0.5
    for phrase in ("classic rock 80s", "classic rock 1980s", "80's classic rock", "eighties classic rock"):
        assert eighties(phrase) >= 0.8, phrase
    # A decade alone (the demo's names hold none) still answers, from that decade.
    assert eighties("80s") == 1.0


def test_a_mood_word_prefers_that_sound(demo_snapshot: recsys.Snapshot) -> None:
    energy = list(recsys.snapshot.REASON_FEATURES).index("energy")
    column = demo_snapshot.audio[:, energy]
    z = (column - column.mean()) / column.std()
    row = {str(t): i for i, t in enumerate(demo_snapshot.track_ids.tolist())}
    calm = [row[r.track_id] for r in demo_snapshot.recommend_for_text("chill", k=20)]
    lively = [row[r.track_id] for r in demo_snapshot.recommend_for_text("workout", k=20)]
    assert z[calm].mean() < -1.0 < 1.0 < z[lively].mean()


def test_typos_are_forgiven_and_unknown_words_ignored(demo_catalog: Catalog, demo_snapshot: recsys.Snapshot) -> None:
    recs = demo_snapshot.recommend_for_text("reggaetn blorptastic", k=10)
    assert _subgenre_share(demo_catalog, recs, "reggaeton") >= 0.8
    assert any('reggaeton ("reggaetn")' in (r.reason or "") for r in recs)
    query = demo_snapshot.text_index.read("reggaetn blorptastic")  # type: ignore[union-attr]
    assert [t.word for t in query.terms] == ["reggaeton"] and query.unknown == ("blorptastic",)
    assert demo_snapshot.text_index.read("rap").terms[0].word == "rap"  # type: ignore[union-attr]  # not "trap"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("xyzzy blorp", 'I know none of these words: "xyzzy", "blorp"; try a mood, activity, genre or decade like '),
        ("the of and", 'I know none of these words: "the of and"; try a mood, activity, genre or decade like '),
        ("  ", "a text query needs a few words: a mood, activity, genre or decade like "),
    ],
)
def test_no_known_word_is_a_clear_error_never_random_songs(
    text: str, expected: str, demo_snapshot: recsys.Snapshot
) -> None:
    with pytest.raises(recsys.InvalidQueryError) as err:
        demo_snapshot.recommend_for_text(text)
    assert str(err.value).startswith(expected)
    # The examples are words this snapshot knows (or moods and decades, which every snapshot knows).
    examples = str(err.value).split(" like ")[1].split(", ")
    assert len(examples) == 5 and examples[-1] == "90s"
    for example in examples:
        assert len(demo_snapshot.recommend_for_text(example, k=3)) == 3
    with pytest.raises(recsys.InvalidQueryError):
        demo_snapshot.text_scores(text)


def test_save_and_load_keep_the_text_index(tmp_path: Path, demo_snapshot: recsys.Snapshot) -> None:
    demo_snapshot.save(tmp_path / "model")
    loaded = recsys.load(tmp_path / "model")
    assert loaded.text_index is not None and demo_snapshot.text_index is not None
    assert loaded.text_index.words == demo_snapshot.text_index.words
    np.testing.assert_array_equal(loaded.text_index.vectors, demo_snapshot.text_index.vectors)
    before = demo_snapshot.recommend_for_text("hard rock 90s", k=10)
    assert [r.track_id for r in loaded.recommend_for_text("hard rock 90s", k=10)] == [r.track_id for r in before]


def test_a_snapshot_saved_before_text_queries_loads_and_says_so(tmp_path: Path, demo_snapshot: recsys.Snapshot) -> None:
    arrays = {k: v for k, v in demo_snapshot._saved_arrays().items() if k not in TEXT_KEYS}
    ModelDir(tmp_path / "old").save(arrays, dataclasses.asdict(demo_snapshot.info))
    old = recsys.load(tmp_path / "old")
    assert old.text_index is None
    assert len(old.similar_tracks(str(old.track_ids[0]), k=5)) == 5
    with pytest.raises(recsys.InvalidQueryError, match=r"predates text queries.*retrain"):
        old.recommend_for_text("rock")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("text_idf"), "not all of"),
        (lambda a: a.__setitem__("text_vectors", a["text_vectors"][:, :3]), "expected float"),
        (lambda a: a.__setitem__("text_idf", np.full_like(a["text_idf"], np.nan)), "NaN"),
    ],
)
def test_broken_text_arrays_are_refused(change: object, message: str, demo_snapshot: recsys.Snapshot) -> None:
    arrays = dict(demo_snapshot._saved_arrays())
    change(arrays)  # type: ignore[operator]
    with pytest.raises(recsys.SnapshotError, match=message):
        recsys.Snapshot(arrays, demo_snapshot.info)


def test_bm25_baseline_ranks_the_playlist_named_exactly_first(demo_catalog: Catalog) -> None:
    scorer = NameBM25Scorer(demo_catalog)
    p = int(np.flatnonzero(demo_catalog.playlist_names == "[demo] Neo Soul Vibes")[0])
    members = set(demo_catalog.edges[1][demo_catalog.edges[0] == p].tolist())
    scores = scorer.text_scores("neo soul vibes")
    top = np.argsort(-scores, kind="stable")[: len(members)]
    # Other "Neo Soul" and "Vibes" playlists match two words or one; only this one matches all three.
    assert set(top.tolist()) == members
    popularity = np.nan_to_num(demo_catalog.popularity[top], nan=0.0)
    assert (np.diff(popularity) <= 0).all()  # within one playlist: by popularity
    nothing = scorer.text_scores("xyzzy")  # no name matches: popularity alone
    assert np.isfinite(nothing).all() and np.argmax(nothing) == np.nanargmax(demo_catalog.popularity)
