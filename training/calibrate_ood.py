"""Fit and measure the out-of-distribution check of a weights folder:
`python -m training.calibrate_ood --weights weights/resnet50 --data ../shared/data/brain-tumor-mri`.

The bounds come from the validation split that training.fit held out, rebuilt by the same function
from the recipe the weights record (data, seed, fraction, cap, twin threshold), and are written
into the folder's config.json. It then reports the false-alarm rate on the clean Testing images
and the detection rate on non-MRI images: photos and documents shipped with scikit-image, and
generated blank, noise, text-screenshot and chest-X-ray-like pictures.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from brain_tumor.classifier import Classifier
from brain_tumor.errors import exit_status
from brain_tumor.ood import SIDES, reasons
from brain_tumor.preprocess import to_uint8_tensor
from brain_tumor.weights import CONFIG_NAME
from training import outside, twins
from training.calibration import OOD_QUANTILE, non_mri_images, ood_scores, ood_section
from training.data import DEFAULT_CACHE, cache_folder, split_recipe_of


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="a local weights folder (its config.json is updated)")
    p.add_argument("--data", default=None, help="the dataset the model was trained on (default: the one its recipe names)")
    p.add_argument("--outside", default=None, help="the outside collections' folder, for weights trained with --outside "
                   "(default: the one their recipe names)")
    p.add_argument("--quantile", type=float, default=OOD_QUANTILE, help="tail share of validation images allowed past each bound")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="decoded-image cache ('' to disable)")
    return p


def calibrate(args: argparse.Namespace) -> dict:
    folder = Path(args.weights)
    classifier = Classifier.from_pretrained(folder, backend="torch")
    model, config = classifier.model, classifier.config
    learnt = config.outside_collections  # the run validated on the outside collections' validation part too (training.fit --outside)
    data, _ = outside.load_judged_data(split_recipe_of(config, args.data), (args.outside or learnt) if learnt else None,
                                       config.image_size, config.clahe, cache_folder(args.cache_dir))
    section = ood_section(model, config, data.val_images if data.val_images is not None else torch.empty(0), quantile=args.quantile)
    bounds = section["bounds"]

    result: dict = {"n_validation": len(data.val), "quantile": args.quantile}
    if data.test is not None:
        clean = twins.clean_mask(twins.thumbnails(data.test_images), data.pool_thumbs)
        alarms = [reasons(s, bounds) for s in ood_scores(model, config, data.test_images[torch.from_numpy(np.flatnonzero(clean))])]
        result.update(false_alarm_rate_clean_test=float(np.mean([bool(a) for a in alarms])), n_clean_test=len(alarms),
                      false_alarms_by_check={name: sum(name in a for a in alarms) for name in SIDES})
    others = non_mri_images()
    batch = torch.stack([to_uint8_tensor(image, config.image_size, config.clahe) for _, image in others])
    flagged = [reasons(s, bounds) for s in ood_scores(model, config, batch)]
    result.update(detection_rate_non_mri=float(np.mean([bool(f) for f in flagged])), n_non_mri=len(others))

    config.ood = section
    config.metrics["ood"] = dict(result)
    config.save(folder / CONFIG_NAME)

    print(f"bounds fitted on {len(data.val)} validation images (tail quantile {args.quantile}): {json.dumps(bounds)}")
    if "false_alarm_rate_clean_test" in result:
        print(f"false alarms on clean Testing images: {result['false_alarm_rate_clean_test']:.2%} of {result['n_clean_test']} "
              f"(by check: {result['false_alarms_by_check']})")
    print(f"detected non-MRI images: {result['detection_rate_non_mri']:.0%} of {result['n_non_mri']}")
    for (kind, _), f in zip(others, flagged):
        print(f"  {kind:28} {'flagged: ' + ', '.join(f) if f else 'MISSED'}")
    return {**result, "validation_files": [str(p) for p in data.val.paths]}


def main(argv: list[str] | None = None) -> int:
    return exit_status(lambda: calibrate(get_args_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
