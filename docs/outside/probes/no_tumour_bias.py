"""Probe (validation only): a bias added to the no-tumour logit (negative: tumour answers made likelier), swept over a grid;
validation macro-F1 and per-collection accuracy for each, and two-fold cross-fitting over subjects.

Run from the repository root (fourteenth session; output beside it in no_tumour_bias.txt):
    PYTHONPATH=. python docs/outside/probes/no_tumour_bias.py weights/resnet50_outside logits.pt
"""
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score

from brain_tumor.weights import load_model
from training import outside
from training.data import DEFAULT_CACHE, cache_folder, split_recipe_of
from training.report import predict_logits

folder, saved = sys.argv[1], Path(sys.argv[2])  # a weights folder; where its validation logits are (or will be) saved
model, config = load_model(folder)
recipe = split_recipe_of(config, None)
data, _ = outside.load_judged_data(recipe, config.outside_collections, config.image_size, config.clahe,
                                   cache_folder(str(DEFAULT_CACHE)), with_test=False)
if saved.exists():
    val = torch.load(saved)["val"]
else:
    val = predict_logits(model, data.val_images, config, progress=True)
    torch.save({"val": val, "paths": [str(p) for p in data.val.paths]}, saved)
y = data.val.labels
coll, folds = outside.validation_groups(data, config.outside_collections)
nt = list(config.classes).index("notumor")
grid = np.round(np.arange(-1.0, 1.01, 0.1), 2)
def f1_at(b, idx=slice(None)):
    z = val.clone(); z[:, nt] += b
    pred = z.argmax(1).numpy()
    return f1_score(y[idx], pred[idx], average="macro"), pred
for b in grid:
    f, pred = f1_at(b)
    byc = " ".join(f"{c} {np.mean(pred[coll==c]==y[coll==c]):.4f}" for c in ("kaggle", "tcga-lgg", "oasis", "nichart"))
    tum = (y != nt) & (coll == "tcga-lgg")
    print(f"bias {b:+.1f}: macro-F1 {f:.4f} acc {np.mean(pred==y):.4f} | {byc} | tcga tumour found {np.mean(pred[tum]!=nt):.4f}")
# two-fold cross-fitting over subjects (training.reliability's folds): choose on one half, measure on the other
a = folds == 0
for fold, (fit, test) in enumerate([(a, ~a), (~a, a)]):
    best = max(grid, key=lambda b: f1_at(b, fit)[0])
    print(f"fold {fold}: chosen {best:+.1f}; held-out F1 {f1_at(best, test)[0]:.4f} vs bias 0 {f1_at(0.0, test)[0]:.4f}")
