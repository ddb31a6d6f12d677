#!/usr/bin/env bash
# One table of accelerator throughput (see benchmarks/accelerator.py): vits-jax float32 and
# bfloat16 at batch 1/8/32/128 with compile times and bf16 error, transformers eager beside it.
#   bash benchmarks/accelerator.sh           # full sizes, at most 8 minutes
#   bash benchmarks/accelerator.sh --small   # tiny sizes, runs on a CPU (tests/test_corpus.py)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
exec timeout 470 python benchmarks/accelerator.py "$@"
