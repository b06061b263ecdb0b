"""The "why these?" picture: the asked song's sound beside its recommendations', as PNG bytes for Telegram.

matplotlib (the "report" extra) is imported lazily. Rendering uses a Figure and its own Agg canvas, never pyplot's
global figure manager, so the bot can render in a worker thread (asyncio.to_thread).
"""

from __future__ import annotations

import functools
import io
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

import recsys

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backend_bases import RendererBase
    from matplotlib.figure import Figure
    from matplotlib.text import Text

# 1000 x 700 px: Telegram shows photos up to ~1280 px wide, and a phone shrinks this to its screen width; 200 dpi
# makes a point ~2.8 px, so the 8-12 pt text below stays readable there.
SIZE_INCHES = (5.0, 3.5)
DPI = 200
SIZE_PX = (round(SIZE_INCHES[0] * DPI), round(SIZE_INCHES[1] * DPI))  # (width, height)
# The plot, in figure fractions (left, bottom, width, height): fixed, so a value's pixel is known (pixel_of).
AXES_RECT = (0.19, 0.27, 0.77, 0.53)
# Standard deviations shown above and below the typical song; a value beyond is drawn at the edge as a triangle.
# Of the real catalogue's 28,356 songs, 97.4% (acousticness, the most skewed) to 100% (valence) lie within +-2.8.
Y_LIMIT = 2.8
# The share of recommendations the shaded band holds: the middle 80%, so one odd song does not stretch it.
BAND_QUANTILES = (0.1, 0.9)
# Under three recommendations a band says nothing their own lines do not.
MIN_FOR_BAND = 3

# Each feature as the quality that "more" means, so the y axis reads "more danceable", "less acoustic".
FEATURE_LABELS = {
    "danceability": "Danceable",
    "energy": "Energetic",
    "valence": "Cheerful\n(valence)",
    "acousticness": "Acoustic",
    "tempo": "Fast\n(tempo)",
}
Y_TICKS = {2.0: "much more", 1.0: "more", 0.0: "typical", -1.0: "less", -2.0: "much less"}
SEED_COLOUR = "#e8590c"
TRACK_COLOUR = "#1971c2"
INK = "#212529"
MUTED = "#6c757d"
# Fonts tried after DejaVu Sans (matplotlib's own) for titles in other scripts, where the host has them.
FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans", "Droid Sans Fallback", "Arial Unicode MS")
MISSING_GLYPH = "\u25a1"  # a white square, in DejaVu Sans
# Titles and artists are cut to this many characters before they are measured (then to the picture's width).
MAX_CHARS = 200
FOOTNOTE = "Compared with the catalogue's typical song: up is more of that quality, down is less."
# zlib level of the PNG: 1 encodes ~3x faster than the default 6 for a slightly larger file (~50% on these
# flat-coloured pictures), well under Telegram's 10 MB photo limit.
PNG_COMPRESSION = 1
TEXT_LEFT = 0.035  # the title's margin, in figure widths (the same on the right)


@dataclass(frozen=True)
class Plotted:
    """What the picture draws, in plot units: one column per feature, values clipped to +-Y_LIMIT."""

    features: tuple[str, ...]
    seed: np.ndarray  # [num_features]
    tracks: np.ndarray  # [num_tracks, num_features]
    band: tuple[np.ndarray, np.ndarray] | None  # (low, high) [num_features] each, None under MIN_FOR_BAND tracks


def beyond(values: np.ndarray) -> np.ndarray:
    """Per plotted value: +1 where it was clipped at the top, -1 at the bottom, 0 inside (drawn as a dot)."""
    return np.where(values >= Y_LIMIT, 1, np.where(values <= -Y_LIMIT, -1, 0))


def plotted(seed_id: str, track_ids: Sequence[str], profile: Mapping[str, Mapping[str, float]]) -> Plotted:
    """The values to draw (features in the order of the seed's profile); ValueError when a track has no profile."""
    features = tuple(profile.get(seed_id, FEATURE_LABELS))

    def values(track_id: str) -> list[float]:
        row = profile.get(track_id)
        if row is None or any(f not in row for f in features):
            raise ValueError(
                f"no audio profile for track {track_id!r} (features {list(features)}); "
                "pass snapshot.audio_profile([seed, *recommendations])"
            )
        return [float(row[f]) for f in features]

    seed = np.clip(values(seed_id), -Y_LIMIT, Y_LIMIT)  # [F]; infinities clip, NaN stays (and is not drawn)
    tracks = np.clip([values(t) for t in track_ids], -Y_LIMIT, Y_LIMIT).reshape(len(track_ids), len(features))
    band = None
    if len(track_ids) >= MIN_FOR_BAND:
        low, high = np.nanquantile(tracks, BAND_QUANTILES, axis=0)  # [F] each
        band = (low, high)
    return Plotted(features, seed, tracks, band)


