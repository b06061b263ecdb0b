"""Process-wide memory settings for the processes that load and train on large catalogues: glibc's heap, and
transparent huge pages for torch's tensors."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

__all__ = [
    "HUGE_PAGES_ENV",
    "KEEP_FREED_MAX_PAIRS",
    "ask_torch_for_huge_pages",
    "keep_freed_memory",
    "release_freed_memory",
]

# torch's own switch: its CPU tensors of 2 MB and more are madvise'd for transparent huge pages. torch reads it once,
# when recsys's imports make their first tensor, so recsys/__init__ sets it before importing anything of torch.
HUGE_PAGES_ENV = "THP_MEM_ALLOC_ENABLE"
_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
_PR_SET_THP_DISABLE = 41  # linux/prctl.h


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


def ask_torch_for_huge_pages() -> bool:
    """Set torch's huge-page switch (HUGE_PAGES_ENV) unless the environment already sets it (0 keeps it off), where
    the kernel offers transparent huge pages. Called by recsys/__init__ before torch is imported; later it changes
    nothing in this process. Returns whether the switch is on.

    Above KEEP_FREED_MAX_PAIRS, where keep_freed_memory() leaves glibc's defaults, every large tensor a training step
    makes is mapped afresh and faulted in page by page: one 66M-pair epoch took 109M page faults and 366 s of system
    time. With huge pages 6.3M and 220 s, and the epoch 370 s instead of 432 s at the same peak RSS (18.95 GB),
    ad hoc, one epoch each way on bench_scale.py's catalogue. Below it keep_freed_memory() turns them off again."""
    if "torch" not in sys.modules and _kernel_has_huge_pages():
        os.environ.setdefault(HUGE_PAGES_ENV, "1")
    return os.environ.get(HUGE_PAGES_ENV, "0").strip() not in ("", "0")


def _kernel_has_huge_pages() -> bool:
    try:
        return "[never]" not in _THP_MODE.read_text()
    except OSError:
        return False


def keep_freed_memory(num_pairs: int = 0) -> bool:
    """Make glibc serve every allocation from its heap and keep freed memory for reuse, for a training on num_pairs
    playlist-track pairs (up to KEEP_FREED_MAX_PAIRS; above it nothing changes: memory matters more than speed).

    A training step allocates and frees tensors of hundreds of MB; by default glibc maps each one afresh and its
    pages fault in again on first touch, a large share of a 10M-pair epoch. A kept heap also turns transparent huge
    pages off for this process (prctl PR_SET_THP_DISABLE): with torch's huge pages on a kept heap a 10M-pair epoch
    took 45.1 and 46.1 s against 43.6 and 43.1 without (bench_scale.py's train stage, alternating), and with huge
    pages but no kept heap 53.7 s. Process-wide, so it is called by the processes that exist to train (musicrec
    train, the bot's retraining child, the benchmarks), not by fit(), and best after the catalogue is loaded (the
    loader's temporaries are then given back, not kept). Returns whether it applied (glibc only)."""
    if num_pairs > KEEP_FREED_MAX_PAIRS:
        return False
    libc = _libc()
    if libc is None:
        return False
    try:
        m_trim_threshold, m_mmap_max = -1, -4
        kept = bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
        if kept:
            libc.prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0)  # may fail (old kernels, sandboxes): then they stay on
        return kept
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
