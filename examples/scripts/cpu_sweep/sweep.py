"""Matmul GFLOP/s at several sizes, as a multiple_results CSV (model,performance,metric,...)."""
import argparse
import csv
import time

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--output", default="sweep_results.csv")
parser.add_argument("--sizes", default="128,256,512")
opts = parser.parse_args()

rows = []
for size in (int(s) for s in opts.sizes.split(",")):
    a = np.ones((size, size), dtype=np.float32)
    a @ a
    start = time.perf_counter()
    for _ in range(3):
        a @ a
    seconds = (time.perf_counter() - start) / 3
    rows.append({"model": f"matmul_{size}", "performance": f"{2 * size**3 / seconds / 1e9:.3f}",
                 "metric": "GFLOPS", "matrix_size": size})
    print(f"{size}x{size}: {rows[-1]['performance']} GFLOPS")

with open(opts.output, "w", newline="") as fh:
    writer = csv.DictWriter(fh, fieldnames=["model", "performance", "metric", "matrix_size"])
    writer.writeheader()
    writer.writerows(rows)
