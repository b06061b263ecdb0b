"""A deterministic, clearly synthetic demo catalogue in the spotify_songs.csv layout, for offline runs and tests.

Planted structure: every artist belongs to one subgenre with its own audio profile, and every playlist is drawn
mostly from one subgenre, favouring a few of its artists. So a track's "right answers" are tracks of the same
artist, then of the same subgenre; tests use this as a known answer.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from recsys.data import AUDIO_FEATURES

DEMO_PATH = Path(__file__).resolve().parent.parent / "data" / "demo_songs.csv"

GENRES: dict[str, tuple[str, ...]] = {
    "pop": ("dance pop", "electropop", "indie poptimism", "post-teen pop"),
    "rap": ("hip hop", "southern hip hop", "gangster rap", "trap"),
    "rock": ("album rock", "classic rock", "permanent wave", "hard rock"),
    "latin": ("tropical", "latin pop", "reggaeton", "latin hip hop"),
    "r&b": ("urban contemporary", "hip pop", "new jack swing", "neo soul"),
    "edm": ("electro house", "big room", "pop edm", "progressive electro house"),
}
_ADJ = [
    "Neon",
    "Velvet",
    "Silver",
    "Golden",
    "Broken",
    "Electric",
    "Midnight",
    "Crimson",
    "Hollow",
    "Wild",
    "Quiet",
    "Burning",
    "Paper",
    "Glass",
    "Lucky",
    "Lonely",
    "Faded",
    "Sunday",
    "Northern",
    "Secret",
    "Cosmic",
    "Little",
    "Fading",
    "Restless",
    "Hidden",
    "Starlit",
    "Endless",
    "Rusty",
    "Frozen",
    "Tender",
]
_NOUN = [
    "Echo",
    "Horizon",
    "Heart",
    "River",
    "Signal",
    "Garden",
    "Summer",
    "Highway",
    "Ocean",
    "Mirror",
    "Shadow",
    "Fire",
    "Thunder",
    "Dream",
    "Kingdom",
    "Island",
    "Letters",
    "Lights",
    "Satellite",
    "Avenue",
    "Pulse",
    "Harbor",
    "Canyon",
    "Comet",
    "Parade",
    "Winter",
    "Motel",
    "Diamond",
    "Engine",
    "Season",
]
_ARTIST_FIRST = ["DJ", "Lil", "MC", "The", "Young", "Big", "Saint", "Lady", "Dr", "Sir"]
_ARTIST_LAST = [
    "Nova",
    "Vega",
    "Rivers",
    "Monroe",
    "Blaze",
    "Kato",
    "Sierra",
    "Onyx",
    "Atlas",
    "Rowan",
    "Juno",
    "Marlowe",
    "Quinn",
    "Reyes",
    "Stone",
    "Vale",
    "Wren",
    "Zephyr",
    "Orion",
    "Lark",
    "Ember",
    "Sable",
    "Indigo",
    "Cruz",
]
# Per-genre centre of (danceability, energy, speechiness, acousticness, instrumentalness, valence, tempo).
_GENRE_PROFILE = {
    "pop": (0.65, 0.70, 0.07, 0.15, 0.02, 0.55, 120.0),
    "rap": (0.75, 0.65, 0.25, 0.15, 0.01, 0.50, 140.0),
    "rock": (0.50, 0.75, 0.05, 0.15, 0.05, 0.50, 125.0),
    "latin": (0.72, 0.72, 0.09, 0.20, 0.02, 0.65, 105.0),
    "r&b": (0.67, 0.55, 0.10, 0.25, 0.01, 0.50, 110.0),
    "edm": (0.66, 0.85, 0.07, 0.05, 0.25, 0.40, 126.0),
}
COLUMNS = (
    "track_id",
    "track_name",
    "track_artist",
    "track_popularity",
    "track_album_id",
    "track_album_name",
    "track_album_release_date",
    "playlist_name",
    "playlist_id",
    "playlist_genre",
    "playlist_subgenre",
    *AUDIO_FEATURES,
)


def _spotify_id(rng: np.random.Generator) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), 22))


def demo_rows(seed: int = 0, artists_per_subgenre: int = 12, playlists_per_subgenre: int = 6) -> list[dict[str, str]]:
    """Generate the demo catalogue as CSV rows (strings), deterministically from the seed."""
    rng = np.random.default_rng(seed)
    tracks: list[dict[str, str]] = []
    by_subgenre: dict[str, list[list[dict[str, str]]]] = {}
    used_artists: set[str] = set()
    for genre, subgenres in GENRES.items():
        centre = np.array(_GENRE_PROFILE[genre])
        for sub in subgenres:
            sub_centre = centre + rng.normal(0, 0.04, len(centre)) * np.array([1, 1, 0.5, 1, 0.5, 1, 80])
            by_subgenre[sub] = []
            for _ in range(artists_per_subgenre):
                while True:
                    artist = f"{rng.choice(_ARTIST_FIRST)} {rng.choice(_ARTIST_LAST)} {rng.choice(_NOUN)}"
                    if artist not in used_artists:
                        used_artists.add(artist)
                        break
                artist_centre = sub_centre + rng.normal(0, 0.03, len(centre)) * np.array([1, 1, 0.5, 1, 0.5, 1, 60])
                artist_tracks: list[dict[str, str]] = []
                for _album in range(int(rng.integers(1, 3))):
                    album_id = _spotify_id(rng)
                    album_name = f"{rng.choice(_ADJ)} {rng.choice(_NOUN)}"
                    year = int(rng.integers(1975, 2020))
                    for _ in range(int(rng.integers(3, 8))):
                        d, e, s, a, ins, v, tempo = artist_centre + rng.normal(0, 0.05, len(centre)) * np.array(
                            [1, 1, 0.3, 1, 0.3, 1, 40]
                        )
                        row = {
                            "track_id": _spotify_id(rng),
                            "track_name": f"{rng.choice(_ADJ)} {rng.choice(_NOUN)}",
                            "track_artist": artist,
                            "track_popularity": str(int(np.clip(rng.normal(45, 20), 0, 100))),
                            "track_album_id": album_id,
                            "track_album_name": album_name,
                            "track_album_release_date": f"{year}-{int(rng.integers(1, 13)):02d}-01",
                            "danceability": f"{np.clip(d, 0, 1):.3f}",
                            "energy": f"{np.clip(e, 0, 1):.3f}",
                            "key": str(int(rng.integers(0, 12))),
                            "loudness": f"{rng.normal(-7 + 4 * (e - 0.6), 1.5):.3f}",
                            "mode": str(int(rng.integers(0, 2))),
                            "speechiness": f"{np.clip(s, 0.02, 1):.4f}",
                            "acousticness": f"{np.clip(a, 0, 1):.4f}",
                            "instrumentalness": f"{np.clip(ins, 0, 1):.4f}",
                            "liveness": f"{np.clip(rng.normal(0.18, 0.08), 0.02, 1):.4f}",
                            "valence": f"{np.clip(v, 0, 1):.3f}",
                            "tempo": f"{np.clip(tempo, 60, 200):.3f}",
                            "duration_ms": str(int(np.clip(rng.normal(215000, 35000), 90000, 480000))),
                            "_genre": genre,
                            "_subgenre": sub,
                        }
                        artist_tracks.append(row)
                tracks.extend(artist_tracks)
                by_subgenre[sub].append(artist_tracks)

    # A title shared by three artists (an ambiguous query) and a song released twice (single and album).
    shared = [by_subgenre[s][0][0] for s in ("dance pop", "trap", "classic rock")]
    for row in shared:
        row["track_name"] = "Home"
    original = by_subgenre["electro house"][0][0]
    reissue = dict(original, track_id=_spotify_id(rng), track_album_id=_spotify_id(rng))
    reissue["track_album_name"] = original["track_name"] + " (Single)"
    by_subgenre["electro house"][0].append(reissue)
    tracks.append(reissue)

    rows: list[dict[str, str]] = []
    for genre, subgenres in GENRES.items():
        for sub in subgenres:
            artists = by_subgenre[sub]
            for p in range(playlists_per_subgenre):
                playlist_id = _spotify_id(rng)
                name = f"{sub.title()} {('Essentials', 'Mix', 'Hits', 'Radio', 'Vibes', 'Classics')[p % 6]}"
                favourites = rng.choice(len(artists), size=4, replace=False)
                size = int(rng.integers(15, 45))
                chosen: dict[str, dict[str, str]] = {}
                while len(chosen) < size:
                    r = rng.random()
                    if r < 0.6:  # a favourite artist of this playlist
                        pool = artists[int(rng.choice(favourites))]
                    elif r < 0.9:  # any artist of the subgenre
                        pool = artists[int(rng.integers(len(artists)))]
                    else:  # noise from anywhere
                        pool = by_subgenre[str(rng.choice(list(by_subgenre)))][0]
                    row = pool[int(rng.integers(len(pool)))]
                    chosen[row["track_id"]] = row
                for row in chosen.values():
                    rows.append(
                        {
                            **{c: row[c] for c in COLUMNS if c in row},
                            "playlist_name": name,
                            "playlist_id": playlist_id,
                            "playlist_genre": genre,
                            "playlist_subgenre": sub,
                        }
                    )
    in_playlist = {r["track_id"] for r in rows}
    # Tracks no playlist drew become catalogue-only rows: features, no playlist (like new releases).
    for row in tracks:
        if row["track_id"] not in in_playlist:
            rows.append(
                {
                    **{c: row[c] for c in COLUMNS if c in row},
                    "playlist_name": "",
                    "playlist_id": "",
                    "playlist_genre": "",
                    "playlist_subgenre": "",
                }
            )
    return rows


def write_demo_csv(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write the demo catalogue CSV (labelled synthetic in its playlist names) and return its path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in demo_rows(seed):
            row = dict(row)
            row["playlist_name"] = f"[demo] {row['playlist_name']}" if row["playlist_name"] else ""
            writer.writerow(row)
    os.replace(tmp, out)
    return out
