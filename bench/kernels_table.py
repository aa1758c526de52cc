"""Prints the table of bench/kernels.sh from criterion's saved estimates.

Each kernel's rate is set beside the two hardware measurements of the same run: read
bandwidth (hardware/memory_read) and the GEMM rate in the kernel's arithmetic
(hardware/sgemm_flop for f32, hardware/dgemm_flop for f64). The MLP's FLOPs follow from the
layer sizes in its benchmark id ("28-64-64-2/f64"): per row, the forward pass, the weight
gradients and the deltas sent back to every hidden layer, each one multiply-add per weight.
"""

import json
import pathlib
import sys


def load(root):
    results = {}
    for bench in pathlib.Path(root).glob("*/**/new/benchmark.json"):
        meta = json.loads(bench.read_text())
        estimates = json.loads((bench.parent / "estimates.json").read_text())
        results[meta["full_id"]] = (meta, estimates["median"]["point_estimate"] / 1e9)
    return results


def mlp_flops_per_row(layers):
    pairs = list(zip(layers, layers[1:]))
    forward = sum(i * o for i, o in pairs)
    # Deltas go back through every layer but the first.
    back = sum(i * o for i, o in pairs[1:])
    return 2 * (forward + forward + back)


def main(root):
    results = load(root)
    try:
        _, read_s = results["hardware/memory_read"]
        read_meta, _ = results["hardware/memory_read"]
        read_gbs = read_meta["throughput"]["Bytes"] / read_s / 1e9
        gemm_gflops, n = {}, None
        for kind, prefix in (("f32", "hardware/sgemm_flop/"), ("f64", "hardware/dgemm_flop/")):
            gemm_id = next(k for k in results if k.startswith(prefix))
            gemm_meta, gemm_s = results[gemm_id]
            gemm_gflops[kind] = gemm_meta["throughput"]["Elements"] / gemm_s / 1e9
            n = gemm_id.rsplit("/", 1)[1]
    except (KeyError, StopIteration):
        sys.exit(f"no hardware measurements under {root}: run bench/kernels.sh")
    print(f"read bandwidth {read_gbs:.1f} GB/s; GEMM ({n}³, matrixmultiply) f32 {gemm_gflops['f32']:.1f}, "
          f"f64 {gemm_gflops['f64']:.1f} GFLOP/s\n")
    print("| kernel | median time | rows/s | GB/s | share of read bandwidth | GFLOP/s | share of GEMM rate |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted(k for k in results if k.startswith("kernel/")):
        meta, seconds = results[key]
        tp = meta["throughput"]["ElementsAndBytes"]
        rows_s = tp["elements"] / seconds
        gbs = tp["bytes"] / seconds / 1e9
        flops = "–"
        flop_share = "–"
        if "mlp" in meta["function_id"]:
            shape, _, arithmetic = meta["value_str"].partition("/")
            layers = [int(v) for v in shape.split("-")]
            gflops = tp["elements"] * mlp_flops_per_row(layers) / seconds / 1e9
            flops = f"{gflops:.1f}"
            flop_share = f"{gflops / gemm_gflops[arithmetic or 'f32']:.0%} of {arithmetic or 'f32'}"
        name = key.removeprefix("kernel/")
        print(
            f"| {name} | {seconds * 1e3:.2f} ms | {rows_s / 1e6:.2f} M | {gbs:.2f} | "
            f"{gbs / read_gbs:.0%} | {flops} | {flop_share} |"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
