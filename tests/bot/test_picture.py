"""The "why these?" picture: a PNG of the intended size that draws the values it is given where they belong, for
extreme values, no recommendations, and titles in any script; safe to render from several threads at once."""

from __future__ import annotations

import asyncio
import io
import struct
import sys
import warnings

import numpy as np
import pytest

import recsys
from bot import picture
from bot.picture import SIZE_PX, pixel_of, plotted, render_profile

pytest.importorskip("matplotlib")
from matplotlib.image import imread

FEATURES = ("danceability", "energy", "valence", "acousticness", "tempo")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SEED_RGB = np.array([0xE8, 0x59, 0x0C]) / 255
TRACK_RGB = np.array([0x19, 0x71, 0xC2]) / 255


def track(i: int, name: str = "", artist: str = "") -> recsys.Track:
    return recsys.Track(f"t{i}", name or f"Song {i}", artist or f"Artist {i}", "Album", 2001, 50.0, 1.0)


def example(
    seed_values: list[float], track_values: list[list[float]], name: str = "", artist: str = ""
) -> tuple[recsys.Track, list[recsys.Track], dict[str, dict[str, float]]]:
    seed, tracks = track(0, name, artist), [track(i + 1) for i in range(len(track_values))]
    profile = {
        t.track_id: dict(zip(FEATURES, v, strict=True))
        for t, v in zip([seed, *tracks], [seed_values, *track_values], strict=True)
    }
    return seed, tracks, profile


def spread(k: int = 10) -> list[list[float]]:
    """k recommendations around the typical song: feature f of recommendation i is (i - k/2) / k - 0.5 + 0.1 f."""
    return [[(i - k / 2) / k - 0.5 + 0.1 * f for f in range(len(FEATURES))] for i in range(k)]


def pixels(png: bytes) -> np.ndarray:
    return imread(io.BytesIO(png), format="png")[:, :, :3]  # [height, width, rgb] floats 0..1


def colour_at(image: np.ndarray, feature_idx: int, value: float) -> np.ndarray:
    x, y = pixel_of(feature_idx, value)
    return image[round(y), round(x)]