def pixel_of(feature_idx: float, value: float, num_features: int = len(FEATURE_LABELS)) -> tuple[float, float]:
    """Where a plotted value lands in the PNG, in pixels from its top-left corner (x right, y down)."""
    left, bottom, width, height = AXES_RECT
    x = (left + width * (feature_idx + 0.5) / num_features) * SIZE_PX[0]
    y = (1 - bottom - height * (value + Y_LIMIT) / (2 * Y_LIMIT)) * SIZE_PX[1]
    return x, y


def render_profile(
    seed: recsys.Track, tracks: Sequence[recsys.Track], profile: Mapping[str, Mapping[str, float]]
) -> bytes:
    """A PNG (SIZE_PX) of the seed's sound beside the recommendations': the seed a thick orange line, each
    recommendation a thin blue one, the band where most of them lie shaded. `profile` is
    Snapshot.audio_profile([seed, *tracks]) (z-scores over the catalogue). Safe in a worker thread."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("the 'why these?' picture needs matplotlib: pip install 'musicrec[report]'") from exc
    data = plotted(seed.track_id, [t.track_id for t in tracks], profile)
    fig = Figure(figsize=SIZE_INCHES, dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    fig.figimage(_background(data.features), 0, 0, zorder=-1)  # under the axes; pixel for pixel
    ax = fig.add_axes(AXES_RECT)
    ax.set_xlim(-0.5, len(data.features) - 0.5)
    ax.set_ylim(-Y_LIMIT, Y_LIMIT)
    ax.set_axis_off()  # the frame, grid and labels are the background's
    _draw_data(ax, data)
    _draw_text(fig, canvas.get_renderer(), seed, len(tracks), data)
    out = io.BytesIO()
    canvas.print_png(out, pil_kwargs={"compress_level": PNG_COMPRESSION})
    return out.getvalue()


@functools.cache
def _background(features: tuple[str, ...]) -> np.ndarray:
    """What every picture of these features shares, drawn once per process as RGBA pixels [height, width, 4]: the
    plot's frame, grid and axis labels, and the footnote. Half of a picture's drawing time was these."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE_INCHES, dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    _draw_axes(fig.add_axes(AXES_RECT), features)
    fig.text(0.5, 0.025, FOOTNOTE, fontsize=7, color=MUTED, ha="center", va="bottom")
    canvas.draw()
    pixels = np.array(canvas.buffer_rgba())  # a copy: the canvas goes with the figure
    pixels.setflags(write=False)
    return pixels


def _draw_axes(ax: Axes, features: tuple[str, ...]) -> None:
    ax.set_xlim(-0.5, len(features) - 0.5)
    ax.set_ylim(-Y_LIMIT, Y_LIMIT)
    ax.set_xticks(range(len(features)), [FEATURE_LABELS.get(f, f.title()) for f in features])
    ax.set_yticks(list(Y_TICKS), list(Y_TICKS.values()))
    ax.tick_params(axis="x", labelsize=8.5, labelcolor=INK, length=0, pad=6)
    ax.tick_params(axis="y", labelsize=8, labelcolor=MUTED, length=0, pad=5)
    for label in ax.get_xticklabels():
        label.set_fontweight("bold")
    ax.axhline(0.0, color=MUTED, linewidth=1.0, zorder=1)
    for y in (-2.0, -1.0, 1.0, 2.0):
        ax.axhline(y, color="#dee2e6", linewidth=0.6, linestyle=(0, (4, 3)), zorder=0)
    for x in range(len(features)):
        ax.axvline(x, color="#e9ecef", linewidth=0.6, zorder=0)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_facecolor("#f8f9fa")


def _draw_data(ax: Axes, data: Plotted) -> None:
    xs = np.arange(len(data.features))
    if data.band is not None:
        ax.fill_between(xs, *data.band, color=TRACK_COLOUR, alpha=0.16, linewidth=0, zorder=2)
    for row in data.tracks:
        ax.plot(xs, row, color=TRACK_COLOUR, alpha=0.45, linewidth=0.9, zorder=3)
    _points(ax, np.tile(xs, len(data.tracks)), data.tracks.ravel(), TRACK_COLOUR, 11, zorder=4)
    ax.plot(xs, data.seed, color=SEED_COLOUR, linewidth=3.2, solid_capstyle="round", zorder=5)
    _points(ax, xs, data.seed, SEED_COLOUR, 70, zorder=6, edge="white")


