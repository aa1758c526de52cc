#!/usr/bin/env bash
# Starts or stops a local MLflow tracking server (MLflow from PyPI, a SQLite store, artifacts
# served by the server itself) for trainbench's --mlflow and its tests.
#
#   scripts/mlflow-server.sh start [PORT]   # prints http://127.0.0.1:PORT when it answers
#                                           # (default: a free port)
#   scripts/mlflow-server.sh stop
#
# The venv is $MLFLOW_VENV (default .mlflow-venv); the store, artifacts, log and PID file go to
# $MLFLOW_STATE (default target/mlflow).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${MLFLOW_VENV:-.mlflow-venv}"
STATE="${MLFLOW_STATE:-target/mlflow}"
MLFLOW_VERSION="3.17.2"

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }

case "${1:-}" in
start)
    port="${2:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
    if [ ! -x "$VENV/bin/mlflow" ]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "mlflow==$MLFLOW_VERSION"
    fi
    mkdir -p "$STATE"
    STATE="$(cd "$STATE" && pwd)"
    # Its own process group, so stop ends the server's workers too.
    setsid "$VENV/bin/mlflow" server --host 127.0.0.1 --port "$port" --workers 1 \
        --backend-store-uri "sqlite:///$STATE/mlflow.db" --artifacts-destination "$STATE/artifacts" \
        >"$STATE/server.log" 2>&1 &
    echo $! >"$STATE/server.pid"
    for _ in $(seq 1 120); do
        if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
            "http://127.0.0.1:$port/health" 2>/dev/null; then
            echo "http://127.0.0.1:$port"
            exit 0
        fi
        sleep 1
    done
    echo "the MLflow server did not answer on port $port within 120 s; its log:" >&2
    tail -n 40 "$STATE/server.log" >&2 || true
    exit 1
    ;;
stop)
    if [ -f "$STATE/server.pid" ]; then
        kill -- "-$(cat "$STATE/server.pid")" 2>/dev/null || true
        rm -f "$STATE/server.pid"
    fi
    ;;
-h | --help)
    usage
    ;;
*)
    usage >&2
    exit 2
    ;;
esac
