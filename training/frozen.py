"""Training part of a network: the stages up to one stay frozen, their outputs computed once per image and
cached (float16), and the rest trains on them; the same stages run the whole network when nothing is frozen.

A stage may hand on several tensors (the gated ResNet-50's layer4 passes layer3's map on to its gate), so
cached outputs are tuples.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from brain_tumor.config import ModelConfig
from brain_tumor.models import get_architecture
from brain_tumor.preprocess import normalize
from training.augment import AugmentConfig, augment
from training.runtime import memory_format

Inputs = torch.Tensor | tuple[torch.Tensor, ...]


def as_tuple(x: Inputs) -> tuple[torch.Tensor, ...]:
    return x if isinstance(x, tuple) else (x,)


def forward_from(model: nn.Module, architecture: str, x: Inputs, start: str | None = None,
                 keep: str | None = None, stop: str | None = None) -> tuple[Inputs, Inputs | None]:
    """The logits from `x` (model inputs, or with `start` the output of that stage), or the output of stage `stop`;
    and the output of stage `keep`."""
    stages = get_architecture(architecture).stages(model)
    names = [name for name, _ in stages]
    kept = x if keep is not None and keep == start else None
    for name, stage in stages[0 if start is None else names.index(start) + 1:names.index(stop) + 1 if stop else None]:
        x = stage(x)
        if name == keep:
            kept = x
    return x, kept


def _fingerprint(model: nn.Module, architecture: str, stage: str, images: torch.Tensor) -> str:
    """Which weights produced the frozen outputs, and of which images (every 16th pixel)."""
    digest = hashlib.sha256()
    for name, module in get_architecture(architecture).stages(model):
        for tensor in module.state_dict().values():
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        if name == stage:
            break
    digest.update(images[:, :, ::16, ::16].contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def frozen_outputs(model: nn.Module, config: ModelConfig, stage: str, images: torch.Tensor, cache_dir: Path | None, name: str,
                   device: torch.device | str = "cpu", batch_size: int = 32) -> Inputs:
    """The output of stages stem..`stage` (eval mode) for N×3×S×S uint8 images, float16 on the CPU;
    kept under cache_dir by weights and images, so a second run reads it instead."""
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"frozen-{config.architecture}-{stage}-{name}-{len(images)}-{_fingerprint(model, config.architecture, stage, images)}.npz"
        if path.is_file():
            with np.load(path) as stored:
                parts = tuple(torch.from_numpy(stored[f"part{i}"]) for i in range(len(stored.files)))
            return parts if len(parts) > 1 else parts[0]
    was_training = model.training
    model.eval()
    stages = get_architecture(config.architecture).stages(model)
    names = [n for n, _ in stages]
    chunks: list[tuple[torch.Tensor, ...]] = []
    for begin in tqdm(range(0, len(images), batch_size), desc=f"frozen {stage}: {name}", leave=False):
        x = normalize(images[begin:begin + batch_size].to(device), config.mean, config.std)
        for _, module in stages[:names.index(stage) + 1]:
            x = module(x)
        chunks.append(tuple(t.half().cpu() for t in as_tuple(x)))
    model.train(was_training)
    parts = tuple(torch.cat([c[i] for c in chunks]) for i in range(len(chunks[0]))) if chunks else (torch.empty(0),)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp.npz")
        np.savez(partial, **{f"part{i}": t.numpy() for i, t in enumerate(parts)})
        partial.replace(path)
    return parts if len(parts) > 1 else parts[0]


@dataclasses.dataclass
class TrainItems:
    """What an epoch draws from: uint8 images (augmented at each step), or, with `start`, the cached output of the
    frozen stages up to `start` (no augmentation); with masks (0/1 tumour boxes) for the images that have one."""
    inputs: Inputs
    labels: np.ndarray
    start: str | None = None
    masks: torch.Tensor | None = None
    has_mask: torch.Tensor | None = None
    weights: torch.Tensor | None = None  # sampling weights (balanced collections), or None for one pass in random order

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: torch.Tensor, config: ModelConfig, aug: AugmentConfig, generator: torch.Generator,
              device: torch.device, use_amp: bool = False) -> tuple[Inputs, torch.Tensor | None]:
        """(model inputs or frozen outputs, masks or None) for the items `idx`, on `device`, in the run's layout."""
        masks = self.masks[idx].to(device) if self.masks is not None else None
        if self.start is not None:
            parts = tuple(t[idx].to(device).float() for t in as_tuple(self.inputs))
            return (parts if len(parts) > 1 else parts[0]), masks
        images = self.inputs[idx.to(self.inputs.device)].to(device, non_blocking=True)
        if masks is not None:
            x, masks = augment(images, aug, generator, masks=masks)
        else:
            x = augment(images, aug, generator)
        return normalize(x, config.mean, config.std).contiguous(memory_format=memory_format(device, use_amp)), masks


def take(inputs: Inputs, begin: int, end: int, device: torch.device | str = "cpu") -> Inputs:
    parts = tuple(t[begin:end].to(device).float() for t in as_tuple(inputs))
    return parts if len(parts) > 1 else parts[0]
