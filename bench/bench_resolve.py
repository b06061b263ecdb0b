"""Name resolution benchmark: does a typed song name get the song meant, at once, as a streaming app's search would?

python bench/bench_resolve.py --data /path/to/spotify_songs.csv --out docs/resolve.md [--model DIR]
python bench/bench_resolve.py --data ... --tune     # the MatchConfig grid on the tune half of the query set

Every query of tests/fixtures/queries.csv (written by bench/make_queries.py, which says what each kind is and what
its right answer is) goes through recsys.resolve, the rule the bot and the CLI call. An answer is right when it is
a version of the expected song (recsys.names.song_key). The report counts only the "report" half of the queries;
MatchConfig's thresholds were chosen with --tune on the other ("tune") half. The snapshot is trained for one epoch
(or loaded with --model): resolution reads names, popularity and playlist membership, never the embeddings.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import platform
import shlex
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

import recsys
from recsys.demo import write_demo_csv
from recsys.names import song_key
from recsys.resolve import Candidate, MatchConfig, candidates, decide

BEGIN, END = "<!-- begin resolve -->", "<!-- end resolve -->"
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "queries.csv"
# The goals: share of a kind's queries with the right outcome (answered at once with the right song; for
# gibberish "not found" with no suggestions), and the most answers at once with a wrong song over all queries.
GOALS = {"famous": 0.90, "typo": 0.85, "title_artist": 0.95, "artist_title": 0.95, "gibberish": 0.98}
MAX_WRONG = 0.01
# Kinds whose answers are a question, not a song: a song at once is a guess (counted as wrong).
NO_SONG = {"namesakes", "gibberish"}
# One epoch: the snapshot's names, popularity and playlists are what resolution reads; training quality is not.
SNAPSHOT_CONFIG = recsys.TrainConfig(epochs=1, progress=False)

Outcome = Literal["right", "wrong", "asked", "none"]


@dataclass(frozen=True)
class FixtureQuery:
    """One line of tests/fixtures/queries.csv."""

    query: str
    kind: str
    split: str
    track_id: str
    title: str
    artist: str

    @property
    def song(self) -> str | None:
        return song_key(self.title, self.artist) if self.track_id else None


@dataclass(frozen=True)
class Judged:
    """How one query went."""

    kind: str
    outcome: Outcome  # right / wrong: answered at once; asked; none: "not found"
    suggested: bool  # "not found" with suggestions
    offered: bool  # the right song is the answer, a choice, one of the others or a suggestion
    query: str = ""
    first: str = ""  # "title — artist" of the answer, the first choice or the first suggestion


def load_queries(path: Path = FIXTURE, split: str | None = None) -> list[FixtureQuery]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = [FixtureQuery(**row) for row in csv.DictReader(f)]
    return [q for q in rows if split is None or q.split == split]


def judge(q: FixtureQuery, resolution: recsys.Resolution) -> Judged:
    """The outcome of one resolution against the query's right answer."""
    songs = [song_key(h.track.name, h.track.artist) for h in (*resolution.hits, *resolution.others)]
    offered = q.song is not None and q.song in songs
    first = f"{resolution.hits[0].track.name} — {resolution.hits[0].track.artist}" if resolution.hits else ""
    if resolution.kind == "match":
        right = q.kind not in NO_SONG and songs[0] == q.song
        return Judged(q.kind, "right" if right else "wrong", False, offered, q.query, first)
    if resolution.kind == "ambiguous":
        return Judged(q.kind, "asked", False, offered, q.query, first)
    return Judged(q.kind, "none", bool(resolution.hits), offered, q.query, first)


def succeeded(j: Judged) -> bool:
    """The outcome each kind asks for: the right song at once, a question (namesakes), bare "not found" (gibberish)."""
    if j.kind == "gibberish":
        return j.outcome == "none" and not j.suggested
    if j.kind == "namesakes":
        return j.outcome == "asked"
    return j.outcome == "right"


def run(snap: recsys.Snapshot, queries: Sequence[FixtureQuery]) -> tuple[list[Judged], np.ndarray]:
    """Every query through recsys.resolve (what the bot and the CLI call); judgements and seconds per query."""
    recsys.resolve(snap, "warm up")
    judged, seconds = [], []
    for q in queries:
        start = time.perf_counter()
        resolution = recsys.resolve(snap, q.query)
        seconds.append(time.perf_counter() - start)
        judged.append(judge(q, resolution))
    return judged, np.array(seconds)


