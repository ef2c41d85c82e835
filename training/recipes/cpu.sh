#!/usr/bin/env bash
# Every CPU attempt at a ResNet-50 whose heatmap points at the tumour (training.finetune_boxes), as named
# attempts, so each figure can be reproduced. The stem to layer3 of --init stay frozen and are cached.
# Usage: bash training/recipes/cpu.sh DATA_DIR BOXES_DIR RUNS_DIR ATTEMPT...   (no attempt: list them)
# Selection is on validation only (see the module's help); the evaluation part of the boxes and Kaggle
# Testing are measured afterwards with training.evaluate_cam and training.evaluate.
set -euo pipefail
data=$1
boxes=$2
runs=$3
shift 3
export PYTHONUNBUFFERED=1
tune() { python -m training.finetune_boxes --init weights/resnet50 --data "$data" --boxes "$boxes" --seed 0 "$@"; }

# A: 7×7 map, box weight 3, SGD 0.01, layer4's batch norm training. Validation accuracy fell 1–2 points.
boxes_a() { tune --out "$runs/boxes-a" --epochs 10 --box-weight 3 --lr 0.01 --train-bn; }
# B: as A, gentler: box weight 1, lr 0.003, batch norm frozen, 2,000 unboxed images an epoch.
#    Kept epoch 2 (validation unchanged), but its clean-test accuracy fell 0.85 points; evaluation-part
#    pointing game 0.25 (shipped: 0.12; blind guess: 0.31).
boxes_b() { tune --out "$runs/boxes-b" --epochs 8 --box-weight 1 --lr 0.003 --others-per-epoch 2000; }
# C: layer3 trains too (stem to layer2 frozen), each boxed image three times an epoch, box weight 1.5.
#    Epoch 1: validation 95.97%, box-validation pointing 0.27; 16 min an epoch here, stopped after one.
boxes_c() { tune --out "$runs/boxes-c" --train-from layer3 --epochs 8 --box-weight 1.5 --box-repeat 3 --lr 0.003 --others-per-epoch 2000; }
# D: as B, with layer4 dilated (a 14×14 map instead of 7×7: finer heatmaps, about 3× layer4's compute).
#    Kept epoch 2: validation 98.77%, box-validation pointing 0.36; test all 98.78%, clean 98.55%;
#    evaluation-part pointing game 0.26 (meningiomas 0.81). 33 min.
boxes_d() { tune --out "$runs/boxes-d" --dilate --epochs 6 --box-weight 1 --lr 0.003 --others-per-epoch 2000; }

[ $# -gt 0 ] || { declare -F | awk '{print $3}' | grep -v '^tune$'; exit 0; }
for attempt in "$@"; do "$attempt"; done
