"""Command line: `python -m brain_tumor.predict [--weights DIR|HUB_ID] IMAGE... [--json] [--cam-out DIR]`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from brain_tumor.classes import DISPLAY_NAMES
from brain_tumor.classifier import Classifier
from brain_tumor.images import InvalidImageError
from brain_tumor.weights import WeightsError

NOTICE = "Research use only; not a medical device."


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m brain_tumor.predict", description=f"Classify brain MRI slices. {NOTICE}")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, BMP, TIFF, WebP, GIF or DICOM)")
    p.add_argument("--weights", default=None, help="weights folder or Hugging Face Hub id (default: $BRAIN_TUMOR_WEIGHTS, weights/resnet50, weights/baseline)")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) to pin")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    p.add_argument("--cam-out", default=None, metavar="DIR", help="also write a Grad-CAM overlay PNG per image here")
    p.add_argument("--device", default="cpu")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        classifier = Classifier.from_pretrained(args.weights, revision=args.revision, device=args.device)
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    cam_dir = Path(args.cam_out) if args.cam_out else None
    if cam_dir:
        cam_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in args.images:
        try:
            if cam_dir:
                explanation = classifier.explain(path)
                prediction = explanation.prediction
                cam_path = cam_dir / f"{Path(path).stem}_gradcam.png"
                explanation.overlay.save(cam_path)
            else:
                prediction, cam_path = classifier.predict(path), None
        except InvalidImageError as error:
            failures += 1
            print(f"{path}: error: {error}", file=sys.stderr)
            continue
        if args.json:
            record = {"image": path, "label": prediction.label, "probabilities": prediction.probabilities,
                      "out_of_distribution": prediction.out_of_distribution, "warning": prediction.warning}
            if cam_path:
                record["gradcam"] = str(cam_path)
            print(json.dumps(record))
        else:
            probs = "  ".join(f"{name} {p:.3f}" for name, p in prediction.probabilities.items())
            print(f"{path}: {DISPLAY_NAMES.get(prediction.label, prediction.label)} ({prediction.confidence:.1%})  [{probs}]"
                  + (f"  Grad-CAM: {cam_path}" if cam_path else "")
                  + (f"  WARNING: {prediction.warning}" if prediction.warning else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
