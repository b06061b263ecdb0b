"""Write the name-resolution query set (tests/fixtures/queries.csv) from the real catalogue: what people type.

python bench/make_queries.py --data /path/to/spotify_songs.csv [--out tests/fixtures/queries.csv] [--seed 0]

Seeded: the same catalogue and seed give the same file. It holds only titles, artists and track ids (derived data,
not the CSV). Columns: query, kind, split, track_id (the right answer; empty where none is), title, artist.

Kinds, each query typed in lower case:
- famous: a famous title bare ("shape of you"). A title is famous when its most popular track has popularity
  >= FAMOUS_POPULARITY. The right answer of a bare title is its most popular track (ties: the one in more
  playlists, then the first in the catalogue), and any version of that song (recsys.names.song_key) counts.
- typo / two_typos: a famous title with one / two typos (a letter dropped, doubled, swapped with the next, or
  replaced by a neighbouring key), never turning it into another title of the catalogue. two_typos are the near
  misses: not a goal, but the right song should still be offered.
- title_artist / artist_title: "title artist" and "artist title" of a track drawn from the whole catalogue
  (any popularity); the right answer is that song.
- title_artist_word: a title that two or more artists sing and one word of the wanted artist's name that no other
  artist of the title has ("bad guy billie", "bad guy critic"); the right answer is that artist's song.
- partial: the first words (at least two, and PARTIAL_CHARS characters) of a famous title, never all of them and
  never itself a title of the catalogue.
- namesakes: a title that two or more artists sing, none famous, whose two most popular artists' versions are
  within COMPARABLE_POPULARITY points ("home"): comparably likely, so the right outcome is a question.
- gibberish: seeded random letter strings of 4-12 letters (one in five as two words) and keyboard mashes (runs
  along a keyboard row and random walks between neighbouring keys: "asdfgh", "qwxzv"); none is a word of the
  catalogue. The right outcome is "not found" with no suggestions.

Split: "tune" when the source track's catalogue row is even (namesakes: the title's most popular track; gibberish: the
query's own number), else "report".
Thresholds of recsys.resolve are chosen on the tune half (bench/bench_resolve.py --tune) and reported on the other.
"""

from __future__ import annotations

import argparse
import csv
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

import recsys
from recsys.config import DataConfig
from recsys.names import base_title, fold, title_key

T = TypeVar("T")
FAMOUS_POPULARITY = 70  # the "famous": popularity >= 70
COMPARABLE_POPULARITY = 10  # namesakes this close in popularity are comparably likely (the fixture's definition)
PARTIAL_CHARS = 10  # a partial title has at least this many characters: "time after" (Time After Time), not "when i"
COUNTS = {
    "famous": 120,
    "typo": 120,
    "two_typos": 60,
    "title_artist": 120,
    "artist_title": 120,
    "title_artist_word": 60,
    "partial": 60,
    "namesakes": 60,
    "gibberish": 120,
}
FIELDS = ("query", "kind", "split", "track_id", "title", "artist")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "queries.csv"
# Words nobody types to name an artist ("The Knocks" is "knocks").
STOP = {"the", "and", "los", "las", "del", "feat", "with"}
KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


@dataclass(frozen=True)
class Query:
    """One line of the query set."""

    query: str
    kind: str
    split: str
    track_id: str = ""
    title: str = ""
    artist: str = ""


def _neighbours() -> dict[str, str]:
    """Keys next to each letter on a QWERTY keyboard (same row and the rows above and below)."""
    pos = {ch: (r, c + 0.5 * r) for r, row in enumerate(KEYBOARD_ROWS) for c, ch in enumerate(row)}
    return {
        a: "".join(b for b, (rb, cb) in pos.items() if b != a and abs(ra - rb) <= 1 and abs(ca - cb) <= 1.0)
        for a, (ra, ca) in pos.items()
    }


NEIGHBOURS = _neighbours()


def typo(text: str, rng: random.Random) -> str:
    """One typo at a random letter: dropped, doubled, swapped with the next letter, or a neighbouring key."""
    letters = [i for i, ch in enumerate(text) if ch in NEIGHBOURS]
    i = rng.choice(letters)
    kind = rng.choice(("drop", "double", "swap", "key"))
    if kind == "swap" and i + 1 < len(text) and text[i + 1] in NEIGHBOURS and text[i + 1] != text[i]:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == "drop":
        return text[:i] + text[i + 1 :]
    if kind == "double":
        return text[:i] + text[i] + text[i:]
    return text[:i] + rng.choice(NEIGHBOURS[text[i]]) + text[i + 1 :]


