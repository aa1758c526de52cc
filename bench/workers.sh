#!/usr/bin/env bash
# The spark engine's scaling from 1 to N workers over the same partitions, on one generated
# HIGGS-like file: runs `trainbench train --workers 1` and `--workers N` alternately (1 N 1 N ...)
# and prints, per model, the median fit times, the speedup (ratio of the medians, and the median
# of each pair's ratio), and whether the two fitted the same model (same final training loss and
# test log loss, to the bit, as the fixed aggregation order promises).
#
# Usage: bench/workers.sh [--rows 1000000] [--pairs 5] [--workers 2] [--partitions 4]
#                         [--models "lr tree mlp"] [--mlp-iter 10]
# Not run in CI: too slow.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=1000000; pairs=5; workers=2; partitions=4; models="lr tree mlp"; mlp_iter=10
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --pairs) pairs="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --partitions) partitions="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    --mlp-iter) mlp_iter="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

source bench/common.sh
build_and_make_workdir
data="$work/higgs.csv"
generate_higgs "$rows" "$data"
echo "# $(date -u +%F) $(git rev-parse --short HEAD); $rows rows, $partitions partitions; 1 vs $workers workers; $(machine)"

for model in $models; do
  extra=()
  case $model in
    tree) extra=(--max-depth 10) ;;
    mlp) extra=(--hidden 64,64 --max-iter "$mlp_iter") ;;
  esac
  for ((i = 1; i <= pairs; i++)); do
    for w in 1 "$workers"; do
      "$bin" train --model "$model" --data "$data" --workers "$w" --partitions "$partitions" "${extra[@]}" \
        --quarantine "$work/q.csv" --json >>"$work/$model-$w.jsonl"
    done
  done
  python3 - "$model" "$workers" "$work/$model-1.jsonl" "$work/$model-$workers.jsonl" <<'PY'
import json, statistics, sys
model, workers, one_file, many_file = sys.argv[1:]
one = [json.loads(l) for l in open(one_file)]
many = [json.loads(l) for l in open(many_file)]
# trainbench's run record: scores nested, CPU as cpu_seconds (results.json's layout).
for r in one + many:
    r.update(accuracy=r["scores"]["accuracy"], log_loss=r["scores"]["log_loss"], fit_cpu_seconds=r["cpu_seconds"])
fit = lambda rs: statistics.median(r["fit_seconds"] for r in rs)
# The fitted model, seen through its final training loss and its test log loss.
result = lambda r: (r["log"][-1]["loss"], r["log_loss"])
same = len({result(r) for r in one + many}) == 1
times = lambda rs: " ".join(f"{r['fit_seconds']:.2f}" for r in rs)
# Each pair ran back to back, so its ratio sees the same load on the shared machine.
pair_ratio = statistics.median(a["fit_seconds"] / b["fit_seconds"] for a, b in zip(one, many))
print(f"{model:5s} fit: 1 worker {fit(one):6.2f} s, {workers} workers {fit(many):6.2f} s, speedup {fit(one) / fit(many):4.2f}x "
      f"(median of pair ratios {pair_ratio:4.2f}x) | "
      f"same model: {'yes' if same else 'NO'} | accuracy {one[0]['accuracy']:.4f} | runs: [{times(one)}] vs [{times(many)}]")
PY
done
