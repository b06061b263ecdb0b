"""What the served lists are like beside their accuracy: distinct artists, catalogue coverage and popularity, on
planted lists, through the harness and into the report's "Lists people enjoy" table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import recsys
from recsys.baselines import CatalogScorer, RandomScorer
from recsys.demo import DEMO_PATH
from recsys.evaluation import ModelResult, SplitScores, evaluate_scorer, make_split
from recsys.evaluation.harness import list_values
from recsys.evaluation.metrics import coverage, distinct_per_list, mean_per_list
from recsys.evaluation.report import render_markdown
from tests.recsys.test_data import HEADER, row, write

LISTS = [np.array([0, 1, 2, 1]), np.array([3, 4]), np.array([], dtype=np.int64)]


def test_distinct_labels_in_the_top_k() -> None:
    labels = np.array([7, 7, 8, 9, 9, 5])
    # List 0: labels 7, 7, 8, 7 -> 2 distinct; within its top 2 only label 7. List 1: 9, 9 -> 1. Empty -> 0.
    np.testing.assert_array_equal(distinct_per_list(LISTS, labels, 10), [2, 1, 0])
    np.testing.assert_array_equal(distinct_per_list(LISTS, labels, 2), [1, 1, 0])


def test_coverage_counts_each_row_once_over_all_lists() -> None:
    assert coverage(LISTS, 10) == pytest.approx(5 / 10)  # rows 0-4, row 1 listed twice
    assert coverage(LISTS, 5) == 1.0
    assert coverage([], 4) == 0.0


def test_mean_per_list_skips_unknown_values() -> None:
    popularity = np.array([10.0, 20.0, 60.0, np.nan, 40.0])
    got = mean_per_list(LISTS, popularity)
    np.testing.assert_allclose(got, [(10 + 20 + 60 + 20) / 4, 40.0, np.nan])
    assert np.isnan(mean_per_list([np.array([3])], popularity)[0])  # nothing known


def test_list_values_use_the_catalogues_artist_rule_and_popularity(tmp_path: Path) -> None:
    # "Queen" and "QUEEN" are one artist (recsys.names.artist_keys lower-cases names); t4's popularity is unknown.
    artists = ["Queen", "QUEEN", "Abba", "Blur", "Cher", "Dido"]
    popularity = ["10", "20", "30", "40", "", "60"]
    rows = [
        [*row(f"t{i}", "p0" if i < 3 else "p1", artist=a), pop]
        for i, (a, pop) in enumerate(zip(artists, popularity, strict=True))
    ]
    catalog = recsys.load_catalog(write(tmp_path / "lists.csv", rows, [*HEADER, "track_popularity"]))
    lists = [np.array([0, 1, 2]), np.array([3, 4])]
    targets = [np.array([5]), np.array([0, 4])]
    got = list_values("similar", lists, targets, catalog, k=2)
    np.testing.assert_array_equal(got["similar/artists@10"], [1, 2])  # top 2: Queen, QUEEN | Blur, Cher
    np.testing.assert_allclose(got["similar/coverage@2"], [4 / 6])  # t0, t1, t3, t4; t2 is past k
    np.testing.assert_allclose(got["similar/popularity@2"], [15.0, 40.0])
    np.testing.assert_allclose(got["similar/target_popularity"], [60.0, 10.0])


def _result(name: str, coverages: list[float], popularity: float, words: bool = False) -> ModelResult:
    """A model's results on len(coverages) seeds; with words, it also ranked text (the words task)."""
    result = ModelResult(name)
    for cov in coverages:
        values = {
            "similar/precision@10": np.array([0.5, 0.5]),
            "similar/artists@10": np.array([6.0, 8.0]),
            "similar/coverage@10": np.array([cov]),
            "similar/popularity@10": np.array([popularity, popularity]),
            "similar/target_popularity": np.array([30.0, 50.0]),
        }
        for task, k in (("continuation", 20), ("new", 20), *((("text", 20),) if words else ())):
            values |= {
                f"{task}/artists@10": np.array([5.0]),
                f"{task}/coverage@{k}": np.array([0.5]),
                f"{task}/popularity@{k}": np.array([45.0]),
                f"{task}/target_popularity": np.array([44.0]),
            }
        result.per_seed.append(SplitScores(values, np.zeros(100), 0.0, 0.0))
    return result


