"""The one preprocessing path: load, resize, normalise. Training, evaluation and the app share it."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch
from PIL import Image

from brain_tumor.images import ImageSource, load_image


def equalize(array: np.ndarray) -> np.ndarray:
    """CLAHE on the luminance of a uint8 RGB array (a common MRI contrast normalisation)."""
    lab = cv2.cvtColor(array, cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def resize_image(image: Image.Image, size: int, clahe: bool = False) -> np.ndarray:
    """Resize an RGB image to size×size (as the training data was), returned as uint8 H×W×3."""
    array = np.asarray(image.convert("RGB"))
    if clahe:
        array = equalize(array)
    if array.shape[:2] == (size, size):
        return np.array(array)  # a writable copy
    # Area averaging when shrinking avoids aliasing; bilinear when enlarging.
    shrinking = array.shape[0] * array.shape[1] > size * size
    return cv2.resize(array, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def normalize(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 images (N×3×H×W or 3×H×W, 0..255) to float tensors normalised by mean/std."""
    shape = (3, 1, 1) if batch.ndim == 3 else (1, 3, 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=batch.device).view(shape)
    std_t = torch.tensor(std, dtype=torch.float32, device=batch.device).view(shape)
    return (batch.float() / 255.0 - mean_t) / std_t


def to_uint8_tensor(image: Image.Image, size: int, clahe: bool = False) -> torch.Tensor:
    """The resized image as a 3×size×size uint8 tensor: what training caches."""
    return torch.from_numpy(resize_image(image, size, clahe)).permute(2, 0, 1).contiguous()


def preprocess(source: ImageSource, config) -> torch.Tensor:
    """Any image source to the 3×S×S float tensor the model described by `config` expects."""
    return normalize(to_uint8_tensor(load_image(source), config.image_size, config.clahe), config.mean, config.std)
