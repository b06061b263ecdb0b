"""Names: how text is normalised, what counts as the same song, and fuzzy search of a catalogue's names.

One rule each, used by the snapshot, the evaluation, the CLI and the bot alike.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process, utils

from recsys.name_index import NameIndex, NameIndexConfig
from recsys.rule import best_of

# Bumped whenever song_key, artist_keys or their grouping changes: snapshots keep the groups they computed under
# this version (Snapshot's saved arrays) and a snapshot saved under another recomputes them at load.
GROUPING_VERSION = 1

# How many rough-match candidates the precise fuzzy scorer ranks in search().
SEARCH_CANDIDATES = 300
# A query is cut here before matching: longer than any real "title - artist"; more is a paste, not a song name.
MAX_QUERY_CHARS = 200
# Where a version suffix starts: "Bohemian Rhapsody - 2011 Remaster", "Yellow (Live)", "Song [Radio Edit]".
_VERSION_SUFFIX = re.compile(r" - | \(| \[")


def fold(text: str) -> str:
    """Lower case, punctuation to single spaces, accents dropped: "Señorita" and "senorita" are the same word, and
    "Ironic - 2015 Remaster" is "ironic 2015 remaster" (one space, as people type it)."""
    if text.isascii():  # nothing to decompose: the common case, and 5x faster (a snapshot folds every name)
        return " ".join(utils.default_process(text).split())
    decomposed = unicodedata.normalize("NFKD", text)
    return " ".join(utils.default_process("".join(ch for ch in decomposed if not unicodedata.combining(ch))).split())


def fold_many(texts: Sequence[str]) -> list[str]:
    """[fold(t) for t in texts], folding each distinct text once: a catalogue repeats its artists on every track."""
    folded: dict[str, str] = {}
    return [folded[t] if t in folded else folded.setdefault(t, fold(t)) for t in texts]


def _group_numbers(keys: Sequence[str] | np.ndarray) -> np.ndarray:
    """One group number per key [n] int64, equal keys equal numbers (numbered by first appearance: hashing, not
    sorting, the strings)."""
    return pd.factorize(np.array(keys, dtype=object))[0].astype(np.int64)


def words(text: str) -> str:
    """The folded text with single spaces, padded with one space each side, for whole-word tests."""
    return " " + " ".join(fold(text).split()) + " "


def artist_keys(artists: Sequence[str]) -> np.ndarray:
    """Each track's artist key, the lower-cased name (the CSV has no artist id): one rule for the graph's artist
    nodes, the baselines' "same artist" and the reasons' "same artist". [n] object str"""
    return np.array([artist.lower() for artist in artists], dtype=object)


def artist_groups(artists: Sequence[str]) -> np.ndarray:
    """Group index per track [n] int64: tracks with the same artist_keys share it (the artist cap, the seeds'
    artist bonus and the evaluation's distinct-artist count)."""
    if not len(artists):
        return np.zeros(0, dtype=np.int64)
    return _group_numbers(artist_keys(artists))


def base_title(title: str) -> str:
    """The title without a version suffix: "Bohemian Rhapsody - 2011 Remaster" -> "Bohemian Rhapsody"."""
    return _VERSION_SUFFIX.split(title, maxsplit=1)[0]


def title_key(title: str) -> str:
    """The same title: the base title up to case, accents, punctuation and spacing ("Home", "home!", "Home - Live")."""
    return fold(base_title(title))


def song_key(title: str, artist: str) -> str:
    """The same song: the same base title and the same artist, up to case, accents, punctuation and spacing.

    A single, an album track, a remaster and a live version are versions of one song; every list the product
    shows (and every list the evaluation scores) holds at most one of them.
    """
    return _joined_key(title_key(title), fold(artist))


def _joined_key(folded_base_title: str, folded_artist: str) -> str:
    """song_key from its folded parts (song_groups folds each distinct part once)."""
    return folded_base_title + "\x1f" + folded_artist


def song_groups(titles: Sequence[str], artists: Sequence[str]) -> np.ndarray:
    """Group index per track [n] int64: tracks with the same song_key share it."""
    if not len(titles):
        return np.zeros(0, dtype=np.int64)
    # song_key, with each distinct base title and artist folded once.
    bases, folded_artists = fold_many([base_title(t) for t in titles]), fold_many(artists)
    return _group_numbers([_joined_key(b, a) for b, a in zip(bases, folded_artists, strict=True)])


def name_scores(query: str, names: Sequence[str]) -> np.ndarray:
    """rapidfuzz's WRatio without its token-set part (0..100) of a processed query against processed names. [n]

    WRatio's token-set ratio gives 95 to any name whose few distinct words all occur in the query, so "bad guy
    billie" matched the title "Bad Bad Bad" (95) above "bad guy" by Billie Eilish (90). Whole-string ratio,
    word-order-insensitive ratio and, for a query much longer or shorter than the name, the best partial
    alignment remain, scaled as WRatio scales them. Vectorised: one C loop per scorer over all names.
    """
    if not query or not names:
        return np.zeros(len(names), dtype=np.float32)

    def cdist(queries: list[str], scorer: Any) -> np.ndarray:
        return process.cdist(queries, names, scorer=scorer, dtype=np.float32)

    score = np.maximum(cdist([query], fuzz.ratio)[0], 0.95 * cdist([query], fuzz.token_sort_ratio)[0])
    # How many query words the name holds: a name that accounts for every word of the query beats one that matches
    # only part of it ("bad guy billie" names Billie Eilish's song better than another artist's "Bad Guy").
    query_words = query.split()
    name_tokens = [set(n.split()) for n in names]
    vocab = sorted(set().union(*name_tokens))
    similar = process.cdist(query_words, vocab, scorer=fuzz.ratio, dtype=np.float32) >= 80 if vocab else None
    matches = [{vocab[v] for v in np.flatnonzero(row)} for row in similar] if similar is not None else []
    covered = np.array([sum(not m.isdisjoint(toks) for m in matches) for toks in name_tokens], dtype=np.float32)
    covered /= len(query_words)  # [n] share of query words found, each up to a typo, among the name's words
    lengths = np.array([len(n) for n in names], dtype=np.float32)
    length_ratio = np.maximum(lengths, len(query)) / np.maximum(np.minimum(lengths, len(query)), 1)
    # Unlike WRatio, a query a little shorter than the name also gets the partial alignment: "dance monkey
    # tones" lies whole inside "dance monkey tones and i". A name much shorter than the query aligns inside it only
    # when it holds one of the query's words: "x" lies inside "qwxzv" and "fg" inside "asdfgh" (WRatio gives both
    # 81-90), yet neither is what someone mashing the keyboard meant.
    partial_ok = (lengths > len(query)) | ((length_ratio >= 1.5) & (covered > 0))
    partial = np.where(length_ratio < 8, 0.9, 0.6) * cdist([query], fuzz.partial_ratio)[0]
    score = np.where(partial_ok, np.maximum(score, partial), score)
    out: np.ndarray = (score * (0.9 + 0.1 * covered)).astype(np.float32)
    out[lengths == 0] = 0.0
    return out


def name_score(query: str, name: str) -> float:
    """name_scores for one name."""
    return float(name_scores(query, [name])[0])


class NameSearch:
    """Fuzzy search over a catalogue's titles, artists and "title artist", one hit per song."""

    def __init__(
        self,
        titles: Sequence[str],
        artists: Sequence[str],
        popularity: np.ndarray,
        songs: np.ndarray,
        saved: dict[str, np.ndarray] | None = None,
        config: NameIndexConfig | None = None,
    ) -> None:
        # Names are held in tuples of strings, which the garbage collector stops tracking after its first pass:
        # lists of a name per track made every full collection walk them all (~260 ms at 2.26M tracks).
        folded_titles, folded_artists = fold_many(titles), fold_many(artists)
        combined = [f"{t} {a}" for t, a in zip(folded_titles, folded_artists, strict=True)]
        # Titles without their version suffix: "ironic" names "Ironic - 2015 Remaster" and "mona lisa" names "Mona Lisa
        # (feat. Kendrick Lamar)" as well as a plain title (the full names score ~45 and drop out of stage one).
        # Rows without a suffix share the full name's string, so this costs a list, not a second copy of the names.
        self.suffixed = np.array([_has_suffix(t) for t in titles], dtype=bool)  # [n]
        bases, bases_combined = list(folded_titles), list(combined)
        for i in np.flatnonzero(self.suffixed).tolist():
            bases[i] = fold(base_title(titles[i]))
            bases_combined[i] = f"{bases[i]} {folded_artists[i]}"
        self.titles, self.artists, self.combined = tuple(folded_titles), tuple(folded_artists), tuple(combined)
        self.bases, self.bases_combined = tuple(bases), tuple(bases_combined)
        self.popularity = popularity
        self.songs = songs
        config = config or NameIndexConfig()
        # Large catalogues pre-filter rows by fuzzy word matches (saved with the snapshot, rebuilt if it does not fit).
        self.index: NameIndex | None = None
        if len(self.titles) >= config.min_items:
            self.index = NameIndex.from_arrays(saved or {}, len(self.titles), config) or NameIndex.build(
                self.titles, self.artists, config
            )

    def search(self, text: str, limit: int) -> list[tuple[int, float]]:
        """(row, match 0..100) of the best-matching songs, best first; ties go to the more popular version."""
        query = fold(text or "")[:MAX_QUERY_CHARS]
        if not query or limit <= 0 or not self.titles:
            return []
        # Two stages: a cheap SIMD ratio picks candidates; _precise (handles partial and reordered words, ~20x
        # slower) ranks only those. Keeps a query at ~10 ms for 28k tracks. Large catalogues pre-filter by words.
        rows = self.index.candidates(query, self.popularity) if self.index is not None else None
        cand = self._rough(query, rows if rows is not None and len(rows) else None)
        best = self._precise(query, cand)
        ranked = best + np.nan_to_num(self.popularity[cand], nan=0.0) / 1000.0
        picks, _ = best_of(cand, ranked, limit, np.zeros(0, dtype=np.int64), self.songs)
        match = dict(zip(cand.tolist(), best.tolist(), strict=True))
        return [(i, match[i]) for i in picks if match[i] > 0]

    def _rough(self, query: str, rows: np.ndarray | None) -> np.ndarray:
        """Stage one: the rows (all when None) whose title (without a version suffix), "title artist" or artist is
        closest by plain ratio."""
        fields: tuple[Sequence[str], ...]
        every = (self.bases, self.combined, self.bases_combined, self.artists)  # a suffixed title is in `combined`
        if rows is None:
            fields = every
            # Only a large catalogue's query that shares no word with any name scans everything: use workers then.
            workers = 1 if self.index is None else -1
        else:
            idx = rows.tolist()
            fields = tuple([names[i] for i in idx] for names in every)
            workers = 1  # thousands of names take well under a millisecond, less than starting worker threads
        rough = np.zeros(len(fields[0]), dtype=np.uint8)
        for names in fields:
            scores = process.cdist([query], names, scorer=fuzz.ratio, dtype=np.uint8, workers=workers)[0]
            np.maximum(rough, scores, out=rough)
        n_cand = min(len(rough), SEARCH_CANDIDATES)
        top = np.argpartition(-rough.astype(np.int16), n_cand - 1)[:n_cand]
        return top if rows is None else rows[top]

    def _precise(self, query: str, rows: np.ndarray) -> np.ndarray:
        """How well the query names each row: title, "title artist", "artist title", or (less) artist; a suffixed
        title also without its suffix, so a version suffix costs nothing. [n]"""
        best = self._forms(query, rows.tolist(), self.titles, self.combined)
        best = np.maximum(best, 0.9 * name_scores(query, [self.artists[i] for i in rows.tolist()]))
        suffixed = np.flatnonzero(self.suffixed[rows])
        if len(suffixed):
            base = self._forms(query, rows[suffixed].tolist(), self.bases, self.bases_combined)
            best[suffixed] = np.maximum(best[suffixed], base)
        return best

    def _forms(self, query: str, idx: list[int], titles: Sequence[str], combined: Sequence[str]) -> np.ndarray:
        """The best of title, "title artist" and "artist title" for rows idx. [len(idx)]"""
        return np.max(
            [
                name_scores(query, [titles[i] for i in idx]),
                name_scores(query, [combined[i] for i in idx]),
                name_scores(query, [f"{self.artists[i]} {titles[i]}" for i in idx]),
            ],
            axis=0,
        )


def _has_suffix(title: str) -> bool:
    """Whether base_title would cut something off (cheap: most titles have no " - ", " (" or " [")."""
    return (" - " in title or " (" in title or " [" in title) and base_title(title) != title
