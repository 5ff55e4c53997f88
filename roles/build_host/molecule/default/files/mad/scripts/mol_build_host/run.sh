#!/usr/bin/env bash
echo "performance: 1.0 samples_per_second"
