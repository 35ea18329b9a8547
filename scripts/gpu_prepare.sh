#!/usr/bin/env bash
# Gather what scripts/gpu_check.sh needs on a GPU machine that cannot reach a package index, into .gpu/
# (ignored by git): wheels for the packages its image lacks (Python 3.12, manylinux x86-64) and a copy of
# Multi30k. Run here, then hand .gpu to the machine with the repository:  bash scripts/gpu_prepare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MULTI30K=${MULTI30K:-../shared/data/multi30k}
mkdir -p .gpu/wheels .gpu/multi30k
# The image has torch, Lightning, SentencePiece, sacrebleu, numpy and matplotlib; nmt also needs these.
# (num2words's docopt serves only its own command line; datasets and wandb are imported only when used.)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/wheels \
  "jsonargparse==4.53.0" "docstring-parser==0.18.0" "typeshed-client==2.15.0" "importlib-resources==6.5.2" \
  "num2words==0.5.14" "babel==2.19.0"
cp "$MULTI30K"/train.de "$MULTI30K"/train.en "$MULTI30K"/val.de "$MULTI30K"/val.en \
   "$MULTI30K"/test_2016_flickr.de "$MULTI30K"/test_2016_flickr.en .gpu/multi30k/
du -sh .gpu
