#!/usr/bin/env bash
# Installs the peers into bench/.venv: TensorFlow-CPU 2.21 with Keras 3, PySpark 4.x (it carries Spark's jars; Java 17 must be on
# the machine), and the packages its ML and the peer scripts use.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q 'pyspark==4.*' 'pandas<3' pyarrow numpy psutil 'tensorflow-cpu==2.21.*'
.venv/bin/python -c "import pyspark, tensorflow; print('PySpark', pyspark.__version__, 'and TensorFlow', tensorflow.__version__, 'in bench/.venv')"
