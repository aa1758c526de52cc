#!/usr/bin/env bash
# trainbench's spark engine side by side with PySpark MLlib (classic session, local[N]) on the
# same generated HIGGS-like file: runs the two alternately (A B A B ...) with the same cores,
# the same maxIter and tol (both stop by Breeze's rule) and prints, per model, the median fit
# time and ratio, both iteration counts, accuracy, both memory peaks of each side (whole process;
# fit only) and CPU. The MLP runs in f64 (MLlib's arithmetic) and in f32, each against PySpark.
#
# Usage: bench/spark.sh [--rows 1000000] [--pairs 3] [--workers 2] [--models "lr tree mlp"]
#                       [--mlp-iter 100]
# Needs bench/peers/setup.sh run once (PySpark in bench/.venv). Not run in CI: too slow.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=1000000; pairs=3; workers=2; models="lr tree mlp"; mlp_iter=100
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --pairs) pairs="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    --mlp-iter) mlp_iter="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
py=bench/.venv/bin/python
[[ -x $py ]] || { echo "run bench/peers/setup.sh first" >&2; exit 2; }

source bench/common.sh
build_and_make_workdir
data="$work/higgs.csv"
generate_higgs "$rows" "$data"
echo "# $(date -u +%F) $(git rev-parse --short HEAD); $rows rows; local[$workers] vs --workers $workers; $(machine)"

for model in $models; do
  extra_tb=(); extra_py=(); variants=(plain)
  case $model in
    tree) extra_tb=(--max-depth 10); extra_py=(--max-depth 10) ;;
    mlp) extra_tb=(--hidden 64,64 --max-iter "$mlp_iter"); extra_py=(--hidden 64,64 --max-iter "$mlp_iter")
         variants=(f64 f32) ;;
  esac
  for ((i = 1; i <= pairs; i++)); do
    for v in "${variants[@]}"; do
      precision=(); [[ $v == plain ]] || precision=(--precision "$v")
      "$bin" train --model "$model" --data "$data" --workers "$workers" "${extra_tb[@]}" "${precision[@]}" \
        --quarantine "$work/q.csv" --json >>"$work/tb-$model-$v.jsonl"
    done
    "$py" bench/peers/pyspark_mllib.py --data "$data" --model "$model" --workers "$workers" "${extra_py[@]}" \
      2>>"$work/pyspark.log" | tail -1 >>"$work/py-$model.jsonl"
  done
  for v in "${variants[@]}"; do
    "$py" - "$model" "$v" "$work/tb-$model-$v.jsonl" "$work/py-$model.jsonl" <<'PY'
import json, statistics, sys
model, variant, tb_file, py_file = sys.argv[1:]
tb = [json.loads(l) for l in open(tb_file)]
# trainbench's run record: scores nested, CPU as cpu_seconds (results.json's layout).
for r in tb:
    r.update(accuracy=r["scores"]["accuracy"], log_loss=r["scores"]["log_loss"], fit_cpu_seconds=r["cpu_seconds"])
py = [json.loads(l) for l in open(py_file)]
med = lambda rs, k: statistics.median(r[k] for r in rs)
mib = lambda rs, k: med(rs, k) / 2**20
tb_fit, py_fit = med(tb, "fit_seconds"), med(py, "fit_seconds")
# Each pair ran back to back, so its ratio sees the same load on the shared machine.
pair = statistics.median(p["fit_seconds"] / t["fit_seconds"] for t, p in zip(tb, py))
tb_prep = statistics.median(r["phase_seconds"]["load"] + r["phase_seconds"]["clean"] + r["phase_seconds"]["preprocess"] for r in tb)
iters = lambda rs: "/".join(str(r["iterations"]) for r in rs)
name = model if variant == "plain" else f"{model} {variant}"
print(f"{name:8s} fit: trainbench {tb_fit:7.2f} s, PySpark {py_fit:7.2f} s, ratio {py_fit / tb_fit:5.1f}x "
      f"(pairs {pair:5.1f}x) | iterations {iters(tb)} vs {iters(py)} | "
      f"prepare {tb_prep:5.2f} s vs {med(py, 'prepare_seconds'):5.2f} s | "
      f"accuracy {med(tb, 'accuracy'):.4f} vs {med(py, 'accuracy'):.4f} | "
      f"peak MiB whole {mib(tb, 'process_peak_rss_bytes'):.0f} vs {mib(py, 'peak_rss_bytes'):.0f} "
      f"({med(tb, 'process_peak_rss_bytes') / med(py, 'peak_rss_bytes'):.2f}), "
      f"fit {mib(tb, 'peak_rss_bytes'):.0f} vs {mib(py, 'fit_peak_rss_bytes'):.0f} | "
      f"fit CPU s {med(tb, 'fit_cpu_seconds'):.1f} vs {med(py, 'fit_cpu_seconds'):.1f} "
      f"(cores busy {med(tb, 'fit_cpu_seconds') / tb_fit:.2f} vs {med(py, 'fit_cpu_seconds') / py_fit:.2f}) | "
      f"{len(tb)} pairs")
PY
  done
done
