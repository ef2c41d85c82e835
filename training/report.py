"""Judging a model on a split: batched inference over decoded images, and the honest measurement
(all images, the clean ones with no near-duplicate in the training data, and the leaked rest); each epoch's
validation (accuracy, and the box validation's pointing game), and the report every set of weights ends with
(temperature, out-of-distribution bounds, Testing), whoever made them: training.fit or training.soup."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import update_bn
from tqdm import tqdm

from brain_tumor.config import ModelConfig
from brain_tumor.models import get_architecture, logits_of
from brain_tumor.preprocess import normalize
from training import twins
from training.attention import BoxData, class_activation, localisation_scores
from training.calibration import fit_temperature, ood_section
from training.data import RunData, Split
from training.frozen import forward_from, take
from training.metrics import classification_metrics
from training.runtime import memory_format


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, config: ModelConfig, device: torch.device | str = "cpu",
                   batch_size: int = 64, use_amp: bool = False, progress: bool = False) -> torch.Tensor:
    """float32 logits, on the CPU, for N×3×S×S uint8 images: the model in eval mode, no augmentation but the mirror
    average where the config asks for it."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    out = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc="predict", leave=False, disable=not progress):
        x = normalize(images[start:start + batch_size].to(device, non_blocking=True), config.mean, config.std)
        x = x.contiguous(memory_format=memory_format(device, use_amp))
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            out.append(logits_of(model, x, config.mirror_average).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, len(config.classes))


def measure(probs: np.ndarray, split: Split, images: torch.Tensor, reference_thumbs: torch.Tensor | None,
            threshold: float = twins.DEFAULT_THRESHOLD, classes=None) -> dict:
    """Metrics on all images, and (given the training data's thumbnails) on the clean subset and the leaked rest.

    Returns {"all": ..., "clean": ..., "leaked": count, "leaked_accuracy": ..., "leaked_per_class": ..., "twin_threshold": ...};
    the clean keys only when reference_thumbs is given.
    """
    kwargs = {"classes": classes} if classes is not None else {}
    result: dict = {"all": classification_metrics(probs, split.labels, **kwargs)}
    if reference_thumbs is None:
        return result
    clean = twins.clean_mask(twins.thumbnails(images), reference_thumbs, threshold)
    leaked = ~clean
    result.update(
        clean=classification_metrics(probs[clean], split.labels[clean], **kwargs),
        leaked=int(leaked.sum()),
        leaked_accuracy=float((probs[leaked].argmax(1) == split.labels[leaked]).mean()) if leaked.any() else None,
        leaked_per_class=split.subset(np.flatnonzero(leaked)).counts(),
        clean_per_class=split.subset(np.flatnonzero(clean)).counts(),
        twin_threshold=threshold,
    )
    return result


@torch.no_grad()
def outputs_of(model, architecture: str, inputs, start: str | None, config: ModelConfig, device, batch_size: int, use_amp: bool,
               labels: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """float32 logits of uint8 images (start None) or of cached frozen outputs; with labels, also each item's
    class activation map at the architecture's explained layer (Grad-CAM there, for a linear head on a pool)."""
    was_training = model.training
    model.eval()
    cam_layer = get_architecture(architecture).cam_layer if labels is not None else None
    logits, cams = [], []
    for begin in range(0, len(inputs[0] if isinstance(inputs, tuple) else inputs), batch_size):
        end = begin + batch_size
        x = take(inputs, begin, end, device) if start else normalize(inputs[begin:end].to(device), config.mean, config.std)
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=use_amp):
            out, kept = forward_from(model, architecture, x, start, cam_layer)
        logits.append(out.float().cpu())
        if cam_layer:
            cams.append(class_activation(kept.float(), model.fc.weight.float(), torch.from_numpy(labels[begin:end]).to(device)).cpu())
    model.train(was_training)
    if not logits:
        return torch.empty(0, len(config.classes)), None
    return torch.cat(logits), (torch.cat(cams) if cams else None)


BATCH_NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def batch_norm_buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every batch-norm layer's running statistics, to put back with model.load_state_dict(..., strict=False)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.rsplit(".", 1)[-1] in BATCH_NORM_BUFFERS}


def recompute_batch_norm(model: torch.nn.Module, images: torch.Tensor, draw_weights: torch.Tensor, count: int,
                         config: ModelConfig, batch_size: int = 64, device: torch.device | str = "cpu", seed: int = 0) -> None:
    """Estimate every batch-norm layer's running mean and variance again (torch.optim.swa_utils.update_bn) on `count`
    of the uint8 training `images`, unaugmented, drawn with replacement by `draw_weights` (training.outside.balanced_weights:
    each class, and each collection within a class, the same share); the same `seed` draws the same images. A network
    trained on heavily augmented images gathered its statistics on those, not on the clean images it is judged on, and a
    mean of networks' weights (training.soup) does not have the mean of their statistics."""
    picks = torch.multinomial(draw_weights, count, replacement=True, generator=torch.Generator().manual_seed(seed))
    update_bn((normalize(images[picks[start:start + batch_size]].to(device), config.mean, config.std)
               for start in range(0, count, batch_size)), model)
    model.eval()


