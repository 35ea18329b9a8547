#!/usr/bin/env bash
# Install what the tests need, then run the whole suite on the CPU (about 10 minutes on 2 cores).
# One test process per core, each with one thread (and the programs the tests start inherit it):
# more threads than cores would make PyTorch's OpenMP threads spin against each other.
set -euo pipefail
. "$(dirname "$0")/install.sh"
export WANDB_MODE=offline
WORKERS=${NMT_TEST_WORKERS:-$(python -c "import os; print(len(os.sched_getaffinity(0)))")}
if [ "$WORKERS" -gt 1 ]; then
  OMP_NUM_THREADS=1 python -m pytest -q -n "$WORKERS" --dist loadfile "$@"
else
  python -m pytest -q "$@"
fi
