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

model, config = load_model(sys.argv[1])
data, _ = outside.load_judged_data(split_recipe_of(config, None), config.outside_collections, config.image_size, config.clahe,
                                   cache_folder(str(DEFAULT_CACHE)), with_test=False)
d = torch.load(sys.argv[2]); z = d["val"]; paths = d["paths"]
assert paths == [str(p) for p in data.val.paths]
y = torch.from_numpy(data.val.labels)
coll = np.array(["tcga" if "tcga-lgg" in p else "oasis" if "/oasis/" in p else "nichart" if "nichart" in p else "kaggle" for p in paths])
grid = np.round(np.arange(0.5, 1.61, 0.01), 2)
def nll(T, m): return float(F.cross_entropy(z[m] / T, y[m]))
def ece(T, m, bins=15):
    p = torch.softmax(z[m] / T, 1); conf, pred = p.max(1); right = (pred == y[m]).float()
    e = 0.0
    for lo in np.linspace(0, 1, bins + 1)[:-1]:
        b = (conf > lo) & (conf <= lo + 1 / bins)
        if b.any(): e += b.float().mean() * abs(conf[b].mean() - right[b].mean())
    return float(e)
def sure_wrong(T, m):
    p = torch.softmax(z[m] / T, 1); conf, pred = p.max(1); return float(((conf >= 0.9) & (pred != y[m])).float().mean())
masks = {c: torch.from_numpy(coll == c) for c in ("kaggle", "tcga", "oasis", "nichart")}
allm = torch.ones(len(y), dtype=torch.bool)
worst = {T: max(nll(T, m) for m in masks.values()) for T in grid}
Tm = min(worst, key=worst.get); Ta = min(grid, key=lambda T: nll(T, allm))
for T in sorted({Tm, Ta, 1.0, round(config.temperature, 2)}):
    row = " | ".join(f"{c} NLL {nll(T, m):.3f} ECE {ece(T, m):.3f} sure&wrong {sure_wrong(T, m):.2%}" for c, m in masks.items())
    print(f"T {T:.2f} (worst NLL {max(nll(T, m) for m in masks.values()):.3f}; all NLL {nll(T, allm):.3f}, ECE {ece(T, allm):.3f}): {row}")
print(f"minimax T {Tm}; all-images T on this grid {Ta}; shipped {config.temperature:.3f}")
