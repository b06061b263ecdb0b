#!/bin/bash
# Did a change make training at scale slower, or did the machine? Runs bench_scale.py's train stage (ingest, 3
# epochs, snapshot) for an older commit and for this working tree alternately, on the same cached synthetic
# catalogue, so both meet the same machine. One JSON line per run (epoch_s is the median epoch).
#
#   bench/compare_checkouts.sh COMMIT [PAIRS=10000000] [ROUNDS=2]
set -euo pipefail
old_commit=${1:?usage: bench/compare_checkouts.sh COMMIT [PAIRS] [ROUNDS]}
pairs=${2:-10000000}
rounds=${3:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
data_dir=$here/data/scale
old=$(mktemp -d /tmp/musicrec-old-XXXXXX)
trap 'git -C "$here" worktree remove --force "$old"' EXIT
git -C "$here" worktree add --detach --force "$old" "$old_commit" >/dev/null
# The catalogue is generated once (by this tree's generator) and read by both.
"$python" -c "import sys; sys.path.insert(0, '$here/bench'); from bench_scale import _data_file; from pathlib import Path; _data_file($pairs, Path('$data_dir'))"
for round in $(seq "$rounds"); do
  for tree in "$old" "$here"; do
    echo "round $round $(git -C "$tree" rev-parse --short HEAD)$([ "$tree" = "$here" ] && echo ' (this tree)')"
    (cd "$tree" && PYTHONPATH=$tree "$python" bench/bench_scale.py --stage train --size "$pairs" \
       --data-dir "$data_dir" --epochs 3 2>/dev/null | tail -1)
  done
done
