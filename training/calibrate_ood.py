"""Fit and measure the out-of-distribution check of a weights folder:
`python -m training.calibrate_ood --weights weights/resnet50 --data ../shared/data/brain-tumor-mri`.

Bounds come from the validation split that training.fit held out (rebuilt from the recipe in the
config: same seed, fraction and twin grouping); they are written into the folder's config.json.
It then reports the false-alarm rate on the clean Testing images and the detection rate on
non-MRI images: photos and documents shipped with scikit-image, and generated blank, noise,
text-screenshot and chest-X-ray-like pictures.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from brain_tumor.classifier import Classifier
from brain_tumor.ood import SIDES, fit_bounds, input_scores, reasons
from brain_tumor.preprocess import normalize, preprocess
from brain_tumor.weights import CONFIG_NAME
from training import twins
from training.datasets import decode_images, discover
from training.fit import DEFAULT_CACHE

QUANTILE = 0.0025
SKIMAGE_PICTURES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
                    "camera", "moon", "coins", "page", "text", "clock", "grass", "gravel", "brick", "horse", "checkerboard")


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


def scores(classifier: Classifier, batch: torch.Tensor) -> list[dict[str, float]]:
    return input_scores(batch, classifier.logits(batch), classifier.config.mean, classifier.config.std)


def batched_scores(classifier: Classifier, images: torch.Tensor, batch_size: int = 32) -> list[dict[str, float]]:
    out = []
    for start in range(0, len(images), batch_size):
        out += scores(classifier, normalize(images[start:start + batch_size], classifier.config.mean, classifier.config.std))
    return out


def ood_section(classifier: Classifier, val_images: torch.Tensor, quantile: float = QUANTILE) -> dict:
    """The config's "ood" entry: bounds fitted on the validation images that training.fit held out."""
    bounds = fit_bounds(batched_scores(classifier, val_images), quantile)
    return {"bounds": bounds, "quantile": quantile, "fitted_on": f"validation split held out by training.fit (n={len(val_images)})"}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="a local weights folder (its config.json is updated)")
    p.add_argument("--data", required=True, help="the dataset the model was trained on (Training/ and Testing/)")
    p.add_argument("--quantile", type=float, default=QUANTILE, help="tail share of validation images allowed past each bound")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    args = p.parse_args(argv)
    folder = Path(args.weights)
    classifier = Classifier.from_pretrained(folder)
    config = classifier.config
    recipe = config.provenance.get("recipe", {})
    cache = Path(args.cache_dir) if args.cache_dir else None
    splits = discover(args.data)
    pool = splits["train"]
    pool_images = decode_images(pool.paths, config.image_size, config.clahe, cache_dir=cache, desc="train")
    pool_thumbs = twins.thumbnails(pool_images)
    _, val_idx, _ = twins.twin_aware_split(pool.labels, pool_thumbs, recipe.get("val_fraction", 0.1), recipe.get("seed", 0),
                                           recipe.get("twin_threshold", twins.DEFAULT_THRESHOLD))
    section = ood_section(classifier, pool_images[val_idx], args.quantile)
    bounds = section["bounds"]

    result: dict = {"n_validation": len(val_idx), "quantile": args.quantile}
    if "test" in splits:
        test = splits["test"]
        test_images = decode_images(test.paths, config.image_size, config.clahe, cache_dir=cache, desc="test")
        clean = twins.clean_mask(twins.thumbnails(test_images), pool_thumbs)
        test_scores = batched_scores(classifier, test_images[torch.from_numpy(np.flatnonzero(clean))])
        alarms = [reasons(s, bounds) for s in test_scores]
        result["false_alarm_rate_clean_test"] = float(np.mean([bool(a) for a in alarms]))
        result["n_clean_test"] = len(test_scores)
        result["false_alarms_by_check"] = {name: sum(name in a for a in alarms) for name in SIDES}
    others = non_mri_images()
    batch = torch.stack([preprocess(image, config) for _, image in others])
    flagged = [reasons(s, bounds) for s in scores(classifier, batch)]
    result["detection_rate_non_mri"] = float(np.mean([bool(f) for f in flagged]))
    result["n_non_mri"] = len(others)
    result["non_mri"] = {f"{kind} #{i}": list(f) for i, ((kind, _), f) in enumerate(zip(others, flagged))}

    config.ood = section
    config.metrics["ood"] = {k: v for k, v in result.items() if k != "non_mri"}
    config.save(folder / CONFIG_NAME)

    print(f"bounds fitted on {len(val_idx)} validation images (tail quantile {args.quantile}): {json.dumps(bounds)}")
    if "false_alarm_rate_clean_test" in result:
        print(f"false alarms on clean Testing images: {result['false_alarm_rate_clean_test']:.2%} of {result['n_clean_test']} "
              f"(by check: {result['false_alarms_by_check']})")
    print(f"detected non-MRI images: {result['detection_rate_non_mri']:.0%} of {result['n_non_mri']}")
    for (kind, _), f in zip(others, flagged):
        print(f"  {kind:28} {'flagged: ' + ', '.join(f) if f else 'MISSED'}")
    return result


if __name__ == "__main__":
    main()
