"""The one object the bot uses to talk to recsys: serves the current snapshot and retrains it in another process.

Queries run in a worker thread so the event loop stays responsive; a retrain trains, validates and saves in a
spawned process, then the parent loads the saved snapshot and swaps one reference.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import math
import multiprocessing
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import recsys
import recsys.data

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Resolution:
    """What a user's text matched: one clear track, several candidates, or none (with the closest names)."""

    kind: Literal["match", "ambiguous", "none"]
    hits: tuple[recsys.SearchHit, ...]


class RetrainBusyError(RuntimeError):
    """A retrain is already running; the lock is shared by /retrain and the schedule."""


class RetrainRejectedError(RuntimeError):
    """A freshly trained snapshot failed validation and was not saved."""


@dataclass(frozen=True)
class RetrainOutcome:
    """The result of one retrain attempt, for the admins."""

    status: Literal["swapped", "unchanged", "failed"]
    info: recsys.SnapshotInfo | None  # the model serving after the attempt
    previous_version: str | None
    error: str | None = None
    seconds: float = 0.0


def validate_snapshot(snapshot: recsys.Snapshot, min_metrics: Mapping[str, float]) -> list[str]:
    """Why a snapshot must not serve (empty list: it may): NaN metrics or scores, metrics under their floor."""
    problems: list[str] = []
    info = snapshot.info
    if info.num_tracks <= 0:
        problems.append("the catalogue is empty")
    for name, value in info.metrics.items():
        if not math.isfinite(value):
            problems.append(f"metric {name} is {value}")
    for name, floor in min_metrics.items():
        found = info.metrics.get(name)
        if found is None:
            problems.append(f"metric {name} is missing (have: {', '.join(sorted(info.metrics)) or 'none'})")
        elif found < floor:
            problems.append(f"metric {name} = {found:.4f} is below the floor {floor:.4f}")
    if not problems:
        # A query through the whole serving path catches NaN embeddings that metrics might average away.
        hits = snapshot.search("a", limit=1) or snapshot.search("the", limit=1)
        if hits:
            scores = [t.score for t in snapshot.similar_tracks(hits[0].track.track_id, k=5)]
            if not scores or not all(math.isfinite(s) for s in scores):
                problems.append(f"similar_tracks returned unusable scores {scores}")
    return problems


def _child_init() -> None:
    """Make the training process yield to the bot: lower priority, and leave a core free for the event loop."""
    with contextlib.suppress(OSError):  # not permitted everywhere
        os.nice(10)
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    recsys.keep_freed_memory()


def train_validate_save(
    data_path: str,
    model_dir: str,
    train_config: recsys.TrainConfig | None,
    min_metrics: dict[str, float],
    log_level: int = logging.INFO,
) -> str:
    """Runs in the child process: train, refuse an invalid snapshot, save atomically; returns the new version."""
    logging.basicConfig(level=log_level, format="%(asctime)s retrain %(levelname)s %(name)s: %(message)s")
    # A progress bar would only scribble over the bot's log (or the terminal chat).
    config = train_config if train_config is not None else recsys.TrainConfig(progress=False)
    snapshot = recsys.train(data_path, config=config)
    problems = validate_snapshot(snapshot, min_metrics)
    if problems:
        raise RetrainRejectedError("the new model was rejected: " + "; ".join(problems))
    snapshot.save(model_dir)
    return snapshot.info.version


