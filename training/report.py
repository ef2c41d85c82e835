"""Judging a model on a split: batched inference over decoded images, and the honest measurement
(all images, the clean ones with no near-duplicate in the training data, and the leaked rest)."""
from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from brain_tumor.config import ModelConfig
from brain_tumor.preprocess import normalize
from training import twins
from training.data import Split
from training.metrics import classification_metrics


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, config: ModelConfig, device: torch.device | str = "cpu",
                   batch_size: int = 64, use_amp: bool = False, progress: bool = False) -> torch.Tensor:
    """float32 logits, on the CPU, for N×3×S×S uint8 images: no augmentation, the model in eval mode."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    out = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc="predict", leave=False, disable=not progress):
        x = normalize(images[start:start + batch_size].to(device, non_blocking=True), config.mean, config.std)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            out.append(model(x).float().cpu())
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
