"""Memory copy bandwidth (read + write) of a large NumPy buffer, in GB/s."""
import argparse
import time

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--megabytes", type=int, default=64)
parser.add_argument("--repeat", type=int, default=5)
opts = parser.parse_args()

src = np.ones(opts.megabytes * 1024 * 1024 // 8)
dst = np.empty_like(src)
np.copyto(dst, src)  # fault the pages in
best = float("inf")
for _ in range(opts.repeat):
    start = time.perf_counter()
    np.copyto(dst, src)
    best = min(best, time.perf_counter() - start)
gbps = 2 * src.nbytes / best / 1e9
print(f"copied {src.nbytes / 2**20:.0f} MiB, best of {opts.repeat}: {best * 1e3:.2f} ms")
print(f"performance: {gbps:.3f} GB_per_second")
