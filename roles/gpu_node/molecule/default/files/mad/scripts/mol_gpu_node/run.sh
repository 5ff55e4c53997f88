#!/usr/bin/env bash
# Reports the rate it is given (--rate N), as a benchmark would.
echo "running on $(hostname) with MAD_RUNTIME_NGPUS=${MAD_RUNTIME_NGPUS:-unset}"
echo "performance: ${2:-1.0} samples_per_second"
