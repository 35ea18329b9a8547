#!/usr/bin/env bash
# Everything nmt checks on a GPU, in one call of about 10 minutes, every result under $OUT:
#   1. nmt on the machine's own torch (packages from .gpu/wheels, see scripts/gpu_prepare.sh; `pip check`);
#   2. tests/test_gpu.py (bf16-mixed and 16-mixed fits, the benchmark's GPU figures);
#   3. scripts/benchmark.py, bf16-mixed, on the d256 benchmark Transformer and on Transformer-base with a
#      large token budget: training tokens/s, MFU, peak memory, greedy and beam-5 sentences/s, a profile;
#   4. nmt compare of the four families on Multi30k de->en (bf16-mixed, a time budget per model): report.json,
#      report.md and the figures.
# Results are packed into $OUT/gpu_check.tar.gz (with summary.txt beside it). On a CPU, GPU_CHECK_TINY=1 runs
# the same steps with tiny settings (a check of the script itself):
#   GPU_CHECK_TINY=1 OUT=/tmp/gpu-check bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu-check}
RESULTS="$OUT/results"
mkdir -p "$RESULTS"
TINY=${GPU_CHECK_TINY:-0}
MULTI30K=${MULTI30K:-.gpu/multi30k}
[ -d "$MULTI30K" ] || MULTI30K=../shared/data/multi30k
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1 WANDB_MODE=offline NMT_CACHE="$OUT/cache"
PY=python3
if [ -d .gpu/wheels ] && ls .gpu/wheels/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/nmt-site .gpu/wheels/*.whl
  export PYTHONPATH="$PWD:/tmp/nmt-site"
fi
step() { echo "== $(date +%T) $*" | tee -a "$RESULTS/summary.txt"; }
if [ "$TINY" = 1 ]; then
  DEVICE=cpu; PRECISION=32; BENCH=(--train-steps 3 --warmup-steps 1 --decode-lines 20 --profile 1)
  BUDGETS=("--data.max_tokens 1024" "--data.max_tokens 1024"); BASE_SIZE=(--model.net.d_model 64 --model.net.d_ff 128)
  COMPARE=(--trainer.max_steps 8 --trainer.val_check_interval 4 --data.vocab_size 500 --models gru transformer)
  TEST_GPU=0
else
  DEVICE=cuda; PRECISION=bf16; BENCH=(--train-steps 60 --warmup-steps 15 --decode-lines 1000 --profile 2)
  BUDGETS=("--data.max_tokens 32768" "--data.max_tokens 32768"); BASE_SIZE=()
  COMPARE=(--trainer.max_time 00:00:00:55 --trainer.val_check_interval 1000 --trainer.precision bf16-mixed
           --data.max_tokens 12288 --data.prepare_workers 8)
  TEST_GPU=1
fi

step "machine"
{ nvidia-smi 2>&1 || true; $PY -c "import torch, lightning; print('torch', torch.__version__, 'lightning',
  lightning.__version__, 'cuda', torch.cuda.is_available())"; $PY -m pip check 2>&1 | grep -iE "nmt|jsonarg|lightning|num2words|babel|sentencepiece|sacrebleu" || true; } \
  > "$RESULTS/machine.txt" 2>&1
tail -3 "$RESULTS/machine.txt" | tee -a "$RESULTS/summary.txt"

if [ "$TEST_GPU" = 1 ]; then
  step "tests/test_gpu.py"
  timeout 180 $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py > "$RESULTS/test_gpu.txt" 2>&1
  tail -3 "$RESULTS/test_gpu.txt" | tee -a "$RESULTS/summary.txt"
fi

for i in 0 1; do
  name=(transformer_d256 transformer_base)
  config=configs/bench/${name[$i]}.yaml
  extra=(${BUDGETS[$i]})
  [ "$i" = 1 ] && extra+=("${BASE_SIZE[@]}")
  step "benchmark ${name[$i]} (${extra[*]})"
  timeout 150 $PY scripts/benchmark.py --config "$config" --device $DEVICE --precision $PRECISION "${BENCH[@]}" \
    --out "$RESULTS/bench_${name[$i]}.json" "${extra[@]}" > "$RESULTS/bench_${name[$i]}.txt" 2>&1
  grep -E "training|decoding|peak|utilisation" "$RESULTS/bench_${name[$i]}.txt" | tee -a "$RESULTS/summary.txt"
done

step "nmt compare, Multi30k de->en ($MULTI30K)"
timeout 330 $PY -m nmt compare --out "$OUT/compare" --model-configs configs/multi30k --config configs/data/multi30k.yaml \
  --data.data_dir "$MULTI30K" --device $DEVICE "${COMPARE[@]}" > "$RESULTS/compare.txt" 2>&1
tail -12 "$RESULTS/compare.txt" | tee -a "$RESULTS/summary.txt"
cp "$OUT"/compare/report.* "$RESULTS/" 2>/dev/null
mkdir -p "$RESULTS/figures" && cp "$OUT"/compare/figures/*.png "$RESULTS/figures/" 2>/dev/null
for run in "$OUT"/compare/runs/*/; do
  [ -d "$run" ] && cp "$(find "$run" -name metrics.csv | head -1)" "$RESULTS/metrics-$(basename "$run").csv" 2>/dev/null
done
step "done"
tar -czf "$OUT/gpu_check.tar.gz" -C "$OUT" results
cp "$RESULTS/summary.txt" "$OUT/summary.txt"
ls -la "$OUT"
