"""Text queries: a mood, activity, genre or era phrase ("workout", "90s rock", "chill") ranks the catalogue.

Learned from the training catalogue, no language model: each word of its playlist names and genre labels gets a
vector in the model's embedding space (the playlists named with it, the tracks labelled with it), decades become a
soft preference for release years, and a few mood words a soft preference in sound. Built with the snapshot
(recsys.api.build_snapshot) and saved with it; Snapshot.recommend_for_text serves it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from recsys.errors import InvalidQueryError, SnapshotError
from recsys.ranking import Picks, pick
from recsys.words import MOODS, SUGGESTIONS, decade, tokens

if TYPE_CHECKING:
    from recsys.snapshot import Snapshot

TEXT_KEYS = ("text_words", "text_vectors", "text_idf")


@dataclass(frozen=True)
class TextConfig:
    """How the word index is built and a phrase is scored. Weights chosen on the inner validation split of the real
    data (`python bench/bench_text.py --data ...`: playlists held out whole, queried by their name); figures below."""

    # Validation figures below: Recall@20 of 41 held-out playlists x 3 seeds queried by name, one change from these
    # defaults at a time (all intervals overlap: the task has a low ceiling, a name like "rock" fits thousands of
    # songs). The defaults score 0.0041 (0.0016-0.0075), the BM25 baseline 0.0025 (0.0005-0.0051).
    # A playlist-name word needs at least this many training playlists to get a vector (genre labels always do):
    # a word of one playlist's name is that playlist, not a mood. 1 -> 0.0037, 3 -> 0.0040, 5 -> 0.0035.
    min_playlists: int = 2
    # Weight of a word's genre-label vector beside its playlist-name vector (both unit length). 0 -> 0.0045,
    # 0.5 -> 0.0041, 2 -> 0.0045: a tie; above 0, so a word only the labels hold ("new jack swing") has a vector.
    label_weight: float = 1.0
    # At most this many words, the most common first: a vocabulary of 100k words is ~25 MB at 64 dimensions.
    max_words: int = 100_000
    # A typed word with no exact match takes the closest known word at fuzz.ratio >= this: one typo in a
    # 5-letter word scores 80; shorter words must match exactly ("rap" is not "trap").
    typo_cutoff: float = 80.0
    min_typo_chars: int = 4
    # Only the first this many words count: more is a paste, not a mood.
    max_query_words: int = 16
    # A decade adds up to this to the score (cosines lie in [-1, 1]); a track this many years outside it gets e^-1.
    # 0 -> 0.0040, 0.1 -> 0.0041, 0.8 -> 0.0041 (few names hold a decade); 0.4 makes "80s" bring the 1980s.
    era_weight: float = 0.4
    era_fade_years: float = 5.0
    # A mood word adds up to this times a sigmoid of the track's sound along the word's direction. 0 -> 0.0040,
    # 1 -> 0.0040 (names rarely hold these words); 0.5 outweighs popularity_weight for a phrase no name holds.
    mood_weight: float = 0.5
    # Popularity (0..100) / 100 times this is added: among equally fitting tracks the better-known first.
    # 0 -> 0.0032, 0.1 -> 0.0041, 0.4 -> 0.0054: higher scores more, but at 0.4 popularity outweighs a mood word's
    # sound where no playlist name holds the word (tests/recsys/test_text.py::test_a_mood_word_prefers_that_sound).
    popularity_weight: float = 0.2
    # A word is named in a track's reason when its part of the score is at least this share of the largest part.
    reason_share: float = 0.5


@dataclass(frozen=True)
class Term:
    """One understood word of a query."""

    word: str  # as the index knows it
    typed: str  # as the query wrote it (differs when a typo was corrected)
    row: int  # its row in the index's vocabulary; -1 when it has no vector (a decade or mood word only)
    era: tuple[int, int] | None = None
    mood: tuple[float, ...] | None = None


@dataclass(frozen=True)
class TextQuery:
    """What a phrase was read as: the terms used and the words ignored."""

    terms: tuple[Term, ...]
    unknown: tuple[str, ...]


class TextIndex:
    """Words with their vectors [V, d] (unit length) and IDF weights [V], the most common words first."""

    def __init__(
        self, words: Sequence[str], vectors: np.ndarray, idf: np.ndarray, config: TextConfig | None = None
    ) -> None:
        self.config = config or TextConfig()
        self.words = list(words)
        self.vectors = vectors
        self.idf = idf
        self._row = {w: i for i, w in enumerate(self.words)}
        self._choices = list(dict.fromkeys([*self.words, *MOODS]))  # typo targets

    @classmethod
    def build(
        cls,
        playlist_names: Sequence[str],
        playlist_z: np.ndarray,
        labels: Sequence[np.ndarray],
        track_z: np.ndarray,
        config: TextConfig | None = None,
    ) -> TextIndex:
        """Index a training catalogue: a playlist-name word's vector is the mean embedding of the playlists named with
        it, a label word's the mean embedding of the tracks labelled with it (labels: per-track genre, subgenre …
        columns); a word with both sums the two unit vectors. IDF is over playlists for name words, over labelled
        tracks for label-only words."""
        config = config or TextConfig()
        dim = track_z.shape[1]
        name_sums, name_df = _name_evidence(playlist_names, playlist_z)
        label_sums, label_df, num_labelled = _label_evidence(labels, track_z)
        name_words = [w for w, n in name_df.items() if n >= config.min_playlists]
        vocab = sorted(
            set(name_words) | set(label_sums), key=lambda w: (-name_df.get(w, 0) - label_df.get(w, 0) / 1e9, w)
        )[: config.max_words]
        vectors = np.zeros((len(vocab), dim), dtype=np.float32)  # [V, d]
        idf = np.zeros(len(vocab), dtype=np.float32)  # [V]
        for i, word in enumerate(vocab):
            v = np.zeros(dim, dtype=np.float64)
            if word in name_df and name_df[word] >= config.min_playlists:
                v += _unit(name_sums[word])
                idf[i] = math.log1p(len(playlist_names) / name_df[word])
            if word in label_sums:
                v += config.label_weight * _unit(label_sums[word])
                if not idf[i]:
                    idf[i] = math.log1p(num_labelled / label_df[word])
            vectors[i] = _unit(v)
        return cls(vocab, vectors, idf, config)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The index as snapshot arrays (TEXT_KEYS)."""
        return dict(zip(TEXT_KEYS, (np.array(self.words, dtype=object), self.vectors, self.idf), strict=True))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], config: TextConfig | None = None) -> TextIndex | None:
        """The saved index (checked by check_arrays), or None for a snapshot saved before text queries."""
        if TEXT_KEYS[0] not in arrays:
            return None
        words, vectors, idf = (arrays[k] for k in TEXT_KEYS)
        return cls([str(w) for w in words.tolist()], vectors, idf, config)

    def read(self, text: str) -> TextQuery:
        """The words of a phrase the index knows (exactly, as a decade or mood, or up to a typo), and the rest."""
        if not isinstance(text, str):
            raise InvalidQueryError(f"a text query is a str of a few words; got {type(text).__name__}")
        terms: dict[str, Term] = {}
        unknown: list[str] = []
        for typed in tokens(text)[: self.config.max_query_words]:
            word = typed if typed in self._row or typed in MOODS or decade(typed) else self._correct(typed)
            if word is None:
                unknown.append(typed)
            elif word not in terms:
                row = self._row.get(word, -1)
                terms[word] = Term(word, typed, row, decade(word), MOODS.get(word))
        return TextQuery(tuple(terms.values()), tuple(dict.fromkeys(unknown)))

    def _correct(self, typed: str) -> str | None:
        if len(typed) < self.config.min_typo_chars or not self._choices:
            return None
        best = process.extractOne(typed, self._choices, scorer=fuzz.ratio, score_cutoff=self.config.typo_cutoff)
        return None if best is None else str(best[0])

    def scores(
        self, query: TextQuery, track_z: np.ndarray, years: np.ndarray, audio: np.ndarray, popularity: np.ndarray
    ) -> np.ndarray:
        """How well every track fits the query: cosine to the IDF-weighted sum of its word vectors, plus the decade
        and mood preferences and a little popularity. [T]"""
        c = self.config
        out = np.zeros(len(track_z), dtype=np.float64)
        rows = [t.row for t in query.terms if t.row >= 0]
        if rows:
            out += track_z @ _unit((self.idf[rows, None] * self.vectors[rows]).sum(0)).astype(np.float32)
        eras = [t.era for t in query.terms if t.era is not None]
        if eras:
            out += c.era_weight * era_preference(years, eras, c.era_fade_years)
        moods = [t.mood for t in query.terms if t.mood is not None]
        if moods:
            out += c.mood_weight * _sigmoid(_sound_along(audio, moods)).mean(axis=0)
        out += c.popularity_weight * np.nan_to_num(popularity, nan=0.0) / 100.0
        return out.astype(np.float32)

    def reasons(
        self, query: TextQuery, picks: list[int], track_z: np.ndarray, years: np.ndarray, audio: np.ndarray
    ) -> list[str | None]:
        """Per picked row, the query words that led there: its strongest word vectors, its decade, its mood."""
        with_rows = [t for t in query.terms if t.row >= 0]
        parts = np.zeros((len(picks), 0))
        if with_rows and picks:
            rows = [t.row for t in with_rows]
            parts = (track_z[picks] @ self.vectors[rows].T) * self.idf[rows]  # [len(picks), words]
        moods = [t for t in query.terms if t.mood is not None]
        sound = _sound_along(audio, [t.mood for t in moods if t.mood is not None], picks) if moods else None
        out: list[str | None] = []
        for j, idx in enumerate(picks):
            named: set[str] = set()
            if parts.shape[1]:
                top = parts[j].max()
                named |= {
                    t.word
                    for t, p in zip(with_rows, parts[j], strict=True)
                    if p > 0 and p >= self.config.reason_share * top
                }
            for t in query.terms:
                if t.era is not None and not np.isnan(years[idx]) and t.era[0] <= years[idx] <= t.era[1]:
                    named.add(t.word)
            if sound is not None:
                named |= {t.word for t, s in zip(moods, sound[:, j], strict=True) if s > 0.5}  # half an SD that way
            words = [_shown(t) for t in query.terms if t.word in named]
            out.append(f"because you asked for {' and '.join(words)}" if words else None)
        return out

    def suggestions(self, count: int = 5) -> list[str]:
        """Words to offer when none of a query's is known: the preferred examples this index knows, then its most
        common words."""
        known = [s for s in SUGGESTIONS if not decade(s) and all(w in self._row or w in MOODS for w in s.split())]
        extra = [w for w in self.words if w not in known and not decade(w)]
        return [*[*known, *extra][: count - 1], "90s"]


