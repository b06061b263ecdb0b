"""Name resolution: what a person's text means, one clear song, a choice between a few, or nothing.

The one decision the bot's /recommend and the CLI's `musicrec recommend` both take. Like a streaming app's search
it answers with the song the text almost certainly names, and asks "which one?" only when several are comparably
likely: how likely is how well the text names the song, how popular the song is, how many playlists hold it, and
whether the text names its artist (likelihood below). The thresholds were chosen by `bench/bench_resolve.py --tune`
on the tune half of tests/fixtures/queries.csv and are reported on the other half in docs/resolve.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from recsys.names import base_title, song_key, words
from recsys.results import SearchHit

if TYPE_CHECKING:
    from recsys.snapshot import Snapshot


@dataclass(frozen=True)
class MatchConfig:
    """When a fuzzy search counts as a clear answer, a question, or nothing; the numbers were measured on the tune
    half of the query set (bench/bench_resolve.py --tune; the report half is in docs/resolve.md)."""

    # Songs the search hands to the rule: more than fit on the screen, so that every namesake of a title is weighed.
    search_limit: int = 10
    # Below this the best hit is a different song: "not found" (a title with one typo scores 80-97).
    min_score: float = 80.0
    # "Not found" lists names only for a query of at least this many letters or digits: 4-letter gibberish lies
    # within an edit of some short name ("mlap" ~ "The Map" 77, "xcxz" ~ "Charli XCX" 77), longer gibberish rarely.
    suggest_min_letters: int = 5
    # ... and only names matching at least this: the lowest whole score above every tune-half gibberish query of
    # suggest_min_letters or more letters (73.3, "mnd lzgvzypyz" ~ "Mind"); 94% of two-typo titles (near misses)
    # match at least this well.
    suggest_score: float = 74.0
    # Songs this far below the best match are other songs ("Bad" for "bad guy" trails by 14.5), not contenders,
    # however popular: a likelier song never displaces the title that was typed. Tune: 8, 12 and 16 equal; 12 keeps
    # a namesake that one typo costs ~8 points a contender.
    choice_window: float = 12.0
    # An answer at once needs at least this match. Tune: a floor above min_score turns typo answers into questions
    # (right at once 91% at 80, 88% at 84, 79% at 88); only 88 lowers wrong answers at once (0.5% to 0%).
    clear_score: float = 80.0
    # The likelihood's weights, in nats (see likelihood()). Match points per nat. Tune: 3 best (one typo: 91% right
    # at once, 89.5% at 2 and at 4, 81% at 6).
    match_scale: float = 3.0
    # Popularity points per nat: Spotify's popularity grows with the log of recent plays; 10 is the unit the other
    # weights and the margin were tuned in (only their ratios to it matter).
    popularity_scale: float = 10.0
    # Nats per natural log of the number of playlists holding the song (1-10 here), a second sign of how much it is
    # played. Tune: 0.25 best (famous titles 91.5% right at once, 89.8% at 0); from 0.5 on, the demo catalogue's
    # planted "Home" (popularity 88 in 8 playlists vs 81 in 1) would be answered instead of asked.
    playlist_weight: float = 0.25
    # Nats per word of the artist's name in a text holding the whole title ("bad guy billie"). Tune: title + one
    # artist word right at once 68% at 2, 86% at 4, 100% from 8 on; 12 makes one named word outweigh the widest
    # popularity gap (0 to 100: 10 nats) plus the margin, so "bad guy critic" names Critic City's song (popularity
    # 25), not Billie Eilish's (95).
    artist_weight: float = 12.0
    # Answer at once when the likeliest contender leads the next by this many nats, else ask. Tune: 1.25 and 1.5
    # best (<= 1% wrong at once, every comparably popular namesake asked), the larger kept; 1.0 answers 6% of those
    # namesakes and the demo "Home", 1.75 answers 88% of famous titles at once. It answers "shape of you"
    # (popularity 86 vs 2), "bad guy" (95 vs 25) and "blinding lights" (98 vs 65), and asks for "home" (57, 52, ...).
    margin: float = 1.5
    # Telegram shows about five buttons without scrolling on a phone.
    max_choices: int = 5
    # "Not found" lists at most this many closest names.
    max_suggestions: int = 3
    # A clear answer carries at most this many other versions and namesakes, one tap away ("Other versions: ...");
    # four fit one row of buttons on a phone, and the CLI's --pick 2..5 reaches each.
    max_others: int = 4


@dataclass(frozen=True)
class Resolution:
    """What a text matched: one clear track, several candidates, or none (with the closest plausible names)."""

    kind: Literal["match", "ambiguous", "none"]
    hits: tuple[SearchHit, ...]
    # For a match: the answer's other versions and the far less likely namesakes (the other contenders), most
    # popular first, for buttons one tap away. Empty for a question or "not found".
    others: tuple[SearchHit, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """One song the text may name, with what makes it likely."""

    hit: SearchHit  # the version search picked (best-matching, then most popular)
    match: float  # how well the text names the song, its version suffix aside (recsys.names.NameSearch, 0..100)
    named: float  # artist_named: how many of the artist's words a text holding the whole title names
    popularity: float  # the song's most popular version (0..100; 0 when unknown)
    playlists: int  # playlists holding any version of the song (at least 1)
    versions: tuple[SearchHit, ...] = ()  # the song's other versions, most popular first


def likelihood(candidate: Candidate, config: MatchConfig) -> float:
    """Log-likelihood, up to a constant, that the text means this song: the one rule that ranks contenders."""
    return (
        (candidate.match - 100.0) / config.match_scale
        + candidate.popularity / config.popularity_scale
        + config.playlist_weight * math.log(max(candidate.playlists, 1))
        + config.artist_weight * candidate.named
    )


def resolve(snapshot: Snapshot, text: str, config: MatchConfig | None = None) -> Resolution:
    """Search the snapshot for the text and decide what it means."""
    config = config or MatchConfig()
    return decide(text, candidates(snapshot, text, config), config)


def candidates(snapshot: Snapshot, text: str, config: MatchConfig | None = None) -> list[Candidate]:
    """The songs search finds for the text, with their popularity, playlists and other versions from the snapshot."""
    config = config or MatchConfig()
    out = []
    for hit in snapshot.search(text, limit=config.search_limit):
        row = snapshot._track_pos[hit.track.track_id]  # the snapshot's id -> row map (SearchHit carries no row)
        rows = [int(v) for v in snapshot.versions_of(row)]
        playlists = {int(p) for v in rows for p in snapshot.playlists_of(v)}
        others = [snapshot.result(v, hit.match) for v in rows if v != row]
        others.sort(key=lambda t: -(t.popularity or 0.0))
        popularity = max([hit.track.popularity or 0.0, *(t.popularity or 0.0 for t in others)])
        out.append(
            Candidate(
                hit,
                hit.match,
                artist_named(text, hit),
                popularity,
                max(len(playlists), 1),
                tuple(SearchHit(t, hit.match) for t in others),
            )
        )
    return out


def classify(
    query: str,
    hits: Sequence[SearchHit],
    config: MatchConfig | None = None,
    playlists: Mapping[str, int] | None = None,
) -> Resolution:
    """decide() for bare search hits (pure): popularity from the tracks, playlists per track_id when given (else 1),
    and no other versions known."""
    config = config or MatchConfig()
    unique: dict[str, SearchHit] = {}  # versions of one song are one candidate: the best-matching stands for them
    for hit in sorted(hits, key=lambda h: h.match, reverse=True):
        unique.setdefault(song_key(hit.track.name, hit.track.artist), hit)
    found = [
        Candidate(
            h,
            h.match,
            artist_named(query, h),
            h.track.popularity or 0.0,
            (playlists or {}).get(h.track.track_id, 1),
        )
        for h in unique.values()
    ]
    return decide(query, found, config)


def decide(query: str, found: Sequence[Candidate], config: MatchConfig | None = None) -> Resolution:
    """Answer, ask which one, or say "not found", for the candidate songs of the query (pure)."""
    config = config or MatchConfig()
    ranked = sorted(found, key=lambda c: (likelihood(c, config), c.hit.match), reverse=True)
    best_match = max((c.match for c in ranked), default=-math.inf)
    if best_match < config.min_score:
        plausible = sum(ch.isalnum() for ch in query) >= config.suggest_min_letters
        suggestions = [c.hit for c in ranked if c.match >= config.suggest_score] if plausible else []
        return Resolution("none", tuple(suggestions[: config.max_suggestions]))
    floor = max(config.min_score, best_match - config.choice_window)
    contenders = [c for c in ranked if c.match >= floor]
    top = contenders[0]
    lead = likelihood(top, config) - likelihood(contenders[1], config) if len(contenders) > 1 else math.inf
    if top.match >= config.clear_score and lead >= config.margin:
        others = sorted([c.hit for c in contenders[1:]] + list(top.versions), key=lambda h: -(h.track.popularity or 0))
        return Resolution("match", (top.hit,), tuple(others[: config.max_others]))
    return Resolution("ambiguous", tuple(c.hit for c in contenders[: config.max_choices]))


def artist_named(query: str, hit: SearchHit) -> float:
    """0 unless the query contains the track's whole (base) title; then how many of its artist's words (those not
    in the title, of two letters or more) the query contains as whole words: "bad guy billie" names one word of
    Billie Eilish and none of Critic City, "bad guy critic" the other way round."""
    query_words = words(query)
    title = words(base_title(hit.track.name))
    if title not in query_words:
        return 0.0
    title_words = set(title.split())
    artist_words = {w for w in words(hit.track.artist).split() if w not in title_words and len(w) > 1}
    return float(sum(f" {w} " in query_words for w in artist_words))