def test_coverage_summarises_over_seeds_not_queries() -> None:
    summary = _result("m", [0.1, 0.3, 0.2], 70.0).summary()
    assert summary["similar/coverage@10"] == pytest.approx((0.2, 0.1, 0.3))
    mean, low, high = summary["similar/artists@10"]
    assert mean == pytest.approx(7.0) and low < mean < high  # per query: a bootstrap interval


def test_report_has_the_lists_table_with_the_targets_popularity() -> None:
    text = render_markdown([_result("hits", [0.1, 0.3, 0.2], 70.0), _result("tail", [0.5] * 3, 20.0)], "# r", None)
    section = text.split("## Lists people enjoy")[1].split("\n## ")[0]
    rows = {line.split(" | ")[0]: line.split(" | ")[1:] for line in section.splitlines() if line.startswith("| ")}
    assert rows["| model"][:3] == ["similar songs: artists", "similar songs: coverage", "similar songs: popularity"]
    hits = rows["| hits"]
    # Artists and popularity per query: a bootstrap interval; coverage per seed: the lowest and highest seed.
    assert hits[0].startswith("7.00 (") and hits[2] == "70.0 (70.0–70.0)"
    assert hits[1] == "0.2000 (0.1000–0.3000)"
    assert rows["| tail"][2] == "20.0 (20.0–20.0)"
    # The targets' row: popularity only, the same for every model (the mean over queries of 30 and 50).
    targets = rows["| *held-out targets*"]
    assert targets[:2] == ["–", "–"] and targets[2].startswith("40.0 (")
    assert targets[5] == "44.0 (44.0–44.0)"


def test_the_words_columns_show_for_the_models_that_rank_text() -> None:
    text = render_markdown([_result("ids", [0.2] * 3, 70.0), _result("gnn", [0.2] * 3, 60.0, words=True)], "# r", None)
    section = text.split("## Lists people enjoy")[1].split("\n## ")[0]
    lines = [line.removesuffix(" |") for line in section.splitlines() if line.startswith("| ")]
    rows = {line.split(" | ")[0]: line.split(" | ")[1:] for line in lines}
    assert rows["| model"][9:] == ["words: artists", "words: coverage", "words: popularity"]
    assert rows["| ids"][9:] == ["n/a"] * 3  # a model that ranks no text
    assert rows["| gnn"][9].startswith("5.00 (") and rows["| gnn"][11].startswith("45.0 (")
    # The targets' popularity comes from the model that has the task, whichever is listed first.
    assert rows["| *held-out targets*"][11] == "44.0 (44.0–44.0)"
    # Without any model ranking text, no words columns.
    alone = render_markdown([_result("ids", [0.2] * 3, 70.0)], "# r", None)
    assert "words: artists" not in alone and "similar songs: artists" in alone


class SpotifyPopular(CatalogScorer):
    """The same list for every query: the catalogue by Spotify popularity."""

    def score(self, tracks: np.ndarray) -> np.ndarray:
        return np.nan_to_num(self.catalog.popularity, nan=0.0)


@pytest.fixture(scope="module")
def demo_scores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SplitScores]:
    split = make_split(DEMO_PATH, seed=0, out_dir=tmp_path_factory.mktemp("split"))
    return {
        "popular": evaluate_scorer(SpotifyPopular(split.catalog), split),
        "random": evaluate_scorer(RandomScorer(split.catalog, 0), split),
    }


