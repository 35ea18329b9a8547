#!/usr/bin/env bash
# Install what the tests need, then run the whole suite on the CPU (a few minutes on 2 cores).
set -euo pipefail
. "$(dirname "$0")/install.sh"
export WANDB_MODE=offline
python -m pytest -q "$@"
