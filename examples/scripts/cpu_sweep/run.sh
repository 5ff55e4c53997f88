#!/usr/bin/env bash
# Several results from one run: matmul throughput at three sizes, written to the CSV
# named by the model's multiple_results (madengine passes it as MAD_OUTPUT_CSV).
set -euo pipefail
exec python3 "$(dirname "$0")/sweep.py" --output "${MAD_OUTPUT_CSV:-sweep_results.csv}" "$@"
