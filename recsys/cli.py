"""The musicrec command line: train, query, fetch data, evaluate. Errors become one line and exit code 1 or 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from recsys.config import DEVICE_NAMES, TrainConfig
from recsys.errors import RecsysError, UnknownPlaylistError, UnknownTrackError

if TYPE_CHECKING:
    from recsys.snapshot import Snapshot

DEFAULT_MODEL_DIR = "models/current"
MODEL_ENV_VAR = "MUSICREC_MODEL_DIR"


def _model_dir(arg: str | None) -> str:
    return arg or os.environ.get(MODEL_ENV_VAR) or DEFAULT_MODEL_DIR


def _print_tracks(tracks: Sequence[object]) -> None:
    """A table of songs; each reason whole on the line below its song (never cut mid-word)."""
    from recsys.results import Track

    print(f"{'#':>2}  {'score':>6}  {'title':<40} {'artist':<25} url")
    for n, t in enumerate(tracks, 1):
        assert isinstance(t, Track)
        print(f"{n:>2}  {t.score:6.3f}  {_cut(t.name, 40):<40} {_cut(t.artist, 25):<25} {t.url}")
        if t.reason:
            print(f"{'':>10}{t.reason}")


def _cut(text: str, width: int) -> str:
    """The text in at most `width` characters, shortened at a word boundary with an ellipsis."""
    if len(text) <= width:
        return text
    head = text[: width - 1]
    return (head.rsplit(" ", 1)[0] if " " in head else head).rstrip() + "…"


def _cmd_train(args: argparse.Namespace) -> int:
    import contextlib

    import recsys
    from recsys.api import build_snapshot
    from recsys.distributed import process_group
    from recsys.memory import keep_freed_memory
    from recsys.train import fit

    defaults = recsys.TrainConfig()
    config = recsys.TrainConfig(
        epochs=args.epochs,
        seed=args.seed,
        progress=not args.quiet,
        max_seconds=args.max_seconds if args.max_seconds is not None else defaults.max_seconds,
        batch_size=args.batch_size or defaults.batch_size,
        max_steps_per_epoch=args.steps_per_epoch or defaults.max_steps_per_epoch,
        device=args.device,
    )
    model_dir = recsys.ModelDir(_model_dir(args.out))
    # Under torchrun every rank trains (splitting each step's loss); rank 0 holds the model directory from the
    # start (so a refused or busy directory fails before training, not after) and saves the snapshot.
    with (
        process_group(config.device) as rank,
        model_dir.lock("musicrec train") if rank == 0 else contextlib.nullcontext(),
    ):
        catalog = recsys.load_catalog(args.data)
        keep_freed_memory(catalog.num_pairs)
        result = fit(catalog, config)
        if rank != 0:
            return 0
        snap = build_snapshot(catalog, result, config)
        out = model_dir.promote(snap.stage(model_dir.path))
    print(
        f"trained {snap.info.model_kind} on {snap.info.num_tracks} tracks / {snap.info.num_playlists} playlists "
        f"in {snap.info.train_seconds:.1f}s; metrics {snap.info.metrics}; saved to {out}"
    )
    return 0


def _load_serving(args: argparse.Namespace) -> Snapshot:
    """The snapshot a query command serves from, with --per-artist as the cap of its lists."""
    import recsys

    snap = recsys.load(_model_dir(args.model))
    return snap if args.per_artist is None else snap.with_lists(max_per_artist=args.per_artist)


def _cmd_recommend(args: argparse.Namespace) -> int:
    import recsys

    snap = _load_serving(args)
    resolution = recsys.resolve(snap, args.song)
    # A clear answer's other versions and namesakes can be picked too: --pick 2 is the first of them.
    choices = (*resolution.hits, *resolution.others)
    if resolution.kind == "none" or (args.pick is not None and args.pick > len(choices)):
        print(f"no song matches {args.song!r}", file=sys.stderr)
        for h in resolution.hits:
            print(f"  closest: {h.track.name} — {h.track.artist} [{h.match:.0f}]", file=sys.stderr)
        return 1
    if resolution.kind == "ambiguous" and args.pick is None:
        print(f"{args.song!r} is ambiguous; pick one with --pick N or use 'musicrec similar --track-id':")
        for n, h in enumerate(resolution.hits, 1):
            print(f"  {n}. {h.track.name} — {h.track.artist} ({h.track.album}) [{h.match:.0f}] {h.track.track_id}")
        return 2
    chosen = choices[(args.pick or 1) - 1].track
    print(f"songs like {chosen.name} — {chosen.artist}:")
    _print_tracks(snap.similar_tracks(chosen.track_id, k=args.k))
    if resolution.kind == "match" and args.pick is None and resolution.others:
        print("other versions (--pick N):")
        for n, h in enumerate(resolution.others, 2):
            print(f"  {n}. {h.track.name} — {h.track.artist} ({h.track.album}) {h.track.track_id}")
    return 0


def _cmd_similar(args: argparse.Namespace) -> int:
    snap = _load_serving(args)
    seed = snap.track(args.track_id)
    print(f"songs like {seed.name} — {seed.artist} ({seed.track_id}):")
    _print_tracks(snap.similar_tracks(args.track_id, k=args.k))
    return 0


def _cmd_playlist(args: argparse.Namespace) -> int:
    snap = _load_serving(args)
    tracks = snap.recommend_for_playlist(args.playlist_id, k=args.k)
    name = snap.playlist_names[snap.playlist_ids.tolist().index(args.playlist_id)] or args.playlist_id
    print(f"songs to continue the playlist {name!r} ({len(snap.playlist_tracks(args.playlist_id))} songs):")
    _print_tracks(tracks)
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    if args.action == "scale":
        from recsys.scale import cmd_scale

        return cmd_scale(args)
    if args.action == "download":
        from recsys.download import download

        print(f"downloaded and verified {download(args.out or 'data/spotify_songs.csv')}")
    else:
        from recsys.demo import write_demo_csv

        print(f"wrote the synthetic demo catalogue to {write_demo_csv(args.out or 'data/demo_songs.csv')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="musicrec", description="Graph neural network music recommender.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model on a playlist CSV and save its snapshot")
    p.add_argument("--data", help="CSV or Parquet path (default $MUSICREC_DATA or data/spotify_songs.csv)")
    p.add_argument("--out", help=f"snapshot directory (default ${MODEL_ENV_VAR} or {DEFAULT_MODEL_DIR})")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    defaults = TrainConfig()
    p.add_argument(
        "--max-seconds", type=float, help=f"time budget, s (default {defaults.max_seconds:g}; raise it for 1M+ pairs)"
    )
    p.add_argument("--batch-size", type=int, help=f"target edges per loss chunk (default {defaults.batch_size})")
    p.add_argument(
        "--steps-per-epoch",
        type=int,
        help=f"most optimisation steps per epoch (default {defaults.max_steps_per_epoch})",
    )
    p.add_argument(
        "--device",
        choices=DEVICE_NAMES,
        default=defaults.device,
        help=f"where training runs: cpu, cuda (a GPU) or auto (a GPU when there is one); default {defaults.device}",
    )
    p.set_defaults(func=_cmd_train)

    for name, helptext, func in (
        ("recommend", "songs like a song given by (fuzzy) name", _cmd_recommend),
        ("similar", "songs like a track id", _cmd_similar),
        ("playlist", "continue a playlist of the training data", _cmd_playlist),
    ):
        p = sub.add_parser(name, help=helptext)
        if name == "recommend":
            p.add_argument("song", help='a song title, optionally with the artist: "shape of you ed sheeran"')
            p.add_argument("--pick", type=int, choices=range(1, 6), help="which candidate when ambiguous")
        elif name == "similar":
            p.add_argument("--track-id", required=True)
        else:
            p.add_argument("--playlist-id", required=True)
        p.add_argument("--model", help=f"snapshot directory (default ${MODEL_ENV_VAR} or {DEFAULT_MODEL_DIR})")
        p.add_argument("-k", type=int, default=10, help="how many songs")
        p.add_argument(
            "--per-artist", type=int, help="at most this many songs of one artist (0: no cap; default the model's)"
        )
        p.set_defaults(func=func)

    p = sub.add_parser("data", help="get data: download the public CSV, write the demo or a synthetic catalogue")
    p.add_argument("action", choices=["download", "demo", "scale"])
    p.add_argument("--out", help="where to write it")
    from recsys.scale import add_arguments

    add_arguments(p)
    p.set_defaults(func=_cmd_data)

    try:
        from recsys.evaluate import add_cli
    except ImportError:
        pass
    else:
        add_cli(sub)
    return parser


def _hint(exc: RecsysError) -> str:
    """What to type next, for errors whose library message cannot know the command line."""
    if isinstance(exc, UnknownTrackError):
        return "; find a track id by name with 'musicrec recommend \"<song>\"'"
    if isinstance(exc, UnknownPlaylistError):
        return "; 'musicrec playlist' continues only the training data's playlists"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; expected failures print one line on stderr instead of a traceback."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = args.func(args)
    except RecsysError as exc:
        print(f"musicrec: error: {exc}{_hint(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:  # what the library does not wrap: writing a report, a download target, ...
        print(f"musicrec: error: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
