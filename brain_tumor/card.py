"""The model card (README.md) written beside every weights folder, filled from config.json."""
from __future__ import annotations

import json

from brain_tumor.config import ModelConfig

ARCH_NAMES = {"resnet50": "ResNet-50 (torchvision)", "baseline": "Baseline CNN (3 conv blocks, 16/32/64)"}
DATASET = "masoudnickparvar/brain-tumor-mri-dataset"
NOTICE = (
    "**Research and education use only. This is not a medical device:** it has not been clinically "
    "validated and must not be used to diagnose, treat or triage anyone."
)


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _model_index(config: ModelConfig, name: str) -> list[dict]:
    results = []
    for key, label in (("test", "Testing split (all)"), ("test_clean", "Testing split, clean subset (no training twin)")):
        metrics = config.metrics.get(key)
        if not metrics:
            continue
        values = [{"type": "accuracy", "value": round(metrics["accuracy"], 4)}]
        if "macro_f1" in metrics:
            values.append({"type": "f1", "name": "macro F1", "value": round(metrics["macro_f1"], 4)})
        results.append({
            "task": {"type": "image-classification", "name": "Image Classification"},
            "dataset": {"type": DATASET, "name": f"Brain Tumor MRI Dataset — {label}", "split": "test"},
            "metrics": values,
        })
    return [{"name": name, "results": results}] if results else []


def _front_matter(config: ModelConfig, name: str) -> str:
    meta = {
        "library_name": "pytorch",
        "license": "mit",
        "pipeline_tag": "image-classification",
        "tags": ["medical-imaging", "mri", "brain-tumor", config.architecture],
        "datasets": [DATASET],
        "metrics": ["accuracy", "f1"],
    }
    index = _model_index(config, name)
    if index:
        meta["model-index"] = index
    # JSON is valid YAML, and needs no YAML library.
    lines = ["---"] + [f"{key}: {json.dumps(value)}" for key, value in meta.items()] + ["---"]
    return "\n".join(lines)


def _metrics_table(config: ModelConfig) -> str:
    rows = []
    for key, label in (("validation", "Validation (held out from Training)"), ("test", "Testing, all images"), ("test_clean", "Testing, clean subset")):
        m = config.metrics.get(key)
        if m:
            rows.append(f"| {label} | {m.get('n', '–')} | {_pct(m.get('accuracy'))} | {m.get('macro_f1', float('nan')):.4f} | {m.get('ece', float('nan')):.4f} |")
    if not rows:
        return "No metrics were recorded for these weights."
    return "| data | n | accuracy | macro F1 | ECE |\n| --- | --- | --- | --- | --- |\n" + "\n".join(rows)


def model_card(config: ModelConfig, name: str | None = None) -> str:
    name = name or f"brain-tumor-{config.architecture}"
    prov = config.provenance
    recipe = prov.get("recipe")
    recipe_text = "\n".join(f"- `{k}`: {v}" for k, v in recipe.items()) if isinstance(recipe, dict) else "Not recorded."
    leaked = config.metrics.get("leaked")
    leak_text = (
        f"{leaked} of the Testing images have a near-identical twin in Training (Pearson r ≥ 0.99 on 32×32 grey "
        "thumbnails); the clean subset leaves them out and is the figure to trust."
        if leaked is not None else
        "The public Testing split shares near-duplicate images with Training; compare models on the clean subset."
    )
    return f"""{_front_matter(config, name)}

# {name}

{NOTICE}

Classifies one axial brain MRI slice as one of: {", ".join(config.classes)}.

## Model
- Architecture: {ARCH_NAMES.get(config.architecture, config.architecture)}, head `{config.head}`
- Input: RGB, resized to {config.image_size}×{config.image_size}, normalised with mean {list(config.mean)} and std {list(config.std)}
- Output: {len(config.classes)} logits, divided by the temperature {config.temperature:.3f} before the softmax
- Weights: safetensors ({config.weights_dtype}), sha256 of each file in `config.json`

## Training
- Data: {prov.get("data", "not recorded")}
- Init: {prov.get("init", "not recorded")}
- Hardware: {prov.get("hardware", "not recorded")}; wall time {prov.get("wall_time_s", "not recorded")} s
- Recipe:
{recipe_text}

## Evaluation
{_metrics_table(config)}

{leak_text}

## Use
```python
from brain_tumor import Classifier
model = Classifier.from_pretrained("path/or/hub-id")
print(model.predict("slice.jpg"))
```

## Limitations
- Trained on one public Kaggle collection of 2D slices (mostly T1 post-contrast, some T2/FLAIR); other scanners,
  sequences, paediatric cases and tumour types outside the four classes are out of distribution.
- A confident answer is not a diagnosis. Grad-CAM shows where the network looked, not why a tumour is present.
"""


def summary_line(config: ModelConfig) -> str:
    """One line naming a model for people: architecture, data, and its honest test accuracy."""
    arch = ARCH_NAMES.get(config.architecture, config.architecture)
    init = config.provenance.get("init")
    origin = {"scratch": "trained from scratch", "imagenet": "fine-tuned from ImageNet"}.get(init, "trained")
    text = f"{arch}, {origin} on the Kaggle Brain Tumor MRI Dataset (Training split)"
    clean, full = config.metrics.get("test_clean"), config.metrics.get("test")
    if clean:
        text += f"; accuracy {_pct(clean['accuracy'])} on the {clean['n']} test images with no training twin"
        if full:
            text += f" ({_pct(full['accuracy'])} on all {full['n']})"
    elif full:
        text += f"; accuracy {_pct(full['accuracy'])} on {full['n']} test images"
    return text + "."
