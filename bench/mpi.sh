#!/usr/bin/env bash
# One process × 2 workers against 2 processes × 1 worker (mpirun, the same machine's cores split
# between the processes), on one generated HIGGS-like file: runs `trainbench train --workers 2`
# and `mpirun -np 2 trainbench train --workers 1` alternately and prints, per model, the median
# fit times, their ratio (the median of each pair's ratio too), rank 0's exchange seconds per
# iteration or epoch, both iteration counts, both memory peaks (rank 0's process: every rank holds
# the rows), and whether the two fitted the same model (final training loss and test log loss to
# the bit). Needs Open MPI (apt-get install openmpi-bin libopenmpi-dev libclang-dev); builds
# trainbench with the `mpi` feature.
#
# Usage: bench/mpi.sh [--rows 1000000] [--mlp-rows 200000] [--pairs 3]
#                     [--runs "spark:lr spark:mlp tensor:mlp"] [--epochs 3]
# Not run in CI: too slow.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=1000000; mlp_rows=200000; pairs=3; runs="spark:lr spark:mlp tensor:mlp"; epochs=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --mlp-rows) mlp_rows="$2"; shift 2 ;;
    --pairs) pairs="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
command -v mpirun >/dev/null || { echo "mpirun not found: apt-get install openmpi-bin libopenmpi-dev libclang-dev" >&2; exit 2; }

features=mpi
source bench/common.sh
build_and_make_workdir
generate_higgs "$rows" "$work/big.csv"
generate_higgs "$mlp_rows" "$work/mlp.csv"
mpirun=(mpirun --allow-run-as-root --oversubscribe -np 2)
echo "# $(date -u +%F) $(git rev-parse --short HEAD); 1 process × 2 workers vs 2 processes × 1 worker (Open MPI $(mpirun --version | head -1 | awk '{print $NF}')); $(machine)"

for run in $runs; do
  engine=${run%%:*}; model=${run##*:}
  data="$work/big.csv"; extra=()
  case $run in
    spark:mlp) data="$work/mlp.csv" ;;
    tensor:*) extra=(--epochs "$epochs") ;;
  esac
  for ((i = 1; i <= pairs; i++)); do
    "$bin" train --engine "$engine" --model "$model" --data "$data" --workers 2 "${extra[@]}" \
      --quarantine "$work/q.csv" --json >>"$work/$engine-$model-1x2.jsonl"
    "${mpirun[@]}" "$bin" train --engine "$engine" --model "$model" --data "$data" --workers 1 "${extra[@]}" \
      --quarantine "$work/q.csv" --json >>"$work/$engine-$model-2x1.jsonl"
  done
  python3 - "$engine $model" "$work/$engine-$model-1x2.jsonl" "$work/$engine-$model-2x1.jsonl" <<'PY'
import json, statistics, sys
name, one_file, two_file = sys.argv[1:]
one = [json.loads(l) for l in open(one_file)]
two = [json.loads(l) for l in open(two_file)]
med = lambda rs, k: statistics.median(r[k] for r in rs)
# The fitted model, seen through its final training loss and its test log loss.
result = lambda r: (r["log"][-1]["loss"], r["scores"]["log_loss"])
same = len({result(r) for r in one + two}) == 1
pair = statistics.median(b["fit_seconds"] / a["fit_seconds"] for a, b in zip(one, two))
iters = lambda rs: "/".join(str(r["iterations"]) for r in rs)
comm = med(two, "communication_seconds")
mib = lambda rs, k: med(rs, k) / 2**20
times = lambda rs: " ".join(f"{r['fit_seconds']:.2f}" for r in rs)
print(f"{name:11s} fit: 1x2 {med(one, 'fit_seconds'):7.2f} s, 2x1 {med(two, 'fit_seconds'):7.2f} s, "
      f"2x1/1x2 {med(two, 'fit_seconds') / med(one, 'fit_seconds'):4.2f} (pairs {pair:4.2f}) | "
      f"exchange {comm:.3f} s = {1000 * comm / max(two[0]['iterations'], 1):.1f} ms per {'epoch' if 'tensor' in name else 'iteration'} "
      f"| iterations {iters(one)} vs {iters(two)} | same model: {'yes' if same else 'NO'} | "
      f"memory (rank 0) whole {mib(one, 'process_peak_rss_bytes'):.0f} vs {mib(two, 'process_peak_rss_bytes'):.0f} MiB, "
      f"fit {mib(one, 'peak_rss_bytes'):.0f} vs {mib(two, 'peak_rss_bytes'):.0f} MiB | accuracy {one[0]['scores']['accuracy']:.4f} "
      f"| runs [{times(one)}] vs [{times(two)}]")
PY
done
