#!/usr/bin/env bash
# trainbench's tensor engine side by side with Keras 3 on TensorFlow-CPU on the same generated
# HIGGS-like file (batch 1024, Adam 1e-3, 80/20 split, the same cores for both): runs the two
# alternately (A B A B ...) and prints, per model, the first epoch (Keras traces its graph then)
# and the steady-state epoch (median of the later ones) of each side, the steady-state ratio,
# accuracy, both memory peaks of each side (whole process; fit only) and CPU.
#
# Usage: bench/tensor.sh [--rows 1000000] [--pairs 3] [--epochs 3] [--workers 2]
#                        [--models "mlp cnn lstm"]
# Needs bench/peers/setup.sh run once (TensorFlow in bench/.venv). Not run in CI: too slow.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=1000000; pairs=3; epochs=3; workers=$(nproc); models="mlp cnn lstm"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --pairs) pairs="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
py=bench/.venv/bin/python
[[ -x $py ]] || { echo "run bench/peers/setup.sh first" >&2; exit 2; }
(( epochs >= 2 )) || { echo "--epochs must be at least 2: the first epoch is reported apart" >&2; exit 2; }

source bench/common.sh
build_and_make_workdir
data="$work/higgs.csv"
generate_higgs "$rows" "$data"
echo "# $(date -u +%F) $(git rev-parse --short HEAD); $rows rows, $epochs epochs, batch 1024, $workers workers; $(machine)"

for model in $models; do
  extra=(--hidden 128,128)
  [[ $model == mlp ]] || extra=()
  for ((i = 1; i <= pairs; i++)); do
    "$bin" train --engine tensor --model "$model" --data "$data" --epochs "$epochs" --batch-size 1024 "${extra[@]}" \
      --workers "$workers" --quarantine "$work/q.csv" --json >>"$work/tb-$model.jsonl"
    "$py" bench/peers/keras_tf.py --data "$data" --model "$model" --epochs "$epochs" --batch-size 1024 \
      --workers "$workers" 2>>"$work/keras.log" | tail -1 >>"$work/keras-$model.jsonl"
  done
  "$py" - "$model" "$work/tb-$model.jsonl" "$work/keras-$model.jsonl" <<'PY'
import json, statistics, sys
model, tb_file, k_file = sys.argv[1:]
tb = [json.loads(l) for l in open(tb_file)]
# trainbench's run record: scores nested, CPU as cpu_seconds (results.json's layout).
for r in tb:
    r.update(accuracy=r["scores"]["accuracy"], log_loss=r["scores"]["log_loss"], fit_cpu_seconds=r["cpu_seconds"])
ks = [json.loads(l) for l in open(k_file)]
med = lambda rs, f: statistics.median(f(r) for r in rs)
first = lambda r: r["epoch_seconds"][0]
# The steady state: every epoch after the first (Keras traces its graph in the first).
steady = lambda r: statistics.median(r["epoch_seconds"][1:])
tb_s, k_s = med(tb, steady), med(ks, steady)
pair = statistics.median(steady(k) / steady(t) for t, k in zip(tb, ks))
mib = lambda rs, k: med(rs, lambda r: r[k]) / 2**20
print(f"{model:5s} steady s/epoch: trainbench {tb_s:7.2f}, Keras {k_s:7.2f}, ratio {k_s / tb_s:5.2f}x (pairs {pair:5.2f}x) | "
      f"first epoch {med(tb, first):.2f} vs {med(ks, first):.2f} | "
      f"CPU s/fit {med(tb, lambda r: r['fit_cpu_seconds']):.1f} vs {med(ks, lambda r: r['fit_cpu_seconds']):.1f} "
      f"(cores busy {med(tb, lambda r: r['fit_cpu_seconds'] / r['fit_seconds']):.2f} vs {med(ks, lambda r: r['fit_cpu_seconds'] / r['fit_seconds']):.2f}) | "
      f"accuracy {med(tb, lambda r: r['accuracy']):.4f} vs {med(ks, lambda r: r['accuracy']):.4f} | "
      f"peak MiB whole {mib(tb, 'process_peak_rss_bytes'):.0f} vs {mib(ks, 'peak_rss_bytes'):.0f} "
      f"({med(tb, lambda r: r['process_peak_rss_bytes']) / med(ks, lambda r: r['peak_rss_bytes']):.2f}), "
      f"fit {mib(tb, 'peak_rss_bytes'):.0f} vs {mib(ks, 'fit_peak_rss_bytes'):.0f} | {len(tb)} pairs, {ks[0]['system']}")
PY
done
