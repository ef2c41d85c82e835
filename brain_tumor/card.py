"""The model card (README.md) written beside every weights folder, filled from config.json, with its
metadata built by huggingface_hub's card classes; and the one-line description the app shows."""
from __future__ import annotations

from brain_tumor.config import ModelConfig
from brain_tumor.models import ARCHITECTURES, get_architecture

DATASET = "masoudnickparvar/brain-tumor-mri-dataset"
BOXES_DATASET = "figshare brain tumour dataset (Cheng et al., 2017), slices with tumour boxes"
SOURCES = [  # where the Kaggle collection comes from, with each source's licence
    ("figshare brain tumour dataset (Cheng et al., 2017)", "https://doi.org/10.6084/m9.figshare.1512427", "CC BY 4.0"),
    ("SARTAJ brain tumour classification dataset", "https://www.kaggle.com/datasets/sartajbhuvaji/brain-tumor-classification-mri", "MIT, as listed on Kaggle"),
    ("Br35H: Brain Tumor Detection 2020", "https://www.kaggle.com/datasets/ahmedhamada0/brain-tumor-detection", "as listed on Kaggle (no licence stated)"),
]
NOTICE_PLAIN = (
    "Research and education use only. This is not a medical device: it has not been clinically "
    "validated and must not be used to diagnose, treat or triage anyone."
)
NOTICE = "**" + NOTICE_PLAIN.replace(": it", ":** it", 1)  # the same sentence in Markdown
SHORT_NOTICE = "Research use only; not a medical device."


def display_name(architecture: str) -> str:
    entry = ARCHITECTURES.get(architecture)
    return entry.display_name if entry else architecture


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _eval_results(config: ModelConfig) -> list:
    from huggingface_hub import EvalResult

    results = []
    for key, subset, label in (("test", "all", "Testing split (all)"), ("test_clean", "clean", "Testing split, clean subset (no training twin)")):
        metrics = config.metrics.get(key)
        if not metrics:
            continue
        common = dict(task_type="image-classification", dataset_type=DATASET, dataset_name=f"Brain Tumor MRI Dataset — {label}",
                      dataset_config=subset, dataset_split="test")
        results.append(EvalResult(metric_type="accuracy", metric_value=round(metrics["accuracy"], 4), **common))
        if "macro_f1" in metrics:
            results.append(EvalResult(metric_type="f1", metric_name="macro F1", metric_value=round(metrics["macro_f1"], 4), **common))
    local = config.metrics.get("localisation_eval")
    if local:
        results.append(EvalResult(task_type="image-classification", dataset_type="figshare-1512427", dataset_name=BOXES_DATASET,
                                  dataset_split="evaluation part", metric_type="pointing_game",
                                  metric_name=f"pointing game ({local['method']} at {local['layer']})", metric_value=round(local["pointing_game"], 4)))
    return results


def _metadata(config: ModelConfig, name: str):
    from huggingface_hub import ModelCardData

    return ModelCardData(
        model_name=name, library_name="pytorch", license="mit", pipeline_tag="image-classification",
        tags=["medical-imaging", "mri", "brain-tumor", "grad-cam", config.architecture],
        datasets=[DATASET], metrics=["accuracy", "f1"], eval_results=_eval_results(config) or None,
    )


def _metrics_table(config: ModelConfig) -> str:
    rows = []
    for key, label in (("validation", "Validation (held out from Training)"), ("test", "Testing, all images"), ("test_clean", "Testing, clean subset")):
        m = config.metrics.get(key)
        if m:
            rows.append(f"| {label} | {m.get('n', '–')} | {_pct(m.get('accuracy'))} | {m.get('macro_f1', float('nan')):.4f} | {m.get('ece', float('nan')):.4f} |")
    if not rows:
        return "No metrics were recorded for these weights."
    return "| data | n | accuracy | macro F1 | ECE |\n| --- | --- | --- | --- | --- |\n" + "\n".join(rows)


def _localisation_text(config: ModelConfig) -> str:
    local = config.metrics.get("localisation_eval")
    if not local:
        return "Not measured for these weights (`python -m training.evaluate_cam`)."
    prior = local.get("prior", {})
    lo, hi = local.get("pointing_game_ci95", [None, None])
    interval = f" (95% CI {lo:.0%}–{hi:.0%})" if lo is not None else ""
    classes = local.get("per_class", {})
    per_class = (" (" + ", ".join(f"{name} {c['pointing_game']:.0%}" for name, c in classes.items()) + ")") if classes else ""
    where = get_architecture(config.architecture).cam_reading(local["layer"])[0]
    return (f"On {local['n']} figshare slices with tumour boxes kept out of all training and selection, the heatmap "
            f"({local['method']} at {where}) has its maximum inside the tumour box on **{local['pointing_game']:.0%}** of "
            f"them{interval}{per_class}, and {local['energy_ratio']:.1f}× the box's share of its energy inside the box. A blind guess (a Gaussian "
            f"at the centre of the head) scores {prior.get('pointing_game', float('nan')):.0%} and {prior.get('energy_ratio', float('nan')):.1f}×.")


