"""Reads a TensorBoard log folder with TensorBoard's own reader and prints its scalars as JSON.

Usage: python3 read_tensorboard.py LOGDIR
Prints {"train": {"epoch_loss": [[step, value], ...], ...}, "validation": {...}}.
"""
import json
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

out = {}
for run in sorted(os.listdir(sys.argv[1])):
    acc = EventAccumulator(os.path.join(sys.argv[1], run), size_guidance={"scalars": 0})
    acc.Reload()
    out[run] = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
print(json.dumps(out))
