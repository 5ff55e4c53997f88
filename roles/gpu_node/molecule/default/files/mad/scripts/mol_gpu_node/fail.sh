#!/usr/bin/env bash
# A benchmark that breaks: no performance line, non-zero exit.
echo "mol_gpu_node_fail: giving up" >&2
exit 3
