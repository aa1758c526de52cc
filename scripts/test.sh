#!/usr/bin/env bash
# The test suite, on a fresh machine or an old one: installs what the tests use besides Rust,
# starts the servers they talk to, runs `cargo test`, and stops the servers. CI runs this
# script too (.ci/run), so a newcomer's run and CI's are the same thing.
#
#   scripts/test.sh [ARGS...]    # ARGS go to `cargo test`, e.g. a test name: scripts/test.sh prepared
#   scripts/test.sh --install    # only install what the tests need (CI, before its lint pass)
#
# What it installs (once; later runs find it there):
#   Debian packages (as root, or through sudo): protobuf-compiler (the Spark Connect client's
#     protocol code), openmpi-bin + libopenmpi-dev + libclang-dev (the multi-process tests run
#     under `mpirun -np 2`), chromium (the report is opened headless), python3-venv.
#   A Python venv, .test-venv (put first on PATH for the tests): TensorBoard's event reader,
#     jsonschema and ONNX Runtime, the references the tests read results with; maturin, which
#     builds the pip wheel the wheel test installs.
# What it starts, on free loopback ports, and stops when it ends: a Spark Connect server
# (scripts/spark-connect-server.sh: Spark 4.3 from the PySpark wheel, local[2]; Java 17 needed)
# and an MLflow tracking server (scripts/mlflow-server.sh).
# TRAINBENCH_TEST_NO_SERVERS=1 skips the servers (their tests then print SKIPPED and pass).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
VENV="${TRAINBENCH_TEST_VENV:-.test-venv}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v chromium >/dev/null || missing+=(chromium)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v mpirun >/dev/null || missing+=(openmpi-bin)
dpkg -s libopenmpi-dev >/dev/null 2>&1 || missing+=(libopenmpi-dev)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The Python readers the tests call as `python3`, in a venv of their own.
if [ ! -x "$VENV/bin/python3" ] || ! "$VENV/bin/python3" -c 'import tensorboard, jsonschema, onnxruntime' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        tensorboard==2.20.0 jsonschema==4.26.0 onnxruntime==1.32.0 maturin==1.16.0
fi
PATH="$(cd "$VENV" && pwd)/bin:$PATH"
export PATH
[ "${1:-}" = --install ] && exit 0

# Build the tests first, so the servers are not idle through the compilation.
cargo test --workspace --locked --features trainbench/mpi --no-run

# The pip wheel (pyproject.toml: maturin, bindings = "bin"), for the test that installs it into
# a fresh venv. Its bin-only build reuses the test build's dependencies.
rm -rf target/wheels
maturin build --profile dev --locked --out target/wheels
TRAINBENCH_WHEEL="$(ls "$PWD"/target/wheels/trainbench-*.whl)"
export TRAINBENCH_WHEEL

if [ "${TRAINBENCH_TEST_NO_SERVERS:-0}" != 1 ]; then
    # A real Spark Connect server and a real MLflow tracking server, stopped when this ends.
    trap 'scripts/spark-connect-server.sh stop; scripts/mlflow-server.sh stop' EXIT
    TRAINBENCH_SPARK_REMOTE="$(scripts/spark-connect-server.sh start)"
    export TRAINBENCH_SPARK_REMOTE
    echo "Spark Connect server at $TRAINBENCH_SPARK_REMOTE"
    TRAINBENCH_MLFLOW_URI="$(scripts/mlflow-server.sh start)"
    export TRAINBENCH_MLFLOW_URI
    echo "MLflow tracking server at $TRAINBENCH_MLFLOW_URI"
fi

# With MPI: the multi-process tests run under mpirun -np 2.
cargo test --workspace --locked --features trainbench/mpi "$@"