def count_of(entry: dict) -> str:
    """A measured share as 'k of n' (a benchmark entry: {"share", "n", ...})."""
    return f"{round(entry['share'] * entry['n'])} of {entry['n']}"


def outside_sentence(config: ModelConfig) -> str:
    """What the outside benchmark found (training.evaluate_outside), in one sentence ('' if not measured)."""
    found = config.metrics.get("outside")
    if not found:
        return ""
    slices, scans = found["slices"], found["scans"]
    shares = [f"{slices[f'tcga-lgg/{key}']['tumour_found']['share']:.0%} of {name}"
              for key, name in (("post", "post-contrast T1"), ("pre", "pre-contrast T1"), ("flair", "FLAIR"))]
    tumour = f"{shares[0]}, {shares[1]} and {shares[2]}"
    glioma = slices["tcga-lgg/post"]["named_glioma"]["share"]
    healthy, stacks = scans["nichart/all"]["no_tumour_summary"], scans["tcga-lgg/all"]["tumour_summary"]
    return (f"On scans from collections outside the Kaggle set (the held-out part of TCGA-LGG gliomas, OASIS and NiChart healthy "
            f"brains), it found a tumour on {tumour} glioma slices (named glioma on {glioma:.0%} of post-contrast ones), "
            f"answered no tumour on {slices['oasis/T1']['no_tumour']['share']:.0%} of OASIS slices, called "
            f"{count_of(healthy)} healthy whole volumes healthy and found a tumour in {count_of(stacks)} glioma stacks.")


def _outside_table(config: ModelConfig) -> str:
    found = config.metrics.get("outside")
    if not found:
        return "Not measured for these weights (`python -m training.evaluate_outside`)."
    slices, scans = found["slices"], found["scans"]
    cell = lambda e: f"{e['share']:.1%} (n={e['n']})" if e["n"] else "–"  # noqa: E731
    rows = [f"| TCGA-LGG {q} slices with tumour | {cell(slices[f'tcga-lgg/{q}']['tumour_found'])} | "
            f"{cell(slices[f'tcga-lgg/{q}']['named_glioma'])} |" for q in ("post", "pre", "flair")]
    rows += [f"| {name} slices, healthy | {cell(slices[key]['no_tumour'])} (no tumour) | – |"
             for key, name in (("oasis/T1", "OASIS T1"), ("nichart/T1", "NiChart T1"), ("nichart/FL", "NiChart FLAIR"))]
    rows.append(f"| TCGA-LGG whole stacks | {cell(scans['tcga-lgg/all']['tumour_summary'])} | – |")
    rows.append(f"| NiChart whole volumes, healthy | {cell(scans['nichart/all']['no_tumour_summary'])} (no tumour) | – |")
    points = ", ".join(f"{q} {e['share']:.0%} (n={e['n']})" for q, e in found.get("pointing_game", {}).items())
    return ("| outside collections (held-out part) | tumour found / right answer | named glioma |\n| --- | --- | --- |\n"
            + "\n".join(rows) + (f"\n\nHeatmap peak inside the TCGA-LGG tumour mask: {points}." if points else "")
            + f"\n\nWhole scans are summarised by this rule: {found['scan_rule']}")


def _outside_data(config: ModelConfig) -> str:
    if not config.outside_collections:
        return ""
    return ("\nand on the train part of three collections outside it (split by patient or subject, `training/splits/outside.json`): "
            "TCGA-LGG lower-grade gliomas (The Cancer Genome Atlas via TCIA, CC BY 3.0), OASIS-1 (open access under its data use "
            "terms) and NiChart demo volumes (no tumour). Research use.\n")


def _trained_on(config: ModelConfig) -> str:
    if config.outside_collections:
        return ("Trained on the Kaggle collection and the train part of three others (TCGA-LGG gliomas in three sequences, OASIS and "
                "NiChart healthy brains); its outside figures are on other patients of those same collections")
    return "Trained on one public collection of 2D slices (mostly T1 post-contrast, some T2/FLAIR)"


def _explained_layer(config: ModelConfig) -> str:
    """Where the default heatmap is read: the weights' own choice, else the architecture's layer, as people should read it."""
    if config.explanation.get("layer"):
        return config.explanation["layer"]
    entry = ARCHITECTURES.get(config.architecture)
    return entry.cam_reading(entry.cam_layer)[0] if entry and entry.cam_layer in entry.cam_readings else "the last convolutional block"


