"""Probe (validation only): test-time views at other scales (zoomed in to the central 90%, out to 111% with a black
border), each with its mirror, averaged with the shipped two views' logits; validation macro-F1 of each combination.

Run from the repository root after no_tumour_bias.py has saved the validation logits (fourteenth session; output beside
it in scale_views.txt):
    PYTHONPATH=. python docs/outside/probes/scale_views.py weights/resnet50_outside logits.pt
"""
import sys

import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from brain_tumor.weights import load_model
from training import outside
from training.data import DEFAULT_CACHE, cache_folder, split_recipe_of
from training.report import predict_logits

folder, saved = sys.argv[1], sys.argv[2]
model, config = load_model(folder)
recipe = split_recipe_of(config, None)
data, _ = outside.load_judged_data(recipe, config.outside_collections, config.image_size, config.clahe,
                                   cache_folder(str(DEFAULT_CACHE)), with_test=False)
base = torch.load(saved)["val"]
y = data.val.labels
s = config.image_size
def zoom(images, factor):
    x = images.float()
    if factor > 1:  # zoom in: the central 1/factor, resized back
        c = round(s / factor); o = (s - c) // 2
        x = F.interpolate(x[..., o:o + c, o:o + c], size=(s, s), mode="bilinear", align_corners=False)
    else:  # zoom out: shrunk, black border
        c = round(s * factor); o = (s - c) // 2
        small = F.interpolate(x, size=(c, c), mode="bilinear", align_corners=False)
        x = torch.zeros_like(x); x[..., o:o + c, o:o + c] = small
    return x.round().clamp(0, 255).to(torch.uint8)
views = {}
for name, factor in (("in", 1 / 0.9), ("out", 0.9)):
    views[name] = torch.cat([predict_logits(model, zoom(data.val_images[i:i + 256], factor), config) for i in range(0, len(y), 256)])
    print(name, "done", flush=True)
def f1(z): return f1_score(y, z.argmax(1).numpy(), average="macro")
print(f"shipped (plain + mirror): {f1(base):.4f}")
for name, z in views.items():
    print(f"{name} alone: {f1(z):.4f}; with shipped: {f1((base + z) / 2):.4f}")
print(f"all three scales: {f1((base + views['in'] + views['out']) / 3):.4f}")
