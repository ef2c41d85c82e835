"""Batch augmentation on uint8 image tensors, on whatever device they live (GPU: no per-step decoding).

One affine warp does random-resized-crop, rotation and flip together (with an elastic field beside it when asked);
colour jitter follows. AugmentConfig.stacked() adds the transforms that break a collection's look, after BigAug
(Zhang et al., IEEE TMI 2020: stacked image-quality, appearance and spatial transforms generalised to unseen MRI
collections): blur or sharpening, noise, thick-slice blur (down-sampling one or both axes), gamma and a random
intensity curve, and a random elliptic brain mask (skull stripped or not, so "no skull" does not mean one class).
Each of these is drawn per image with its probability. Apart from the stack, `lesion` makes the inside of an image's
tumour mask darker or brighter (a glioma is bright or dark depending on the sequence and on cysts, necrosis or a
resection cavity), so that a tumour is learnt by its place and shape and not by one collection's contrast.
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
    elastic: float = 0.0  # probability of a smooth random displacement field (up to ~4% of the side)
    blur: float = 0.0  # probability of a Gaussian blur (σ 0.5–1.5 px at 224), else of sharpening, at the same probability
    noise: float = 0.0  # probability of Gaussian noise (σ up to 8 grey levels)
    thick: float = 0.0  # probability of down-sampling one or both axes by 2–4× and back (2–5 mm-like slices)
    gamma: float = 0.0  # probability of a gamma curve (γ 0.6–1.6)
    curve: float = 0.0  # probability of a random monotone intensity curve (5 knots)
    strip: float = 0.0  # probability of an elliptic mask that blacks out the rim (a crude skull strip)
    lesion: float = 0.0  # probability of scaling the intensities inside the tumour mask (×0.3–1.7, soft edge); needs masks

    @classmethod
    def none(cls) -> "AugmentConfig":
        return cls(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), rotation=0.0, hflip=False, brightness=0.0, contrast=0.0)

    @classmethod
    def stacked(cls, crop_scale: float = 0.6) -> "AugmentConfig":
        """BigAug-like: wider spatial transforms plus image-quality and appearance transforms, each at its probability."""
        return cls(crop_scale=(crop_scale, 1.0), crop_ratio=(0.75, 1.33), rotation=20.0, brightness=0.3, contrast=0.3,
                   elastic=0.3, blur=0.25, noise=0.3, thick=0.25, gamma=0.5, curve=0.3, strip=0.2)

    def without(self, names: tuple[str, ...] | list[str]) -> "AugmentConfig":
        """The same transforms less those named (of STACKED_TRANSFORMS): to measure what each one gives."""
        return dataclasses.replace(self, **{name: 0.0 for name in names})


# The stacked transforms that each have a probability, and can be left out one at a time (training.fit --augment-without).
STACKED_TRANSFORMS = ("elastic", "blur", "noise", "thick", "gamma", "curve", "strip")


def _uniform(n: int, lo: float, hi: float, generator, device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) * (hi - lo) + lo


def _chosen(n: int, p: float, generator, device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) < p


def _gaussian(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Each image blurred by its own σ (pixels): separable, 7 taps."""
    taps = torch.arange(-3, 4, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps[None] / sigma[:, None].clamp_min(1e-3)) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)  # n×7
    n, c, h, w = x.shape
    flat = x.reshape(1, n * c, h, w)
    k = kernel.repeat_interleave(c, 0)
    flat = F.conv2d(F.pad(flat, (3, 3, 0, 0), mode="replicate"), k.view(n * c, 1, 1, 7), groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, 3, 3), mode="replicate"), k.view(n * c, 1, 7, 1), groups=n * c)
    return flat.view(n, c, h, w)


def _lesion(x: torch.Tensor, masks: torch.Tensor, p: float, generator, device) -> torch.Tensor:
    """Each picked image's tumour (its mask, edge softened) scaled by one factor drawn log-uniform in 0.3–1.7: darker
    (a cyst, a cavity, FLAIR-dark necrosis) or brighter (enhancement). Images with an empty mask are unchanged."""
    n, _, h, w = x.shape
    pick = _chosen(n, p, generator, device).view(n, 1, 1, 1)
    factor = torch.exp(_uniform(n, math.log(0.3), math.log(1.7), generator, device)).view(n, 1, 1, 1)
    soft = _gaussian(masks[:, None].clamp(0, 1), torch.full((n,), 2.0 * h / 224, device=device))
    return torch.where(pick, x * (1 + (factor - 1) * soft), x)


