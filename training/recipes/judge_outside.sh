#!/usr/bin/env bash
# Judge one outside attempt the way docs/outside.md reports it, after it was chosen on validation:
#   bash training/recipes/judge_outside.sh WEIGHTS REPORTS [DATA_DIR OUTSIDE_DIR]
# WEIGHTS is the attempt's weights folder (a run's or a soup's weights/, float32); it is first saved again in float16,
# as the shipped folders are (python -m brain_tumor.export --format float16), into REPORTS/weights, and every figure
# after is that folder's: its scan rule chosen on the outside train part's scans, the outside evaluation part, Kaggle
# Testing, and its out-of-distribution bounds fitted again; each step writes what it finds into REPORTS/weights'
# config.json, so that folder can replace weights/resnet50_outside as it is. REPORTS/eval and REPORTS/kaggle are the
# reports kept under docs/outside/<attempt>/ (summary.md, metrics.json, outside.png; the Kaggle metrics.json as
# kaggle.json). About 10 CPU minutes on 2 free cores.
set -euo pipefail
weights=$1
reports=$2
data=${3:-../shared/data/brain-tumor-mri}
outside=${4:-../shared/data/outside}
judged=$reports/weights
mkdir -p "$reports"
step() { echo "== $* ($(date +%T))"; }

step "float16 copy of $weights"
python -m brain_tumor.export --weights "$weights" --format float16 --out "$judged"
step "scan rule, chosen on the train part's scans"
python -m training.evaluate_outside --weights "$judged" --data "$outside" --part train --scans-only --out "$reports/train"
python -m training.choose_scan_rule --scores "$reports/train" --weights "$judged" --write
step "outside evaluation part"
python -m training.evaluate_outside --weights "$judged" --data "$outside" --out "$reports/eval" --write-config
step "Kaggle Testing"
python -m training.evaluate --weights "$judged" --data "$data" --train-data "$data/Training" --out "$reports/kaggle" --write-config
step "out-of-distribution bounds"
python -m training.calibrate_ood --weights "$judged" --data "$data" --outside "$outside"
step "done: $judged"
