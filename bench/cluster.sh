#!/usr/bin/env bash
# trainbench's embedded spark engine against the same models trained by real Spark MLlib through
# Spark Connect (cluster mode, --spark-remote), on the same generated HIGGS-like file, alternately
# (A B A B ...). Prints each run's fit seconds, accuracy and peak memory (the server's, for the
# cluster runs), and the cluster runs' read and preprocess seconds.
#
# Usage: bench/cluster.sh [--remote sc://127.0.0.1:15002] [--rows 1000000] [--pairs 2]
#                         [--models "lr tree mlp"] [--mlp-iter 20] [--mlp-rows 100000]
# Needs a running server (scripts/spark-connect-server.sh start 15002). Not run in CI: too slow.
set -euo pipefail
cd "$(dirname "$0")/.."

remote=sc://127.0.0.1:15002; rows=1000000; pairs=2; models="lr tree mlp"; mlp_iter=20; mlp_rows=100000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --remote) remote="$2"; shift 2 ;;
    --rows) rows="$2"; shift 2 ;;
    --pairs) pairs="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    --mlp-iter) mlp_iter="$2"; shift 2 ;;
    --mlp-rows) mlp_rows="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

source bench/common.sh
build_and_make_workdir
generate_higgs "$rows" "$work/big.csv"
generate_higgs "$mlp_rows" "$work/small.csv"
echo "# $(date -u +%F) $(git rev-parse --short HEAD); $rows rows (mlp: $mlp_rows); server $remote; $(machine)"
printf '%-8s %-6s %-5s %9s %9s %10s %8s %8s\n' where model pair "fit s" accuracy "peak MiB" "read s" "prep s"

one() { # where model pair args...
  local where=$1 model=$2 pair=$3; shift 3
  "$bin" train --engine spark --model "$model" "$@" --json | python3 -c '
import json, sys
where, model, pair = sys.argv[1:4]
d = json.load(sys.stdin)
ph = d.get("phase_seconds", {})
peak = (d.get("peak_rss_bytes") or 0) / 2**20
read = ph.get("read"); prep = ph.get("preprocess")
f = lambda v: "-" if v is None or where == "embedded" else "%.2f" % v
print("%-8s %-6s %-5s %9.2f %9.4f %10.0f %8s %8s" % (where, model, pair, d["fit_seconds"], d["scores"]["accuracy"], peak, f(read), f(prep)))
' "$where" "$model" "$pair"
}

for model in $models; do
  data="$work/big.csv"; extra=()
  case $model in
    tree) extra=(--max-depth 10) ;;
    mlp) data="$work/small.csv"; extra=(--hidden 64,64 --max-iter "$mlp_iter") ;;
  esac
  for pair in $(seq 1 "$pairs"); do
    one embedded "$model" "$pair" --data "$data" "${extra[@]}"
    one cluster "$model" "$pair" --data "$data" "${extra[@]}" --spark-remote "$remote"
  done
done
