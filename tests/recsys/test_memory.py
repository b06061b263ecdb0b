"""Process-wide memory settings: heaps kept only where a catalogue affords it; the loader's free heap given back."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_keeping_freed_memory_is_left_to_catalogues_that_can_afford_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from recsys.memory import KEEP_FREED_MAX_PAIRS, keep_freed_memory

    calls: list[str] = []
    monkeypatch.setattr(ctypes, "CDLL", lambda name: calls.append(name))
    assert keep_freed_memory(KEEP_FREED_MAX_PAIRS + 1) is False
    assert calls == []  # glibc's settings were not touched
    keep_freed_memory(KEEP_FREED_MAX_PAIRS)  # the fake library has no mallopt: it cannot apply, but it tried
    assert calls == ["libc.so.6"]


def test_loading_gives_the_loaders_free_heap_back(demo_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recsys import data

    released: list[bool] = []
    monkeypatch.setattr(data, "release_freed_memory", lambda: released.append(True) or True)
    data.load_catalog(demo_csv)
    assert released == [True]


_KERNEL_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
needs_thp = pytest.mark.skipif(
    not _KERNEL_THP.exists() or "[never]" in _KERNEL_THP.read_text(), reason="the kernel offers no huge pages"
)

# A fresh process: imports recsys (and, through it, torch), optionally keeps its heap for a catalogue of PAIRS pairs,
# then reports torch's switch, the kernel's per-process THP switch and the flags of a 64 MB tensor's mapping.
_PROBE = """
import ctypes, json, os, sys
import recsys
pairs = int(sys.argv[1])
if pairs >= 0:
    recsys.keep_freed_memory(pairs)
import torch
x = torch.ones(16 << 20)
flags = ""
lo_hi = None
for line in open("/proc/self/smaps"):
    head = line.split()[0]
    if "-" in head and not head.endswith(":"):
        lo, hi = (int(v, 16) for v in head.split("-"))
        lo_hi = lo <= x.data_ptr() < hi
    elif lo_hi and head == "VmFlags:":
        flags = line
thp_off = ctypes.CDLL("libc.so.6").prctl(42, 0, 0, 0, 0)  # PR_GET_THP_DISABLE
print(json.dumps({"env": os.environ.get("THP_MEM_ALLOC_ENABLE"), "madvised": " hg" in flags, "thp_off": thp_off}))
"""


def _probe(pairs: int, env: dict[str, str]) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(pairs)], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@needs_thp
def test_importing_recsys_asks_torch_for_huge_pages_unless_the_environment_says_no() -> None:
    assert _probe(-1, {}) == {"env": "1", "madvised": True, "thp_off": 0}
    assert _probe(-1, {"THP_MEM_ALLOC_ENABLE": "0"}) == {"env": "0", "madvised": False, "thp_off": 0}


@needs_thp
def test_a_kept_heap_turns_huge_pages_off_and_a_catalogue_too_large_to_keep_one_leaves_them_on() -> None:
    from recsys.memory import KEEP_FREED_MAX_PAIRS

    assert _probe(KEEP_FREED_MAX_PAIRS, {})["thp_off"] == 1
    assert _probe(KEEP_FREED_MAX_PAIRS + 1, {})["thp_off"] == 0


def test_asking_for_huge_pages_after_torch_is_imported_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch  # noqa: F401  (this process has made tensors: torch has read its switch)

    from recsys.memory import HUGE_PAGES_ENV, ask_torch_for_huge_pages

    monkeypatch.delenv(HUGE_PAGES_ENV, raising=False)
    assert ask_torch_for_huge_pages() is False
    assert HUGE_PAGES_ENV not in os.environ
