"""The held-out splits never leak: no held-out pair in training, held-out tracks kept as catalogue-only tracks
without their playlist's genre, the scaler fitted on the training catalogue, and an inner split for tuning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import recsys
from recsys.demo import DEMO_PATH
from recsys.evaluation import Split, make_split, quick_validation, validation_split
from recsys.graph import FeatureScaler, numeric_inputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def full() -> recsys.Catalog:
    return recsys.load_catalog(DEMO_PATH)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    return make_split(DEMO_PATH, seed=0, out_dir=tmp_path_factory.mktemp("split"))


def _pairs(catalog: recsys.Catalog) -> set[tuple[str, str]]:
    return {
        (str(catalog.playlist_ids[p]), str(catalog.track_ids[t]))
        for p, t in zip(catalog.edges[0].tolist(), catalog.edges[1].tolist(), strict=True)
    }


def test_no_heldout_pair_is_in_the_training_graph(split: Split, full: recsys.Catalog) -> None:
    train, held = _pairs(split.catalog), split.heldout_pairs()
    assert held, "the split held nothing out"
    assert not train & held
    # Training plus held-out is exactly the full data: nothing lost, nothing invented.
    assert train | held == _pairs(full)


def test_every_track_stays_in_the_catalogue(split: Split, full: recsys.Catalog) -> None:
    assert set(split.catalog.track_ids.tolist()) == set(full.track_ids.tolist())
    np.testing.assert_array_equal(split.catalog.track_ids, full.track_ids)  # same order, so same indices


def test_heldout_tracks_without_other_edges_are_catalogue_only_and_genre_blind(split: Split) -> None:
    catalog = split.catalog
    degree = catalog.track_degrees()
    pos = catalog.track_index()
    held_tracks = {t for _, t in split.heldout_pairs()}
    cold = [pos[t] for t in held_tracks if degree[pos[t]] == 0]
    assert len(cold) > 50, "most held-out tracks of the demo should be cold"
    # The held-out playlist's genre and subgenre must not reach the track's inputs.
    assert (catalog.genres[cold] == "").all()
    assert (catalog.subgenres[cold] == "").all()
    # The training CSV keeps them as rows without any playlist field.
    rows = Path(split.train_csv).read_text(encoding="utf-8").splitlines()
    assert sum(1 for r in rows if ",,,," in r) >= len(cold)


def test_continuation_holds_out_a_fifth_of_each_long_playlist(split: Split, full: recsys.Catalog) -> None:
    sizes = np.bincount(full.edges[0], minlength=full.num_playlists)
    size_of = dict(zip(full.playlist_ids.tolist(), sizes.tolist(), strict=True))
    assert split.continuation
    for playlist_id, targets in split.continuation.items():
        assert size_of[playlist_id] >= 10
        assert len(targets) == round(0.2 * size_of[playlist_id])
    # Every held-out playlist still has its other 80% in training.
    train_pl = set(split.catalog.playlist_ids.tolist())
    assert set(split.continuation) <= train_pl


def test_new_playlists_are_held_out_whole_and_seeded_by_their_first_tracks(split: Split) -> None:
    assert split.new_playlists
    train_pl = set(split.catalog.playlist_ids.tolist())
    rows = Path(DEMO_PATH).read_text(encoding="utf-8").splitlines()[1:]
    for playlist_id, (seeds, targets) in split.new_playlists.items():
        assert playlist_id not in train_pl
        assert len(seeds) == 5 and len(targets) >= 5
        in_order = [r.split(",")[0] for r in rows if f",{playlist_id}," in r]
        assert seeds == in_order[:5]


def test_similar_relevant_sets_are_full_data_playlist_neighbours(split: Split, full: recsys.Catalog) -> None:
    members: dict[str, set[str]] = {}
    for p, t in _pairs(full):
        members.setdefault(p, set()).add(t)
    held_tracks = {t for p, ts in split.continuation.items() for t in ts}
    for query, relevant in list(split.similar.items())[:50]:
        assert query in held_tracks
        neighbours = set().union(*(ts for ts in members.values() if query in ts)) - {query}
        assert set(relevant) <= neighbours
        assert query not in relevant


def test_split_is_seeded(split: Split, tmp_path: Path) -> None:
    again = make_split(DEMO_PATH, seed=0, out_dir=tmp_path / "again")
    other = make_split(DEMO_PATH, seed=1, out_dir=tmp_path / "other")
    assert again.continuation == split.continuation and again.new_playlists == split.new_playlists
    assert other.continuation != split.continuation


def test_scaler_is_fitted_on_the_training_catalogue_only(split: Split) -> None:
    """The trained model's scaler is the one of the training catalogue: held-out edges cannot shift it."""
    from recsys.train import fit

    config = recsys.TrainConfig(epochs=1, progress=False)
    result = fit(split.catalog, config)
    expected = FeatureScaler.fit(numeric_inputs(split.catalog), config.model.feature_scaling)
    np.testing.assert_allclose(result.inputs.scaler.shift, expected.shift)
    np.testing.assert_allclose(result.inputs.scaler.scale, expected.scale)


def test_inner_validation_split_never_sees_the_test_part(tmp_path: Path, split: Split) -> None:
    inner = validation_split(DEMO_PATH, seed=0, out_dir=tmp_path)
    assert not _pairs(inner.catalog) & split.heldout_pairs()
    assert not inner.heldout_pairs() & split.heldout_pairs()
    # Its own held-out pairs are training pairs of the test split.
    assert inner.heldout_pairs() <= _pairs(split.catalog)


def test_quick_validation_measures_a_model_that_learned_the_planted_structure(full: recsys.Catalog) -> None:
    config = recsys.TrainConfig(epochs=6, eval_every=2, progress=False)
    metrics = quick_validation(DEMO_PATH, config, seed=0)
    chance = 20 / full.num_tracks  # Recall@20 of a random ranking, about 0.01 here
    # Playlists and artists are drawn from subgenres in the demo: a trained model ranks far above chance on every
    # task, and an evaluation that scored the wrong rows (or the test split) would not show it.
    assert metrics["continuation/recall@20"] > 10 * chance
    assert metrics["new/recall@20"] > 10 * chance
    assert metrics["similar/precision@10"] > 0.2
    assert metrics["train_seconds"] > 0
