"""Shared fixtures: real example images, small generated datasets, small saved models."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.jpg"))
SHIPPED_RESNET = ROOT / "weights" / "resnet50"
PYTHON = sys.executable

# Folder names as other releases of the data spell them: the loaders must normalise these.
FOLDER_NAMES = {"glioma": "glioma_tumor", "meningioma": "meningioma_tumor", "notumor": "no_tumor", "pituitary": "pituitary_tumor"}


def synthetic_slice(label: int, seed: int, size: int = 48) -> Image.Image:
    """A dark disc ("skull") with a bright blob whose place depends on the class."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = np.where((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.42) ** 2, 60.0, 0.0)
    centres = [(0.3, 0.3), (0.3, 0.7), None, (0.7, 0.5)]
    if centres[label] is not None:
        cy, cx = centres[label]
        image += 150 * np.exp(-((yy - cy * size) ** 2 + (xx - cx * size) ** 2) / (2 * (size * 0.08) ** 2))
    image += rng.normal(0, 12, image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).convert("RGB")


def make_kaggle_dataset(root: Path, train_per_class: int = 10, test_per_class: int = 4, leaked: int = 2) -> Path:
    """Training/ and Testing/ with class folders; the first `leaked` test images are copies of
    training images (planted twins), and one training image appears twice in Training."""
    classes = list(FOLDER_NAMES)
    for split, n in (("Training", train_per_class), ("Testing", test_per_class)):
        for c, name in enumerate(classes):
            folder = root / split / FOLDER_NAMES[name]
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed = (0 if split == "Training" else 10_000) + 100 * c + i
                synthetic_slice(c, seed).save(folder / f"{split[:2]}-{c}-{i:03d}.png")
    train_glioma = root / "Training" / FOLDER_NAMES["glioma"]
    for i in range(leaked):
        shutil.copyfile(train_glioma / f"Tr-0-{i:03d}.png", root / "Testing" / FOLDER_NAMES["glioma"] / f"Te-leak-{i}.png")
    shutil.copyfile(train_glioma / "Tr-0-005.png", train_glioma / "Tr-0-dup.png")
    return root


@pytest.fixture(scope="session")
def kaggle_dataset(tmp_path_factory) -> Path:
    return make_kaggle_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def tiny_baseline(tmp_path_factory) -> Path:
    """An untrained baseline CNN at 32 px, saved as a weights folder."""
    import torch

    from brain_tumor import Classifier, ModelConfig, create_model
    from brain_tumor.config import HALF_RANGE_MEAN, HALF_RANGE_STD

    torch.manual_seed(0)
    config = ModelConfig("baseline", image_size=32, mean=HALF_RANGE_MEAN, std=HALF_RANGE_STD)
    folder = tmp_path_factory.mktemp("weights") / "baseline"
    Classifier(create_model("baseline", image_size=32), config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def shipped_resnet():
    from brain_tumor import Classifier

    return Classifier.from_pretrained(SHIPPED_RESNET)
