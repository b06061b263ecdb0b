"""Name resolution: one clear song, a choice between a few, or nothing; the rule the bot and the CLI share."""

from __future__ import annotations

import recsys
from recsys.resolve import MatchConfig, classify, resolve


def _hit(track_id: str, name: str, artist: str, match: float) -> recsys.SearchHit:
    return recsys.SearchHit(recsys.Track(track_id, name, artist, "", None, None, 0.0), match)


def test_clear_match() -> None:
    hits = [_hit("a", "Yellow", "Coldplay", 100), _hit("b", "Yellow Flicker", "X", 86)]
    assert classify("yellow", hits).kind == "match"


def test_same_title_by_several_artists_is_ambiguous() -> None:
    hits = [_hit(str(i), "Hello", f"Artist {i}", 100) for i in range(7)]
    resolution = classify("hello", hits)
    assert resolution.kind == "ambiguous" and len(resolution.hits) == 5


def test_title_and_artist_in_the_query_pick_one_namesake() -> None:
    hits = [_hit("a", "Hello", "Adele", 97), _hit("b", "Hello", "Lionel Richie", 90), _hit("c", "Hell", "Adelaide", 88)]
    resolution = classify("Hello - Adele", hits)
    assert resolution.kind == "match" and resolution.hits[0].track.track_id == "a"
    # A partial artist word is not the artist.
    assert classify("Hello - Ade", hits).kind == "ambiguous"


def test_title_and_one_artist_word_pick_one_namesake() -> None:
    hits = [_hit("a", "bad guy", "Billie Eilish", 90.0), _hit("b", "Bad Guy", "Critic City", 87.0)]
    resolution = classify("bad guy billie", hits)
    assert resolution.kind == "match" and resolution.hits[0].track.track_id == "a"
    accented = [_hit("s", "Señorita", "Shawn Mendes", 90.0), _hit("z", "Senorita", "Zita", 86.0)]
    assert classify("senorita shawn", accented).hits[0].track.track_id == "s"
    assert classify("senorita shawn", accented).kind == "match"
    # A word of the artist that is also in the title does not single a namesake out.
    same = [_hit("x", "Love Song", "Love Band", 95.0), _hit("y", "Love Song", "Other", 95.0)]
    assert classify("love song", same).kind == "ambiguous"


def test_weak_hits_are_no_match_with_suggestions() -> None:
    hits = [_hit(str(i), f"Song {i}", "A", 40 - i) for i in range(5)]
    resolution = classify("zzz", hits)
    assert resolution.kind == "none" and len(resolution.hits) == 3
    assert classify("zzz", []).kind == "none"


def test_duplicate_hits_count_once() -> None:
    hits = [_hit("a", "Yellow", "Coldplay", 100), _hit("a", "Yellow", "Coldplay", 100)]
    assert classify("yellow", hits).kind == "match"


def test_versions_of_one_song_are_one_choice() -> None:
    hits = [
        _hit("a", "Bohemian Rhapsody - 2011 Remaster", "Queen", 90),
        _hit("b", "Bohemian Rhapsody - Live Aid", "Queen", 90),
        _hit("c", "Bohemian Rhapsody (Remastered)", "Queen", 90),
        _hit("d", "Bohemian Like You", "The Dandy Warhols", 81),
    ]
    resolution = classify("Bohemian Rhapsody", hits)
    assert resolution.kind == "match" and resolution.hits[0].track.track_id == "a"
    # The same title by two artists is still a question.
    hits.append(_hit("e", "Bohemian Rhapsody", "Panic! At The Disco", 100))
    resolution = classify("Bohemian Rhapsody", hits)
    assert resolution.kind == "ambiguous"
    assert [h.track.track_id for h in resolution.hits][:2] == ["e", "a"]


def test_resolve_searches_the_snapshot_and_classifies(demo_snapshot: recsys.Snapshot) -> None:
    home = resolve(demo_snapshot, "home")
    assert home.kind == "ambiguous" and {h.track.name for h in home.hits} == {"Home"}
    track = demo_snapshot.track(str(demo_snapshot.track_ids[0]))
    clear = resolve(demo_snapshot, f"{track.name} {track.artist}")
    assert clear.kind == "match" and clear.hits[0].track.track_id == track.track_id
    assert resolve(demo_snapshot, "qwxzv vbnm", MatchConfig(min_score=99)).kind == "none"
