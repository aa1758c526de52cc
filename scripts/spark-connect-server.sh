#!/usr/bin/env bash
# Starts or stops a local Spark Connect server (real Apache Spark, local[2]) for trainbench's
# cluster mode and its tests. Spark comes from the PySpark wheel on PyPI (it carries Spark's jars
# and sbin/); Java 17 must be on the machine.
#
#   scripts/spark-connect-server.sh start [PORT]   # prints sc://127.0.0.1:PORT when it answers
#                                                  # (default: a free port)
#   scripts/spark-connect-server.sh stop
#
# The venv is $SPARK_VENV (default .spark-venv); logs and the PID file go to $SPARK_STATE
# (default target/spark-connect).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SPARK_VENV:-.spark-venv}"
STATE="${SPARK_STATE:-target/spark-connect}"
PYSPARK_VERSION="4.3.0"

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }

spark_env() {
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import pyspark" 2>/dev/null; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "pyspark==$PYSPARK_VERSION"
    fi
    SPARK_HOME="$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
    mkdir -p "$STATE"
    STATE="$(cd "$STATE" && pwd)"
    export SPARK_HOME SPARK_LOG_DIR="$STATE" SPARK_PID_DIR="$STATE" SPARK_IDENT_STRING=trainbench
    export PYSPARK_PYTHON="$(cd "$VENV" && pwd)/bin/python"
}

case "${1:-}" in
start)
    # Default: a free loopback port.
    port="${2:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
    command -v java >/dev/null || { echo "Java 17 is needed to run Spark (java not found)" >&2; exit 1; }
    spark_env
    # senderMaxStreamDuration 0: a long fit's result stream is not cut every 2 minutes.
    "$SPARK_HOME/sbin/start-connect-server.sh" --master 'local[2]' --driver-memory 4g \
        --conf spark.ui.enabled=false \
        --conf spark.connect.grpc.binding.address=127.0.0.1 \
        --conf "spark.connect.grpc.binding.port=$port" \
        --conf spark.connect.execute.reattachable.senderMaxStreamDuration=0 >/dev/null
    for _ in $(seq 1 180); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "sc://127.0.0.1:$port"
            exit 0
        fi
        sleep 1
    done
    echo "the Spark Connect server did not answer on port $port within 180 s; its log:" >&2
    tail -n 40 "$STATE"/*.out >&2 || true
    exit 1
    ;;
stop)
    spark_env
    "$SPARK_HOME/sbin/stop-connect-server.sh" >/dev/null || true
    ;;
-h | --help)
    usage
    ;;
*)
    usage >&2
    exit 2
    ;;
esac