class Titles:
    """The catalogue's titles: every track's title key and the right answer of each bare title."""

    def __init__(self, catalog: recsys.Catalog) -> None:
        placeholders = DataConfig()
        self.catalog = catalog
        self.names = catalog.track_names.tolist()
        self.artists = catalog.track_artists.tolist()
        self.popularity = np.nan_to_num(catalog.popularity, nan=-1.0)
        playlists = np.bincount(catalog.edges[1], minlength=catalog.num_tracks)
        self.usable = [
            i
            for i, (n, a) in enumerate(zip(self.names, self.artists, strict=True))
            if n != placeholders.placeholder_name and a != placeholders.placeholder_artist and title_key(n)
        ]
        by_title: dict[str, list[int]] = defaultdict(list)
        for i in self.usable:
            by_title[title_key(self.names[i])].append(i)
        self.rows = dict(by_title)  # title key -> track rows
        # The right answer of a bare title: its most popular track, then the one in more playlists, then the first.
        self.answer = {
            t: min(rows, key=lambda i: (-self.popularity[i], -playlists[i], i)) for t, rows in by_title.items()
        }
        self.vocabulary = {w for i in self.usable for w in f"{fold(self.names[i])} {fold(self.artists[i])}".split()}

    def famous(self) -> list[str]:
        return sorted(t for t, i in self.answer.items() if self.popularity[i] >= FAMOUS_POPULARITY)

    def by_artist(self, title: str) -> list[float]:
        """The best popularity of each artist singing the title, most popular first."""
        best: dict[str, float] = {}
        for i in self.rows[title]:
            artist = " ".join(fold(self.artists[i]).split())
            best[artist] = max(best.get(artist, -1.0), float(self.popularity[i]))
        return sorted(best.values(), reverse=True)

    def query(self, text: str, kind: str, row: int) -> Query:
        split = "tune" if row % 2 == 0 else "report"
        return Query(text, kind, split, str(self.catalog.track_ids[row]), self.names[row], self.artists[row])


def _sample(items: Sequence[T], n: int, rng: random.Random) -> list[T]:
    return rng.sample(list(items), min(n, len(items)))


def title_queries(titles: Titles, rng: random.Random) -> list[Query]:
    """famous, typo, two_typos and partial: famous titles typed bare."""
    famous = titles.famous()
    out = []
    for t in _sample(famous, COUNTS["famous"], rng):
        row = titles.answer[t]
        out.append(titles.query(base_title(titles.names[row]).lower().strip(), "famous", row))
    for kind, typos, min_letters in (("typo", 1, 5), ("two_typos", 2, 8)):
        found: list[Query] = []
        for t in rng.sample(famous, len(famous)):
            row = titles.answer[t]
            text = base_title(titles.names[row]).lower().strip()
            if sum(ch in NEIGHBOURS for ch in text) < min_letters:
                continue
            typed = text
            for _ in range(typos):
                typed = typo(typed, rng)
            if title_key(typed) in titles.rows:  # a typo that spells another title names that song
                continue
            found.append(titles.query(typed, kind, row))
            if len(found) == COUNTS[kind]:
                break
        out += found
    partial: list[Query] = []
    for t in rng.sample(famous, len(famous)):
        row = titles.answer[t]
        words = base_title(titles.names[row]).lower().split()
        n = 2  # the first two words, more until the text has PARTIAL_CHARS characters; never the whole title
        while n < len(words) and len(" ".join(words[:n])) < PARTIAL_CHARS:
            n += 1
        text = " ".join(words[:n])
        if n >= len(words) or title_key(text) in titles.rows:
            continue
        partial.append(titles.query(text, "partial", row))
        if len(partial) == COUNTS["partial"]:
            break
    return out + partial


def artist_queries(titles: Titles, rng: random.Random) -> list[Query]:
    """title_artist and artist_title: tracks from the whole catalogue, one sample each."""
    out = []
    for kind in ("title_artist", "artist_title"):
        for row in sorted(_sample(titles.usable, COUNTS[kind], rng)):
            title, artist = base_title(titles.names[row]).strip(), titles.artists[row]
            text = f"{title} {artist}" if kind == "title_artist" else f"{artist} {title}"
            out.append(titles.query(text.lower(), kind, row))
    return out


