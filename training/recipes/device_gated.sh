#!/usr/bin/env bash
# One GPU call for issue 16: the gated ResNet-50's whole network with the box loss, three training seeds
# (h100.sh gated_whole_s0..s2) and their soup (training.soup), the one chosen by training.choose on validation alone
# against the shipped weights/resnet50_gated, and what comes back packed
# under $OUT: every run's log, metrics and config and the chosen run's float16 weights, in pieces below 16 MiB.
# The evaluation part and the blanked boxes are measured afterwards, here, on the chosen weights, by
# training.evaluate_cam and training.diagnose, never to choose.
#
# Getting there: the device takes the working tree and the carried paths, 64 MiB in all, and the tracked tree alone is
# over 100 MiB (weights/resnet50 and weights/resnet50_gated are 46 MiB each). A warm machine keeps ignored paths from
# one call to the next (for 30 s), so the data goes over in two calls before the run, each with both weights folders
# moved out of the checkout for the moment (mv weights/resnet50* /tmp/; put them back with `git checkout weights`):
#   echo /.data/ >> .git/info/exclude; cp -r ../shared/data .data
#   call 1: carry [".data/brain-tumor-mri/Training"], command "true"                         (~63 MiB)
#   call 2: carry [".data/brain-tumor-mri/Testing", ".data/figshare-tumour-boxes"], "true"   (~54 MiB)
#   call 3: weights/resnet50_gated back in place (the runs start from it), weights/resnet50 still out, no carry:
#           bash training/recipes/device_gated.sh .data/brain-tumor-mri .data/figshare-tumour-boxes   (~57 MiB)
# Back here: mkdir -p runs/device && cat FILES_AT/gated-whole.tgz.* | tar xzf - -C runs/device; the chosen weights are in
# runs/device/chosen-weights, the table of the choice in runs/device/choice.md.
# FIT_EXTRA adds flags to every run (a CPU dry run: FIT_EXTRA="--max-per-class 12 --epochs 1 --device cpu --no-test").
set -euo pipefail
data=$1
export BOXES=$2 FIT_EXTRA=${FIT_EXTRA:-} PYTHONUNBUFFERED=1
runs=${RUNS:-runs/device}
out=${OUT:-$runs/out}
mkdir -p "$runs" "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$runs/gpu.txt" 2>&1 || true
start=$(date +%s)
for seed in 0 1 2; do
  bash training/recipes/h100.sh "$data" "$runs" "gated_whole_s$seed" > "$runs/gated-whole-s$seed.log" 2>&1 \
    || echo "seed $seed failed: the end of its log follows"
  tr '\r' '\n' < "$runs/gated-whole-s$seed.log" | grep -v "it/s\|s/it" | tail -n 12  # the log without tqdm's bars
  echo "seed $seed: $(( $(date +%s) - start )) s since the start"
done
finished=()
for run in "$runs"/gated-whole-s*/; do [ -f "$run/weights/config.json" ] && finished+=("${run%/}"); done
# The seeds' soup (training.soup) competes too, and the shipped soup (weights/resnet50_gated) is the one to beat.
[ ${#finished[@]} -ge 2 ] && python -m training.soup "${finished[@]}" --out "$runs/gated-whole-soup" > "$runs/gated-whole-soup.log" 2>&1 \
  && finished+=("$runs/gated-whole-soup")
if python -m training.choose weights/resnet50_gated "${finished[@]}" --metric pointing_new > "$runs/choice.md" 2>&1; then
  chosen=$(tail -n 1 "$runs/choice.md")  # weights/resnet50_gated itself when nothing new beats it
  [ -d "$chosen/weights" ] && cp -r "$chosen/weights" "$runs/chosen-weights"
fi
cat "$runs/choice.md"
tar czf - -C "$runs" --exclude='checkpoint.pt' --exclude='gated-whole-s*/weights/*.safetensors' --exclude='gated-whole-soup/weights/*.safetensors' --exclude='tensorboard' --exclude='cache' --exclude='out' . \
  | split -b 15m - "$out/gated-whole.tgz."
ls -l "$out"
