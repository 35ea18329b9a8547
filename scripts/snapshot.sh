#!/usr/bin/env bash
# Outputs a refactoring must leave unchanged, written into OUT: run it on two commits and diff the folders.
#   bash scripts/snapshot.sh OUT            (this checkout)
#   NMT_SRC=/path/to/other/checkout bash scripts/snapshot.sh OUT2 ; diff -r OUT OUT2
# For the four default configs: metrics.csv of a 150-step fit (validation every 75 steps); with the
# Transformer and Luong: nmt translate greedy, beam 5 with scores, n-best, sampling with a seed, alignments;
# nmt score; the CTranslate2 export's greedy and beam 5; nmt serve's answers. ~10 minutes on 2 cores.
set -euo pipefail
OUT=$(realpath -m "$1")
SRC=$(realpath "${NMT_SRC:-$(dirname "$0")/..}")
mkdir -p "$OUT"
export PYTHONPATH="$SRC" NMT_CACHE="$OUT/cache" WANDB_MODE=offline
nmt() { python -m nmt "$@"; }
cd "$OUT"
for model in gru bahdanau luong transformer; do
  nmt fit --config "$SRC/configs/$model.yaml" --trainer.max_steps 150 --trainer.val_check_interval 75 \
    --trainer.log_every_n_steps 10 --trainer.enable_progress_bar false --trainer.default_root_dir "runs/$model" \
    --samples.num_sentences 0 > "fit-$model.log" 2>&1
  cp "$(find "runs/$model" -name metrics.csv | head -1)" "metrics-$model.csv"
done
TEST=$(find cache -name test.en | head -1)
head -200 "$TEST" > test.en
sed -n 1,200p "$(dirname "$TEST")/test.de" | cut -c1-200 > test.de
awk 'NR % 3 == 0 {print $1 " " $2} NR % 3 != 0 {print ""}' test.de > prefixes.de
for model in luong transformer; do
  ckpt="runs/$model/checkpoints/last.ckpt"
  nmt translate --ckpt "$ckpt" -i test.en -o "$model.greedy"
  nmt translate --ckpt "$ckpt" -i test.en -o "$model.beam5" --beam 5 --scores
  nmt translate --ckpt "$ckpt" -i test.en -o "$model.nbest" --beam 4 --nbest 3 --scores --format jsonl --alignments
  nmt translate --ckpt "$ckpt" -i test.en -o "$model.sample" --sample --nbest 2 --seed 7 --topk 10 --scores
  nmt translate --ckpt "$ckpt" -i test.en -o "$model.prefix" --beam 3 --prefix prefixes.de --scores
  nmt score --ckpt "$ckpt" --source test.en --target test.de --format jsonl -o "$model.score"
done
nmt translate --ckpt runs/transformer/checkpoints/last.ckpt runs/luong/checkpoints/last.ckpt -i test.en \
  -o ensemble.beam5 --beam 5 --scores 2>ensemble.err || true
nmt export --ckpt runs/transformer/checkpoints/last.ckpt --out export > /dev/null
nmt translate --engine ctranslate2 --ckpt export -i test.en -o ct2.greedy --scores
nmt translate --engine ctranslate2 --ckpt export -i test.en -o ct2.beam5 --beam 5 --scores
nmt translate --engine ctranslate2 --ckpt export -i test.en -o ct2.nbest --beam 4 --nbest 3 --scores
python - "$SRC" > serve.txt <<'PY'
import json, socket, subprocess, sys, time, urllib.request
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
for args in (["--ckpt", "runs/transformer/checkpoints/last.ckpt"], ["--engine", "ctranslate2", "--ckpt", "export"]):
    server = subprocess.Popen([sys.executable, "-m", "nmt", "serve", *args, "--port", str(port)])
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health"); break
            except OSError:
                time.sleep(0.1)
        lines = open("test.en", encoding="utf-8").read().splitlines()[:20]
        for body in ({"text": lines}, {"text": lines, "beam": 5, "scores": True},
                     {"text": lines[:5], "beam": 4, "nbest": 2, "scores": True}, {"text": ["", "a b c"]}):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/translate", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
            print(json.dumps(json.load(urllib.request.urlopen(req)), ensure_ascii=False))
    finally:
        server.terminate(); server.wait()
PY
rm -rf cache
echo "snapshot in $OUT"
