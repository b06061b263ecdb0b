"""Name resolution: what a person's text means, one clear song, a choice between a few, or nothing.

The one decision the bot's /recommend and the CLI's `musicrec recommend` both take.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from recsys.names import song_key, words
from recsys.results import SearchHit

if TYPE_CHECKING:
    from recsys.snapshot import Snapshot


@dataclass(frozen=True)
class MatchConfig:
    """When a fuzzy search counts as a clear match, a choice, or nothing."""

    # rapidfuzz scores 0..100; at 90 a title is the same modulo case, punctuation or a small typo.
    clear_score: float = 90.0
    # The runner-up must trail by this much, otherwise the same title by several artists would be guessed.
    clear_margin: float = 8.0
    # Below this the best hit is a different song; we say so and only offer the names as suggestions. WRatio gives
    # ~70-77 to keyboard mashing against short real names (e.g. artist "W&W"), so the floor sits above that.
    min_score: float = 80.0
    # Telegram shows about five buttons without scrolling on a phone.
    max_choices: int = 5
    # Candidates this far below the best one are other songs ("Adore You" for "Shape of You"), not choices.
    choice_window: float = 12.0
    # "Not found" lists at most this many closest names.
    max_suggestions: int = 3


@dataclass(frozen=True)
class Resolution:
    """What a text matched: one clear track, several candidates, or none (with the closest names)."""

    kind: Literal["match", "ambiguous", "none"]
    hits: tuple[SearchHit, ...]


def resolve(snapshot: Snapshot, text: str, config: MatchConfig | None = None) -> Resolution:
    """Search the snapshot for the text and decide what it means."""
    config = config or MatchConfig()
    return classify(text, snapshot.search(text, limit=config.max_choices + 1), config)


def classify(query: str, hits: list[SearchHit], config: MatchConfig | None = None) -> Resolution:
    """Decide between answering, asking which one, and "not found" for search hits of the query (pure)."""
    config = config or MatchConfig()
    # Versions of one song ("Bohemian Rhapsody - 2011 Remaster", "... - Live") are one choice, not several: the
    # best-matching (then most popular, as search ranks) version stands for them.
    unique: dict[str, SearchHit] = {}
    for hit in sorted(hits, key=lambda h: h.match, reverse=True):
        unique.setdefault(song_key(hit.track.name, hit.track.artist), hit)
    ranked = list(unique.values())
    if not ranked or ranked[0].match < config.min_score:
        return Resolution("none", tuple(ranked[: config.max_suggestions]))
    top = ranked[0]
    runner_up = ranked[1].match if len(ranked) > 1 else -math.inf
    # The same title by another artist makes it a question however the scores fall ("Yellow" vs
    # "Yellow - Remastered" differ by ~10 points only because of the suffix).
    title = _title_of(top)
    namesake = any(_title_of(h) == title for h in ranked[1:])
    if top.match >= config.clear_score and top.match - runner_up >= config.clear_margin and not namesake:
        return Resolution("match", (top,))
    # "Title - Artist" (or "title artistword"): fuzzy scores of namesakes stay close, but one hit has the title
    # and more of its artist's name in the query than any other.
    named = {h: artist_named(query, h) for h in ranked if h.match >= config.min_score}
    best_named = max(named.values(), default=0.0)
    leaders = [h for h, share in named.items() if share == best_named]
    if best_named > 0 and len(leaders) == 1:
        return Resolution("match", (leaders[0],))
    floor = max(config.min_score, top.match - config.choice_window)
    return Resolution("ambiguous", tuple(h for h in ranked if h.match >= floor)[: config.max_choices])


def _title_of(hit: SearchHit) -> str:
    return song_key(hit.track.name, hit.track.artist).partition("\x1f")[0]


def artist_named(query: str, hit: SearchHit) -> float:
    """0 unless the query contains the track's whole title; then the share of its artist's words (those not in
    the title) that the query contains: "bad guy billie" names Billie Eilish's "bad guy" (0.5), not Critic
    City's (0)."""
    query_words = words(query)
    title = words(hit.track.name)
    if title not in query_words:
        return 0.0
    title_words = set(title.split())
    artist_words = [w for w in words(hit.track.artist).split() if w not in title_words and len(w) > 1]
    if not artist_words:
        return 0.0
    return sum(f" {w} " in query_words for w in artist_words) / len(artist_words)