def test_the_picture_is_a_png_of_the_intended_size() -> None:
    png = render_profile(*example([0.5] * 5, spread()))
    assert png[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert (width, height) == SIZE_PX == (1000, 700)
    assert pixels(png).shape == (700, 1000, 3)


def test_each_value_is_drawn_where_pixel_of_says() -> None:
    # Energy (column 1): the seed planted far above every recommendation, one recommendation planted low.
    tracks = spread()
    tracks[3][1] = -2.0
    image = pixels(render_profile(*example([0.0, 2.2, 0.0, 0.0, 0.0], tracks)))
    assert np.allclose(colour_at(image, 1, 2.2), SEED_RGB, atol=0.03)
    assert np.allclose(colour_at(image, 1, -2.0), TRACK_RGB, atol=0.03)
    # Nothing orange where the seed is not, and nothing at all far above the recommendations but the seed.
    assert not np.allclose(colour_at(image, 1, -2.2), SEED_RGB, atol=0.1)
    assert not np.allclose(colour_at(image, 3, 2.2), SEED_RGB, atol=0.1)
    x, _ = pixel_of(1, 0.0)
    column = image[:, round(x)]
    seed_rows = np.flatnonzero(np.abs(column - SEED_RGB).max(axis=1) < 0.03)
    track_rows = np.flatnonzero(np.abs(column - TRACK_RGB).max(axis=1) < 0.03)
    assert seed_rows.size and track_rows.size
    assert seed_rows.max() < track_rows.min()  # rows grow downwards: the seed's marker is above them all


def test_two_seeds_differing_in_one_feature_differ_only_around_it() -> None:
    tracks = spread()
    before = pixels(render_profile(*example([0.0, 0.0, 0.0, 0.0, -1.5], tracks)))
    after = pixels(render_profile(*example([0.0, 0.0, 0.0, 0.0, 1.5], tracks)))
    changed_columns = np.flatnonzero(np.abs(before - after).max(axis=(0, 2)) > 0.02)
    assert changed_columns.size
    # Tempo is the last column: only the seed's line from acousticness (column 3) to it can move.
    assert changed_columns.min() >= pixel_of(3, 0.0)[0] - 12  # 12 px: half the seed marker, and its white edge
    assert np.allclose(colour_at(after, 4, 1.5), SEED_RGB, atol=0.03)
    assert np.allclose(colour_at(before, 4, -1.5), SEED_RGB, atol=0.03)


def test_plotted_clips_to_the_picture_and_shades_the_middle_of_the_recommendations() -> None:
    seed, tracks, profile = example([9.0, float("-inf"), 0.25, 0.0, 0.0], [[0.1 * i] * 5 for i in range(10)])
    data = plotted(seed.track_id, [t.track_id for t in tracks], profile)
    assert data.features == FEATURES
    assert data.seed.tolist() == [picture.Y_LIMIT, -picture.Y_LIMIT, 0.25, 0.0, 0.0]
    assert picture.beyond(data.seed).tolist() == [1, -1, 0, 0, 0]
    assert data.band is not None
    low, high = data.band
    assert low == pytest.approx([0.09] * 5) and high == pytest.approx([0.81] * 5)  # the middle 80% of 0.0 .. 0.9
    few = plotted(seed.track_id, [t.track_id for t in tracks[:2]], profile)
    assert few.band is None and few.tracks.shape == (2, 5)
    none = plotted(seed.track_id, [], profile)
    assert none.band is None and none.tracks.shape == (0, 5)


def test_a_track_without_a_profile_is_a_clear_error() -> None:
    seed, tracks, profile = example([0.0] * 5, spread(3))
    del profile["t2"]
    with pytest.raises(ValueError, match=r"'t2'.*audio_profile"):
        render_profile(seed, tracks, profile)
    with pytest.raises(ValueError, match="'t0'"):
        render_profile(seed, tracks, {})


@pytest.mark.parametrize(
    ("name", "artist", "seed_values", "track_values"),
    [
        ("Extremes", "Nobody", [1e9, -1e9, float("inf"), float("-inf"), 40.0], [[-1e9, 1e9, 3.0, -3.0, 0.0]] * 10),
        ("Alone", "Solo", [0.3, -0.2, 1.0, -1.0, 0.0], []),
        ("One friend", "Duo", [0.3, -0.2, 1.0, -1.0, 0.0], [[0.0] * 5]),
        ("夜に駆ける 🎵🔥 Déjà Vu — $\\frac{$ \\mathrm", "周杰倫 & Mötley Crüe 👩‍🎤", [0.0] * 5, spread()),
        ("W" * 500, "M" * 500, [0.0] * 5, spread()),
        ("Tabs\tand\nnewlines\x00 and\u200b zero-width", "", [0.0] * 5, spread()),
    ],
)
def test_odd_songs_render_without_errors_or_glyph_warnings(
    name: str, artist: str, seed_values: list[float], track_values: list[list[float]]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph would warn: it must be replaced before matplotlib sees it
        png = render_profile(*example(seed_values, track_values, name, artist))
    image = pixels(png)
    assert image.shape == (SIZE_PX[1], SIZE_PX[0], 3)
    # However long the title, it is shortened to fit: no ink in the right margin of the heading.
    right_margin = round((1 - picture.TEXT_LEFT) * SIZE_PX[0]) + 2
    heading = image[: round(0.17 * SIZE_PX[1]), right_margin:]
    assert heading.min() > 0.95


async def test_renders_in_worker_threads_match_serial_renders() -> None:
    cases = [example([0.4 * i - 1.0] * 5, spread(), name=f"Thread {i}") for i in range(4)]
    serial = [render_profile(*case) for case in cases]
    threaded = await asyncio.gather(*(asyncio.to_thread(render_profile, *case) for case in cases))
    assert threaded == serial
    assert len(set(serial)) == 4


def test_without_matplotlib_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r"pip install 'musicrec\[report\]'"):
        render_profile(*example([0.0] * 5, spread()))