def test_a_popularity_ranking_shows_few_popular_songs_and_random_many_average_ones(
    demo_scores: dict[str, SplitScores],
) -> None:
    pop, rand = demo_scores["popular"].values, demo_scores["random"].values
    num_tracks = 2163  # the demo catalogue
    # The same top songs for every query, less the query's own: at most a few more than 10 distinct tracks.
    assert pop["similar/coverage@10"][0] * num_tracks <= 20
    assert rand["similar/coverage@10"][0] > 10 * pop["similar/coverage@10"][0]
    assert np.nanmean(pop["similar/popularity@10"]) > np.nanmean(rand["similar/popularity@10"]) + 30
    # Random lists are as popular as the catalogue is on average (44.6), whatever the targets.
    assert np.nanmean(rand["continuation/popularity@20"]) == pytest.approx(44.6, abs=3.0)
    for task in ("continuation", "similar", "new"):
        assert np.all((pop[f"{task}/artists@10"] >= 1) & (pop[f"{task}/artists@10"] <= 10))
        np.testing.assert_array_equal(pop[f"{task}/target_popularity"], rand[f"{task}/target_popularity"])


def _scored(name: str, values: dict[str, float]) -> ModelResult:
    result = ModelResult(name)
    per_query = {key: np.array([v - 0.01, v, v + 0.01]) for key, v in values.items()}
    result.per_seed.append(SplitScores(per_query, np.zeros(100), 0.0, 0.0))
    return result


def test_targets_compare_each_metric_with_its_own_rivals() -> None:
    results = [
        _scored("default", {"continuation/recall@20/warm": 0.145, "text/recall@20": 0.30, "new/recall@20": 0.10}),
        _scored("item_knn", {"continuation/recall@20/warm": 0.144, "new/recall@20": 0.02}),
        _scored("artist_album", {"continuation/recall@20/warm": 0.5, "new/recall@20": 0.104}),
        _scored("bm25_names", {"text/recall@20": 0.20}),
    ]
    text = render_markdown(results, "# r", None)
    block = text.split("<!-- begin targets -->\n")[1].split("<!-- end targets -->")[0]
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in block.splitlines()[2:]}
    # Warm targets: against the item-item models only (not the heuristic), and matching the best is enough.
    assert (
        rows["continuation/recall@20/warm"][2].startswith("item_knn")
        and rows["continuation/recall@20/warm"][-1] == "yes |"
    )
    assert rows["text/recall@20"][2] == "bm25_names 0.2000" and rows["text/recall@20"][-1] == "yes |"  # +50%
    assert rows["new/recall@20"][2] == "artist_album 0.1040" and rows["new/recall@20"][-1] == "no |"


def _per_query(name: str, key: str, seeds: list[np.ndarray]) -> ModelResult:
    result = ModelResult(name)
    result.per_seed = [SplitScores({key: v}, np.zeros(100), 0.0, 0.0) for v in seeds]
    return result


def _target_row(results: list[ModelResult], key: str) -> list[str]:
    block = render_markdown(results, "# r", None).split("<!-- begin targets -->\n")[1].split("<!-- end targets -->")[0]
    return next(line.split(" | ")[1:] for line in block.splitlines()[2:] if line.startswith(f"| {key} "))


def test_a_target_is_judged_on_the_paired_interval_of_the_lift() -> None:
    # Playlists differ a lot in how hard they are; the default finds 1.2x the heuristic's share on every one.
    rng = np.random.default_rng(0)
    key = "new/recall@20"
    heuristic = [rng.random(40) ** 3 for _ in range(3)]
    default = [v * 1.2 for v in heuristic]
    row = _target_row([_per_query("default", key, default), _per_query("artist_album", key, heuristic)], key)
    # Each model's own interval overlaps the other's, but the lift's own interval (queries resampled for both
    # together) lies above +15%: met.
    assert row[3].startswith("+20% (+20% to +20%)") and row[-1] == "yes |"
    # The same means with the default's values shuffled between playlists: the lift is chance, not met.
    shuffled = [rng.permutation(v) for v in default]
    row = _target_row([_per_query("default", key, shuffled), _per_query("artist_album", key, heuristic)], key)
    low = int(row[3].split("(")[1].split("%")[0])
    assert row[3].startswith("+20% (") and low < 15 and row[-1] == "no |"