def artist_word_queries(titles: Titles, rng: random.Random) -> list[Query]:
    """title_artist_word: a title several artists sing, and one word of the wanted artist's name ("bad guy billie",
    "bad guy critic"): a word of three or more letters, not an article, that no other artist of that title has."""
    shared = [t for t, rows in sorted(titles.rows.items()) if len(titles.by_artist(t)) >= 2]
    out: list[Query] = []
    for t in rng.sample(shared, len(shared)):
        row = rng.choice(titles.rows[t])
        title = base_title(titles.names[row]).strip().lower()
        title_words = set(fold(title).split())
        others = {
            w
            for i in titles.rows[t]
            if fold(titles.artists[i]) != fold(titles.artists[row])
            for w in fold(titles.artists[i]).split()
        }
        artist_words = [w for w in titles.artists[row].lower().split() if len(fold(w)) >= 3 and fold(w) not in STOP]
        own = [w for w in artist_words if fold(w) not in title_words and fold(w) not in others]
        if own:
            out.append(titles.query(f"{title} {rng.choice(own)}", "title_artist_word", row))
        if len(out) == COUNTS["title_artist_word"]:
            break
    return out


def namesake_queries(titles: Titles, rng: random.Random) -> list[Query]:
    """Titles sung by several artists, none famous, the two most popular comparably so."""
    picked = []
    for t in sorted(titles.rows):
        best = titles.by_artist(t)
        if len(best) >= 2 and best[0] < FAMOUS_POPULARITY and best[0] - best[1] <= COMPARABLE_POPULARITY:
            picked.append(t)
    out = []
    for t in _sample(picked, COUNTS["namesakes"], rng):
        row = titles.answer[t]
        split = "tune" if row % 2 == 0 else "report"
        out.append(Query(base_title(titles.names[row]).lower().strip(), "namesakes", split, title=t))
    return out


def gibberish(vocabulary: set[str], rng: random.Random) -> list[Query]:
    """Random letter strings and keyboard mashes that are no word of the catalogue."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    found: list[str] = ["qwxzv", "asdfgh"]  # the examples
    mashes = COUNTS["gibberish"] // 3
    while len(found) < mashes:
        n = rng.randint(4, 8)
        if rng.random() < 0.5:  # a run along one row, either way
            row = rng.choice(KEYBOARD_ROWS)
            start = rng.randint(0, max(0, len(row) - n))
            text = row[start : start + n][:: rng.choice((1, -1))]
        else:  # a random walk between neighbouring keys
            text = rng.choice(letters)
            while len(text) < n:
                text += rng.choice(NEIGHBOURS[text[-1]])
        if len(text) >= 4 and text not in found and text not in vocabulary:
            found.append(text)
    while len(found) < COUNTS["gibberish"]:
        n = rng.randint(4, 12)
        text = "".join(rng.choice(letters) for _ in range(n))
        if rng.random() < 0.2:
            cut = rng.randint(2, n - 2)
            text = f"{text[:cut]} {text[cut:]}"
        if not set(text.split()) & vocabulary and text not in found:
            found.append(text)
    return [Query(text, "gibberish", "tune" if n % 2 == 0 else "report") for n, text in enumerate(found)]


def make_queries(data: str | Path, seed: int = 0) -> list[Query]:
    """The whole query set, in kind order."""
    titles = Titles(recsys.load_catalog(data))
    rng = random.Random(seed)
    return [
        *title_queries(titles, rng),
        *artist_queries(titles, rng),
        *artist_word_queries(titles, rng),
        *namesake_queries(titles, rng),
        *gibberish(titles.vocabulary, rng),
    ]


def write(queries: Sequence[Query], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(FIELDS)
        writer.writerows([getattr(q, name) for name in FIELDS] for q in queries)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    queries = make_queries(args.data, args.seed)
    write(queries, args.out)
    counts: dict[str, int] = defaultdict(int)
    for q in queries:
        counts[q.kind] += 1
    print(f"wrote {len(queries)} queries to {args.out}: {dict(counts)}")


if __name__ == "__main__":
    main()
