"""A token pre-filter for fuzzy name search at millions of names: only tracks sharing a (fuzzily) matching word
with the query go on to rapidfuzz's scorers. Below NameIndexConfig.min_items search scans every name, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

# The shortest part of a query word read as two index words run together (NameIndex._split).
MIN_SPLIT_PART = 2


@dataclass(frozen=True)
class NameIndexConfig:
    """When to pre-filter and how wide."""

    # A full scan of 3 x 200k names costs ~50 ms here; smaller catalogues stay exact (and bit-identical).
    min_items: int = 200_000
    # A query word matches an index word at fuzz.ratio >= this: one typo in a 5-letter word scores 80.
    word_cutoff: int = 75
    # Most candidates handed to the scorers (~3 ms per 10k names); the best by matched words, then popularity.
    max_candidates: int = 5_000


class NameIndex:
    """Inverted index word -> track rows over processed titles and artists."""

    # Its arrays inside a snapshot's arrays.npz: saved with the snapshot, so a load does not rebuild it.
    KEYS = ("name_index_vocab", "name_index_rows", "name_index_ptr")

    def __init__(
        self, vocab: list[str], rows: np.ndarray, ptr: np.ndarray, size: int, config: NameIndexConfig | None = None
    ) -> None:
        self.config = config or NameIndexConfig()
        self._vocab = tuple(vocab)  # [V] words (a tuple: untracked by the garbage collector, unlike a list)
        self._rows = rows  # postings, grouped by word
        self._ptr = ptr  # [V + 1] word w's postings are rows[ptr[w]:ptr[w + 1]]
        self._size = size
        self._ids: dict[str, int] | None = None  # word -> its index in vocab, for _split

    @classmethod
    def build(cls, titles: Sequence[str], artists: Sequence[str], config: NameIndexConfig | None = None) -> NameIndex:
        """Index the words of every processed "title artist"."""
        vocab: dict[str, int] = {}
        words: list[int] = []
        rows: list[int] = []
        for row, (title, artist) in enumerate(zip(titles, artists, strict=True)):
            for word in set(f"{title} {artist}".split()):
                words.append(vocab.setdefault(word, len(vocab)))
                rows.append(row)
        word_ids = np.asarray(words, dtype=np.int64)
        order = np.argsort(word_ids, kind="stable")
        ptr = np.searchsorted(word_ids[order], np.arange(len(vocab) + 1))
        return cls(list(vocab), np.asarray(rows, dtype=np.int64)[order], ptr, len(titles), config)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The index as plain arrays for the snapshot's npz (no pickle)."""
        return dict(zip(self.KEYS, (np.array(self._vocab, dtype=object), self._rows, self._ptr), strict=True))

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], size: int, config: NameIndexConfig | None = None
    ) -> NameIndex | None:
        """The saved index, or None when it is missing or does not fit a catalogue of `size` names."""
        if not all(k in arrays for k in cls.KEYS):
            return None
        vocab, rows, ptr = (arrays[k] for k in cls.KEYS)
        fits = (
            vocab.ndim == rows.ndim == ptr.ndim == 1
            and rows.dtype.kind in "iu"
            and ptr.dtype.kind in "iu"
            and len(ptr) == len(vocab) + 1
            and int(ptr[0]) == 0
            and bool((np.diff(ptr) >= 0).all())
            and int(ptr[-1]) == len(rows)
            and (not len(rows) or (int(rows.min()) >= 0 and int(rows.max()) < size))
        )
        return cls(vocab.tolist(), rows, ptr, size, config) if fits else None

    def candidates(self, query: str, popularity: np.ndarray) -> np.ndarray:
        """Rows sharing the most matching words with the processed query (empty when no word matches). A query word
        that matches no index word but is two index words run together (a typo that lost a space: "rustyengine")
        counts as those two words."""
        q_words = list(dict.fromkeys(query.split()))[:8]
        if not q_words or not self._vocab:
            return np.zeros(0, dtype=np.int64)
        # Worker threads cost ~0.5 ms to start: worth it (and GIL-free) only for a large vocabulary.
        workers = -1 if len(self._vocab) > 100_000 else 1
        sims = process.cdist(
            q_words,
            self._vocab,
            scorer=fuzz.ratio,
            dtype=np.uint8,
            score_cutoff=self.config.word_cutoff,
            workers=workers,
        )  # [num_query_words, V]
        matches: list[tuple[np.ndarray, np.ndarray]] = []  # per query word: matched word ids, their similarities
        for word, row in zip(q_words, sims, strict=True):
            matched = np.flatnonzero(row)
            if len(matched):
                matches.append((matched, row[matched]))
            else:
                matches.extend((np.array([w]), np.array([100])) for w in self._split(word))
        hits = self._hits(matches)
        cand = np.flatnonzero(hits)
        if len(cand) <= self.config.max_candidates:
            return cand
        return _best_rows(cand, hits[cand], popularity, self.config.max_candidates)

    def _hits(self, matches: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Per row, the sum over query words of the best similarity of one of its words (exact words beat typos).
        matches: per query word, the matched word ids and their similarities. Touches only the matched words'
        postings, not every row once per query word. [size] uint16 (at most 8 words x 100)"""
        hits = np.zeros(self._size, dtype=np.uint16)
        best = np.zeros(self._size, dtype=np.uint8)  # scratch: one query word's best similarity per row
        for matched, scores in matches:
            order = np.argsort(scores, kind="stable")  # ascending: a row's last assignment is its best word's
            postings = [self._rows[self._ptr[w] : self._ptr[w + 1]] for w in matched[order].tolist()]
            for rows, score in zip(postings, scores[order].tolist(), strict=True):
                best[rows] = score
            touched = np.concatenate(postings)
            # A row in several matched words' postings repeats in `touched` with the same best: += adds it once.
            hits[touched] += best[touched]
            best[touched] = 0
        return hits

    def _split(self, word: str) -> list[int]:
        """The ids of two index words that make up `word` ("rusty", "engine" of "rustyengine"), each at least
        MIN_SPLIT_PART letters; of several such splits the one with the longest shorter part; [] when none."""
        if self._ids is None:  # built the first time a word needs it (~0.1 s per million words), not at load
            self._ids = {w: i for i, w in enumerate(self._vocab)}
        best: list[int] = []
        longest = 0
        for cut in range(MIN_SPLIT_PART, len(word) - MIN_SPLIT_PART + 1):
            head, tail = self._ids.get(word[:cut]), self._ids.get(word[cut:])
            if head is not None and tail is not None and min(cut, len(word) - cut) > longest:
                best, longest = [head, tail], min(cut, len(word) - cut)
        return best


def _best_rows(cand: np.ndarray, hits: np.ndarray, popularity: np.ndarray, keep: int) -> np.ndarray:
    """The `keep` rows of cand [n] with the most hits [n], popularity (0..100) breaking ties at the last level kept;
    sorted. Counts rows per hit level rather than sorting every candidate (a common word matches a million rows)."""
    per_level = np.bincount(hits)
    above = np.cumsum(per_level[::-1])[::-1]  # above[h]: candidates with at least h hits
    level = int(np.flatnonzero(above >= keep).max())  # the lowest level still needed
    sure = cand[hits > level]
    tied = cand[hits == level]
    pop = np.nan_to_num(popularity[tied], nan=0.0)
    need = keep - len(sure)
    chosen = tied[np.argpartition(-pop, need - 1)[:need]] if need < len(tied) else tied
    return np.sort(np.concatenate([sure, chosen]))
