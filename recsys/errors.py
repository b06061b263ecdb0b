"""The one exception family of recsys: every error the library raises on purpose is a RecsysError."""

from __future__ import annotations


class RecsysError(Exception):
    """Base class: catch this to handle any expected recsys failure."""


class DataError(RecsysError):
    """The input CSV is missing, unreadable, or not in the expected layout."""


class DataDownloadError(DataError):
    """The public dataset could not be downloaded or failed verification."""


class UnknownTrackError(RecsysError, KeyError):
    """A track id that the snapshot's catalogue does not hold."""

    def __init__(self, track_id: str) -> None:
        super().__init__(track_id)
        self.track_id = track_id

    def __str__(self) -> str:
        return f"unknown track_id {self.track_id!r}: it is not in this model's catalogue"


class UnknownPlaylistError(RecsysError, KeyError):
    """A playlist id that the snapshot was not trained on."""

    def __init__(self, playlist_id: str) -> None:
        super().__init__(playlist_id)
        self.playlist_id = playlist_id

    def __str__(self) -> str:
        return f"unknown playlist_id {self.playlist_id!r}: it is not one of the playlists the model was trained on"


class UnknownListenerError(RecsysError, KeyError):
    """A listener id that the snapshot was not trained with (its ratings came later, or it rated no known track)."""

    def __init__(self, listener_id: str) -> None:
        super().__init__(listener_id)
        self.listener_id = listener_id

    def __str__(self) -> str:
        return (
            f"unknown listener_id {self.listener_id!r}: the model was trained without this listener's ratings; "
            "use recommend_for_ratings until the next retrain"
        )


class InvalidQueryError(RecsysError, ValueError):
    """A query the model cannot answer as asked (for example no seed tracks)."""


class SnapshotError(RecsysError):
    """A snapshot directory is missing, partial, corrupt or from an incompatible version."""


class TrainingError(RecsysError):
    """Training failed or produced an unusable model (for example NaN embeddings)."""
