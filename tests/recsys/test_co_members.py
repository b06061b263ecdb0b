"""The co-member term: another song of the same playlist as the query, against the playlist term's negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recsys.co_members import co_member_loss, partners
from recsys.config import LossConfig

# Playlist 0 holds tracks 10 and 11, playlist 1 only track 12, playlist 3 tracks 13, 14 and 15 (playlist 2 has no
# target pair); the pairs are not sorted by playlist.
PAIRS = torch.tensor([[3, 0, 1, 3, 0, 3], [13, 10, 12, 14, 11, 15]])


def test_a_partner_is_another_track_of_the_same_playlist_and_a_lone_track_has_none() -> None:
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        got = partners(PAIRS, gen).tolist()
        assert got[1] == 11 and got[4] == 10  # playlist 0 has one other track each
        assert got[2] == -1  # playlist 1 has nothing else
        for i in (0, 3, 5):
            assert got[i] in {13, 14, 15} - {int(PAIRS[1, i])}


def test_partners_are_drawn_uniformly_among_the_other_tracks() -> None:
    gen = torch.Generator().manual_seed(1)
    drawn = torch.stack([partners(PAIRS, gen) for _ in range(4000)])
    share_of_15 = (drawn[:, 0] == 15).float().mean().item()  # track 13's partner: 14 or 15, half each
    assert 0.45 < share_of_15 < 0.55


def test_the_term_pulls_a_song_towards_its_partner_and_skips_rows_without_one() -> None:
    gen = torch.Generator().manual_seed(2)
    tracks = F.normalize(torch.randn(20, 8, generator=gen), dim=-1)
    tables = [torch.zeros(4, 8), tracks]
    grads = [torch.zeros(4, 8), torch.zeros(20, 8)]
    pos = torch.tensor([[0, 1], [10, 12]])
    partner = torch.tensor([11, -1])  # the second pair has no partner: no gradient may reach track 12
    neg = torch.tensor([[2, 3, 4], [5, 6, 7]])
    shared = torch.tensor([8, 9])
    config = LossConfig(bf16_shared_products=False)
    value = co_member_loss(tables, grads, pos, partner, neg, shared, config, 1.0, None)
    assert value > 0
    assert grads[0].abs().sum() == 0  # playlists take no part
    assert grads[1][12].abs().sum() == 0 and grads[1][5:8].abs().sum() == 0
    step = tracks - 0.5 * grads[1]  # one descent step on the track table brings 10 and 11 closer
    before = F.cosine_similarity(tracks[10], tracks[11], dim=0)
    after = F.cosine_similarity(step[10], step[11], dim=0)
    assert after > before
    lone = co_member_loss(
        tables, [torch.zeros(4, 8), torch.zeros(20, 8)], pos, torch.tensor([-1, -1]), neg, shared, config, 1.0, None
    )
    assert lone == 0.0
