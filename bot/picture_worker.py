"""Pictures drawn in a separate process the bot owns: matplotlib holds Python's lock while it draws (100-300 ms a
picture), which in the bot's own process would stall every other answer meanwhile."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import gc
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence

import recsys
from bot.picture import FEATURE_LABELS, render_profile

# Pictures kept per (model version, song, page): the same answer's button tapped again, or by several people in a
# group, costs nothing. ~60 kB each.
CACHE_SIZE = 256
ORPHAN_CHECK_S = 1.0  # how often the drawing process checks that the bot is still there


def _worker_init(parent: int) -> None:
    """The drawing process: Ctrl-C is its parent's business, it ends when its parent is gone (even killed with -9,
    which no queue reports), and its first picture (imports, fonts) is drawn now."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    seed = recsys.Track("warm-up", "warm-up", "warm-up", "", None, None, 0.0)
    render_profile(seed, [], {"warm-up": dict.fromkeys(FEATURE_LABELS, 0.0)})
    # What is loaded by now (torch, numpy, matplotlib, the fonts, the pictures' shared background) lives as long as
    # the process: out of the garbage collector's sight, a picture's thousands of short-lived objects no longer
    # trigger full collections over all of it (bench/bench_picture.py --freeze: the slow tail is those).
    gc.freeze()


class PictureWorker:
    """One drawing process, started on first use and replaced if it dies; results cached per model version."""

    def __init__(self) -> None:
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._cache: collections.OrderedDict[tuple[str, str, int], bytes] = collections.OrderedDict()

    def start(self) -> None:
        """Create the pool; its process starts (and draws its warm-up picture) with the first picture."""
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = concurrent.futures.ProcessPoolExecutor(
                1, mp_context=context, initializer=_worker_init, initargs=(os.getpid(),)
            )

    def prestart(self) -> None:
        """Start the process now, in the background, so that the first picture does not wait for it."""
        self.start()
        assert self._pool is not None
        self._pool.submit(int)

    async def render(
        self,
        key: tuple[str, str, int],
        seed: recsys.Track,
        tracks: Sequence[recsys.Track],
        profile: Mapping[str, Mapping[str, float]],
    ) -> bytes:
        """The PNG of render_profile(seed, tracks, profile), drawn in the worker; `key` = (version, song, page)."""
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        self.start()
        assert self._pool is not None
        try:
            png = await asyncio.wrap_future(self._pool.submit(render_profile, seed, list(tracks), dict(profile)))
        except concurrent.futures.process.BrokenProcessPool:
            self.close()  # the next picture starts a new process
            raise
        self._cache[key] = png
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return png

    def close(self) -> None:
        """End the drawing process without waiting for pictures in progress."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())  # no public handle on them
        with contextlib.suppress(Exception):
            pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
