"""The one object the bot uses to talk to recsys: serves the current snapshot and retrains it in another process.

Queries run in a worker thread so the event loop stays responsive. A retrain holds the model directory's lock,
trains, validates and stages a snapshot in a spawned process that the service owns, loads and checks the staged
copy, promotes it with one rename and swaps one reference: disk and memory never disagree.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import gc
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import recsys
import recsys.data
from bot.db import StoreError
from bot.picture_worker import PictureWorker
from bot.retraining import TrainingJob, describe, train_in_child
from bot.settings import BotSettings

log = logging.getLogger(__name__)


# Name resolution is recsys's (the CLI takes the same decision); the bot names them here for its handlers.
MatchConfig = recsys.MatchConfig
Resolution = recsys.Resolution


class RetrainBusyError(RuntimeError):
    """A retrain is already running; the lock is shared by /retrain and the schedule."""


@dataclass(frozen=True)
class RetrainOutcome:
    """The result of one retrain attempt, for the admins."""

    # "unchanged": a scheduled run found the data as the serving model (or the last failed run) saw it.
    status: Literal["swapped", "unchanged", "failed"]
    info: recsys.SnapshotInfo | None  # the model serving after the attempt
    previous_version: str | None
    error: str | None = None
    seconds: float = 0.0


class ListenerSource(Protocol):
    """Where a retrain reads the listeners that join the graph (the bot's RatingStore)."""

    def for_training(self, min_likes: int) -> dict[str, tuple[list[str], list[str]]]: ...
    def ratings_since(self, when: datetime.datetime) -> int: ...


@dataclass
class MusicService:
    """Holds the serving snapshot; answers queries off the event loop; retrains one at a time."""

    data_path: Path
    model_dir: Path
    # Passed to recsys.train (None: the library's defaults without a progress bar); pickled to the child process.
    train_config: recsys.TrainConfig | None = None
    min_metrics: Mapping[str, float] = field(default_factory=dict)
    retrain_timeout_s: float = 1800.0
    match: recsys.MatchConfig = field(default_factory=recsys.MatchConfig)
    # Listeners with at least listener_min_likes likes join the graph at each retrain; the schedule also retrains
    # when retrain_min_new_ratings ratings arrived since the serving model was trained (None: only on new data).
    listeners: ListenerSource | None = None
    listener_min_likes: int = 5
    retrain_min_new_ratings: int | None = None
    _snapshot: recsys.Snapshot | None = field(default=None, init=False, repr=False)
    # Set synchronously by start_retrain, so two /retrain in the same loop turn cannot both start one.
    _task: asyncio.Task[RetrainOutcome] | None = field(default=None, init=False, repr=False)
    _last_outcome: RetrainOutcome | None = field(default=None, init=False, repr=False)
    # The data fingerprint a retrain last failed on, and when: the schedule does not retry (nor alert) until the
    # file changes or enough new ratings arrived.
    _failed: tuple[str, datetime.datetime] | None = field(default=None, init=False, repr=False)
    # Fuzzy search is the costliest query (tens of ms on the real catalogue) and popular songs are asked for
    # again and again; keyed by model version, so a swap never serves stale hits.
    _resolutions: collections.OrderedDict[tuple[str, str], Resolution] = field(
        default_factory=collections.OrderedDict, init=False, repr=False
    )
    _cards: collections.OrderedDict[tuple[str, str], list[tuple[recsys.Track, list[recsys.Track]]]] = field(
        default_factory=collections.OrderedDict, init=False, repr=False
    )
    _pictures: PictureWorker = field(default_factory=PictureWorker, init=False, repr=False)
    resolution_cache_size: int = 2048

    @classmethod
    def from_settings(
        cls,
        settings: BotSettings,
        *,
        listeners: ListenerSource | None = None,
        data: Path | None = None,
        model_dir: Path | None = None,
        train_config: recsys.TrainConfig | None = None,
    ) -> MusicService:
        """The service as the bot's settings describe it (data and model dir overridable: the terminal's demo)."""
        return cls(
            data or settings.data,
            model_dir or settings.model_dir,
            train_config=train_config or settings.train_config(),
            min_metrics=settings.retrain_min_metrics,
            retrain_timeout_s=settings.retrain_timeout_minutes * 60,
            listeners=listeners,
            listener_min_likes=settings.listener_min_likes,
            retrain_min_new_ratings=settings.retrain_min_new_ratings or None,
        )

    # ----- lifecycle -----

    async def start(self) -> recsys.SnapshotInfo:
        """Serve the saved snapshot (or the previous one); train one only when none can be loaded (the first run).

        Raises SnapshotError at once when the model directory is something a save would refuse to replace."""
        model = recsys.ModelDir(self.model_dir)
        model.check_writable()
        for path in (self.model_dir, model.previous):
            if not path.exists():
                continue
            try:
                self._snapshot = await asyncio.to_thread(recsys.load, path)
                log.log(
                    logging.INFO if path == self.model_dir else logging.WARNING,
                    "serving model %s from %s",
                    self._snapshot.info.version,
                    path,
                )
                return self._snapshot.info
            except recsys.SnapshotError as exc:
                log.warning("no usable model in %s (%s)", path, exc)
        log.info("training a first model from %s", self.data_path)
        outcome = await self.retrain(only_if_changed=False)
        if outcome.status != "swapped" or self._snapshot is None:
            raise recsys.TrainingError(f"could not train the first model from {self.data_path}: {outcome.error}")
        return self._snapshot.info

    async def warm_up(self) -> None:
        """Freeze what start-up allocated out of the garbage collector's sight: a full collection over the model's
        millions of objects would stall every answer for ~200 ms now and then."""
        gc.freeze()

    def prestart_pictures(self) -> None:
        """Start the picture process ahead of the first "why these?" (it imports matplotlib and draws once)."""
        self._pictures.prestart()

    def _swap(self, snapshot: recsys.Snapshot) -> None:
        """Serve another snapshot: one reference, read once by every query; the old one becomes collectable."""
        gc.unfreeze()
        self._snapshot = snapshot
        gc.collect()
        gc.freeze()

    async def close(self) -> None:
        """Stop a running retrain (its process ends within seconds) and the picture process; the serving model stays
        as it is."""
        self._pictures.close()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def ready(self) -> bool:
        return self._snapshot is not None

    @property
    def snapshot(self) -> recsys.Snapshot:
        """The serving snapshot (read once per request: a retrain may swap it at any await)."""
        if self._snapshot is None:
            raise recsys.SnapshotError("no model is loaded yet; the bot is still starting")
        return self._snapshot

    @property
    def info(self) -> recsys.SnapshotInfo:
        return self.snapshot.info

    @property
    def retraining(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def last_outcome(self) -> RetrainOutcome | None:
        return self._last_outcome

    # ----- queries (each in a worker thread) -----

    async def resolve(self, text: str) -> Resolution:
        """What a user's song text means (recsys.resolve: the CLI's rule too), cached per model version."""
        snapshot = self.snapshot
        key = (snapshot.info.version, " ".join(text.casefold().split()))
        cached = self._resolutions.get(key)
        if cached is not None:
            self._resolutions.move_to_end(key)
            return cached
        resolution = await asyncio.to_thread(recsys.resolve, snapshot, text, self.match)
        self._resolutions[key] = resolution
        while len(self._resolutions) > self.resolution_cache_size:
            self._resolutions.popitem(last=False)
        return resolution

    async def recommend(self, track_id: str, *, k: int = 10, offset: int = 0) -> list[recsys.Track]:
        """Tracks like `track_id`, ranks offset+1 .. offset+k."""
        snapshot = self.snapshot
        tracks = await asyncio.to_thread(snapshot.similar_tracks, track_id, offset + k)
        return tracks[offset : offset + k]

    async def for_text(self, text: str, k: int) -> list[recsys.Track]:
        """Songs for a mood, activity, genre or decade phrase."""
        snapshot = self.snapshot
        return await asyncio.to_thread(snapshot.recommend_for_text, text, k)

    async def mix(self, seed_ids: list[str], k: int) -> list[recsys.Track]:
        """A playlist of k songs continuing the seed songs."""
        snapshot = self.snapshot
        return await asyncio.to_thread(snapshot.recommend_for_tracks, seed_ids, k)

    async def inline_cards(self, text: str, limit: int, k: int) -> list[tuple[recsys.Track, list[recsys.Track]]]:
        """(song, k songs like it) for the best name matches of an inline query, cached per model version (people
        type a query letter by letter, and popular songs are asked for again and again)."""
        snapshot = self.snapshot
        key = (snapshot.info.version, " ".join(text.casefold().split()))
        cached = self._cards.get(key)
        if cached is not None:
            self._cards.move_to_end(key)
            return cached

        def build() -> list[tuple[recsys.Track, list[recsys.Track]]]:
            hits = snapshot.search(text, limit=limit)
            return [(h.track, snapshot.similar_tracks(h.track.track_id, k)) for h in hits]

        cards = await asyncio.to_thread(build)
        self._cards[key] = cards
        while len(self._cards) > self.resolution_cache_size:
            self._cards.popitem(last=False)
        return cards

    async def for_me(
        self, likes: list[str], dislikes: list[str], listener_id: str | None, shown: list[str], k: int = 10
    ) -> list[recsys.Track]:
        """Songs for a person from their likes and dislikes (recsys decides how; shown songs are ranked down)."""
        snapshot = self.snapshot
        return await asyncio.to_thread(
            snapshot.recommend_for_ratings, likes, dislikes, k, listener_id=listener_id, shown=shown
        )

    async def why_these(self, track_id: str, k: int, offset: int = 0) -> bytes:
        """The "why these?" PNG of the page of songs like `track_id` (ranks offset+1 .. offset+k), drawn in the
        picture process (cached per model version, song and page)."""
        snapshot = self.snapshot
        seed = snapshot.track(track_id)
        tracks = (await asyncio.to_thread(snapshot.similar_tracks, track_id, offset + k))[offset:]
        profile = snapshot.audio_profile([track_id, *(t.track_id for t in tracks)])
        return await self._pictures.render((snapshot.info.version, track_id, offset), seed, tracks, profile)

    async def track(self, track_id: str) -> recsys.Track:
        """Metadata of one track; raises recsys.UnknownTrackError when the catalogue lacks it."""
        return self.snapshot.track(track_id)

    # ----- retraining -----

    async def data_changed(self) -> bool:
        """Whether the CSV's content differs from what the serving snapshot was trained on."""
        fingerprint = await asyncio.to_thread(recsys.data.file_fingerprint, self.data_path)
        return self._snapshot is None or fingerprint != self._snapshot.info.data_fingerprint

    def start_retrain(self, *, only_if_changed: bool) -> asyncio.Task[RetrainOutcome]:
        """Begin a retrain as a task; raise RetrainBusyError at once if one is running (the one shared lock)."""
        if self.retraining:
            raise RetrainBusyError("a retrain is already running")
        self._task = asyncio.create_task(self._retrain(only_if_changed), name="retrain")
        return self._task

    async def retrain(self, *, only_if_changed: bool) -> RetrainOutcome:
        """Train a new snapshot in a child process and swap it in; raise RetrainBusyError if one is running."""
        return await self.start_retrain(only_if_changed=only_if_changed)

    async def _retrain(self, only_if_changed: bool) -> RetrainOutcome:
        started = time.perf_counter()
        previous = self._snapshot.info.version if self._snapshot is not None else None
        fingerprint = None
        try:
            fingerprint = await asyncio.to_thread(self._fingerprint)
            if only_if_changed and not await asyncio.to_thread(self._due, fingerprint):
                log.info("scheduled retrain skipped: nothing new since the last attempt (%s)", self.data_path)
                outcome = RetrainOutcome("unchanged", self._snapshot.info if self._snapshot else None, previous)
            else:
                snapshot = await self._train_and_promote()
                self._swap(snapshot)
                self._failed = None
                log.info("retrained: serving %s (was %s)", snapshot.info.version, previous)
                outcome = RetrainOutcome("swapped", snapshot.info, previous, seconds=time.perf_counter() - started)
        except Exception as exc:  # every failure keeps the old model serving; the admins get the reason
            self._failed = (fingerprint, datetime.datetime.now(datetime.UTC)) if fingerprint else None
            log.error("retrain failed; still serving %s: %s", previous, describe(exc))
            outcome = RetrainOutcome(
                "failed",
                self._snapshot.info if self._snapshot else None,
                previous,
                error=describe(exc),
                seconds=time.perf_counter() - started,
            )
        self._last_outcome = outcome
        return outcome

    def _fingerprint(self) -> str:
        """The data file's fingerprint, or what keeps it from being read (a missing file is a state too: the schedule
        alerts about it once, not every interval; the training says why in its own words)."""
        try:
            return recsys.data.file_fingerprint(self.data_path)
        except OSError as exc:
            return f"unreadable: {exc.strerror or exc}"

    def _due(self, fingerprint: str) -> bool:
        """Whether a scheduled run has something new to learn: other data than what serves, or enough new ratings;
        and not what the last attempt failed on, unless enough ratings arrived since."""
        enough = self.retrain_min_new_ratings
        failed_here = self._failed is not None and self._failed[0] == fingerprint
        if failed_here and (enough is None or self._ratings_since(self._failed[1]) < enough):  # type: ignore[index]
            return False
        if self._snapshot is None or fingerprint != self._snapshot.info.data_fingerprint:
            return True
        trained = datetime.datetime.fromisoformat(self._snapshot.info.created_at)
        return enough is not None and self._ratings_since(trained) >= enough

    def _ratings_since(self, when: datetime.datetime) -> int:
        if self.listeners is None:
            return 0
        try:
            return self.listeners.ratings_since(when)
        except StoreError as exc:
            log.warning("could not count new ratings: %s", exc)
            return 0

    def _training_listeners(self) -> dict[str, recsys.ListenerRatings] | None:
        """The listeners who join the graph; none (and a warning) when the database cannot be read."""
        if self.listeners is None:
            return None
        try:
            found = self.listeners.for_training(self.listener_min_likes)
        except StoreError as exc:
            log.warning("retraining without listeners: %s", exc)
            return None
        return {lid: recsys.ListenerRatings(tuple(likes), tuple(dislikes)) for lid, (likes, dislikes) in found.items()}

    async def _train_and_promote(self) -> recsys.Snapshot:
        """Under the model directory's lock: train and stage in the child, load and check the staged copy, promote."""
        model = recsys.ModelDir(self.model_dir)
        with model.lock("bot retrain"):
            listeners = await asyncio.to_thread(self._training_listeners)
            staged, version = await train_in_child(
                TrainingJob(
                    str(self.data_path), str(self.model_dir), self.train_config, dict(self.min_metrics), listeners
                ),
                self.retrain_timeout_s,
            )
            try:
                snapshot = await asyncio.to_thread(recsys.load, staged)
                if snapshot.info.version != version:
                    raise recsys.SnapshotError(
                        f"staged model {snapshot.info.version} is not the one trained ({version})"
                    )
                await asyncio.to_thread(model.promote, staged)
            except BaseException:
                model.discard(staged)
                raise
        return snapshot
