"""Probe (validation part only): does re-estimating batch-norm statistics on each scan's own slices (AdaBN, Li et al. 2016)
find more tumour slices in TCGA-LGG stacks without calling healthy NiChart slices tumours? alpha: share of the scan's
statistics in the mix with the trained ones (0 = as shipped).

Run from the repository root (fourteenth session; output beside it in scan_batchnorm.txt):
    PYTHONPATH=. python docs/outside/probes/scan_batchnorm.py weights/resnet50_outside 0,0.5,1 rows.json
"""
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from brain_tumor.classifier import Classifier
from brain_tumor.models import logits_of
from training.outside import nichart_volumes, part_of, read_volume, tcga_stack

root = Path("../shared/data/outside")  # the outside collections, as ../shared/DATA.md lays them out
clf = Classifier.from_pretrained(sys.argv[1], backend="torch")
alphas = [float(a) for a in sys.argv[2].split(",")]
torch.set_num_threads(2)

def adapted(model, batch, alpha):
    m = copy.deepcopy(model)
    bns = [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    saved = [(b.running_mean.clone(), b.running_var.clone()) for b in bns]
    for b in bns:
        b.reset_running_stats(); b.momentum = None; b.train()
    with torch.no_grad():
        m(batch); m(batch.flip(-1))
    for b, (mu, var) in zip(bns, saved):
        b.running_mean.mul_(alpha).add_((1 - alpha) * mu)
        b.running_var.mul_(alpha).add_((1 - alpha) * var)
        b.eval()
    return m

def logits(model, batch):
    with torch.inference_mode():
        return logits_of(model, batch, clf.config.mirror_average)

rows = []
def run(volume, truth_of_index, name):
    idx = [i for i, o in enumerate(volume.outside_head) if not o and not volume.repeats[i]]
    batch = clf._batch([volume.picture(i) for i in idx])
    for a in alphas:
        model = clf.model if a == 0 else adapted(clf.model, batch, a)
        pred = logits(model, batch).argmax(1).tolist()
        for i, p in zip(idx, pred):
            rows.append({"scan": name, "alpha": a, "slice": i, "truth": truth_of_index(i), "pred": clf.classes[p]})

for patient in [p for p in sorted((root / "tcga-lgg").iterdir()) if part_of("tcga-lgg", p.name) == "val"]:
    for seq in ("post", "pre", "flair"):
        vol, numbers = tcga_stack(root, patient.name, seq)
        tumour = {k for k, n in enumerate(numbers) if np.asarray(Image.open(patient / f"{patient.name}_{n}_mask.png")).max() > 0}
        run(vol, lambda i, tumour=tumour: "glioma" if i in tumour else "healthy-tcga", f"{patient.name}:{seq}")
    print(patient.name, flush=True)
for subject, seq, path in nichart_volumes(root):
    if part_of("nichart", subject) == "val":
        run(read_volume(path), lambda i: "notumor", f"{subject}:{seq}")
        print(subject, seq, flush=True)
with open(sys.argv[3], "w") as f:
    json.dump(rows, f)
for a in alphas:
    r = [x for x in rows if x["alpha"] == a]
    for seq in ("post", "pre", "flair"):
        t = [x for x in r if x["truth"] == "glioma" and x["scan"].endswith(seq)]
        print(f"alpha {a} {seq}: found {np.mean([x['pred']!='notumor' for x in t]):.3f} named {np.mean([x['pred']=='glioma' for x in t]):.3f} (n={len(t)})")
    t = [x for x in r if x["truth"] == "healthy-tcga"]
    print(f"alpha {a} tcga non-tumour slices called tumour {np.mean([x['pred']!='notumor' for x in t]):.3f} (n={len(t)})")
    for seq in ("T1", "FL"):
        t = [x for x in r if x["truth"] == "notumor" and x["scan"].endswith(seq)]
        print(f"alpha {a} nichart {seq}: no tumour {np.mean([x['pred']=='notumor' for x in t]):.3f} (n={len(t)})")
