"""Classifier: a model plus its config; prediction and class-activation-map explanation."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from brain_tumor.config import ModelConfig
from brain_tumor.errors import UsageError
from brain_tumor.explain import DEFAULT_METHOD, class_activation_maps, method_class, parse_layers
from brain_tumor.images import ImageSource, load_image
from brain_tumor.models import get_architecture, logits_of
from brain_tumor.onnx_backend import OnnxRunner, cached_onnx
from brain_tumor.onnx_backend import available as onnx_available
from brain_tumor.ood import describe, input_scores, reasons
from brain_tumor.preprocess import preprocess
from brain_tumor.weights import load_model, resolve_weights, save_weights, weights_version

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")


@dataclasses.dataclass(frozen=True)
class Prediction:
    label: str
    # Every class, in the model's class order, with probabilities summing to 1.
    probabilities: dict[str, float]
    # Names of the checks (brain_tumor.ood.SIDES) by which the input does not look like a brain MRI slice.
    ood_reasons: tuple[str, ...] = ()

    @property
    def out_of_distribution(self) -> bool:
        return bool(self.ood_reasons)

    @property
    def warning(self) -> str | None:
        """One sentence for people when the input looks out of distribution, else None."""
        return describe(self.ood_reasons) if self.ood_reasons else None

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]


@dataclasses.dataclass(frozen=True)
class Explanation:
    target: str
    # H×W float array in [0, 1], at the input image's own size.
    heatmap: np.ndarray
    image: Image.Image
    prediction: Prediction
    method: str = DEFAULT_METHOD
    layer: str = ""

    def overlay_with(self, opacity: float = 0.5) -> Image.Image:
        """The heatmap (JET colours) blended over the image; opacity 0 shows the image, 1 the heatmap."""
        # A plain blend, not show_cam_on_image: that rescales by the maximum and brightens dark scans.
        colours = cv2.applyColorMap(np.uint8(np.round(255 * self.heatmap)), cv2.COLORMAP_JET)[..., ::-1]
        opacity = float(np.clip(opacity, 0.0, 1.0))
        blended = (1.0 - opacity) * np.asarray(self.image, dtype=np.float32) + opacity * colours.astype(np.float32)
        return Image.fromarray(np.round(blended).astype(np.uint8))

    @property
    def overlay(self) -> Image.Image:
        return self.overlay_with(0.5)


class Classifier:
    """A trained model with everything needed to use it. Load with `from_pretrained`."""

    def __init__(self, model: nn.Module, config: ModelConfig, device: str | torch.device = "cpu", source: str | None = None,
                 backend: str = "torch"):
        self.config = config
        self.source = source  # the weights folder it was loaded from, if any
        self.device = torch.device(device)
        # Shared by every thread: prediction runs in inference mode, and explanations hook only their
        # own wrapper modules and write no gradients into it (brain_tumor.explain), so no lock is needed.
        self.model = model.to(self.device).eval()
        if backend not in BACKENDS:
            raise UsageError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
        if backend == "auto":  # onnxruntime predicts faster on CPUs (benchmarks.latency), when it is installed
            backend = "onnx" if self.device.type == "cpu" and onnx_available() else "torch"
        self.backend = backend
        self._onnx = None
        if backend != "torch":
            cut = self.explanation_start()
            model_bytes = cached_onnx(self.model, config, self.version, cut, backend == "onnx-int8")
            self._onnx = OnnxRunner(model_bytes, cut)

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike | None = None, revision: str | None = None, device: str = "cpu", *,
                        backend: str = "auto", token: str | bool | None = None, cache_dir: str | os.PathLike | None = None,
                        local_files_only: bool = False) -> "Classifier":
        """Load from a weights folder, a Hugging Face Hub id, or (None) the default weights.

        backend: what computes predictions: "torch", "onnx" / "onnx-int8" (onnxruntime; explanations stay
        in PyTorch), or "auto": onnxruntime on a CPU when it is installed, as it predicts faster there. revision, token, cache_dir and local_files_only go to huggingface_hub for a Hub id.
        Every shard's sha256 is checked against config.json before anything is loaded.
        """
        folder = resolve_weights(source, revision=revision, token=token, cache_dir=cache_dir, local_files_only=local_files_only)
        model, config = load_model(folder)
        return cls(model, config, device=device, source=str(folder), backend=backend)

    def explanation_start(self, layers: Sequence[str] | None = None) -> str:
        """The stage an explanation of `layers` (default: the weights' own) starts its backward pass from: the earliest."""
        layers = layers or self.explain_settings()[1]
        names = [name for name, _ in get_architecture(self.config.architecture).stages(self.model)]
        return min(layers, key=names.index)

    def save_pretrained(self, directory: str | os.PathLike, card: str | None = None) -> Path:
        return save_weights(self.model.state_dict(), self.config, Path(directory), card=card)

    @property
    def version(self) -> str:
        """The weights' short sha256 id (see brain_tumor.weights.weights_version)."""
        return weights_version(self.config)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.config.classes)

    def _batch(self, images: Iterable[ImageSource]) -> torch.Tensor:
        return torch.stack([preprocess(image, self.config) for image in images]).to(self.device)

    def _to_predictions(self, batch: torch.Tensor, logits: torch.Tensor) -> list[Prediction]:
        probs = torch.softmax(logits.float() / self.config.temperature, dim=-1).tolist()
        bounds = self.config.ood.get("bounds")
        flags: list[tuple[str, ...]] = [()] * len(probs)
        if bounds:  # weights calibrated with training.calibrate_ood
            flags = [reasons(s, bounds) for s in input_scores(batch, logits, self.config.mean, self.config.std)]
        predictions = []
        for row, flagged in zip(probs, flags):
            probabilities = dict(zip(self.classes, row))
            predictions.append(Prediction(max(probabilities, key=probabilities.get), probabilities, flagged))
        return predictions

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw logits of normalised N×3×S×S inputs, from the backend chosen at load time (each image's averaged with its
        mirror image's where the config says so)."""
        return logits_of(self._one_view, batch, self.config.mirror_average)

    def _one_view(self, batch: torch.Tensor) -> torch.Tensor:
        if self._onnx is not None:
            return self._onnx.logits(batch)
        with torch.inference_mode():
            return self.model(batch.to(self.device))

    def predict_batch(self, images: Sequence[ImageSource]) -> list[Prediction]:
        if not len(images):
            return []
        return self.predict_preprocessed(self._batch(images))

    def predict_preprocessed(self, batch: torch.Tensor) -> list[Prediction]:
        """Predictions for N×3×S×S inputs already made by brain_tumor.preprocess (decoded elsewhere, e.g. by Ray tasks)."""
        batch = batch.to(self.device)
        return self._to_predictions(batch, self.logits(batch))

    def predict(self, image: ImageSource) -> Prediction:
        return self.predict_batch([image])[0]

    def explain_settings(self, method: str | None = None, layer: str | None = None) -> tuple[str, tuple[str, ...]]:
        """The method and layers an explanation uses: those given, else the weights' default, else
        Grad-CAM on the architecture's last convolutional block. Unknown names raise UsageError."""
        method = method or self.config.explanation.get("method") or DEFAULT_METHOD
        method_class(method)
        return method, parse_layers(layer or self.config.explanation.get("layer"), self.config.architecture)

    def explain(self, image: ImageSource, target: str | None = None, method: str | None = None, layer: str | None = None) -> Explanation:
        """A class activation map for `target` (default: the predicted class), by `method` at `layer`.

        method: one of brain_tumor.explain.METHODS; layer: a stage name such as 'layer4', or several
        joined by '+'; see explain_settings for the defaults.
        """
        if target is not None and target not in self.classes:
            raise UsageError(f"{target!r} is not a class of this model; choose one of {', '.join(self.classes)}.")
        method, layers = self.explain_settings(method, layer)
        picture = load_image(image)
        batch = self._batch([picture])
        targets = None if target is None else [self.classes.index(target)]
        if self._onnx is not None and self.explanation_start(layers) == self._onnx.cut:
            # onnxruntime runs the network below the cut; PyTorch only the stages above it, with gradients.
            start, inputs = self._onnx.cut, self._onnx.activations(batch)
        else:
            start, inputs = None, batch
        def explained(classes):
            return class_activation_maps(self.model, self.config.architecture, inputs, classes, method, layers, start=start,
                                         size=tuple(batch.shape[-2:]))

        maps, logits = explained(targets)
        if self.config.mirror_average:  # the map's pass saw one view; the answer is both views'
            one_view, logits = logits, (logits + self._one_view(batch.flip(-1)).to(logits.device)) / 2
            if targets is None and int(logits[0].argmax()) != int(one_view[0].argmax()):
                maps, _ = explained([int(logits[0].argmax())])  # the map of the class the answer names
        prediction = self._to_predictions(batch, logits)[0]
        heatmap = cv2.resize(maps[0], picture.size, interpolation=cv2.INTER_LINEAR)
        return Explanation(target=target or prediction.label, heatmap=np.clip(heatmap, 0.0, 1.0), image=picture,
                           prediction=prediction, method=method, layer="+".join(layers))
