#!/usr/bin/env bash
# Dense matrix multiply throughput, the classic first benchmark.
set -euo pipefail
exec python3 "$(dirname "$0")/matmul.py" "$@"
