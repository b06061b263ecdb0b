"""The one object the bot uses to talk to recsys: serves the current snapshot and retrains it in another process.

Queries run in a worker thread so the event loop stays responsive. A retrain holds the model directory's lock,
trains, validates and stages a snapshot in a spawned process that the service owns, loads and checks the staged
copy, promotes it with one rename and swaps one reference: disk and memory never disagree.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal

import recsys
import recsys.data

log = logging.getLogger(__name__)


# Name resolution is recsys's (the CLI takes the same decision); the bot names them here for its handlers.
MatchConfig = recsys.MatchConfig
Resolution = recsys.Resolution
# A child that does not end within this many seconds of SIGTERM is killed.
CHILD_EXIT_GRACE_S = 3.0


class RetrainBusyError(RuntimeError):
    """A retrain is already running; the lock is shared by /retrain and the schedule."""


class RetrainRejectedError(RuntimeError):
    """A freshly trained snapshot failed validation and was not saved."""


class RetrainFailedError(RuntimeError):
    """The training process reported a failure (its description) or died without answering."""


@dataclass(frozen=True)
class RetrainOutcome:
    """The result of one retrain attempt, for the admins."""

    # "unchanged": a scheduled run found the data as the serving model (or the last failed run) saw it.
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


def train_validate_stage(
    data_path: str,
    model_dir: str,
    train_config: recsys.TrainConfig | None,
    min_metrics: dict[str, float],
) -> tuple[str, str]:
    """Train, refuse an invalid snapshot, stage it beside the model directory; (staged path, version)."""
    # A progress bar would only scribble over the bot's log (or the terminal chat).
    config = train_config if train_config is not None else recsys.TrainConfig(progress=False)
    snapshot = recsys.train(data_path, config=config)
    problems = validate_snapshot(snapshot, min_metrics)
    if problems:
        raise RetrainRejectedError("the new model was rejected: " + "; ".join(problems))
    return str(snapshot.stage(model_dir)), snapshot.info.version


def _child_main(conn: Connection, log_level: int, *args: Any) -> None:
    """The retraining process: one answer on the pipe, ("ok", staged, version) or ("error", description)."""
    logging.basicConfig(level=log_level, format="%(asctime)s retrain %(levelname)s %(name)s: %(message)s")
    _child_init()
    try:
        conn.send(("ok", *train_validate_stage(*args)))
    except Exception as exc:
        conn.send(("error", _describe(exc)))
    finally:
        conn.close()


async def _answer(conn: Connection) -> Any:
    """The child's one message, awaited without a thread; EOFError when it died without answering."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(conn.fileno(), readable.set)
    try:
        await readable.wait()
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv()


def _end(process: BaseProcess) -> None:
    """Stop a child for good: SIGTERM, then SIGKILL after the grace period."""
    if process.is_alive():
        process.terminate()
        process.join(CHILD_EXIT_GRACE_S)
    if process.is_alive():
        process.kill()
        process.join(CHILD_EXIT_GRACE_S)


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
    _snapshot: recsys.Snapshot | None = field(default=None, init=False, repr=False)
    # Set synchronously by start_retrain, so two /retrain in the same loop turn cannot both start one.
    _task: asyncio.Task[RetrainOutcome] | None = field(default=None, init=False, repr=False)
    _last_outcome: RetrainOutcome | None = field(default=None, init=False, repr=False)
    # The data fingerprint a retrain last failed on: the schedule does not retry (nor alert) until the file changes.
    _failed_fingerprint: str | None = field(default=None, init=False, repr=False)
    # Fuzzy search is the costliest query (tens of ms on the real catalogue) and popular songs are asked for
    # again and again; keyed by model version, so a swap never serves stale hits.
    _resolutions: collections.OrderedDict[tuple[str, str], Resolution] = field(
        default_factory=collections.OrderedDict, init=False, repr=False
    )
    resolution_cache_size: int = 2048

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

    async def close(self) -> None:
        """Stop a running retrain (its process ends within seconds); the serving model stays as it is."""
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
            if only_if_changed and self._seen(fingerprint):
                log.info("scheduled retrain skipped: %s is unchanged since the last attempt", self.data_path)
                outcome = RetrainOutcome("unchanged", self._snapshot.info if self._snapshot else None, previous)
            else:
                snapshot = await self._train_and_promote()
                self._snapshot = snapshot  # the swap: one reference, read once by every query
                self._failed_fingerprint = None
                log.info("retrained: serving %s (was %s)", snapshot.info.version, previous)
                outcome = RetrainOutcome("swapped", snapshot.info, previous, seconds=time.perf_counter() - started)
        except Exception as exc:  # every failure keeps the old model serving; the admins get the reason
            self._failed_fingerprint = fingerprint
            log.error("retrain failed; still serving %s: %s", previous, _describe(exc))
            outcome = RetrainOutcome(
                "failed",
                self._snapshot.info if self._snapshot else None,
                previous,
                error=_describe(exc),
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

    def _seen(self, fingerprint: str | None) -> bool:
        """Whether a scheduled run has nothing new to try: the data is what serves, or what last failed."""
        serving = self._snapshot.info.data_fingerprint if self._snapshot is not None else None
        return fingerprint is not None and fingerprint in (serving, self._failed_fingerprint)

    async def _train_and_promote(self) -> recsys.Snapshot:
        """Under the model directory's lock: train and stage in the child, load and check the staged copy, promote."""
        model = recsys.ModelDir(self.model_dir)
        with model.lock("bot retrain"):
            staged, version = await self._train_in_child()
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

    async def _train_in_child(self) -> tuple[Path, str]:
        """Run train_validate_stage in a spawned process this service owns; (staged path, version)."""
        context = multiprocessing.get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        # A fresh process per run returns all of training's memory to the system afterwards.
        process = context.Process(
            target=_child_main,
            args=(
                send,
                logging.getLogger().getEffectiveLevel(),
                str(self.data_path),
                str(self.model_dir),
                self.train_config,
                dict(self.min_metrics),
            ),
            name="musicrec-retrain",
            daemon=True,
        )
        process.start()
        send.close()
        try:
            answer = await asyncio.wait_for(_answer(receive), timeout=self.retrain_timeout_s)
        except TimeoutError:
            raise recsys.TrainingError(
                f"training took longer than {self.retrain_timeout_s:.0f} s and was stopped; "
                "raise MUSICREC_RETRAIN_TIMEOUT_MINUTES if the data really needs longer"
            ) from None
        except EOFError:
            process.join(CHILD_EXIT_GRACE_S)
            raise RetrainFailedError(
                f"the training process died (exit code {process.exitcode}: out of memory or killed)"
            ) from None
        finally:
            _end(process)  # also on cancellation: shutting down never waits for a training to finish
            receive.close()
        if answer[0] != "ok":
            raise RetrainFailedError(answer[1])
        return Path(answer[1]), answer[2]


def _describe(exc: BaseException) -> str:
    """One line for the admins: the error's own message, or its type when it has none."""
    if isinstance(exc, RetrainFailedError):
        return str(exc)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
