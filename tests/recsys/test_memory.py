"""Process-wide memory settings: heaps kept only where a catalogue affords it; the loader's free heap given back."""

from __future__ import annotations

import ctypes
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
