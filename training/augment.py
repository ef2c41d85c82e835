"""Batch augmentation on uint8 image tensors, on whatever device they live (GPU: no per-step decoding).

One affine warp does random-resized-crop, rotation and flip together; colour jitter follows.
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F


@dataclasses.dataclass
class AugmentConfig:
    crop_scale: tuple[float, float] = (0.7, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rotation: float = 15.0  # degrees, ±
    hflip: bool = True
    brightness: float = 0.2  # ± fraction
    contrast: float = 0.2  # ± fraction

    @classmethod
    def none(cls) -> "AugmentConfig":
        return cls(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), rotation=0.0, hflip=False, brightness=0.0, contrast=0.0)


def _uniform(n: int, lo: float, hi: float, generator, device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) * (hi - lo) + lo


def augment(batch: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None = None,
            masks: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """uint8 N×3×H×W -> float N×3×H×W in 0..255, randomly cropped, rotated, flipped and jittered.

    masks (N×H×W, e.g. tumour boxes): warped with the same crop, rotation and flip, and returned beside the images.
    """
    n, device = batch.shape[0], batch.device
    x = batch.float()
    if masks is not None:
        x = torch.cat([x, masks[:, None].to(x.dtype)], 1)
    scale = _uniform(n, *config.crop_scale, generator, device)
    log_ratio = _uniform(n, math.log(config.crop_ratio[0]), math.log(config.crop_ratio[1]), generator, device)
    ratio = log_ratio.exp()
    width = (scale * ratio).sqrt().clamp(max=1.0)
    height = (scale / ratio).sqrt().clamp(max=1.0)
    shift_x = _uniform(n, -1, 1, generator, device) * (1 - width)
    shift_y = _uniform(n, -1, 1, generator, device) * (1 - height)
    angle = _uniform(n, -config.rotation, config.rotation, generator, device) * (math.pi / 180)
    flip = torch.ones(n, device=device)
    if config.hflip:
        flip = torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -flip, flip)
    cos, sin = angle.cos(), angle.sin()
    # Sampling grid: input = shift + R(angle) · diag(width·flip, height) · output
    theta = torch.stack([
        torch.stack([cos * width * flip, -sin * height, shift_x], dim=1),
        torch.stack([sin * width * flip, cos * height, shift_y], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    warped_masks = None
    if masks is not None:
        x, warped_masks = x[:, :3], x[:, 3]
    if config.brightness:
        x = x * _uniform(n, 1 - config.brightness, 1 + config.brightness, generator, device).view(n, 1, 1, 1)
    if config.contrast:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        factor = _uniform(n, 1 - config.contrast, 1 + config.contrast, generator, device).view(n, 1, 1, 1)
        x = (x - mean) * factor + mean
    x = x.clamp(0, 255)
    return x if masks is None else (x, warped_masks)
