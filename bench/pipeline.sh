#!/usr/bin/env bash
# Times `trainbench inspect` + `trainbench prepare` on a generated HIGGS-like CSV.
# Usage: bench/pipeline.sh [--rows N] [--repeats K]   (defaults: 1000000 rows, 3 repeats)
# Prints each run's wall seconds and the median; the goal for 1M x 28 is under 3 s for both.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=1000000
repeats=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    -h|--help) sed -n '2,4p' "$0" | sed 's/^# //'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

source bench/common.sh
build_and_make_workdir
data="$work/higgs-$rows.csv"
generate_higgs "$rows" "$data"
echo "data: $rows rows x 29 columns, $(du -h "$data" | cut -f1)B; $(machine)"

now() { date +%s.%N; }
inspect_times=()
prepare_times=()
for ((i = 1; i <= repeats; i++)); do
  t0=$(now); "$bin" inspect "$data" --json >/dev/null; t1=$(now)
  "$bin" prepare --data "$data" --quarantine "$work/q.csv" --json >"$work/prepare.json"; t2=$(now)
  inspect_times+=("$(awk "BEGIN{print $t1 - $t0}")")
  prepare_times+=("$(awk "BEGIN{print $t2 - $t1}")")
  printf 'run %d: inspect %.2f s, prepare %.2f s\n' "$i" "${inspect_times[-1]}" "${prepare_times[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mi=$(median "${inspect_times[@]}")
mp=$(median "${prepare_times[@]}")
printf 'median: inspect %.2f s + prepare %.2f s = %.2f s\n' "$mi" "$mp" "$(awk "BEGIN{print $mi + $mp}")"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('prepare phases:', {k: round(v, 2) for k, v in d['phase_seconds'].items()}, 'peak RSS MiB:', d['peak_rss_bytes'] >> 20)" "$work/prepare.json"
