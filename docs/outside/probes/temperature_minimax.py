"""Probe (validation only): each collection's NLL, ECE and share wrong at 90% confidence or more against one temperature;
the temperature that minimises the worst collection's NLL, beside the one fitted on all images (the shipped way).

Run from the repository root after no_tumour_bias.py has saved the validation logits (fourteenth session; output beside
it in temperature_minimax.txt):
    PYTHONPATH=. python docs/outside/probes/temperature_minimax.py weights/resnet50_outside logits.pt
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F

from brain_tumor.weights import load_model
from training import outside
from training.data import DEFAULT_CACHE, cache_folder, split_recipe_of
from training.reliability import figures, softmax

model, config = load_model(sys.argv[1])
data, _ = outside.load_judged_data(split_recipe_of(config, None), config.outside_collections, config.image_size, config.clahe,
                                   cache_folder(str(DEFAULT_CACHE)), with_test=False)
d = torch.load(sys.argv[2]); z = d["val"]; paths = d["paths"]
assert paths == [str(p) for p in data.val.paths]
y = torch.from_numpy(data.val.labels)
coll, _ = outside.validation_groups(data, config.outside_collections)
grid = np.round(np.arange(0.5, 1.61, 0.01), 2)
def nll(T, m): return float(F.cross_entropy(z[m] / T, y[m]))
def fig(T, m): return figures(softmax(z[m] / T), y[m].numpy())
masks = {c: torch.from_numpy(coll == c) for c in ("kaggle", "tcga-lgg", "oasis", "nichart")}
allm = torch.ones(len(y), dtype=torch.bool)
worst = {T: max(nll(T, m) for m in masks.values()) for T in grid}
Tm = min(worst, key=worst.get); Ta = min(grid, key=lambda T: nll(T, allm))
for T in sorted({Tm, Ta, 1.0, round(config.temperature, 2)}):
    row = " | ".join(f"{c} NLL {nll(T, m):.3f} ECE {fig(T, m)['ece']:.3f} sure&wrong {fig(T, m)['sure_and_wrong']:.2%}" for c, m in masks.items())
    print(f"T {T:.2f} (worst NLL {max(nll(T, m) for m in masks.values()):.3f}; all NLL {nll(T, allm):.3f}, ECE {fig(T, allm)['ece']:.3f}): {row}")
print(f"minimax T {Tm}; all-images T on this grid {Ta}; shipped {config.temperature:.3f}")
