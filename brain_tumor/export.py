"""Export a weights folder for other tools:
`python -m brain_tumor.export --weights DIR --format timm|onnx|float16 --out PATH [--int8]`.

- timm: a folder that `timm.create_model("local-dir:PATH", pretrained=True)` (or `hf-hub:OWNER/NAME` once
  pushed) loads with the same logits, written by timm's own save_for_hf; the temperature, the
  out-of-distribution bounds and the class names go to brain_tumor.json beside it.
- onnx: one ONNX file with a dynamic batch axis, input `pixels` (normalised N×3×S×S), outputs `logits`
  and `activations` (where explanations start); --int8 also quantises its weights dynamically
  (onnxruntime.quantization). Classifier.from_pretrained(..., backend="onnx") makes and caches its own.
- float16: a weights folder of brain_tumor's own kind, the same model stored in half precision (half the size;
  how the shipped soups were saved), its config and model card written again for the new shards.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from brain_tumor.classifier import Classifier
from brain_tumor.errors import UsageError, exit_status
from brain_tumor.models import get_architecture
from brain_tumor.onnx_backend import onnx_bytes, quantize_int8
from brain_tumor.weights import save_weights

EXTRA_NAME = "brain_tumor.json"


def export_timm(classifier: Classifier, out: Path) -> Path:
    """A timm folder with the same weights; brain_tumor.json keeps what timm has no place for."""
    import timm
    from timm.models import save_for_hf

    config = classifier.config
    timm_name = get_architecture(config.architecture).timm
    if not isinstance(timm_name, tuple):  # None, or why timm cannot hold it
        reason = timm_name or f"timm has no {config.architecture} architecture"
        raise UsageError(f"{reason}; use --format onnx for {config.architecture}.")
    name, model_args = timm_name
    model = timm.create_model(name, pretrained=False, num_classes=len(config.classes), **model_args)
    model.load_state_dict(classifier.model.state_dict())  # timm's ResNet uses torchvision's parameter names
    model.pretrained_cfg = {**model.pretrained_cfg, "mean": tuple(config.mean), "std": tuple(config.std),
                            "input_size": (3, config.image_size, config.image_size), "crop_pct": 1.0, "interpolation": "bilinear",
                            "num_classes": len(config.classes), "label_names": list(config.classes)}
    save_for_hf(model, str(out), model_args=model_args, safe_serialization=True)
    extra = {"classes": list(config.classes), "temperature": config.temperature, "ood": config.ood,
             "note": "Divide the logits by the temperature before the softmax; the OOD bounds are those of brain_tumor.ood.",
             "weights_version": classifier.version, "source": classifier.source}
    (out / EXTRA_NAME).write_text(json.dumps(extra, indent=2) + "\n")
    return out


def export_float16(classifier: Classifier, out: Path) -> Path:
    """The same weights folder with its floating-point tensors stored as float16."""
    config = dataclasses.replace(classifier.config, weights_dtype="float16")  # save_weights records the new shards
    return save_weights(classifier.model.state_dict(), config, out)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m brain_tumor.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="weights folder or Hub id (default: the shipped weights)")
    p.add_argument("--format", choices=["timm", "onnx", "float16"], required=True)
    p.add_argument("--out", required=True, help="a folder (timm, float16) or a .onnx file (onnx)")
    p.add_argument("--int8", action="store_true", help="onnx: also write FILE.int8.onnx with int8 weights")
    return p


def export(args: argparse.Namespace) -> None:
    classifier = Classifier.from_pretrained(args.weights, backend="torch")
    out = Path(args.out)
    if args.format == "timm":
        export_timm(classifier, out)
        print(f"timm folder: {out} (timm.create_model('local-dir:{out}', pretrained=True))")
    elif args.format == "float16":
        export_float16(classifier, out)
        print(f"float16 weights folder: {out}")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(onnx_bytes(classifier.model, classifier.config, classifier.explanation_start()))
        print(f"ONNX model: {out}")
        if args.int8:
            print(f"int8 ONNX model: {quantize_int8(out, out.with_suffix('.int8.onnx'))}")


def main(argv: list[str] | None = None) -> int:
    return exit_status(lambda: export(get_args_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
