#!/usr/bin/env bash
# Installs the peers into bench/.venv, pinned so every number in RESULTS.md names what it ran
# against: PySpark 4.3.0 (it carries Spark's jars; Java 17 must be on the machine), Keras 3.15.1 on
# TensorFlow-CPU 2.21.0, and the packages their ML and the peer scripts use.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q 'pyspark==4.3.0' 'keras==3.15.1' 'tensorflow-cpu==2.21.0' 'pandas<3' pyarrow numpy psutil
.venv/bin/python -c "import pyspark, keras, tensorflow; print('PySpark', pyspark.__version__, 'Keras', keras.__version__, 'TensorFlow', tensorflow.__version__, 'in bench/.venv')"