def _mirror_text(config: ModelConfig) -> str:
    if not config.mirror_average:
        return ""
    return (" (each the mean of the image's and its left-right mirror image's, chosen on validation by "
            "training.choose_mirror; exported ONNX and timm models give the single view's)")


def model_card(config: ModelConfig, name: str | None = None) -> str:
    from huggingface_hub import ModelCard

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
    sources = "\n".join(f"- [{title}]({url}): {licence}" for title, url, licence in SOURCES)
    body = f"""
# {name}

{NOTICE}

Classifies one 2D brain MRI slice as one of: {", ".join(config.classes)}, with a heatmap of where it looked.

## Model
- Architecture: {display_name(config.architecture)}, head `{config.head}`
- Input: RGB, resized to {config.image_size}×{config.image_size}, normalised with mean {list(config.mean)} and std {list(config.std)}
- Output: {len(config.classes)} logits{_mirror_text(config)}, divided by the temperature {config.temperature:.3f} before the softmax
- Heatmap: {config.explanation.get("method", "gradcam")} at {_explained_layer(config)}
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

### Outside the Kaggle collection
{outside_sentence(config)}

{_outside_table(config)}

### Where the heatmap points
{_localisation_text(config)}

## Use
```bash
pip install "brain-tumor-mri @ git+https://github.com/OWNER/REPO"   # this project's repository
```
```python
from brain_tumor import Classifier

model = Classifier.from_pretrained("OWNER/NAME")   # this repository's id on the Hub, or a local folder
prediction = model.predict("slice.jpg")           # also PNG, TIFF, DICOM...
print(prediction.label, prediction.probabilities, prediction.warning)
model.explain("slice.jpg").overlay.save("heatmap.png")
```

## Data and licences
Trained on the Kaggle "Brain Tumor MRI Dataset" ([{DATASET}](https://www.kaggle.com/datasets/{DATASET}), listed as CC0),
which merges:
{sources}
{_outside_data(config)}
## Limitations
- {_trained_on(config)}; other scanners,
  sequences, paediatric cases and tumour types outside the four classes are out of distribution.
- A confident answer is not a diagnosis. The heatmap shows which regions raised the class score, not why.
"""
    return str(ModelCard(f"---\n{_metadata(config, name).to_yaml()}\n---\n{body}"))


def trust_sentence(config: ModelConfig) -> str:
    """How often the default heatmap's peak was inside the tumour on held-out slices, in one sentence ('' if not measured)."""
    local = config.metrics.get("localisation_eval")
    if not local:
        return ""
    return (f"On {local['n']} held-out slices with tumour boxes, this map's peak fell inside the tumour box on "
            f"{local['pointing_game']:.0%} (a blind guess at the centre of the head: {local['prior']['pointing_game']:.0%}).")


def summary_line(config: ModelConfig) -> str:
    """One line naming a model for people: architecture, data, honest test accuracy, and where its heatmap points."""
    arch = display_name(config.architecture)
    init = str(config.provenance.get("init"))
    origin = {"scratch": "trained from scratch", "imagenet": "fine-tuned from ImageNet"}.get(init, "trained")
    text = f"{arch}, {origin} on the Kaggle Brain Tumor MRI Dataset (Training split)"
    if config.outside_collections:
        text += " and the train part of three other collections (TCGA-LGG, OASIS, NiChart)"
    clean, full = config.metrics.get("test_clean"), config.metrics.get("test")
    if clean:
        text += f"; accuracy {_pct(clean['accuracy'])} on the {clean['n']} test images with no training twin"
        if full:
            text += f" ({_pct(full['accuracy'])} on all {full['n']})"
    elif full:
        text += f"; accuracy {_pct(full['accuracy'])} on {full['n']} test images"
    outside = config.metrics.get("outside")
    if outside:
        post, healthy = outside["slices"]["tcga-lgg/post"]["tumour_found"], outside["scans"]["nichart/all"]["no_tumour_summary"]
        text += (f"; on other collections' scans it found {post['share']:.0%} of post-contrast glioma slices "
                 f"({outside['slices']['tcga-lgg/flair']['tumour_found']['share']:.0%} on FLAIR) and called "
                 f"{count_of(healthy)} healthy volumes healthy")
    local = config.metrics.get("localisation_eval")
    if local:
        text += (f"; its heatmap's peak falls inside the tumour box on {local['pointing_game']:.0%} of {local['n']} held-out slices "
                 f"(a blind guess at the centre of the head: {local['prior']['pointing_game']:.0%})")
    return text + "."
