"""Runs an ONNX model exported by `trainbench export` with ONNX Runtime on a CSV file.

Usage: python3 onnx_predict.py MODEL.onnx DATA.csv OUT.csv

Each graph input is the CSV column of its name: double inputs get the number (NaN when the field
is empty), string inputs the text. OUT.csv gets one row per data row: the probabilities, then the
predicted class.
"""
import csv
import sys

import numpy as np
import onnxruntime as ort

model, data, out = sys.argv[1:4]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
with open(data, newline="") as f:
    rows = list(csv.DictReader(f))
feeds = {}
for i in session.get_inputs():
    values = [r[i.name].strip() for r in rows]
    if i.type == "tensor(double)":
        feeds[i.name] = np.array([[float(v) if v else np.nan] for v in values], dtype=np.float64)
    elif i.type == "tensor(string)":
        feeds[i.name] = np.array([[v] for v in values], dtype=object)
    else:
        sys.exit(f"input {i.name} has type {i.type}, which trainbench does not write")
probabilities, prediction = session.run(["probabilities", "prediction"], feeds)
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    for p, label in zip(probabilities, prediction):
        w.writerow([repr(float(v)) for v in p] + [label])
print(f"{len(rows)} rows")