@dataclass(frozen=True)
class Row:
    """Shares of one kind's queries."""

    kind: str
    n: int
    right: float
    wrong: float
    asked: float
    none: float
    bare_none: float
    offered: float
    success: float


def rows(judged: Iterable[Judged]) -> list[Row]:
    by_kind: dict[str, list[Judged]] = defaultdict(list)
    for j in judged:
        by_kind[j.kind].append(j)
    out = []
    everything = [j for group in by_kind.values() for j in group]
    for kind, js in [*by_kind.items(), ("all", everything)]:
        count = Counter(j.outcome for j in js)
        n = len(js)
        out.append(
            Row(
                kind,
                n,
                count["right"] / n,
                count["wrong"] / n,
                count["asked"] / n,
                count["none"] / n,
                sum(j.outcome == "none" and not j.suggested for j in js) / n,
                sum(j.offered for j in js) / n,
                sum(succeeded(j) for j in js) / n,
            )
        )
    return out


def goals_met(table: Sequence[Row]) -> dict[str, tuple[float, float, bool]]:
    """Goal name -> (measured, goal, met)."""
    by_kind = {r.kind: r for r in table}
    out = {kind: (by_kind[kind].success, goal, by_kind[kind].success >= goal) for kind, goal in GOALS.items()}
    wrong = by_kind["all"].wrong
    out["wrong at once, all"] = (wrong, MAX_WRONG, wrong <= MAX_WRONG)
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def table_text(table: Sequence[Row], seconds: np.ndarray) -> str:
    met = goals_met(table)
    lines = [
        "| kind | queries | right song at once | wrong song at once | asked | not found | not found, no suggestions "
        "| right song offered | goal | met |",
        "|---|--:|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for r in table:
        if r.kind in met:
            _, goal, ok = met[r.kind]
            goal_text = f"{'not found, no suggestions' if r.kind == 'gibberish' else 'right at once'} >= {_pct(goal)}"
            status = "met" if ok else "**missed**"
        elif r.kind == "all":
            _, goal, ok = met["wrong at once, all"]
            goal_text, status = f"wrong at once <= {_pct(goal)}", "met" if ok else "**missed**"
        elif r.kind == "namesakes":
            goal_text, status = "(asked is right)", ""
        else:
            goal_text, status = "(no goal)", ""
        right = "—" if r.kind in NO_SONG else _pct(r.right)
        offered = "—" if r.kind in NO_SONG else _pct(r.offered)
        lines.append(
            f"| {r.kind} | {r.n} | {right} | {_pct(r.wrong)} | {_pct(r.asked)} | {_pct(r.none)} | {_pct(r.bare_none)} "
            f"| {offered} | {goal_text} | {status} |"
        )
    ms = 1000 * seconds
    lines.append("")
    lines.append(
        f"resolve latency over {len(ms)} queries: "
        f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms"
    )
    return "\n".join(lines) + "\n"


def misses(judged: Sequence[Judged], queries: Sequence[FixtureQuery], limit: int = 14) -> str:
    """Every wrong answer at once, then the queries of goal kinds that did not get their outcome."""
    expected = {q.query: f"{q.title} — {q.artist}" for q in queries}
    lines = []
    for j in sorted(judged, key=lambda j: j.outcome != "wrong"):  # wrong answers first
        if (j.kind in GOALS and not succeeded(j)) or j.outcome == "wrong":
            lines.append(
                f"- `{j.query}` ({j.kind}): {j.outcome}, first {j.first or '-'!r}; expected {expected[j.query]!r}"
            )
    more = f"\n- ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return "\n".join(lines[:limit]) + more


def report(
    half: tuple[list[Judged], np.ndarray],
    tune_half: tuple[list[Judged], np.ndarray],
    queries: Sequence[FixtureQuery],
    data: Path,
    wall: float,
    argv: Sequence[str],
) -> str:
    config = MatchConfig()
    fields = ", ".join(f"{f.name}={getattr(config, f.name)}" for f in dataclasses.fields(config))
    return f"""# Name resolution: the song meant, at once

Written by `python bench/bench_resolve.py {shlex.join(argv)}` on {datetime.now(UTC):%Y-%m-%d} ({platform.machine()},
Python {platform.python_version()}, {wall:.0f} s). Data: {data.name}. Queries: the **report** half of
`tests/fixtures/queries.csv` (`bench/make_queries.py` builds it from the catalogue and says what each kind is);
`recsys.MatchConfig`'s thresholds were chosen on the other (tune) half with `--tune`.

{BEGIN}
{table_text(rows(half[0]), half[1])}{END}

How to read it: *right song at once* is a clear answer that is a version of the expected song (a famous bare
title's expected song is the most popular track of that title); *asked* is "which one do you mean?";
*right song offered* counts the answer, the choices of a question, the other versions under an answer and the
suggestions of "not found". For namesakes (a title that several artists sing with comparable popularity, none
famous) a question is the right outcome and an answer at once is counted as a wrong guess; for gibberish the right
outcome is "not found" with no suggestion. The "all" row's *wrong song at once* (over every kind) is the issue's
<= 1% goal. Besides the issue's kinds the set holds two_typos (near misses), title_artist_word ("bad guy billie")
and namesakes, which the tuning needed to weigh suggestions, artist words and when to ask.

Every wrong answer at once, then the misses of the goal kinds (report half):

{misses(half[0], queries)}

The tune half, on which the thresholds were chosen (for comparison, not a result):

{table_text(rows(tune_half[0]), tune_half[1])}
The rule (recsys/resolve.py): the songs whose match is within `choice_window` of the best are the contenders;
each gets the log-likelihood (match - 100) / match_scale + popularity / popularity_scale + playlist_weight *
ln(playlists) + artist_weight * (words of its artist's name in a query holding its whole title). The likeliest is
answered at once when its match is at least `clear_score` and it leads the next contender by `margin`, the other
contenders and the answer's other versions coming along as `Resolution.others`; otherwise the contenders are
asked. Below `min_score` it is "not found", listing only names matching at least `suggest_score`, and only for a
query of at least `suggest_min_letters` letters.

MatchConfig: {fields}
"""


# ----- --tune: the grid on the tune half -----


def _judge_all(
    pre: Sequence[tuple[FixtureQuery, list[Candidate]]], config: MatchConfig
) -> tuple[list[Judged], list[Row]]:
    judged = [judge(q, decide(q.query, found, config)) for q, found in pre]
    return judged, rows(judged)


def tune(snap: recsys.Snapshot, queries: Sequence[FixtureQuery], say: Callable[[str], None] = print) -> MatchConfig:
    """Choose MatchConfig's thresholds on the tune half: each printed with the measurement behind it."""
    base = MatchConfig()
    pre = [(q, candidates(snap, q.query, base)) for q in queries]
    by_kind: dict[str, list[tuple[FixtureQuery, list[Candidate]]]] = defaultdict(list)
    for item in pre:
        by_kind[item[0].kind].append(item)

    def best(item: tuple[FixtureQuery, list[Candidate]]) -> float:
        return max((c.match for c in item[1]), default=0.0)

    def letters(item: tuple[FixtureQuery, list[Candidate]]) -> int:
        return sum(ch.isalnum() for ch in item[0].query)

    for n in range(4, 8):
        gib = [best(item) for item in by_kind["gibberish"] if letters(item) >= n]
        short = [best(item) for item in by_kind["gibberish"] if letters(item) < n]
        say(
            f"gibberish of >= {n} letters: {len(gib)}, best match max {max(gib):.1f}; "
            f"shorter: max {max(short, default=0):.1f}"
        )
    long_gib = [
        m
        for item in by_kind["gibberish"]
        if letters(item) >= base.suggest_min_letters and (m := best(item)) < base.min_score
    ]
    floor = float(np.floor(max(long_gib)) + 1)
    near = [best(item) for item in by_kind["two_typos"]]
    say(
        f"suggest_score: lowest whole score above every gibberish of >= {base.suggest_min_letters} letters "
        f"(that is not found): {floor:.0f}; "
        f"two-typo titles matching >= it: {np.mean([m >= floor for m in near]):.0%} (min {min(near):.1f})"
    )
    typo = [best(item) for item in by_kind["typo"]]
    say(f"clear_score: one-typo best match p10 {np.percentile(typo, 10):.1f}, p25 {np.percentile(typo, 25):.1f}")

    # The demo catalogue plants "Home" by three artists (popularity 88 in 8 playlists, 81 in 1, 41 in 4): the bot's
    # and the CLI's tests expect a question, so a config that answers it is marked.
    demo = recsys.train(
        write_demo_csv(Path(tempfile.mkdtemp(prefix="musicrec-resolve-")) / "demo.csv"), SNAPSHOT_CONFIG
    )
    demo_home = candidates(demo, "home", base)
    grid: dict[str, list[Any]] = {
        "margin": [1.0, 1.25, 1.5, 1.75, 2.0],
        "match_scale": [2.0, 3.0, 4.0, 6.0],
        "playlist_weight": [0.0, 0.25, 0.5, 1.0],
        "artist_weight": [2.0, 4.0, 8.0, 12.0, 16.0],
        "clear_score": [80.0, 84.0, 88.0],
        "choice_window": [8.0, 12.0, 16.0],
    }
    kinds = ("famous", "typo", "title_artist", "artist_title", "title_artist_word")
    say("\n| " + " | ".join([*grid, *kinds]) + " | namesakes asked | wrong | demo |")
    say("|" + "---|" * (len(grid) + len(kinds) + 3))
    results = []
    for combo in itertools.product(*grid.values()):
        config = dataclasses.replace(base, suggest_score=floor, **dict(zip(grid, combo, strict=True)))
        _, table = _judge_all(pre, config)
        r = {row.kind: row for row in table}
        ok = r["all"].wrong <= MAX_WRONG and decide("home", demo_home, config).kind == "ambiguous"
        score = sum(r[kind].right for kind in kinds)
        results.append((ok, round(score, 6), r["namesakes"].asked, combo[0], config, r))
    results.sort(key=lambda x: x[:4], reverse=True)
    for ok, _, _, _, config, r in results[:30]:
        cells = [f"{getattr(config, k):g}" for k in grid] + [_pct(r[kind].right) for kind in kinds]
        say(
            "| " + " | ".join(cells) + f" | {_pct(r['namesakes'].asked)} | {_pct(r['all'].wrong)} "
            f"| {'asks' if ok else 'answers or over'} |"
        )
    # MatchConfig's defaults with one value changed at a time: what the comments in MatchConfig quote.
    say("\naround MatchConfig's defaults, one value at a time:")
    say("| value | " + " | ".join(kinds) + " | namesakes asked | wrong | demo |")
    say("|" + "---|" * (len(kinds) + 4))
    for key, values in grid.items():
        for value in values:
            config = dataclasses.replace(base, **{key: value})
            _, table = _judge_all(pre, config)
            r = {row.kind: row for row in table}
            demo_asks = decide("home", demo_home, config).kind == "ambiguous"
            mark = " (default)" if value == getattr(base, key) else ""
            say(
                f"| {key}={value:g}{mark} | "
                + " | ".join(_pct(r[kind].right) for kind in kinds)
                + f" | {_pct(r['namesakes'].asked)} | {_pct(r['all'].wrong)} | {'asks' if demo_asks else 'answers'} |"
            )
    return results[0][4]


def snapshot(data: Path, model: Path | None) -> recsys.Snapshot:
    return recsys.load(model) if model else recsys.train(data, SNAPSHOT_CONFIG)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--model", type=Path, help="a saved snapshot of the same data (default: train one epoch)")
    parser.add_argument("--queries", type=Path, default=FIXTURE)
    parser.add_argument("--out", type=Path, help="write the markdown report here (the README quotes its table)")
    parser.add_argument("--tune", action="store_true", help="print the MatchConfig grid on the tune half")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    snap = snapshot(args.data, args.model)
    if args.tune:
        print(tune(snap, load_queries(args.queries, "tune")))
        return
    queries = load_queries(args.queries)
    half = run(snap, [q for q in queries if q.split == "report"])
    tune_half = run(snap, [q for q in queries if q.split == "tune"])
    text = report(half, tune_half, queries, args.data, time.perf_counter() - start, argv or sys.argv[1:])
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
