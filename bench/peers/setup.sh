#!/usr/bin/env bash
# Installs the peers into bench/.venv: PySpark 4.x (it carries Spark's jars; Java 17 must be on
# the machine), and the packages its ML and the peer scripts use.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q 'pyspark==4.*' 'pandas<3' pyarrow numpy psutil
.venv/bin/python -c "import pyspark; print('PySpark', pyspark.__version__, 'in bench/.venv')"
