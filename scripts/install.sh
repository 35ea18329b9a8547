# Source me (". scripts/install.sh"): puts nmt and its dev tools into a virtual environment.
# Uses the active virtual environment if there is one, else creates ./.venv.
# PyTorch comes first: torch 2.13.0 (CPU build) where there is no NVIDIA GPU, the default
# CUDA build where there is one; set TORCH_SPEC / TORCH_INDEX_URL to choose yourself, e.g.
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for the small CPU wheel on Linux.
set -e
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  . .venv/bin/activate
fi
if ! python -c "import torch" >/dev/null 2>&1; then
  if [ -z "${TORCH_SPEC:-}" ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
      TORCH_SPEC="torch>=2.4"
    else
      TORCH_SPEC="torch==2.13.0"
    fi
  fi
  echo "[install] $TORCH_SPEC"
  python -m pip install -q "$TORCH_SPEC" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
echo "[install] nmt, its requirements and the optional export, serve and hf packages"
python -m pip install -q -e ".[dev,export,serve,hf]"