def validate(model, architecture: str, val: "Validation", config: ModelConfig, device, batch_size: int, use_amp: bool) -> dict:
    """One round of validation: accuracy on the validation images, and the box validation's pointing game and energy
    (all its slices, and those with no twin among the Training images)."""
    row = {}
    if val.inputs is not None:
        logits, _ = outputs_of(model, architecture, val.inputs, val.start, config, device, batch_size, use_amp)
        metrics = classification_metrics(torch.softmax(logits, 1).numpy(), val.labels)
        row.update(val_loss=float(F.cross_entropy(logits, torch.from_numpy(val.labels))), val_acc=metrics["accuracy"],
                   val_macro_f1=metrics["macro_f1"])
    if val.box_inputs is not None:
        _, cams = outputs_of(model, architecture, val.box_inputs, val.start, config, device, batch_size, use_amp,
                             val.box_labels)
        row["val_pointing"], row["val_energy"] = localisation_scores(cams, val.boxes, config.image_size)
        new = np.flatnonzero(val.box_new)
        row["val_pointing_new"], row["val_energy_new"] = localisation_scores(cams[new], [val.boxes[i] for i in new], config.image_size)
    return row


def box_validation_record(row: dict, val: "Validation", by: str) -> dict:
    """The box-validation figures of one validate() row, as config.json's metrics record them."""
    return {"val_pointing": row["val_pointing"], "val_energy": row["val_energy"], "n": len(val.box_labels),
            "val_pointing_new": row.get("val_pointing_new"), "n_new": int(val.box_new.sum()),
            "measured_by": f"{by} (the box validation band of the boxed slices' train part)"}


@dataclasses.dataclass
class Validation:
    """What each epoch is judged on: the validation images (or their frozen outputs), and the box validation."""
    inputs: object
    labels: np.ndarray | None
    start: str | None = None
    box_inputs: object = None
    box_labels: np.ndarray | None = None
    boxes: list | None = None
    box_new: np.ndarray | None = None  # bool: box-validation slices with no twin among the Training images

    def use_boxes(self, boxes: BoxData, inputs=None) -> None:
        """Judge the box validation of `boxes` too: its slices as images, or `inputs` made from them (frozen outputs)."""
        self.box_inputs = boxes.val_images if inputs is None else inputs
        self.box_labels, self.boxes, self.box_new = boxes.val_labels, boxes.val_boxes, boxes.val_new


def calibrated_validation(logits: torch.Tensor, labels: np.ndarray) -> tuple[float, dict]:
    """The temperature fitted on validation logits, and the validation figures at it (with the ECE before it)."""
    temperature = fit_temperature(logits, torch.from_numpy(labels))
    figures = classification_metrics(torch.softmax(logits / temperature, 1).numpy(), labels)
    figures["ece_before_temperature"] = classification_metrics(torch.softmax(logits, 1).numpy(), labels)["ece"]
    return temperature, figures


def final_report(model, config: ModelConfig, data: RunData, device, batch_size: int, use_amp: bool, reference: torch.Tensor,
                 twin_threshold: float, say=print) -> dict:
    """Fit the temperature and the out-of-distribution bounds on validation; measure validation and Testing
    (clean: the test images with no twin among `reference`, the thumbnails of everything trained on)."""
    metrics: dict = {}
    if data.val is not None and len(data.val):
        logits = predict_logits(model, data.val_images, config, device, batch_size, use_amp)
        config.temperature, metrics["validation"] = calibrated_validation(logits, data.val.labels)
        say(f"temperature {config.temperature:.3f}: validation ECE {metrics['validation']['ece_before_temperature']:.4f} -> "
            f"{metrics['validation']['ece']:.4f}")
        config.ood = ood_section(model, config, data.val_images, device)
    if data.test is not None:
        logits = predict_logits(model, data.test_images, config, device, batch_size, use_amp)
        found = measure(torch.softmax(logits / config.temperature, 1).numpy(), data.test, data.test_images, reference, twin_threshold)
        metrics.update(test=found["all"], test_clean=found["clean"], leaked=found["leaked"])
        say(f"Testing: all {found['all']['accuracy']:.4f} (n={found['all']['n']}), clean {found['clean']['accuracy']:.4f} "
            f"(n={found['clean']['n']}, macro-F1 {found['clean']['macro_f1']:.4f}), leaked {found['leaked']}")
    return metrics