def _points(
    ax: Axes, xs: np.ndarray, ys: np.ndarray, colour: str, size: float, zorder: int, edge: str = "none"
) -> None:
    """Dots, with a triangle pointing off the plot for a value clipped at its edge."""
    clipped = beyond(ys)
    for side, marker in ((0, "o"), (1, "^"), (-1, "v")):
        keep = clipped == side
        if keep.any():
            ax.scatter(
                xs[keep],
                ys[keep],
                s=size * (1.6 if side else 1),
                marker=marker,
                color=colour,
                edgecolors=edge,
                linewidths=1.2 if edge != "none" else 0,
                zorder=zorder,
                clip_on=False,
            )


def _draw_text(fig: Figure, renderer: RendererBase, seed: recsys.Track, num_tracks: int, data: Plotted) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fonts, width = _fonts(), (1 - 2 * TEXT_LEFT) * SIZE_PX[0]
    title = fig.text(TEXT_LEFT, 0.955, "", fontsize=12, fontweight="bold", color=INK, va="top", family=fonts)
    _fit(title, renderer, width, seed.name, lambda name: f"The sound of “{name}”")
    with_what = f"beside the {_songs(num_tracks)} like it" if num_tracks else "(no recommendations to compare)"
    subtitle = fig.text(TEXT_LEFT, 0.875, "", fontsize=8.5, color=MUTED, va="top", family=fonts)
    _fit(subtitle, renderer, width, seed.artist, lambda artist: f"by {artist} — {with_what}")
    seed_key = Line2D([], [], color=SEED_COLOUR, linewidth=3, marker="o", markersize=6, markeredgecolor="white")
    handles: list[Any] = [seed_key]
    labels = ["asked song"]
    if num_tracks:
        handles.append(Line2D([], [], color=TRACK_COLOUR, alpha=0.7, linewidth=1, marker="o", markersize=3))
        labels.append(_songs(num_tracks))
    if data.band is not None:
        handles.append(Patch(color=TRACK_COLOUR, alpha=0.2, linewidth=0))
        labels.append("where most of them lie")
    fig.legend(
        handles,
        labels,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.075),
        ncols=len(handles),
        frameon=False,
        fontsize=8,
        handlelength=1.8,
        columnspacing=1.4,
    )


def _songs(n: int) -> str:
    return f"{n} recommended song{'s' if n != 1 else ''}"


def _fit(text: Text, renderer: RendererBase, max_px: float, value: str, line: Callable[[str], str]) -> None:
    """Show line(value) in one line, value shortened with "…" until the line is at most max_px wide."""
    value = _printable(value)
    shown = value
    while True:
        text.set_text(line(shown).replace("$", r"\$"))  # "\$": a title with two dollars is not mathtext
        width = text.get_window_extent(renderer).width
        if width <= max_px or len(shown) <= 1:
            return
        keep = max(1, min(len(shown) - 2, int(len(shown) * max_px / width)))
        shown = value[:keep].rstrip() + "…"


def _printable(text: str) -> str:
    """One line of plain text: no control characters or runs of spaces, at most MAX_CHARS, and glyphs that no
    installed font has as a square (matplotlib would draw a box too, but warn once per glyph)."""
    glyphs = _glyphs()
    line = " ".join("".join(c for c in text[: MAX_CHARS * 2] if unicodedata.category(c)[0] != "C").split())
    line = line[:MAX_CHARS]
    return "".join(c if ord(c) in glyphs or unicodedata.combining(c) else MISSING_GLYPH for c in line)


@functools.cache
def _fonts() -> tuple[str, ...]:
    """DejaVu Sans, then the FALLBACK_FONTS this host has (matplotlib falls back through them glyph by glyph)."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return ("DejaVu Sans", *(f for f in FALLBACK_FONTS if f in installed))


@functools.cache
def _glyphs() -> frozenset[int]:
    """Code points some font of _fonts() draws, in both weights the picture uses."""
    from matplotlib import font_manager

    found: set[int] = set()
    for family in _fonts():
        per_weight = []
        for weight in ("normal", "bold"):
            prop = font_manager.FontProperties(family=family, weight=weight)
            path = font_manager.findfont(prop, fallback_to_default=False)
            per_weight.append(set(font_manager.get_font(path).get_charmap()))
        found |= set.intersection(*per_weight)
    return frozenset(found)
