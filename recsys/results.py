"""What queries return: small frozen records that carry a track_id, shared by the library, the CLI and the bot."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Track:
    """One recommended or found track."""

    track_id: str
    name: str
    artist: str
    album: str
    year: int | None
    popularity: float | None
    score: float
    reason: str | None = None

    @property
    def url(self) -> str:
        return f"https://open.spotify.com/track/{self.track_id}"


@dataclass(frozen=True)
class SearchHit:
    """A fuzzy search result: the track and how well its name matched (0..100)."""

    track: Track
    match: float
