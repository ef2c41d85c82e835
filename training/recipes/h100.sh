#!/usr/bin/env bash
# Every GPU run behind the shipped weights, as named attempts, so each figure can be reproduced.
# Usage: bash training/recipes/h100.sh DATA_DIR RUNS_DIR ATTEMPT...   (no attempt: list them)
# The shipped weights/ came from the attempt with the best *validation* macro-F1 per model.
set -euo pipefail
data=$1
runs=$2
shift 2
export PYTHONUNBUFFERED=1
common=(--data "$data" --cache-dir "$runs/cache" --seed 0 --val-fraction 0.1 --weights-dtype float16)
fit() { python -m training.fit "${common[@]}" "$@"; }

bench()         { python -m benchmarks.training_throughput --model resnet50 --device cuda --batch-size 256 --steps 30; }
# ResNet-50 from scratch: ImageNet weights cannot be fetched where these ran.
resnet_a()      { fit --model resnet50 --init scratch --out "$runs/resnet50-a" --optimizer sgd --lr 0.1 --weight-decay 5e-4 \
                      --batch-size 128 --epochs 60 --warmup-epochs 3 --label-smoothing 0.1 --crop-scale 0.5 --max-minutes 4.5; }
resnet_b()      { fit --model resnet50 --init scratch --out "$runs/resnet50-b" --optimizer sgd --lr 0.2 --weight-decay 5e-4 \
                      --batch-size 256 --epochs 100 --warmup-epochs 5 --label-smoothing 0.1 --crop-scale 0.5 --max-minutes 4.5; }
resnet_c()      { fit --model resnet50 --init scratch --out "$runs/resnet50-c" --optimizer sgd --lr 0.2 --weight-decay 5e-4 \
                      --batch-size 256 --epochs 130 --warmup-epochs 5 --label-smoothing 0.1 --crop-scale 0.5 --max-minutes 4.6; }
bench_compile() { python -m benchmarks.training_throughput --model resnet50 --device cuda --batch-size 256 --steps 30 --compile; }
# The baseline: its reference recipe (AdamW 1e-4, batch 128, 10 epochs), then longer runs.
baseline_ref()  { fit --model baseline --out "$runs/baseline-ref"; }
baseline_long() { fit --model baseline --out "$runs/baseline-long" --epochs 40 --lr 1e-3 --warmup-epochs 1; }
baseline_c()    { fit --model baseline --out "$runs/baseline-c" --epochs 100 --lr 5e-4 --warmup-epochs 2; }

[ $# -gt 0 ] || { declare -F | awk '{print $3}' | grep -v '^fit$'; exit 0; }
for attempt in "$@"; do "$attempt"; done