def _quality_and_appearance(x: torch.Tensor, config: AugmentConfig, generator, device) -> torch.Tensor:
    """The stacked transforms on float images in 0..255 (those with probability 0 cost nothing)."""
    n, _, h, w = x.shape
    scale = h / 224
    if config.thick:
        pick = _chosen(n, config.thick, generator, device)
        if pick.any():
            factor = _uniform(n, 2, 4, generator, device)
            axis = torch.randint(0, 3, (n,), generator=generator, device=device)  # rows, columns or both
            for i in torch.nonzero(pick).flatten().tolist():
                size = (max(8, int(h / factor[i])) if axis[i] != 1 else h, max(8, int(w / factor[i])) if axis[i] != 0 else w)
                small = F.interpolate(x[i:i + 1], size=size, mode="area")
                x[i:i + 1] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    if config.blur:
        pick, sharpen = _chosen(n, config.blur, generator, device), _chosen(n, config.blur, generator, device)
        if (pick | sharpen).any():
            sigma = _uniform(n, 0.5, 1.5, generator, device) * scale
            soft = _gaussian(x, sigma)
            amount = _uniform(n, 0.5, 1.5, generator, device).view(n, 1, 1, 1)
            x = torch.where(pick.view(n, 1, 1, 1), soft, torch.where(sharpen.view(n, 1, 1, 1), x + amount * (x - soft), x))
    if config.gamma:
        pick = _chosen(n, config.gamma, generator, device).view(n, 1, 1, 1)
        gamma = torch.exp(_uniform(n, math.log(0.6), math.log(1.6), generator, device)).view(n, 1, 1, 1)
        x = torch.where(pick, 255 * (x.clamp(0, 255) / 255) ** gamma, x)
    if config.curve:
        pick = _chosen(n, config.curve, generator, device)
        if pick.any():  # a monotone piecewise-linear curve through 5 random knots between (0, 0) and (255, 255)
            steps = torch.rand(n, 5, generator=generator, device=device) + 0.2
            knots = torch.cat([torch.zeros(n, 1, device=device), steps.cumsum(1) / steps.sum(1, keepdim=True)], 1) * 255
            position = x.clamp(0, 255) / 255 * 5
            low = position.floor().clamp(max=4).long()
            fraction = position - low
            ys = knots.view(n, 1, 6).expand(n, x.shape[1], 6)
            flat_low, flat_fraction = low.flatten(2), fraction.flatten(2)
            curved = (torch.gather(ys, 2, flat_low) * (1 - flat_fraction) + torch.gather(ys, 2, flat_low + 1) * flat_fraction).view_as(x)
            x = torch.where(pick.view(n, 1, 1, 1), curved, x)
    if config.noise:
        pick = _chosen(n, config.noise, generator, device).view(n, 1, 1, 1)
        sigma = _uniform(n, 1, 8, generator, device).view(n, 1, 1, 1)
        grey = torch.randn((n, 1, h, w), generator=generator, device=device) * sigma  # one field: the channels stay grey
        x = torch.where(pick, x + grey, x)
    if config.strip:
        pick = _chosen(n, config.strip, generator, device).view(n, 1, 1, 1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=device), torch.linspace(-1, 1, w, device=device), indexing="ij")
        ry, rx = _uniform(n, 0.7, 0.95, generator, device).view(n, 1, 1), _uniform(n, 0.6, 0.85, generator, device).view(n, 1, 1)
        inside = ((ys[None] / ry) ** 2 + (xs[None] / rx) ** 2 <= 1).unsqueeze(1)
        x = torch.where(pick & ~inside, torch.zeros_like(x), x)
    return x


def _elastic(n: int, h: int, w: int, config: AugmentConfig, generator, device) -> torch.Tensor:
    """A smooth displacement (n×h×w×2, grid units) for the images picked, zero for the rest."""
    pick = _chosen(n, config.elastic, generator, device).view(n, 1, 1, 1).float()
    coarse = torch.randn((n, 2, 5, 5), generator=generator, device=device) * 0.04
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1) * pick


def augment(batch: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None = None,
            masks: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """uint8 N×3×H×W -> float N×3×H×W in 0..255, randomly cropped, rotated, flipped and jittered.

    masks (N×H×W, e.g. tumour boxes): warped with the same crop, rotation and flip, and returned beside the images;
    config.lesion changes the images inside them.
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
    if config.elastic:
        grid = grid + _elastic(n, x.shape[2], x.shape[3], config, generator, device)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    warped_masks = None
    if masks is not None:
        x, warped_masks = x[:, :3], x[:, 3]
        if config.lesion:
            x = _lesion(x, warped_masks, config.lesion, generator, device)
    if config.brightness:
        x = x * _uniform(n, 1 - config.brightness, 1 + config.brightness, generator, device).view(n, 1, 1, 1)
    if config.contrast:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        factor = _uniform(n, 1 - config.contrast, 1 + config.contrast, generator, device).view(n, 1, 1, 1)
        x = (x - mean) * factor + mean
    x = _quality_and_appearance(x, config, generator, device)
    x = x.clamp(0, 255)
    return x if masks is None else (x, warped_masks)
