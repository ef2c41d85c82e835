"""Fitted on validation, never on the test data: the temperature that calibrates the confidences,
and the bounds of the out-of-distribution check; plus the non-MRI pictures that check is tried on."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from brain_tumor.config import ModelConfig
from brain_tumor.models import logits_of
from brain_tumor.ood import fit_bounds, input_scores
from brain_tumor.preprocess import normalize

OOD_QUANTILE = 0.0025
SKIMAGE_PICTURES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
                    "camera", "moon", "coins", "page", "text", "clock", "grass", "gravel", "brick", "horse", "checkerboard")


CALIBRATION_MAPS = {
    "temperature": "one temperature, logits / T (the shipped way)",
    "class temperature": "a temperature for each answered class: keeps every answer, changes how sure it is",
    "vector": "a scale and a bias for each class (vector scaling); can change answers",
}


def fit_map(kind: str, logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None):
    """A calibration map of CALIBRATION_MAPS fitted by the (weighted) NLL of softmax(map(logits)) on the labels
    (Guo et al., 2017): the map, a function of logits, and its fitted parameters (the temperatures, or the vector
    map's scales and biases)."""
    if kind not in CALIBRATION_MAPS:
        raise ValueError(f"unknown calibration map {kind!r}")
    logits = logits.detach().float().cpu()
    labels = labels.detach().long().cpu()
    k = logits.shape[1]
    log_scale = torch.zeros(1 if kind == "temperature" else k, requires_grad=True)
    bias = torch.zeros(k, requires_grad=kind == "vector")

    def apply(z: torch.Tensor, log_scale=log_scale, bias=bias) -> torch.Tensor:
        if kind == "temperature":
            return z / log_scale.exp()
        if kind == "class temperature":
            return z / log_scale.exp()[z.argmax(1)].unsqueeze(1)
        return z * log_scale.exp() + bias

    params = [log_scale, bias] if kind == "vector" else [log_scale]
    optimizer = torch.optim.LBFGS(params, lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(apply(logits), labels, reduction="none")
        loss = (loss * weights).sum() / weights.sum() if weights is not None else loss.mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    fitted_scale, fitted_bias = log_scale.detach().exp().clamp(0.05, 20.0).log(), bias.detach()
    fitted = {"scale" if kind == "vector" else "temperature": fitted_scale.exp().tolist()}
    if kind == "vector":
        fitted["bias"] = fitted_bias.tolist()
    return (lambda z: apply(z.float(), fitted_scale, fitted_bias)), fitted


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature T > 0 minimising the NLL of softmax(logits / T) (Guo et al., 2017)."""
    return fit_map("temperature", logits, labels)[1]["temperature"][0]


@torch.no_grad()
def ood_scores(model: torch.nn.Module, config: ModelConfig, images: torch.Tensor, device="cpu", batch_size: int = 32,
               logits: torch.Tensor | None = None) -> list[dict[str, float]]:
    """The out-of-distribution features (brain_tumor.ood) of N×3×S×S uint8 images; their logits as the classifier
    computes them, or `logits` where those are known already."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = normalize(images[start:start + batch_size], config.mean, config.std).to(device)
        given = logits[start:start + batch_size] if logits is not None else logits_of(model, batch, config.mirror_average)
        out += input_scores(batch, given, config.mean, config.std)
    return out


def ood_section(model: torch.nn.Module, config: ModelConfig, val_images: torch.Tensor, device="cpu", quantile: float = OOD_QUANTILE,
                logits: torch.Tensor | None = None) -> dict:
    """The config's "ood" entry: bounds fitted on the validation images of the run (and their `logits`, if known)."""
    if len(val_images) == 0:
        from brain_tumor.errors import UsageError

        raise UsageError("This run held out no validation images, so the out-of-distribution bounds cannot be fitted; "
                         "train with --val-fraction above 0 or --val-data.")
    bounds = fit_bounds(ood_scores(model, config, val_images, device, logits=logits), quantile)
    return {"bounds": bounds, "quantile": quantile, "fitted_on": f"validation split held out by training.fit (n={len(val_images)})"}


def chest_xray_like(size: int = 512, seed: int = 0) -> Image.Image:
    """A frontal chest radiograph's layout: bright body and spine, dark lungs, rib arcs."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (size, size), 25)
    draw = ImageDraw.Draw(image)
    draw.ellipse([size * 0.08, size * 0.05, size * 0.92, size * 1.1], fill=175)
    for left in (True, False):
        x0 = size * (0.16 if left else 0.54)
        draw.ellipse([x0, size * 0.15, x0 + size * 0.3, size * 0.8], fill=70)
    draw.rectangle([size * 0.46, 0, size * 0.54, size], fill=205)
    for k in range(8):
        y = size * (0.2 + 0.075 * k)
        draw.arc([size * 0.12, y - size * 0.08, size * 0.88, y + size * 0.12], 200, 340, fill=150, width=max(2, size // 80))
    image = image.filter(ImageFilter.GaussianBlur(size / 150))
    noisy = np.asarray(image, np.float32) + rng.normal(0, 6, (size, size))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def text_screenshot(size: int = 600) -> Image.Image:
    image = Image.new("RGB", (size, int(size * 0.75)), "white")
    draw = ImageDraw.Draw(image)
    for row in range(24):
        draw.text((20, 12 + row * 18), f"Patient report line {row}: findings unremarkable, follow-up in {row + 2} weeks.", fill="black")
    return image


def non_mri_images() -> list[tuple[str, Image.Image]]:
    """(kind, image) pairs that are not brain MRI slices."""
    rng = np.random.default_rng(0)
    images = [
        ("blank black", Image.new("RGB", (256, 256), "black")),
        ("blank white", Image.new("RGB", (256, 256), "white")),
        ("blank grey", Image.new("RGB", (256, 256), (128, 128, 128))),
        ("uniform noise", Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))),
        ("grey noise", Image.fromarray(np.clip(rng.normal(128, 50, (256, 256)), 0, 255).astype(np.uint8))),
        ("text screenshot", text_screenshot()),
        ("chest X-ray-like", chest_xray_like()),
        ("chest X-ray-like", chest_xray_like(seed=1, size=384)),
    ]
    try:
        from skimage import data
    except ImportError:
        return images
    for name in SKIMAGE_PICTURES:
        try:
            array = getattr(data, name)()
        except Exception:  # some pictures need a download
            continue
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        images.append((f"skimage {name}", Image.fromarray(array)))
    return images
