#!/usr/bin/env bash
# What the tests need besides Rust, on a fresh machine or an old one. The README's test command
# and CI (.ci/run) both use it:
#
#   eval "$(scripts/test-env.sh start)"   # install, build, start the servers; prints the exports
#   cargo test --workspace --locked --features trainbench/mpi
#   scripts/test-env.sh stop              # stop the servers
#
#   scripts/test-env.sh install           # only install (CI, before its lint pass)
#
# install: Debian packages (as root, or through sudo): protobuf-compiler (the Spark Connect
#   client's protocol code), openmpi-bin + libopenmpi-dev + libclang-dev (the multi-process tests
#   run under `mpirun -np 2`), iproute2 (scripts/test-hosts.sh makes the test hosts), chromium
#   (the report is opened headless), python3-venv; and a
#   Python venv, .test-venv, with TensorBoard's event reader, jsonschema and ONNX Runtime (the
#   references the tests read results with) and maturin.
# start: install, then build the tests and the pip wheel (the wheel test installs it into a fresh
#   venv), then start a Spark Connect server (scripts/spark-connect-server.sh: Spark 4.3 from the
#   PySpark wheel, local[2]; Java 17 needed) and an MLflow tracking server
#   (scripts/mlflow-server.sh) on free loopback ports. Its only standard output is the `export`
#   lines the tests read (PATH with the venv first, TRAINBENCH_WHEEL, TRAINBENCH_SPARK_REMOTE,
#   TRAINBENCH_MLFLOW_URI); everything else goes to standard error.
#   TRAINBENCH_TEST_NO_SERVERS=1 leaves the servers out (their tests then print SKIPPED and pass).
set -euo pipefail
cd "$(dirname "$0")/.."

# Standard output carries the exports alone.
exec 3>&1 1>&2

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
VENV="${TRAINBENCH_TEST_VENV:-.test-venv}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install() {
    local missing=()
    command -v python3 >/dev/null || missing+=(python3)
    python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
    command -v chromium >/dev/null || missing+=(chromium)
    command -v protoc >/dev/null || missing+=(protobuf-compiler)
    command -v mpirun >/dev/null || missing+=(openmpi-bin)
    dpkg -s libopenmpi-dev >/dev/null 2>&1 || missing+=(libopenmpi-dev)
    dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
    command -v ip >/dev/null || missing+=(iproute2)
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
}

case "${1:-}" in
install)
    install
    ;;
start)
    install
    # Build the tests first, so the servers are not idle through the compilation.
    cargo test --workspace --locked --features trainbench/mpi --no-run
    # The pip wheel (pyproject.toml: maturin, bindings = "bin"); its bin-only build reuses the
    # test build's dependencies.
    rm -rf target/wheels
    maturin build --profile dev --locked --out target/wheels
    wheel="$(ls "$PWD"/target/wheels/trainbench-*.whl)"
    exports=("PATH=$PATH" "TRAINBENCH_WHEEL=$wheel")
    if [ "${TRAINBENCH_TEST_NO_SERVERS:-0}" != 1 ]; then
        # The servers outlive this script: they must not hold the exports' pipe (fd 3) open.
        spark="$(scripts/spark-connect-server.sh start 3>&-)"
        echo "Spark Connect server at $spark"
        mlflow="$(scripts/mlflow-server.sh start 3>&-)"
        echo "MLflow tracking server at $mlflow"
        exports+=("TRAINBENCH_SPARK_REMOTE=$spark" "TRAINBENCH_MLFLOW_URI=$mlflow")
    fi
    for e in "${exports[@]}"; do printf 'export %q\n' "$e" >&3; done
    ;;
stop)
    scripts/spark-connect-server.sh stop || true
    scripts/mlflow-server.sh stop || true
    ;;
*)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
