"""Graph building: node counts, offsets, undirected edges, scaler fitted on the given catalogue only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from recsys.data import Catalog
from recsys.graph import (
    FeatureScaler,
    GraphInputs,
    attribute_edge_index,
    bipartite_edge_index,
    build_inputs,
    normalised_csr,
    split_pairs,
)


def test_counts_and_offsets(demo_catalog: Catalog) -> None:
    inputs = build_inputs(demo_catalog)
    assert inputs.num_playlists == demo_catalog.num_playlists
    assert inputs.num_tracks == demo_catalog.num_tracks
    assert inputs.num_artists == len({a.lower() for a in demo_catalog.track_artists.tolist()})
    assert inputs.num_albums == len(set(demo_catalog.album_ids.tolist()) - {""})
    assert inputs.track_offset == inputs.num_playlists
    assert inputs.album_offset == inputs.num_playlists + inputs.num_tracks + inputs.num_artists
    assert inputs.track_x.shape[0] == demo_catalog.num_tracks


def test_bipartite_edges_are_undirected_and_typed(demo_catalog: Catalog) -> None:
    inputs = build_inputs(demo_catalog)
    pairs = torch.from_numpy(demo_catalog.edges.copy())
    ei = bipartite_edge_index(inputs, pairs)
    assert ei.shape == (2, 2 * demo_catalog.num_pairs)
    forward = set(map(tuple, ei.T.tolist()))
    assert all((b, a) in forward for a, b in forward)
    playlist_side = ei[0][: demo_catalog.num_pairs]
    track_side = ei[1][: demo_catalog.num_pairs]
    assert int(playlist_side.max()) < inputs.track_offset
    assert int(track_side.min()) >= inputs.track_offset and int(track_side.max()) < inputs.artist_offset


def test_attribute_edges_link_each_track_to_its_artist(demo_catalog: Catalog) -> None:
    inputs = build_inputs(demo_catalog)
    ei = attribute_edge_index(inputs)
    t0 = inputs.track_offset
    artist_of_t0 = [int(d) for s, d in ei.T.tolist() if s == t0 and inputs.artist_offset <= d < inputs.album_offset]
    assert artist_of_t0 == [int(inputs.track_artist[0]) + inputs.artist_offset]
    assert torch.equal(torch.sort(ei[0]).values, torch.sort(ei[1]).values)


def test_scaler_uses_only_the_catalogue_it_is_fitted_on() -> None:
    train = np.array([[0.0, 10.0], [2.0, 10.0]], dtype=np.float32)
    scaler = FeatureScaler.fit(train)
    assert np.allclose(scaler.transform(train)[:, 0], [-1.0, 1.0])
    # A constant column does not divide by zero; an unseen value is scaled with the training statistics.
    assert np.allclose(scaler.transform(np.array([[4.0, 10.0]], dtype=np.float32)), [[3.0, 0.0]])
    mm = FeatureScaler.fit(train, "minmax")
    assert np.allclose(mm.transform(np.array([[1.0, np.nan]], dtype=np.float32)), [[0.5, 0.5]])


def test_split_pairs_keeps_every_playlist_scored() -> None:
    pairs = torch.tensor([[0, 0, 0, 1, 2, 2], [0, 1, 2, 3, 4, 5]])
    kept, held = split_pairs(pairs, 0.9, torch.Generator().manual_seed(0))
    assert kept.shape[1] + held.shape[1] == 6
    assert set(kept[0].tolist()) == {0, 1, 2}
    assert not set(map(tuple, kept.T.tolist())) & set(map(tuple, held.T.tolist()))


def test_vocabulary_is_sorted_and_leaves_empty_values_out() -> None:
    from recsys.graph import _vocabulary

    vocab, idx = _vocabulary(np.array(["b", "", "a", "b", "c"], dtype=object))
    assert vocab.tolist() == ["a", "b", "c"]
    assert idx.tolist() == [1, -1, 0, 1, 2]
    assert _vocabulary(np.array(["", ""], dtype=object))[0].tolist() == []


def test_artists_that_differ_only_in_case_share_one_node(tmp_path: Path) -> None:
    from recsys.data import load_catalog
    from tests.recsys.test_data import row, write

    rows = [row("t1", "p1", artist="ABBA"), row("t2", "p1", artist="abba"), row("t3", "p1", artist="Queen")]
    catalog = load_catalog(write(tmp_path / "a.csv", rows))
    inputs = build_inputs(catalog)
    assert inputs.num_artists == 2
    assert int(inputs.track_artist[0]) == int(inputs.track_artist[1]) != int(inputs.track_artist[2])


def _coalesced_gcn_norm(inputs: GraphInputs, pairs: torch.Tensor) -> torch.Tensor:
    """The adjacency as it was built before normalised_csr: gcn_norm over the edge_index, then a COO coalesce."""
    from recsys.model import normalised_adjacency

    edge_index = torch.cat([bipartite_edge_index(inputs, pairs), attribute_edge_index(inputs)], dim=1)
    ei, ew = normalised_adjacency(edge_index, inputs.num_nodes, self_loops=False)
    n = inputs.num_nodes
    return torch.sparse_coo_tensor(ei.flip(0), ew, (n, n)).coalesce().to_sparse_csr()


def test_normalised_csr_is_gcn_norm_value_for_value(demo_catalog: Catalog) -> None:
    inputs = build_inputs(demo_catalog)
    pairs = torch.from_numpy(demo_catalog.edges.copy())
    # A repeated pair counts twice, as the coalesce sums it; a playlist with no pair is an empty row.
    for case in (pairs, torch.cat([pairs, pairs[:, :7]], dim=1), pairs[:, pairs[0] != 0]):
        want, got = _coalesced_gcn_norm(inputs, case), normalised_csr(case, inputs, attributes=True)
        assert torch.equal(got.crow_indices(), want.crow_indices())
        assert torch.equal(got.col_indices(), want.col_indices())
        assert torch.equal(got.values(), want.values())
    empty_row = normalised_csr(pairs[:, pairs[0] != 0], inputs, attributes=True).crow_indices()
    assert int(empty_row[1] - empty_row[0]) == 0


def test_normalised_csr_without_attributes_links_playlists_and_tracks_only(demo_catalog: Catalog) -> None:
    inputs = build_inputs(demo_catalog)
    adj = normalised_csr(torch.from_numpy(demo_catalog.edges.copy()), inputs, attributes=False).to_dense()
    assert adj.shape == (inputs.num_nodes, inputs.num_nodes)
    assert torch.equal(adj, adj.T)
    assert not adj[inputs.artist_offset :].any()
    assert adj[: inputs.num_playlists, inputs.track_offset : inputs.artist_offset].count_nonzero() == (
        demo_catalog.num_pairs
    )
