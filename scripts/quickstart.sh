#!/usr/bin/env bash
# Install, train the default Transformer on the embedded corpus, print test scores,
# and translate a few test sentences. Usage: bash scripts/quickstart.sh [RUN_DIR]
set -euo pipefail
. "$(dirname "$0")/install.sh"
root=${1:-runs/quickstart}
nmt fit --trainer.default_root_dir "$root"
ckpt="$root/checkpoints/best.ckpt"
echo "[quickstart] best checkpoint: $ckpt"
nmt test --trainer.default_root_dir "$root" --ckpt_path "$ckpt"
python -m nmt.data.synthetic data/embedded
echo "[quickstart] five test sentences and their translations:"
head -n 5 data/embedded/test.en > "$root/five.en"
nmt translate --ckpt "$ckpt" --input "$root/five.en" --output "$root/five.hyp"
paste -d '\n' "$root/five.en" "$root/five.hyp"