def check_arrays(arrays: dict[str, np.ndarray], dim: int) -> None:
    """SnapshotError unless the text arrays are all absent (a snapshot saved before text queries) or all sound."""
    present = [k for k in TEXT_KEYS if k in arrays]
    if not present:
        return
    if len(present) != len(TEXT_KEYS):
        raise SnapshotError(f"snapshot has {', '.join(present)} but not all of {', '.join(TEXT_KEYS)}: retrain it")
    words, vectors, idf = (arrays[k] for k in TEXT_KEYS)
    v = len(words)
    if words.dtype.kind != "O" or words.ndim != 1:
        raise SnapshotError(f"snapshot array 'text_words' is {words.dtype} {words.shape}; expected text, shape n")
    if vectors.dtype.kind != "f" or vectors.shape != (v, dim) or idf.dtype.kind != "f" or idf.shape != (v,):
        raise SnapshotError(
            f"snapshot text arrays are {vectors.dtype} {vectors.shape} and {idf.dtype} {idf.shape}; "
            f"expected float {v}x{dim} and {v} for {v} words"
        )
    if not (np.isfinite(vectors).all() and np.isfinite(idf).all() and (idf >= 0).all()):
        raise SnapshotError("snapshot text vectors or weights hold NaN, infinity or a negative weight; retrain it")


