"""Process-wide glibc memory settings for the processes that load and train on large catalogues."""

from __future__ import annotations

import ctypes

__all__ = ["KEEP_FREED_MAX_PAIRS", "keep_freed_memory", "release_freed_memory"]


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


# Above this many playlist-track pairs keep_freed_memory() leaves glibc's defaults alone. A kept heap never shrinks
# and fragments: in a trial at the Million Playlist Dataset's 66M pairs it outgrew a 24 GB machine before the first
# backward pass, where freed memory given back kept the training within it (docs/scale_mpd.md); at 10M it only saves
# page faults.
KEEP_FREED_MAX_PAIRS = 20_000_000
# Tried above it and not kept: torch's transparent huge pages (THP_MEM_ALLOC_ENABLE=1 at process start), so that
# tensors mapped afresh fault in 2 MB at a time. One 66M-pair epoch (ad hoc, one each way) took 370 s with them
# against 432 s (page faults 6.3M vs 109M), but bench_scale.py's train stage with them read 493 s (median of 2; the
# last report without them: 449 s). On a kept heap (10M pairs) they cost ~5% (45.1 and 46.1 s vs 43.6 and 43.1).


def keep_freed_memory(num_pairs: int = 0) -> bool:
    """Make glibc serve every allocation from its heap and keep freed memory for reuse, for a training on num_pairs
    playlist-track pairs (up to KEEP_FREED_MAX_PAIRS; above it nothing changes: memory matters more than speed).

    A training step allocates and frees tensors of hundreds of MB; by default glibc maps each one afresh and its
    pages fault in again on first touch, a large share of a 10M-pair epoch. Process-wide, so it is called
    by the processes that exist to train (musicrec train, the bot's retraining child, the benchmarks), not by
    fit(), and best after the catalogue is loaded (the loader's temporaries are then given back, not kept).
    Returns whether it applied (glibc only)."""
    if num_pairs > KEEP_FREED_MAX_PAIRS:
        return False
    libc = _libc()
    if libc is None:
        return False
    try:
        m_trim_threshold, m_mmap_max = -1, -4
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except AttributeError:
        return False


def release_freed_memory() -> bool:
    """Give the free pages of glibc's heap back to the system (malloc_trim): after the loader, whose per-chunk
    temporaries leave a heap full of holes that would otherwise count against the training that follows. Returns
    whether glibc released anything (False elsewhere)."""
    libc = _libc()
    if libc is None:
        return False
    try:
        return bool(libc.malloc_trim(0))
    except AttributeError:
        return False
