#!/usr/bin/env bash
# The README's test command as one script: what the tests need (scripts/test-env.sh), the tests,
# the servers stopped at the end. Arguments go to `cargo test` (scripts/test.sh prepared runs the
# tests whose names hold `prepared`).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/test-env.sh start)"
trap 'scripts/test-env.sh stop' EXIT
cargo test --workspace --locked --features trainbench/mpi "$@"