# ----- what the snapshot serves -----


def understand(snap: Snapshot, text: str) -> TextQuery:
    """The phrase as the snapshot's index reads it; InvalidQueryError when no word is known or the snapshot has no
    index."""
    index = snap.text_index
    if index is None:
        raise InvalidQueryError(
            "this model predates text queries (it was saved without a word index); retrain it "
            "(musicrec train, or /retrain in the bot) to recommend from words"
        )
    query = index.read(text)
    if query.terms:
        return query
    examples = "a mood, activity, genre or decade like " + ", ".join(index.suggestions())
    if not text.strip():
        raise InvalidQueryError(f"a text query needs a few words: {examples}")
    asked = ", ".join(f'"{w}"' for w in query.unknown) or f'"{text.strip()[:40]}"'  # stop words only: as typed
    raise InvalidQueryError(f"I know none of these words: {asked}; try {examples}")


def scores(snap: Snapshot, text: str) -> np.ndarray:
    """Snapshot.text_scores. [T]"""
    index, query = snap.text_index, understand(snap, text)
    assert index is not None  # understand raised otherwise
    return index.scores(query, snap.track_z, snap.years, snap.audio, snap.popularity)


def recommend(snap: Snapshot, text: str, k: int) -> tuple[Picks, list[str | None]]:
    """Snapshot.recommend_for_text: the top k by scores (one version per song), and a reason each."""
    index, query = snap.text_index, understand(snap, text)
    assert index is not None
    s = index.scores(query, snap.track_z, snap.years, snap.audio, snap.popularity)
    rows, picked = pick(snap, s, k, np.zeros(0, dtype=np.int64), snap.lists.text_max_per_artist)
    return (rows, picked), index.reasons(query, rows, snap.track_z, snap.years, snap.audio)