@dataclass
class MusicService:
    """Holds the serving snapshot; answers queries off the event loop; retrains under one lock."""

    data_path: Path
    model_dir: Path
    # Passed to recsys.train (None: the library's defaults without a progress bar); pickled to the child process.
    train_config: recsys.TrainConfig | None = None
    min_metrics: Mapping[str, float] = field(default_factory=dict)
    retrain_timeout_s: float = 1800.0
    match: MatchConfig = field(default_factory=MatchConfig)
    _snapshot: recsys.Snapshot | None = field(default=None, init=False, repr=False)
    # Set synchronously by start_retrain, so two /retrain in the same loop turn cannot both start one.
    _busy: bool = field(default=False, init=False, repr=False)
    _last_outcome: RetrainOutcome | None = field(default=None, init=False, repr=False)
    # Fuzzy search is the costliest query (tens of ms on the real catalogue) and popular songs are asked for
    # again and again; keyed by model version, so a swap never serves stale hits.
    _resolutions: collections.OrderedDict[tuple[str, str], Resolution] = field(
        default_factory=collections.OrderedDict, init=False, repr=False
    )
    resolution_cache_size: int = 2048

    # ----- lifecycle -----

    async def start(self) -> recsys.SnapshotInfo:
        """Serve the saved snapshot; train one only when none can be loaded (the first run)."""
        try:
            self._snapshot = await asyncio.to_thread(recsys.load, self.model_dir)
            log.info("serving saved model %s from %s", self._snapshot.info.version, self.model_dir)
            return self._snapshot.info
        except recsys.SnapshotError as exc:
            # A first run has no directory yet: that is normal; anything else (a corrupt model) deserves a warning.
            log.log(
                logging.WARNING if self.model_dir.exists() else logging.INFO,
                "no usable saved model in %s (%s)",
                self.model_dir,
                exc,
            )
        previous = self.model_dir.with_name(self.model_dir.name + ".prev")  # where Snapshot.save keeps the last one
        if self.model_dir.exists() and previous.exists():
            try:
                self._snapshot = await asyncio.to_thread(recsys.load, previous)
                log.warning("serving the previous model %s from %s", self._snapshot.info.version, previous)
                return self._snapshot.info
            except recsys.SnapshotError as exc:
                log.warning("the previous model in %s is unusable too (%s)", previous, exc)
        log.info("training a first model from %s", self.data_path)
        outcome = await self.retrain(only_if_changed=False)
        if outcome.status != "swapped" or self._snapshot is None:
            raise recsys.TrainingError(f"could not train the first model from {self.data_path}: {outcome.error}")
        return self._snapshot.info

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
        return self._busy

    @property
    def last_outcome(self) -> RetrainOutcome | None:
        return self._last_outcome

    # ----- queries (each in a worker thread) -----

    async def resolve(self, text: str) -> Resolution:
        """Fuzzy-match a user's song text against the catalogue."""
        snapshot = self.snapshot
        key = (snapshot.info.version, " ".join(text.casefold().split()))
        cached = self._resolutions.get(key)
        if cached is not None:
            self._resolutions.move_to_end(key)
            return cached
        hits = await asyncio.to_thread(snapshot.search, text, self.match.max_choices + 1)
        resolution = self.classify(text, hits)
        self._resolutions[key] = resolution
        while len(self._resolutions) > self.resolution_cache_size:
            self._resolutions.popitem(last=False)
        return resolution

    def classify(self, query: str, hits: list[recsys.SearchHit]) -> Resolution:
        """Decide between answering, asking which one, and "not found" (pure; unit-testable)."""
        # Versions of one song ("Bohemian Rhapsody - 2011 Remaster", "... - Live") are one choice, not several:
        # the best-matching (then most popular, as search ranks) version stands for them.
        unique: dict[tuple[str, str], recsys.SearchHit] = {}
        for hit in sorted(hits, key=lambda h: h.match, reverse=True):
            unique.setdefault(_song_key(hit.track), hit)
        ranked = list(unique.values())
        if not ranked or ranked[0].match < self.match.min_score:
            return Resolution("none", tuple(ranked[:3]))
        top = ranked[0]
        runner_up = ranked[1].match if len(ranked) > 1 else -math.inf
        # The same title by another artist makes it a question however the scores fall ("Yellow" vs
        # "Yellow - Remastered" differ by ~10 points only because of the suffix).
        namesake = any(_song_key(h.track)[0] == _song_key(top.track)[0] for h in ranked[1:])
        if top.match >= self.match.clear_score and top.match - runner_up >= self.match.clear_margin and not namesake:
            return Resolution("match", (top,))
        # "Title - Artist" (or "title artistword"): fuzzy scores of namesakes stay close, but one hit has the title
        # and more of its artist's name in the query than any other.
        named = {h: _artist_named(query, h.track) for h in ranked if h.match >= self.match.min_score}
        best_named = max(named.values(), default=0.0)
        leaders = [h for h, share in named.items() if share == best_named]
        if best_named > 0 and len(leaders) == 1:
            return Resolution("match", (leaders[0],))
        floor = max(self.match.min_score, top.match - self.match.choice_window)
        candidates = [h for h in ranked if h.match >= floor][: self.match.max_choices]
        return Resolution("ambiguous", tuple(candidates))

    async def recommend(self, track_id: str, *, k: int = 10, offset: int = 0) -> list[recsys.Track]:
        """Tracks like `track_id`, ranks offset+1 .. offset+k."""
        snapshot = self.snapshot
        tracks = await asyncio.to_thread(snapshot.similar_tracks, track_id, offset + k)
        return tracks[offset : offset + k]

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
        if self._busy:
            raise RetrainBusyError("a retrain is already running")
        self._busy = True
        try:
            return asyncio.create_task(self._retrain(only_if_changed), name="retrain")
        except BaseException:
            self._busy = False
            raise

    async def retrain(self, *, only_if_changed: bool) -> RetrainOutcome:
        """Train a new snapshot in a child process and swap it in; raise RetrainBusyError if one is running."""
        return await self.start_retrain(only_if_changed=only_if_changed)

    async def _retrain(self, only_if_changed: bool) -> RetrainOutcome:
        started = time.perf_counter()
        previous = self._snapshot.info.version if self._snapshot is not None else None
        try:
            if only_if_changed and not await self.data_changed():
                log.info("scheduled retrain skipped: %s is unchanged since model %s", self.data_path, previous)
                outcome = RetrainOutcome("unchanged", self._snapshot.info if self._snapshot else None, previous)
            else:
                version = await self._train_in_child()
                snapshot = await asyncio.to_thread(recsys.load, self.model_dir)
                if snapshot.info.version != version:
                    raise recsys.SnapshotError(
                        f"saved model {snapshot.info.version} is not the one just trained ({version})"
                    )
                self._snapshot = snapshot  # the swap: one reference, read once by every query
                log.info("retrained: serving %s (was %s)", snapshot.info.version, previous)
                outcome = RetrainOutcome("swapped", snapshot.info, previous, seconds=time.perf_counter() - started)
        except Exception as exc:  # every failure keeps the old model serving; the admins get the reason
            log.error("retrain failed; still serving %s: %s", previous, exc, exc_info=exc)
            outcome = RetrainOutcome(
                "failed",
                self._snapshot.info if self._snapshot else None,
                previous,
                error=_describe(exc),
                seconds=time.perf_counter() - started,
            )
        finally:
            self._busy = False
        self._last_outcome = outcome
        return outcome

    async def _train_in_child(self) -> str:
        context = multiprocessing.get_context("spawn")
        # A fresh process per run returns all of training's memory to the system afterwards.
        executor = concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_child_init)
        try:
            future = executor.submit(
                train_validate_save,
                str(self.data_path),
                str(self.model_dir),
                self.train_config,
                dict(self.min_metrics),
                logging.getLogger().getEffectiveLevel(),
            )
            try:
                return await asyncio.wait_for(asyncio.wrap_future(future), timeout=self.retrain_timeout_s)
            except TimeoutError:
                # ProcessPoolExecutor cannot cancel a running task; end the process it runs in.
                for process in list(getattr(executor, "_processes", {}).values()):
                    process.terminate()
                raise recsys.TrainingError(
                    f"training took longer than {self.retrain_timeout_s:.0f} s and was stopped; "
                    "raise MUSICREC_RETRAIN_TIMEOUT_MINUTES if the data really needs longer"
                ) from None
        finally:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)


