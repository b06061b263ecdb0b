"""MusicService: match classification, snapshot validation, and the shared retrain lock."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

import recsys
from bot.service import MusicService, RetrainBusyError, validate_snapshot


def _hit(track_id: str, name: str, artist: str, match: float) -> recsys.SearchHit:
    return recsys.SearchHit(recsys.Track(track_id, name, artist, "", None, None, 0.0), match)


@pytest.fixture
def service(tmp_path: Path) -> MusicService:
    return MusicService(tmp_path / "songs.csv", tmp_path / "model")


def test_clear_match(service: MusicService) -> None:
    hits = [_hit("a", "Yellow", "Coldplay", 100), _hit("b", "Yellow Flicker", "X", 86)]
    assert service.classify("yellow", hits).kind == "match"


def test_same_title_by_several_artists_is_ambiguous(service: MusicService) -> None:
    hits = [_hit(str(i), "Hello", f"Artist {i}", 100) for i in range(7)]
    resolution = service.classify("hello", hits)
    assert resolution.kind == "ambiguous" and len(resolution.hits) == 5


def test_title_and_artist_in_the_query_pick_one_namesake(service: MusicService) -> None:
    hits = [_hit("a", "Hello", "Adele", 97), _hit("b", "Hello", "Lionel Richie", 90), _hit("c", "Hell", "Adelaide", 88)]
    resolution = service.classify("Hello - Adele", hits)
    assert resolution.kind == "match" and resolution.hits[0].track.track_id == "a"
    # A partial artist word is not the artist.
    assert service.classify("Hello - Ade", hits).kind == "ambiguous"


def test_title_and_one_artist_word_pick_one_namesake(service: MusicService) -> None:
    hits = [_hit("a", "bad guy", "Billie Eilish", 90.0), _hit("b", "Bad Guy", "Critic City", 87.0)]
    resolution = service.classify("bad guy billie", hits)
    assert resolution.kind == "match" and resolution.hits[0].track.track_id == "a"
    accented = [_hit("s", "Señorita", "Shawn Mendes", 90.0), _hit("z", "Senorita", "Zita", 86.0)]
    assert service.classify("senorita shawn", accented).hits[0].track.track_id == "s"
    assert service.classify("senorita shawn", accented).kind == "match"
    # A word of the artist that is also in the title does not single a namesake out.
    same = [_hit("x", "Love Song", "Love Band", 95.0), _hit("y", "Love Song", "Other", 95.0)]
    assert service.classify("love song", same).kind == "ambiguous"


def test_weak_hits_are_no_match_with_suggestions(service: MusicService) -> None:
    hits = [_hit(str(i), f"Song {i}", "A", 40 - i) for i in range(5)]
    resolution = service.classify("zzz", hits)
    assert resolution.kind == "none" and len(resolution.hits) == 3
    assert service.classify("zzz", []).kind == "none"


def test_duplicate_hits_count_once(service: MusicService) -> None:
    hits = [_hit("a", "Yellow", "Coldplay", 100), _hit("a", "Yellow", "Coldplay", 100)]
    assert service.classify("yellow", hits).kind == "match"


def test_validation_refuses_nan_and_low_metrics(snapshot: recsys.Snapshot) -> None:
    assert validate_snapshot(snapshot, {}) == []
    [name] = [k for k in snapshot.info.metrics if "recall" in k]
    assert "below the floor" in validate_snapshot(snapshot, {name: 2.0})[0]
    assert "missing" in validate_snapshot(snapshot, {"no_such_metric": 0.1})[0]

    class NaNInfo:
        def __getattr__(self, item: str) -> object:
            return {name: math.nan} if item == "metrics" else getattr(snapshot.info, item)

    class NaNSnapshot:
        info = NaNInfo()

    assert "nan" in validate_snapshot(NaNSnapshot(), {})[0]  # type: ignore[arg-type]


async def test_one_retrain_at_a_time_and_failure_keeps_serving(workdir: Path) -> None:
    service = MusicService(workdir / "missing.csv", workdir / "model")
    await service.start()
    version = service.info.version
    task = service.start_retrain(only_if_changed=False)
    with pytest.raises(RetrainBusyError):
        service.start_retrain(only_if_changed=True)
    outcome = await asyncio.wait_for(task, 120)
    assert outcome.status == "failed" and "does not exist" in (outcome.error or "")
    assert service.info.version == version and not service.retraining


async def test_resolutions_are_cached_per_model_version(workdir: Path) -> None:
    service = MusicService(workdir / "songs.csv", workdir / "model", resolution_cache_size=2)
    await service.start()
    calls: list[str] = []
    real_search = service.snapshot.search

    def counting_search(text: str, limit: int = 5) -> list[recsys.SearchHit]:
        calls.append(text)
        return real_search(text, limit)

    service.snapshot.search = counting_search  # type: ignore[method-assign]
    first = await service.resolve("Silver  Season")
    assert await service.resolve("silver season") == first  # same words, same answer, no new search
    assert len(calls) == 1
    await service.resolve("a")
    await service.resolve("b")  # evicts "silver season" (cache of 2)
    await service.resolve("silver season")
    assert len(calls) == 4


async def test_a_corrupt_model_falls_back_to_the_previous_one_without_training(workdir: Path) -> None:
    import shutil

    shutil.copytree(workdir / "model", workdir / "model.prev")
    good = recsys.load(workdir / "model.prev").info.version
    for path in (workdir / "model").iterdir():
        path.write_bytes(b"garbage")
    service = MusicService(workdir / "missing.csv", workdir / "model")  # training would fail: no CSV
    info = await service.start()
    assert info.version == good and service.last_outcome is None


def test_versions_of_one_song_are_one_choice(service: MusicService) -> None:
    hits = [
        _hit("a", "Bohemian Rhapsody - 2011 Remaster", "Queen", 90),
        _hit("b", "Bohemian Rhapsody - Live Aid", "Queen", 90),
        _hit("c", "Bohemian Rhapsody (Remastered)", "Queen", 90),
        _hit("d", "Bohemian Like You", "The Dandy Warhols", 81),
    ]
    resolution = service.classify("Bohemian Rhapsody", hits)
    assert resolution.kind == "match" and resolution.hits[0].track.track_id == "a"
    # The same title by two artists is still a question.
    hits.append(_hit("e", "Bohemian Rhapsody", "Panic! At The Disco", 100))
    resolution = service.classify("Bohemian Rhapsody", hits)
    assert resolution.kind == "ambiguous"
    assert [h.track.track_id for h in resolution.hits][:2] == ["e", "a"]