# ----- helpers -----


def era_preference(years: np.ndarray, eras: Sequence[tuple[int, int]], fade_years: float) -> np.ndarray:
    """1 for a track released in one of the decades, fading as e^(-years outside / fade_years); 0 when unknown. [T]"""
    y = np.asarray(years, dtype=np.float64)
    gap = np.min([np.maximum(np.maximum(lo - y, y - hi), 0.0) for lo, hi in eras], axis=0)
    return np.nan_to_num(np.exp(-gap / fade_years), nan=0.0)


def _sound_along(
    audio: np.ndarray, moods: Sequence[tuple[float, ...]], rows: Sequence[int] | None = None
) -> np.ndarray:
    """Each track's sound along each mood direction, in standard deviations of the catalogue. [moods, T or rows]"""
    spread = audio.std(axis=0)
    z = (audio - audio.mean(axis=0)) / np.where(spread > 1e-8, spread, 1.0)  # [T, 5] z-scores
    if rows is not None:
        z = z[list(rows)]
    directions = np.array(moods, dtype=np.float64)  # [moods, 5]
    return (directions / np.linalg.norm(directions, axis=1, keepdims=True)) @ z.T


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 1e-12 else v


def _shown(term: Term) -> str:
    return term.word if term.typed == term.word else f'{term.word} ("{term.typed}")'


def _name_evidence(names: Sequence[str], playlist_z: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per playlist-name word, the sum of the embeddings of the playlists named with it, and how many there are."""
    word_ids: dict[str, int] = {}
    pairs_word, pairs_playlist = [], []
    for p, name in enumerate(names):
        for w in dict.fromkeys(tokens(str(name))):
            pairs_word.append(word_ids.setdefault(w, len(word_ids)))
            pairs_playlist.append(p)
    sums = np.zeros((len(word_ids), playlist_z.shape[1]), dtype=np.float64)  # [words, d]
    np.add.at(sums, np.array(pairs_word, dtype=np.int64), playlist_z[np.array(pairs_playlist, dtype=np.int64)])
    df = np.bincount(np.array(pairs_word, dtype=np.int64), minlength=len(word_ids))
    return {w: sums[i] for w, i in word_ids.items()}, {w: int(df[i]) for w, i in word_ids.items()}


def _label_evidence(
    labels: Sequence[np.ndarray], track_z: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, int], int]:
    """Per label word, the sum of the embeddings of the tracks labelled with it and their count; and how many
    tracks carry a label. A track counts once per word, however many of its labels hold it."""
    if not labels or not len(track_z):
        return {}, {}, 0
    combined = pd.Series(labels[0], dtype=object).astype(str)
    for column in labels[1:]:
        combined = combined + "\x1f" + pd.Series(column, dtype=object).astype(str)
    codes, uniques = pd.factorize(combined)
    sums = np.zeros((len(uniques), track_z.shape[1]), dtype=np.float64)  # [label combinations, d]
    np.add.at(sums, codes, track_z)
    counts = np.bincount(codes, minlength=len(uniques))
    word_sums: dict[str, np.ndarray] = {}
    word_df: dict[str, int] = {}
    labelled = 0
    for c, key in enumerate(uniques.tolist()):
        words = dict.fromkeys(w for part in str(key).split("\x1f") for w in tokens(part))
        labelled += int(counts[c]) if words else 0
        for w in words:
            word_sums[w] = word_sums.get(w, np.zeros(track_z.shape[1])) + sums[c]
            word_df[w] = word_df.get(w, 0) + int(counts[c])
    return word_sums, word_df, labelled
