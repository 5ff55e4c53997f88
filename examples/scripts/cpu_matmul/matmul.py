"""Dense float64 matrix multiply; prints GFLOP/s in madengine's performance format."""
import argparse
import time

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--size", type=int, default=512)
parser.add_argument("--repeat", type=int, default=5)
opts = parser.parse_args()

rng = np.random.default_rng(0)
a = rng.standard_normal((opts.size, opts.size))
b = rng.standard_normal((opts.size, opts.size))
a @ b  # warm up
best = float("inf")
for _ in range(opts.repeat):
    start = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - start)
gflops = 2 * opts.size**3 / best / 1e9
print(f"matmul {opts.size}x{opts.size} float64, best of {opts.repeat}: {best * 1e3:.2f} ms")
print(f"performance: {gflops:.3f} GFLOPS")
