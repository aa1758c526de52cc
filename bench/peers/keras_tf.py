#!/usr/bin/env python3
"""Trains one model with Keras 3 on TensorFlow-CPU the way trainbench's tensor engine does, and
prints one JSON line: fit seconds, seconds of each epoch (the first includes tracing the graph;
the others are the steady state), accuracy, macro F1, CPU seconds, and two memory peaks: the
whole process's (peak_rss_bytes, data loading included) and the fit's (fit_peak_rss_bytes, the
kernel's high-water mark reset when the fit starts, as trainbench does).

Same steps as `trainbench train --engine tensor`: read the CSV, split 80/20 with the seed,
standard-scale with the training rows' mean and sample std, then fit with Adam (lr 1e-3) and
the same layers: mlp Dense(128, relu) ×2; cnn Conv1D(32, 3) → MaxPool(2) → Conv1D(64, 3) →
MaxPool(2) → Flatten → Dense(64); lstm LSTM(64); softmax head.

TensorFlow's thread pools are sized to --workers cores, as trainbench's --workers.

Usage: keras_tf.py --data FILE --model mlp|cnn|lstm [--epochs 3] [--batch-size 1024] [--seed 42]
       [--workers 2]
"""
import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True, choices=["mlp", "cnn", "lstm"])
    ap.add_argument("--label", default="label")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()

    import numpy as np
    import pandas as pd
    import tensorflow as tf
    import keras

    tf.config.threading.set_intra_op_parallelism_threads(args.workers)
    tf.config.threading.set_inter_op_parallelism_threads(args.workers)

    keras.utils.set_random_seed(args.seed)
    t0 = time.perf_counter()
    frame = pd.read_csv(args.data)
    y_raw = frame.pop(args.label)
    classes = sorted(y_raw.unique())
    y = y_raw.map({c: i for i, c in enumerate(classes)}).to_numpy(np.int32)
    x = frame.to_numpy(np.float32)
    order = np.random.default_rng(args.seed).permutation(len(y))
    n_test = int(round(0.2 * len(y)))
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(0), x[train].std(0, ddof=1)
    std[std == 0] = 1
    x = (x - mean) / std
    prepare_seconds = time.perf_counter() - t0

    d, k = x.shape[1], len(classes)
    if args.model == "mlp":
        layers = [keras.Input((d,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(128, activation="relu")]
    elif args.model == "cnn":
        layers = [keras.Input((d,)), keras.layers.Reshape((d, 1)),
                  keras.layers.Conv1D(32, 3, activation="relu"), keras.layers.MaxPooling1D(2),
                  keras.layers.Conv1D(64, 3, activation="relu"), keras.layers.MaxPooling1D(2),
                  keras.layers.Flatten(), keras.layers.Dense(64, activation="relu")]
    else:
        layers = [keras.Input((d,)), keras.layers.Reshape((d, 1)), keras.layers.LSTM(64)]
    model = keras.Sequential(layers + [keras.layers.Dense(k, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    epoch_times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_times.append(time.perf_counter() - self.start)

    x_train, y_train = x[train], y[train]
    # The fit's own peak: the kernel's high-water mark is reset here (Linux clear_refs).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=0, callbacks=[Timer()])
    fit_seconds = time.perf_counter() - t0
    fit_cpu = time.process_time() - cpu0
    fit_peak = vm_hwm()
    proba = model.predict(x[test], batch_size=8192, verbose=0)
    pred = proba.argmax(1)
    truth = y[test]
    f1s = []
    for c in range(k):
        tp = np.sum((pred == c) & (truth == c))
        p = tp / max(np.sum(pred == c), 1)
        r = tp / max(np.sum(truth == c), 1)
        f1s.append(0.0 if p + r == 0 else 2 * p * r / (p + r))
    print(json.dumps({
        "system": f"keras {keras.__version__} / tensorflow {tf.__version__}",
        "model": args.model,
        "rows": int(len(y)),
        "prepare_seconds": prepare_seconds,
        "fit_seconds": fit_seconds,
        "epoch_seconds": epoch_times,
        "fit_cpu_seconds": fit_cpu,
        "accuracy": float(np.mean(pred == truth)),
        "f1_macro": float(np.mean(f1s)),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "fit_peak_rss_bytes": fit_peak,
        "workers": args.workers,
    }))


def vm_hwm():
    """The process's resident high-water mark (VmHWM) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    sys.exit(main())
