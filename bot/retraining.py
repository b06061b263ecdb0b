"""Retraining in a child process: train, validate and stage a snapshot there; the parent owns the process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import recsys

log = logging.getLogger(__name__)

# A child that does not end within this many seconds of SIGTERM is killed.
CHILD_EXIT_GRACE_S = 3.0


class RetrainRejectedError(RuntimeError):
    """A freshly trained snapshot failed validation and was not saved."""


class RetrainFailedError(RuntimeError):
    """The training process reported a failure (its description) or died without answering."""


def validate_snapshot(snapshot: recsys.Snapshot, min_metrics: Mapping[str, float]) -> list[str]:
    """Why a snapshot must not serve (empty list: it may): NaN metrics or scores, metrics under their floor."""
    problems: list[str] = []
    info = snapshot.info
    if info.num_tracks <= 0:
        problems.append("the catalogue is empty")
    for name, value in info.metrics.items():
        if not math.isfinite(value) and not recsys.may_be_unmeasured(name):
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
    """Make the training process yield to the bot: lower priority, and leave a core free for the event loop. Ctrl-C
    is the parent's to handle (it ends this process), not a KeyboardInterrupt traceback in here."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):  # not permitted everywhere
        os.nice(10)
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    recsys.keep_freed_memory()


@dataclass(frozen=True)
class TrainingJob:
    """What a retrain trains on and where it stages the result; pickled to the child process."""

    data_path: str
    model_dir: str
    # None: the library's defaults without a progress bar.
    train_config: recsys.TrainConfig | None
    min_metrics: dict[str, float]
    # Listeners that join the graph as nodes (None: none).
    listeners: dict[str, recsys.ListenerRatings] | None = None


def train_validate_stage(job: TrainingJob) -> tuple[str, str]:
    """Train, refuse an invalid snapshot, stage it beside the model directory; (staged path, version)."""
    # A progress bar would only scribble over the bot's log (or the terminal chat).
    config = job.train_config if job.train_config is not None else recsys.TrainConfig(progress=False)
    snapshot = recsys.train(job.data_path, config=config, listeners=job.listeners)
    problems = validate_snapshot(snapshot, job.min_metrics)
    if problems:
        raise RetrainRejectedError("the new model was rejected: " + "; ".join(problems))
    return str(snapshot.stage(job.model_dir)), snapshot.info.version


def _child_main(conn: Connection, log_level: int, log_file: str | None, job: TrainingJob) -> None:
    """The retraining process: one answer on the pipe, ("ok", staged, version) or ("error", description); it logs
    where its parent logs (a file, for the terminal chat, so that no log line lands inside the chat)."""
    logging.basicConfig(
        level=log_level, format="%(asctime)s retrain %(levelname)s %(name)s: %(message)s", filename=log_file
    )
    _child_init()
    try:
        conn.send(("ok", *train_validate_stage(job)))
    except Exception as exc:
        conn.send(("error", describe(exc)))
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


async def train_in_child(job: TrainingJob, timeout_s: float) -> tuple[Path, str]:
    """Run train_validate_stage in a spawned process the caller owns until it answers; (staged path, version).

    Cancelling the await (a shutdown) ends the process within seconds: nobody waits for a training to finish."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    # A fresh process per run returns all of training's memory to the system afterwards.
    process = context.Process(
        target=_child_main,
        args=(send, logging.getLogger().getEffectiveLevel(), _log_file(), job),
        name="musicrec-retrain",
        daemon=True,
    )
    process.start()
    send.close()
    try:
        answer = await asyncio.wait_for(_answer(receive), timeout=timeout_s)
    except TimeoutError:
        raise recsys.TrainingError(
            f"training took longer than {timeout_s:.0f} s and was stopped; "
            "raise MUSICREC_RETRAIN_TIMEOUT_MINUTES if the data really needs longer"
        ) from None
    except EOFError:
        process.join(CHILD_EXIT_GRACE_S)
        raise RetrainFailedError(
            f"the training process died (exit code {process.exitcode}: out of memory or killed)"
        ) from None
    finally:
        _end(process)
        receive.close()
    if answer[0] != "ok":
        raise RetrainFailedError(answer[1])
    return Path(answer[1]), answer[2]


def _log_file() -> str | None:
    """The file the root logger writes to, if it writes to one."""
    files = [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    return files[0] if files else None


def describe(exc: BaseException) -> str:
    """One line for the admins: the error's own message, or its type when it has none."""
    if isinstance(exc, RetrainFailedError):
        return str(exc)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
