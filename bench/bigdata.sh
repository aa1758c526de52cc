#!/usr/bin/env bash
# Data larger than memory: a generated HIGGS-like CSV is prepared into a directory and trained on
# inside a memory cgroup, and the same models are trained on a subset held in memory, so the
# table shows what crossing the memory boundary costs. Per model (spark lr and tree, tensor mlp
# one epoch) three runs:
#   memory   the first --subset-rows rows of the file, prepared in memory (no limit)
#   cached   the whole prepared directory, mapped, with no limit (its pages in the page cache)
#   limited  the whole prepared directory, mapped, inside a memory cgroup of --limit-mib
# and prints rows per second per pass over the training rows (an L-BFGS evaluation, a tree
# level, an epoch), the bytes of prepared rows that makes per second, fit seconds, the peak
# resident memory of the process and the test log-loss (cached and limited fit the same model),
# beside the disk's sequential read rate (dd, caches dropped first where allowed). Raw run
# records (train --json) go to --out.
#
# Usage: bench/bigdata.sh [--rows 3000000] [--subset-rows 300000] [--limit-mib 512]
#                         [--models "lr tree mlp"] [--dir DIR] [--out DIR]
# --dir is where the data goes (mind the disk: about 270 bytes a row of CSV, 116 prepared).
# Needs root (a memory cgroup). Not run in CI: too slow.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=3000000; subset=300000; limit_mib=512; models="lr tree mlp"; dir=""; out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --subset-rows) subset="$2"; shift 2 ;;
    --limit-mib) limit_mib="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

source bench/common.sh
build_and_make_workdir
data_dir="${dir:-$work}"
mkdir -p "$data_dir"
out="${out:-bench/results/bigdata-$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
df -h "$data_dir" | tail -1 | awk '{print "# disk free where the data goes: " $4}'

# A memory cgroup (v1) for the limited runs, removed on exit.
cg="/sys/fs/cgroup/memory/trainbench-bench-$$"
mkdir "$cg"
trap 'rmdir "$cg" 2>/dev/null; rm -rf "$work"' EXIT
echo $((limit_mib << 20)) > "$cg/memory.limit_in_bytes"
in_cgroup() { sh -c "echo \$\$ > '$cg/cgroup.procs' && exec \"\$0\" \"\$@\"" "$@"; }

csv="$data_dir/higgs.csv"
generate_higgs "$rows" "$csv"
head -n $((subset + 1)) "$csv" > "$data_dir/subset.csv"
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "# (page cache not dropped: not allowed here)"; }
drop_caches
read_rate=$(dd if="$csv" of=/dev/null bs=16M 2>&1 | tail -1 | awk -F, '{print $NF}' | xargs)

start=$(date +%s.%N)
in_cgroup "$bin" prepare --data "$csv" --label label --out "$data_dir/prepared" --json > "$out/prepare.json"
prepare_s=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
prepared_bytes=$(du -sb "$data_dir/prepared" | cut -f1)
echo "# $(date -u +%F) $(git rev-parse --short HEAD); $rows rows ($(du -h "$csv" | cut -f1) CSV, $((prepared_bytes >> 20)) MiB prepared); limit ${limit_mib} MiB; subset $subset rows; $(machine)"
echo "# sequential read of the CSV, caches dropped: $read_rate; prepare inside the limit: ${prepare_s} s, peak $(python3 -c "import json,sys; print(json.load(open('$out/prepare.json'))['peak_rss_bytes'] >> 20)") MiB"

printf '%-6s %-8s %10s %6s %9s %14s %10s %10s %12s\n' model run rows passes "fit s" "rows/s/pass" "data MB/s" "peak MiB" "test loss"
for model in $models; do
  case $model in
    lr) args=(--engine spark --model lr --max-iter 10) ;;
    tree) args=(--engine spark --model tree --max-depth 6) ;;
    mlp) args=(--engine tensor --model mlp --epochs 1 --batch-size 1024 --shuffle-buffer 100000) ;;
    *) echo "unknown model $model" >&2; exit 2 ;;
  esac
  for run in memory cached limited; do
    case $run in
      memory) cmd=("$bin" train "${args[@]}" --data "$data_dir/subset.csv" --label label --json) ;;
      cached) cmd=("$bin" train "${args[@]}" --data "$data_dir/prepared" --json) ;;
      limited) drop_caches >/dev/null; cmd=(in_cgroup "$bin" train "${args[@]}" --data "$data_dir/prepared" --json) ;;
    esac
    "${cmd[@]}" > "$out/$model-$run.json"
    python3 - "$out/$model-$run.json" "$model" "$run" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
# A pass reads every training row once: an L-BFGS evaluation (spark lr, mlp), a tree level, an epoch.
passes = max(r.get("evaluations") or r["iterations"], 1)
rate = r["train_rows"] * passes / r["fit_seconds"]
row_bytes = 4 * r["features"] + 4
peak = max(r["peak_rss_bytes"], r.get("process_peak_rss_bytes", 0)) >> 20
loss = r["scores"]["log_loss"]
print(f'{sys.argv[2]:<6} {sys.argv[3]:<8} {r["train_rows"]:>10} {passes:>6} {r["fit_seconds"]:>9.2f} {rate:>14.0f} '
      f'{rate * row_bytes / 1e6:>10.0f} {peak:>10} {loss:>12.9f}')
EOF
  done
done
echo "# raw records: $out"