def _words(text: str) -> str:
    """The text as search sees it (lower case, no accents or punctuation), padded, for whole-word tests."""
    return " " + " ".join(recsys.fold(text).split()) + " "


def _song_key(track: recsys.Track) -> tuple[str, str]:
    """(base title, artist): the title without a " - Remastered"/"(Live)" style suffix."""
    base = re.split(r" - | \(| \[", track.name, maxsplit=1)[0]
    return _words(base), _words(track.artist)


def _artist_named(query: str, track: recsys.Track) -> float:
    """0 unless the query contains the track's whole title; then the share of its artist's words (those not in
    the title) that the query contains: "bad guy billie" names Billie Eilish's "bad guy" (0.5), not Critic
    City's (0)."""
    words = _words(query)
    if _words(track.name) not in words:
        return 0.0
    title_words = set(_words(track.name).split())
    artist_words = [w for w in _words(track.artist).split() if w not in title_words and len(w) > 1]
    if not artist_words:
        return 0.0
    return sum(f" {w} " in words for w in artist_words) / len(artist_words)


def _describe(exc: BaseException) -> str:
    """One line for the admins: the error's own message, or its type when it has none."""
    if isinstance(exc, concurrent.futures.process.BrokenProcessPool):
        return "the training process died (out of memory or killed)"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
