"""Every baseline honours the Scorer protocol, finds the demo catalogue's planted answer, and beats random."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
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
from recsys.baselines_cf import EASEConfig, EASEScorer, RP3betaConfig, RP3betaScorer
from recsys.data import AUDIO_FEATURES
from recsys.demo import DEMO_PATH
from recsys.evaluation import SplitScores, evaluate_scorer, make_split
from recsys.evaluation.splits import Split
from tests.recsys.test_data import row, write

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


def _tiny(tmp_path: Path, playlists: dict[str, list[str]], cold: tuple[str, ...] = ()) -> recsys.Catalog:
    """A catalogue of the given playlists (name -> track ids) and catalogue-only (cold) tracks."""
    rows = [row(t, p) for p, tracks in playlists.items() for t in tracks] + [row(t, "") for t in cold]
    return recsys.load_catalog(write(tmp_path / "tiny.csv", rows))


# a and b share every playlist of a; c, d, e meet a once; z is in no playlist (cold).
CO_OCCUR = {
    "p0": ["a", "b", "c"],
    "p1": ["a", "b", "d"],
    "p2": ["a", "b", "e"],
    "p3": ["c", "d", "f"],
    "p4": ["e", "f"],
}


ItemItem = Callable[[recsys.Catalog], Scorer]


def _best_other(scores: np.ndarray, catalog: recsys.Catalog, track_id: str) -> str:
    s = scores.copy()
    s[catalog.track_index()[track_id]] = -np.inf
    return str(catalog.track_ids[int(np.argmax(s))])


@pytest.mark.parametrize("make", [RP3betaScorer, EASEScorer])
def test_item_item_models_rank_the_always_co_occurring_track_first(make: ItemItem, tmp_path: Path) -> None:
    catalog = _tiny(tmp_path, CO_OCCUR, cold=("z",))
    scorer = make(catalog)
    assert _best_other(scorer.track_scores("a"), catalog, "a") == "b"
    assert _best_other(scorer.track_scores("b"), catalog, "b") == "a"
    # A new playlist seeded with a asks for b first, too.
    assert _best_other(scorer.seed_scores(["a"]), catalog, "a") == "b"


@pytest.mark.parametrize("make", [RP3betaScorer, EASEScorer])
def test_item_item_models_give_cold_tracks_no_score(make: ItemItem, tmp_path: Path) -> None:
    catalog = _tiny(tmp_path, CO_OCCUR, cold=("z",))
    scorer = make(catalog)
    z = catalog.track_index()["z"]
    for scores in (scorer.track_scores("a"), scorer.playlist_scores("p3"), scorer.seed_scores(["a", "z"])):
        assert scores[z] == 0.0
    # A cold query has no item-item row: nothing scores, and a cold seed adds nothing to a warm one.
    assert not scorer.track_scores("z").any()
    np.testing.assert_array_equal(scorer.seed_scores(["a", "z"]), scorer.seed_scores(["a"]))


def test_ease_equals_the_closed_form_on_the_warm_tracks(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    playlists = {f"p{p}": [f"t{t}" for t in range(14) if rng.random() < 0.4] for p in range(6)}
    catalog = _tiny(tmp_path, playlists, cold=("z1", "z2"))
    l2 = 2.0
    scorer = EASEScorer(catalog, EASEConfig(l2=l2))
    warm = np.flatnonzero(catalog.track_degrees() > 0)
    x = np.zeros((catalog.num_playlists, catalog.num_tracks))
    x[catalog.edges[0], catalog.edges[1]] = 1.0
    x = x[:, warm]  # [P, W]
    # Steck (2019), eq. 8: B = I - P diag(1 / diag(P)), P = (X^T X + lambda I)^-1; a zero diagonal.
    p = np.linalg.inv(x.T @ x + l2 * np.eye(len(warm)))
    b = np.eye(len(warm)) - p / np.diag(p)[None, :]
    assert np.allclose(np.diag(b), 0.0)
    for seeds in (["t1"], ["t0", "t5", "t9", "z1"], list(playlists["p2"])):
        known = [t for t in seeds if t not in {"z1", "z2"}]
        query = np.isin(catalog.track_ids[warm], known).astype(np.float64)
        got = scorer.seed_scores(seeds)
        np.testing.assert_allclose(got[warm], query @ b, rtol=1e-4, atol=1e-6)


def test_rp3beta_penalises_the_popular_track_by_beta(tmp_path: Path) -> None:
    # q meets "pop" in two playlists and "niche" in one; pop is in eight playlists, niche only in that one.
    playlists = {"a": ["q", "pop"], "b": ["q", "pop"], "c": ["q", "niche"]}
    playlists |= {f"other{i}": ["pop", f"g{i}"] for i in range(6)}
    catalog = _tiny(tmp_path, playlists)
    pos = catalog.track_index()
    plain = RP3betaScorer(catalog, RP3betaConfig(alpha=1.0, beta=0.0, neighbours=10)).track_scores("q")
    assert _best_other(plain, catalog, "q") == "pop"  # two walks reach pop, one reaches niche
    penalised = RP3betaScorer(catalog, RP3betaConfig(alpha=1.0, beta=0.5, neighbours=10)).track_scores("q")
    assert _best_other(penalised, catalog, "q") == "niche"
    # W[q, j] = sum_u P(q -> u) P(u -> j) / degree(j)^beta: q has 3 playlists, each of 2 tracks.
    assert penalised[pos["pop"]] == pytest.approx((2 * (1 / 3) * (1 / 2)) / 8**0.5, rel=1e-5)
    assert penalised[pos["niche"]] == pytest.approx((1 / 3) * (1 / 2), rel=1e-5)


def test_rp3beta_keeps_only_the_top_neighbours(tmp_path: Path) -> None:
    catalog = _tiny(tmp_path, CO_OCCUR)
    scores = RP3betaScorer(catalog, RP3betaConfig(neighbours=1)).track_scores("a")
    assert np.flatnonzero(scores).tolist() == [catalog.track_index()["b"]]


def test_rp3beta_with_every_neighbour_is_the_unpruned_walk(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    playlists = {f"p{p}": [f"t{t}" for t in range(16) if rng.random() < 0.35] for p in range(7)}
    catalog = _tiny(tmp_path, playlists, cold=("z1",))
    config = RP3betaConfig(alpha=0.75, beta=0.5)
    every = RP3betaScorer(catalog, dataclasses.replace(config, neighbours=0))
    stored = RP3betaScorer(catalog, dataclasses.replace(config, neighbours=catalog.num_tracks))  # all kept
    for seeds in (["t3"], ["t0", "t7", "z1"], list(playlists["p1"])):
        np.testing.assert_allclose(every.seed_scores(seeds), stored.seed_scores(seeds), rtol=1e-5, atol=1e-7)


def test_the_uncapped_default_reranks_the_same_embeddings_without_the_list_knobs(demo_catalog: recsys.Catalog) -> None:
    from recsys.baselines import MODELS
    from recsys.ranking import UNCAPPED, ListConfig

    served = MODELS["default"](demo_catalog, 0)
    uncapped = MODELS["default_uncapped"](demo_catalog, 0)
    assert isinstance(served, recsys.Snapshot) and isinstance(uncapped, recsys.Snapshot)
    assert uncapped.track_z is served.track_z  # one training, two ways of listing
    assert served.lists == ListConfig() and uncapped.lists == UNCAPPED
