"""Names: folding, the one rule for "the same song", and the fuzzy name score."""

from __future__ import annotations

import numpy as np

import recsys
from recsys.names import artist_groups, artist_keys, fold, name_score, song_groups, song_key


def test_versions_of_a_song_share_a_key_and_other_songs_do_not() -> None:
    same = [
        ("Bohemian Rhapsody", "Queen"),
        ("Bohemian Rhapsody - 2011 Remaster", "Queen"),
        ("Bohemian Rhapsody (Live Aid)", "QUEEN"),
        ("bohemian  rhapsody [Radio Edit]", "Queen"),
    ]
    assert len({song_key(t, a) for t, a in same}) == 1
    assert song_key("Bohemian Rhapsody", "Panic! At The Disco") != song_key("Bohemian Rhapsody", "Queen")
    assert song_key("Bohemian Like You", "Queen") != song_key("Bohemian Rhapsody", "Queen")
    # Accents and punctuation fold away; a parenthesis that opens the title is part of it.
    assert song_key("Señorita", "Shawn Mendes") == song_key("senorita", "shawn mendes")
    assert song_key("(I Can't Get No) Satisfaction", "The Rolling Stones") != song_key("", "The Rolling Stones")
    groups = song_groups([t for t, _ in same] + ["Other"], [a for _, a in same] + ["Queen"])
    assert groups.tolist()[:4] == [groups[0]] * 4 and groups[4] != groups[0]


def test_the_snapshot_lists_one_version_of_a_remastered_song(demo_snapshot: recsys.Snapshot) -> None:
    names = demo_snapshot.track_names.tolist()
    artists = demo_snapshot.track_artists.tolist()
    groups = song_groups(names, artists)
    np.testing.assert_array_equal(demo_snapshot.songs, groups)
    for track in demo_snapshot.similar_tracks(str(demo_snapshot.track_ids[0]), k=30):
        assert song_key(track.name, track.artist) != song_key(names[0], artists[0])


def test_fold() -> None:
    assert fold("Señorita!") == "senorita"
    assert fold("AC/DC") == "ac dc"


def test_name_score_does_not_reward_a_title_made_of_query_words() -> None:
    # rapidfuzz's WRatio scores "bad bad bad" 95 against this query (token-set subset); the intended song wins.
    assert name_score("bad guy billie", "bad guy billie eilish") > name_score("bad guy billie", "bad bad bad") + 20
    assert name_score("dance monkey tones", "dance monkey tones and i") > name_score(
        "dance monkey tones", "dance monkey"
    )
    assert name_score("shape of you", "shape of you") == 100.0
    assert name_score("", "anything") == 0.0


def test_song_and_artist_groups_partition_tracks_exactly_as_their_keys_do() -> None:
    titles = ["Home", "home!", "Home - Live", "Señorita", "Senorita (Remix)", "Yellow", "Yellow", "Home"]
    artists = ["Ed", "ed", "Ed", "Shawn", "SHAWN", "Coldplay", "Other", "Other"]
    for groups, keys in (
        (song_groups(titles, artists), [song_key(t, a) for t, a in zip(titles, artists, strict=True)]),
        (artist_groups(artists), artist_keys(artists).tolist()),
    ):
        for i in range(len(titles)):
            for j in range(len(titles)):
                assert (groups[i] == groups[j]) == (keys[i] == keys[j]), (i, j)
    # Home (3 versions by Ed), Señorita (2 by Shawn), Yellow by Coldplay, Yellow by Other, Home by Other.
    assert len(set(song_groups(titles, artists).tolist())) == 5
