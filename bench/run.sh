#!/usr/bin/env bash
# All side-by-side benchmarks in one run: trainbench's spark engine vs PySpark MLlib and its
# tensor engine vs Keras on TensorFlow-CPU, on generated HIGGS-like data, alternating A B A B.
#
# Usage: bench/run.sh [--size quick|full] [--pairs 3]
#   quick: 100 000 rows (a few minutes in all); full: 1 000 000 rows.
# Needs bench/peers/setup.sh run once. Not run in CI (too slow); CI checks --help only.
set -euo pipefail
cd "$(dirname "$0")/.."

size=quick; pairs=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --size) size="$2"; shift 2 ;;
    --pairs) pairs="$2"; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case $size in
  quick) rows=100000 ;;
  full) rows=1000000 ;;
  *) echo "--size must be quick or full" >&2; exit 2 ;;
esac
bench/spark.sh --rows "$rows" --pairs "$pairs"
bench/tensor.sh --rows "$rows" --pairs "$pairs"
