#!/usr/bin/env bash
# The GPU runs behind the shipped weights: ResNet-50 from scratch and the baseline, one protocol.
# Usage: bash training/recipes/h100.sh DATA_DIR RUNS_DIR
set -euo pipefail
data=${1:-../shared/data/brain-tumor-mri}
runs=${2:-runs}
export PYTHONUNBUFFERED=1
common=(--data "$data" --cache-dir "$runs/cache" --seed 0 --val-fraction 0.1 --weights-dtype float16)

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -m training.bench --model resnet50 --device cuda --batch-size 256 --steps 30 | tee "$runs/bench.txt"

# ResNet-50 from scratch (ImageNet weights cannot be fetched here).
python -m training.fit --model resnet50 --init scratch --out "$runs/resnet50" "${common[@]}" \
  --optimizer sgd --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --batch-size 128 \
  --epochs 60 --schedule cosine --warmup-epochs 3 --label-smoothing 0.1 --crop-scale 0.5 --max-minutes 4.5

# Baseline: the reference recipe (AdamW 1e-4, batch 128, 10 epochs), then a longer run.
python -m training.fit --model baseline --out "$runs/baseline-ref" "${common[@]}"
python -m training.fit --model baseline --out "$runs/baseline-long" "${common[@]}" --epochs 40 --lr 1e-3 --warmup-epochs 1
