#!/usr/bin/env bash
# Criterion benchmarks of the hot kernels (LR loss-and-gradient pass, tree histogram pass, MLP
# forward + backward over blocks, CSV load; the tensor engine's MLP step per batch) beside the
# machine's measured read bandwidth and f32 matrix-multiply rate, all on one thread, then a
# table of each kernel's rows/s, GB/s and GFLOP/s as a share of those limits.
#
# Usage: bench/kernels.sh [--quick]   (--quick: criterion's quick mode, fewer samples)
# Not run in CI (too slow); CI checks --help only.
set -euo pipefail
cd "$(dirname "$0")/.."

args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) args+=(--quick); shift ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

source bench/common.sh
echo "# $(date -u +%F) $(git rev-parse --short HEAD); one thread; $(machine)"
# One thread for all: Burn's flex backend would otherwise spread a batch over the rayon pool.
export RAYON_NUM_THREADS=1
# Both engines' benchmarks in one invocation (bench/kernels is a workspace of its own, so that
# criterion does not change the main workspace's dependency builds).
manifest=bench/kernels/Cargo.toml
cargo bench -q --locked --manifest-path "$manifest" -- "${args[@]}" >&2
dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$manifest" | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
python3 bench/kernels_table.py "$dir/criterion"
