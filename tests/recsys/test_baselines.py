"""Every baseline honours the Scorer protocol, finds the demo catalogue's planted answer, and beats random."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import recsys
from recsys.baselines import (
    MODELS,
    ArtistAlbumScorer,
    AudioCosineScorer,
    ItemKNNScorer,
    Scorer,
    design_config,
)
from recsys.data import AUDIO_FEATURES
from recsys.demo import DEMO_PATH
from recsys.evaluation import SplitScores, evaluate_scorer, make_split
from recsys.evaluation.splits import Split

BASELINES = [name for name in MODELS if name != "default"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    return make_split(DEMO_PATH, seed=0, out_dir=tmp_path_factory.mktemp("split"))


@pytest.fixture(scope="module")
def scorers(split: Split) -> dict[str, Scorer]:
    return {name: MODELS[name](split.catalog, 0) for name in BASELINES}


@pytest.fixture(scope="module")
def scores(split: Split, scorers: dict[str, Scorer]) -> dict[str, SplitScores]:
    return {name: evaluate_scorer(scorer, split) for name, scorer in scorers.items()}


def _mean(result: SplitScores, metric: str) -> float:
    return float(np.nanmean(result.values[metric]))


@pytest.mark.parametrize("name", BASELINES)
def test_scorer_protocol(name: str, scorers: dict[str, Scorer], split: Split) -> None:
    scorer = scorers[name]
    catalog = split.catalog
    some_track, some_playlist = str(catalog.track_ids[0]), str(catalog.playlist_ids[0])
    for vector in (
        scorer.track_scores(some_track),
        scorer.playlist_scores(some_playlist),
        scorer.seed_scores([some_track, str(catalog.track_ids[1])]),
    ):
        assert vector.shape == (catalog.num_tracks,)
        assert np.isfinite(vector).all()
    with pytest.raises(recsys.UnknownTrackError):
        scorer.track_scores("no-such-track")
    with pytest.raises(recsys.UnknownPlaylistError):
        scorer.playlist_scores("no-such-playlist")
    with pytest.raises(recsys.RecsysError):
        scorer.seed_scores([])


@pytest.mark.parametrize("name", [n for n in BASELINES if n != "random"])
def test_every_baseline_beats_random(name: str, scores: dict[str, SplitScores]) -> None:
    for metric in ("continuation/recall@20", "similar/precision@10"):
        assert _mean(scores[name], metric) > _mean(scores["random"], metric), metric


def test_artist_album_finds_the_planted_artist(split: Split) -> None:
    catalog = split.catalog
    scorer = ArtistAlbumScorer(catalog)
    for q in range(0, catalog.num_tracks, 97):
        s = scorer.track_scores(str(catalog.track_ids[q]))
        s[q] = -np.inf
        assert catalog.track_artists[int(np.argmax(s))] == catalog.track_artists[q]


def test_audio_cosine_ranks_the_query_itself_first(split: Split) -> None:
    scorer = AudioCosineScorer(split.catalog)
    assert int(np.argmax(scorer.track_scores(str(split.catalog.track_ids[5])))) == 5
    np.testing.assert_allclose(np.linalg.norm(scorer.audio, axis=1), 1.0, rtol=1e-5)


def test_item_knn_scores_only_co_occurring_tracks(split: Split) -> None:
    catalog = split.catalog
    scorer = ItemKNNScorer(catalog)
    warm = int(catalog.edges[1][0])
    s = scorer.track_scores(str(catalog.track_ids[warm]))
    playlists = catalog.edges[0][catalog.edges[1] == warm]
    co_members = set(catalog.edges[1][np.isin(catalog.edges[0], playlists)].tolist())
    strong = set(np.flatnonzero(s > 1e-3).tolist())  # above the popularity tie-break
    assert strong == co_members


def test_design_config_builds_two_gcn_layers_over_fixed_playlist_features(demo_catalog: recsys.Catalog) -> None:
    import torch
    from torch_geometric.nn import GCNConv

    from recsys.graph import bipartite_edge_index, build_inputs
    from recsys.model import build_model, normalised_adjacency

    config = design_config()
    inputs = build_inputs(demo_catalog, scaling=config.model.feature_scaling)
    # Min-max scaling puts every audio feature of the fitted catalogue in [0, 1], spanning it.
    assert float(inputs.audio_x.min()) == 0.0 and float(inputs.audio_x.max()) == 1.0
    model = build_model(inputs, config.model, seed=0)
    convs = [m for m in model.modules() if isinstance(m, GCNConv)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(len(AUDIO_FEATURES), 128), (128, 64)]
    # One optimisation step moves the GCN weights but not the random playlist features.
    pairs = torch.from_numpy(demo_catalog.edges.copy())
    num_nodes = inputs.num_playlists + inputs.num_tracks
    edge_index, edge_weight = normalised_adjacency(bipartite_edge_index(inputs, pairs), num_nodes, True)
    before = {name: t.detach().clone() for name, t in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    playlist_z, track_z = model(edge_index, edge_weight)
    assert playlist_z.shape == (demo_catalog.num_playlists, 64) and track_z.shape == (demo_catalog.num_tracks, 64)
    (playlist_z[pairs[0]] * track_z[pairs[1]]).sum(-1).sigmoid().log().neg().mean().backward()
    opt.step()
    after = model.state_dict()
    assert torch.equal(after["playlist_x"], before["playlist_x"])
    assert not torch.equal(after["conv1.lin.weight"], before["conv1.lin.weight"])
    assert not torch.equal(after["conv2.lin.weight"], before["conv2.lin.weight"])


def test_default_model_beats_audio_cosine_on_demo(split: Split, scores: dict[str, SplitScores]) -> None:
    default = evaluate_scorer(MODELS["default"](split.catalog, 0), split)
    metric = "continuation/recall@20"
    assert _mean(default, metric) > _mean(scores["audio_cosine"], metric)


@pytest.mark.slow
def test_default_model_beats_artist_album_on_real_data(tmp_path: Path) -> None:
    data = os.environ.get("MUSICREC_REAL_DATA")
    if not data:
        pytest.skip("set MUSICREC_REAL_DATA to the spotify_songs.csv path to run the real-data check")
    split = make_split(data, seed=0, out_dir=tmp_path)
    metric = "continuation/recall@20"
    default = _mean(evaluate_scorer(MODELS["default"](split.catalog, 0), split), metric)
    heuristic = _mean(evaluate_scorer(ArtistAlbumScorer(split.catalog), split), metric)
    assert default > heuristic, f"default {default:.4f} <= artist_album {heuristic:.4f}"
