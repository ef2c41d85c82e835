#!/usr/bin/env bash
# One GPU call for the outside-collections issue: G1 and G2 of training/recipes/outside.sh (the whole ResNet-50 on Kaggle and
# the outside collections, distilling the Kaggle model's answers on Kaggle's images; G2 with the trunk at a third of the
# head's rate), one after the other, and what comes back packed under $OUT: every run's log, metrics and config, and its
# float16 weights, in pieces below 16 MiB. Nothing is chosen on the device: back here, each run is judged on the original
# validation against the shipped weights/resnet50_outside, by the rule of docs/outside.md.
#
# Getting there: a call carries the working tree and the carried paths, 64 MiB in all; the tracked tree is about 150 MB,
# 141 MB of it the three ResNet-50 weights folders, and a warm machine keeps ignored paths from one call to the next (for
# 30 s), so the data goes over first, in two calls, with the ResNet-50 weights moved out of the checkout for the moment
# (mv weights/resnet50* /tmp/; put them back with `git checkout weights`):
#   echo /.data/ >> .git/info/exclude; mkdir -p .data; cp -r ../shared/data/brain-tumor-mri .data/
#   python -m training.pack_outside --data ../shared/data/outside --out .data/outside          (train and validation parts, 52 MiB)
#   call 1: carry [".data/brain-tumor-mri/Training", ".data/outside/nichart"], command "true"    (~60 MB with the tree)
#   call 2: carry [".data/outside/tcga-lgg", ".data/outside/oasis"], command "true"              (~58 MB)
#   call 3: weights/resnet50 back in place (both runs start from it and distil it), no carry:
#           bash training/recipes/device_outside.sh .data/brain-tumor-mri .data/outside          (~57 MB)
# Back here: mkdir -p runs/device-outside && cat FILES_AT/outside-g.tgz.* | tar xzf - -C runs/device-outside, then for
# each run R: python -m training.soup weights/resnet50 runs/device-outside/R --mix 0,1 ... --outside ../shared/data/outside
# --data ../shared/data/brain-tumor-mri --out runs/R-judged (the mix 0,1 is the run itself, judged on the original data;
# each run already validated its epochs with batch-norm statistics of clean images, --reset-bn, as O11 and O13 gained).
# MAX_MINUTES bounds each run's training (default 3.5); FIT_EXTRA adds flags to each (a CPU dry run:
# FIT_EXTRA="--max-per-class 12 --epochs 1 --epoch-size 64 --device cpu" OUT=/tmp/out RUNS=/tmp/runs).
set -euo pipefail
data=$1
outside=$2
export PYTHONUNBUFFERED=1 FIT_EXTRA=${FIT_EXTRA:-} MAX_MINUTES=${MAX_MINUTES:-3.5}
runs=${RUNS:-runs/device-outside}
out=${OUT:-$runs/out}
mkdir -p "$runs" "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$runs/gpu.txt" 2>&1 || true
start=$(date +%s)
for attempt in outside_g1 outside_g2; do
  bash training/recipes/outside.sh "$data" "$outside" "$runs" "$attempt" > "$runs/$attempt.log" 2>&1 \
    || echo "$attempt failed: the end of its log follows"
  tr '\r' '\n' < "$runs/$attempt.log" | grep -v "it/s\|s/it" | tail -n 14  # the log without tqdm's bars
  echo "$attempt: $(( $(date +%s) - start )) s since the start"
done
tar czf - -C "$runs" --exclude='checkpoint.pt' --exclude='tensorboard' --exclude='cache' --exclude='out' . \
  | split -b 15m - "$out/outside-g.tgz."
ls -l "$out"
